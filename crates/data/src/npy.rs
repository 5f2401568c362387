//! The `.npy` header (numpy's `format.rst`): `\x93NUMPY`, a version, a header length and a
//! Python dict literal such as `{'descr': '<u2', 'fortran_order': False, 'shape': (1000,), }`.
//!
//! Written here rather than taken from a crate: the dict has three keys in a fixed, simple
//! syntax, and the npy crates pull in a full Python-literal parser (pest) for it.

use crate::DType;

#[derive(Debug)]
pub(crate) struct Header {
    pub dtype: DType,
    pub len: usize,
    pub data_offset: usize,
}

const MAGIC: &[u8] = b"\x93NUMPY";

pub(crate) fn parse_header(b: &[u8]) -> Result<Header, String> {
    if b.is_empty() {
        return Err("the file is empty".into());
    }
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("no \\x93NUMPY magic: not a .npy file".into());
    }
    let (major, minor) = (b[6], b[7]);
    let (len, start): (usize, usize) = match major {
        1 => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10),
        2 | 3 => {
            if b.len() < 12 {
                return Err("truncated header".into());
            }
            (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12)
        }
        _ => {
            return Err(format!(
                "format version {major}.{minor}; versions 1 to 3 are known"
            ))
        }
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= b.len())
        .ok_or("truncated header")?;
    // Version 3 allows UTF-8; the keys and values we need are ASCII either way.
    let dict = String::from_utf8_lossy(&b[start..end]);
    let descr = value_of(&dict, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"');
    let fortran = value_of(&dict, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let shape = value_of(&dict, "shape").ok_or("header has no 'shape'")?;

    let (order, kind) = descr.split_at(descr.len().min(1));
    let dtype = match (order, DType::from_name(kind)) {
        (">", _) => return Err(format!("dtype {descr} is big-endian; only little-endian is read (convert with arr.astype('<{kind}'))")),
        ("<" | "|" | "=", Some(d)) if !d.is_float() => d,
        _ => return Err(format!("dtype {descr} is not a little-endian integer type")),
    };
    if fortran.starts_with("True") {
        return Err(
            "fortran_order is True: only C-order arrays are read (np.ascontiguousarray)".into(),
        );
    }
    let dims: Vec<&str> = shape
        .trim_start_matches('(')
        .split(')')
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    let [n] = dims.as_slice() else {
        return Err(format!(
            "shape {shape} is not 1-D; a token array has one dimension"
        ));
    };
    let len = n
        .trim_end_matches('L')
        .parse()
        .map_err(|_| format!("shape entry {n} is not a number"))?;
    Ok(Header {
        dtype,
        len,
        data_offset: end,
    })
}

/// The text of the value of `'key': value` in a dict literal, up to the next top-level comma.
fn value_of<'a>(dict: &'a str, key: &str) -> Option<&'a str> {
    let at = dict
        .find(&format!("'{key}'"))
        .or_else(|| dict.find(&format!("\"{key}\"")))?;
    let rest = dict[at + key.len() + 2..]
        .trim_start()
        .strip_prefix(':')?
        .trim_start();
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' | '}' if depth <= 0 => return Some(rest[..i].trim()),
            _ => {}
        }
    }
    Some(rest.trim())
}

/// Writes a version 1.0 header for a 1-D array, padded to 64 bytes as numpy does.
pub(crate) fn header_bytes(dtype: DType, len: usize) -> Vec<u8> {
    let descr = match dtype.size() {
        1 => format!("|{}", &dtype_char(dtype)),
        _ => format!("<{}", &dtype_char(dtype)),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({len},), }}");
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat(total.next_multiple_of(64) - total));
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&u16::try_from(dict.len()).unwrap_or(u16::MAX).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

fn dtype_char(d: DType) -> String {
    let kind = match d {
        DType::U8 | DType::U16 | DType::U32 | DType::U64 => 'u',
        DType::F32 | DType::F64 => 'f',
        _ => 'i',
    };
    format!("{kind}{}", d.size())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(dict: &str, major: u8) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[major, 0]);
        if major == 1 {
            b.extend_from_slice(&u16::try_from(dict.len()).unwrap().to_le_bytes());
        } else {
            b.extend_from_slice(&u32::try_from(dict.len()).unwrap().to_le_bytes());
        }
        b.extend_from_slice(dict.as_bytes());
        b
    }

    #[test]
    fn reads_what_numpy_writes() {
        let h = parse_header(&npy(
            "{'descr': '<u2', 'fortran_order': False, 'shape': (7,), }\n",
            1,
        ))
        .unwrap();
        assert_eq!((h.dtype, h.len), (DType::U16, 7));
        let h = parse_header(&npy(
            "{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }\n",
            3,
        ))
        .unwrap();
        assert_eq!((h.dtype, h.len), (DType::I32, 3));
        let h = parse_header(&npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (0,), }",
            2,
        ))
        .unwrap();
        assert_eq!((h.dtype, h.len), (DType::U8, 0));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        for (dict, want) in [
            (
                "{'descr': '>u2', 'fortran_order': False, 'shape': (7,), }",
                "big-endian",
            ),
            (
                "{'descr': '<u2', 'fortran_order': True, 'shape': (7,), }",
                "fortran_order",
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (7, 2), }",
                "not 1-D",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }",
                "integer",
            ),
            ("{'descr': '<u2', 'shape': (7,), }", "fortran_order"),
        ] {
            let err = parse_header(&npy(dict, 1)).err().unwrap();
            assert!(err.contains(want), "{dict}: {err}");
        }
        assert!(parse_header(b"").unwrap_err().contains("empty"));
        assert!(parse_header(b"PK\x03\x04 zipfile....")
            .unwrap_err()
            .contains("magic"));
        let mut v4 = npy("{}", 1);
        v4[6] = 4;
        assert!(parse_header(&v4).unwrap_err().contains("version 4"));
    }

    #[test]
    fn header_we_write_parses_and_is_aligned() {
        let b = header_bytes(DType::U16, 12_345);
        assert_eq!(b.len() % 64, 0);
        let h = parse_header(&b).unwrap();
        assert_eq!(
            (h.dtype, h.len, h.data_offset),
            (DType::U16, 12_345, b.len())
        );
    }
}
