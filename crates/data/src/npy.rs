//! The `.npy` header (numpy's `format.rst`): `\x93NUMPY`, a version, a header length and a
//! Python dict literal such as `{'descr': '<u2', 'fortran_order': False, 'shape': (1000,), }`.
//!
//! Parsed as numpy parses it (`numpy/lib/_format_impl.py`, `_read_array_header`): the header
//! is decoded (latin-1 for versions 1.0 and 2.0, UTF-8 for 3.0), refused past
//! [`MAX_HEADER_CHARS`] characters, evaluated with `ast.literal_eval`, and must then be a dict
//! whose keys are exactly `descr`, `fortran_order` and `shape` (duplicates allowed, the last
//! one winning, as in any Python dict display), `shape` a tuple of ints (a bool is an int to
//! Python), `fortran_order` a bool and `descr` a dtype. [`literal`] is the subset of Python
//! literal syntax such a header can use: strings (either quote, escapes, implicit
//! concatenation), ints (`1_000`, `0x10`, a sign), `True`/`False`/`None`, tuples, lists and
//! dicts, with comments and line breaks as the tokenizer allows. Anything outside that subset
//! is refused, so osml never reads a header numpy would not.
//!
//! Written here rather than taken from a crate: the npy crates pull in a full Python-literal
//! parser (pest) for three keys.

use crate::DType;

#[derive(Debug)]
pub(crate) struct Header {
    pub dtype: DType,
    pub len: usize,
    pub data_offset: usize,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// numpy's `_MAX_HEADER_SIZE`: `numpy.load` refuses a longer header (counted in decoded
/// characters) unless `allow_pickle=True`. Also the most of a header osml reads.
pub(crate) const MAX_HEADER_CHARS: usize = 10_000;

pub(crate) fn parse_header(b: &[u8]) -> Result<Header, String> {
    if b.is_empty() {
        return Err("the file is empty".into());
    }
    if b.len() < 10 || &b[..6] != MAGIC {
        return Err("no \\x93NUMPY magic: not a .npy file".into());
    }
    let (major, minor) = (b[6], b[7]);
    // `_header_size_info`: exactly 1.0, 2.0 and 3.0 exist.
    let (len, start, utf8): (usize, usize, bool) = match (major, minor) {
        (1, 0) => (usize::from(u16::from_le_bytes([b[8], b[9]])), 10, false),
        (2 | 3, 0) => {
            if b.len() < 12 {
                return Err("truncated header".into());
            }
            let len = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
            (usize::try_from(len).unwrap_or(usize::MAX), 12, major == 3)
        }
        _ => {
            return Err(format!(
                "format version {major}.{minor}; versions 1.0, 2.0 and 3.0 are known"
            ))
        }
    };
    let end = start
        .checked_add(len)
        .filter(|&e| e <= b.len())
        .ok_or("truncated header")?;
    let raw = &b[start..end];
    let text: String = if utf8 {
        std::str::from_utf8(raw)
            .map_err(|_| "the header is not UTF-8 (version 3.0 headers are)")?
            .to_owned()
    } else {
        raw.iter().map(|&c| char::from(c)).collect()
    };
    if text.chars().count() > MAX_HEADER_CHARS {
        return Err(format!(
            "the header is longer than the {MAX_HEADER_CHARS} characters numpy.load reads"
        ));
    }
    let value = match literal(&text) {
        Ok(v) => Ok(v),
        // `_filter_header`: headers of versions 1.0 and 2.0 written by Python 2 may hold
        // `10L`; numpy retries without the `L`.
        Err(_) if !utf8 => literal(&drop_long_suffixes(&text)),
        Err(e) => Err(e),
    }
    .map_err(|e| format!("the header is not a Python literal: {e}"))?;
    from_dict(value, end)
}

/// The header dict checked as `_read_array_header` checks it.
fn from_dict(value: Value, data_offset: usize) -> Result<Header, String> {
    let Value::Dict(entries) = value else {
        return Err("the header is not a dictionary".into());
    };
    let mut descr = None;
    let mut fortran = None;
    let mut shape = None;
    for (k, v) in entries {
        match k {
            Value::Str(k) if k == "descr" => descr = Some(v),
            Value::Str(k) if k == "fortran_order" => fortran = Some(v),
            Value::Str(k) if k == "shape" => shape = Some(v),
            other => {
                return Err(format!(
                "the header has the key {}; exactly descr, fortran_order and shape belong in it",
                other.describe()
            ))
            }
        }
    }
    let (Some(descr), Some(fortran), Some(shape)) = (descr, fortran, shape) else {
        return Err(
            "the header does not have exactly the keys descr, fortran_order and shape".into(),
        );
    };
    let Value::Tuple(dims) = shape else {
        return Err(format!(
            "shape is {}, not a tuple of ints",
            shape.describe()
        ));
    };
    let dims = dims
        .iter()
        .map(|d| match d {
            Value::Int(i) => Ok(*i),
            Value::Bool(b) => Ok(i128::from(*b)),
            other => Err(format!("shape holds {}, not an int", other.describe())),
        })
        .collect::<Result<Vec<i128>, String>>()?;
    let Value::Bool(fortran) = fortran else {
        return Err(format!(
            "fortran_order is {}, not True or False",
            fortran.describe()
        ));
    };
    let Value::Str(descr) = descr else {
        return Err(format!(
            "descr is {}; osml reads a dtype given as a string such as '<u2'",
            descr.describe()
        ));
    };
    let dtype = dtype_of(&descr)?;
    if let Some(d) = dims.iter().find(|&&d| d < 0) {
        return Err(format!("shape has the negative dimension {d}"));
    }
    if fortran && dims.len() > 1 {
        return Err(
            "fortran_order is True: only C-order arrays are read (np.ascontiguousarray)".into(),
        );
    }
    let [n] = dims.as_slice() else {
        return Err(format!(
            "shape has {} dimensions; a token array has one",
            dims.len()
        ));
    };
    let len = usize::try_from(*n).map_err(|_| format!("shape entry {n} is too large"))?;
    Ok(Header {
        dtype,
        len,
        data_offset,
    })
}

/// A dtype string as `numpy.dtype` reads it, restricted to little-endian integers: an
/// optional byte order (`<`, `=` or `|`; `>` only for one-byte types) and a kind and size
/// (`u2`, `i8`), a numpy name (`uint16`) or a one-character code (`H`, `q`).
fn dtype_of(descr: &str) -> Result<DType, String> {
    let shown = crate::npy::printable(descr);
    let (order, rest) = match descr.as_bytes().first() {
        Some(c @ (b'<' | b'>' | b'=' | b'|')) => (Some(*c), &descr[1..]),
        _ => (None, descr),
    };
    let by_code = match rest {
        "b" => Some(DType::I8),
        "B" => Some(DType::U8),
        "h" => Some(DType::I16),
        "H" => Some(DType::U16),
        "i" => Some(DType::I32),
        "I" => Some(DType::U32),
        "l" | "q" => Some(DType::I64),
        "L" | "Q" => Some(DType::U64),
        _ => None,
    };
    let dtype = by_code.or_else(|| DType::from_name(rest)).ok_or_else(|| {
        format!("descr {shown} is not a dtype osml reads (little-endian integers)")
    })?;
    if dtype.is_float() {
        return Err(format!("dtype {shown} is not a little-endian integer type"));
    }
    if order == Some(b'>') && dtype.size() > 1 {
        return Err(format!(
            "dtype {shown} is big-endian; only little-endian is read (convert with arr.astype('<{rest}'))"
        ));
    }
    Ok(dtype)
}

/// `s` quoted, with anything but printable ASCII escaped, for messages.
pub(crate) fn printable(s: &str) -> String {
    format!("{:?}", s.chars().take(40).collect::<String>())
}

/// numpy's `_filter_header`: drops the `L` after an integer (Python 2 longs).
fn drop_long_suffixes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut prev_digit = false;
    for c in text.chars() {
        if (c == 'L' || c == 'l') && prev_digit {
            prev_digit = false;
            continue;
        }
        prev_digit = c.is_ascii_digit();
        out.push(c);
    }
    out
}

/// A Python literal, as `ast.literal_eval` returns it (the kinds a header can hold).
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    Bytes,
    Int(i128),
    Float,
    Bool(bool),
    None,
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
}

impl Value {
    fn describe(&self) -> String {
        match self {
            Self::Str(s) => printable(s),
            Self::Bytes => "a bytes literal".into(),
            Self::Int(i) => i.to_string(),
            Self::Float => "a float".into(),
            Self::Bool(b) => if *b { "True" } else { "False" }.into(),
            Self::None => "None".into(),
            Self::Tuple(_) => "a tuple".into(),
            Self::List(_) => "a list".into(),
            Self::Dict(_) => "a dict".into(),
        }
    }
}

/// `ast.literal_eval(text)` for the subset described in the module documentation: leading
/// spaces and tabs are stripped as `literal_eval` does, then one expression, then only
/// whitespace and comments.
fn literal(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.trim_start_matches([' ', '\t']).as_bytes(),
        i: 0,
        depth: 0,
    };
    let v = p.value()?;
    p.skip(false);
    if p.i != p.s.len() {
        return Err(format!("unexpected text at character {}", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    /// Brackets open: inside them, line breaks are whitespace (Python's implicit joining).
    depth: usize,
}

/// Nesting deeper than this is refused (`CPython`'s parser also has a limit).
const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Skips blanks, comments and backslash-newline joins; line breaks only inside brackets
    /// (or at the very end, where the tokenizer allows them) unless `newlines`.
    fn skip(&mut self, newlines: bool) {
        let newlines = newlines || self.depth > 0;
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\x0c') => self.i += 1,
                Some(b'\r' | b'\n') if newlines || self.rest_is_blank() => self.i += 1,
                Some(b'\\') if matches!(self.s.get(self.i + 1), Some(b'\n')) => self.i += 2,
                Some(b'#') => {
                    while !matches!(self.peek(), None | Some(b'\n' | b'\r')) {
                        self.i += 1;
                    }
                }
                _ => return,
            }
        }
    }

    fn rest_is_blank(&self) -> bool {
        self.s[self.i..]
            .iter()
            .all(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n' | b'\x0c'))
    }

    fn value(&mut self) -> Result<Value, String> {
        self.skip(false);
        let at = self.i;
        let v = match self.peek().ok_or("the header ends where a value belongs")? {
            b'{' => self.container(b'}')?,
            b'(' => self.container(b')')?,
            b'[' => self.container(b']')?,
            b'\'' | b'"' => self.strings()?,
            b'-' | b'+' => {
                let neg = self.peek() == Some(b'-');
                self.i += 1;
                self.skip(false);
                match self.value()? {
                    Value::Int(n) => Value::Int(if neg { -n } else { n }),
                    Value::Float => Value::Float,
                    other => return Err(format!("a sign before {}", other.describe())),
                }
            }
            c if c.is_ascii_digit() || c == b'.' => self.number()?,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == b'_')
                {
                    self.i += 1;
                }
                let word = &self.s[start..self.i];
                match (word, self.peek()) {
                    (b"True", _) => Value::Bool(true),
                    (b"False", _) => Value::Bool(false),
                    (b"None", _) => Value::None,
                    (p, Some(b'\'' | b'"'))
                        if p.len() <= 2 && p.iter().all(|c| b"rRuUbB".contains(c)) =>
                    {
                        self.i = start;
                        self.strings()?
                    }
                    _ => return Err(format!("a name at character {at}, not a literal")),
                }
            }
            _ => return Err(format!("unexpected character at {at}")),
        };
        Ok(v)
    }

    /// `{k: v, …}`, `(a, …)` or `[a, …]`, trailing comma allowed; `(x)` is just `x`.
    fn container(&mut self, close: u8) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err("too deeply nested".into());
        }
        self.i += 1;
        let mut items = Vec::new();
        let mut pairs = Vec::new();
        let mut commas = 0;
        loop {
            self.skip(true);
            if self.peek() == Some(close) {
                self.i += 1;
                break;
            }
            let v = self.value()?;
            self.skip(true);
            if close == b'}' {
                if self.peek() != Some(b':') {
                    return Err("a dict entry without ':'".into());
                }
                self.i += 1;
                let val = self.value()?;
                pairs.push((v, val));
            } else {
                items.push(v);
            }
            self.skip(true);
            match self.peek() {
                Some(b',') => {
                    self.i += 1;
                    commas += 1;
                }
                Some(c) if c == close => {
                    self.i += 1;
                    break;
                }
                _ => {
                    return Err(format!(
                        "expected ',' or a closing bracket at character {}",
                        self.i
                    ))
                }
            }
        }
        self.depth -= 1;
        Ok(match close {
            b'}' => Value::Dict(pairs),
            b']' => Value::List(items),
            // `(x)` is a parenthesised x; `(x,)` and `()` are tuples.
            _ if items.len() == 1 && commas == 0 => items.pop().unwrap_or(Value::None),
            _ => Value::Tuple(items),
        })
    }

    /// One or more adjacent string literals, concatenated (`'a' "b"` is `'ab'`).
    fn strings(&mut self) -> Result<Value, String> {
        let mut out = String::new();
        let mut bytes = None;
        loop {
            self.skip(false);
            let start = self.i;
            let mut raw = false;
            let mut is_bytes = false;
            while let Some(c @ (b'r' | b'R' | b'u' | b'U' | b'b' | b'B')) = self.peek() {
                raw |= matches!(c, b'r' | b'R');
                is_bytes |= matches!(c, b'b' | b'B');
                self.i += 1;
            }
            let Some(q @ (b'\'' | b'"')) = self.peek() else {
                self.i = start;
                break;
            };
            if bytes.is_some_and(|b| b != is_bytes) {
                return Err("bytes and str literals joined".into());
            }
            bytes = Some(is_bytes);
            self.string(q, raw, &mut out)?;
        }
        Ok(if bytes == Some(true) {
            Value::Bytes
        } else {
            Value::Str(out)
        })
    }

    fn string(&mut self, q: u8, raw: bool, out: &mut String) -> Result<(), String> {
        let triple = self.s[self.i..].starts_with(&[q, q, q]);
        self.i += if triple { 3 } else { 1 };
        let mut buf = Vec::new();
        loop {
            let c = self.peek().ok_or("a string is not closed")?;
            if c == q && (!triple || self.s[self.i..].starts_with(&[q, q, q])) {
                self.i += if triple { 3 } else { 1 };
                break;
            }
            if (c == b'\n' || c == b'\r') && !triple {
                return Err("a line break inside a string".into());
            }
            self.i += 1;
            if c != b'\\' {
                buf.push(c);
                continue;
            }
            let e = self.peek().ok_or("a string is not closed")?;
            self.i += 1;
            if raw {
                buf.extend_from_slice(&[b'\\', e]);
                continue;
            }
            let mut push = |ch: char| {
                let mut b = [0u8; 4];
                buf.extend_from_slice(ch.encode_utf8(&mut b).as_bytes());
            };
            match e {
                b'\n' => {}
                b'\\' | b'\'' | b'"' => push(char::from(e)),
                b'n' => push('\n'),
                b't' => push('\t'),
                b'r' => push('\r'),
                b'0' => push('\0'),
                b'a' => push('\x07'),
                b'b' => push('\x08'),
                b'f' => push('\x0c'),
                b'v' => push('\x0b'),
                b'x' | b'u' | b'U' => {
                    let n = match e {
                        b'x' => 2,
                        b'u' => 4,
                        _ => 8,
                    };
                    let hex = self.s.get(self.i..self.i + n).ok_or("a short \\x escape")?;
                    let code = std::str::from_utf8(hex)
                        .ok()
                        .and_then(|h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                        .ok_or("a bad escape")?;
                    self.i += n;
                    push(code);
                }
                _ => {
                    return Err(format!(
                        "the escape \\{} is not one osml reads",
                        char::from(e)
                    ))
                }
            }
        }
        // Header bytes were decoded to chars already, so the bytes between quotes are UTF-8.
        out.push_str(std::str::from_utf8(&buf).map_err(|_| "a string is not text")?);
        Ok(())
    }

    /// An int (`10`, `1_000`, `0x1f`, `0o7`, `0b1`) or something float-like (`1.5`, `1e3`).
    fn number(&mut self) -> Result<Value, String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            let exp_sign = matches!(c, b'+' | b'-')
                && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'))
                && !self.s[start..self.i].starts_with(b"0x");
            if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || exp_sign {
                self.i += 1;
            } else {
                break;
            }
        }
        let tok = std::str::from_utf8(&self.s[start..self.i]).map_err(|_| "a bad number")?;
        if let Some(n) = int_literal(tok) {
            return Ok(Value::Int(n));
        }
        let plain: String = tok.chars().filter(|&c| c != '_').collect();
        let valid_underscores = !tok.contains("__") && !tok.ends_with('_') && !tok.starts_with('_');
        let float = plain.strip_suffix(['j', 'J']).unwrap_or(&plain);
        if valid_underscores
            && float.parse::<f64>().is_ok()
            && float.bytes().any(|c| matches!(c, b'.' | b'e' | b'E'))
        {
            return Ok(Value::Float);
        }
        if valid_underscores
            && tok.ends_with(['j', 'J'])
            && int_literal(&tok[..tok.len() - 1]).is_some()
        {
            return Ok(Value::Float);
        }
        Err(format!("{} is not a number", printable(tok)))
    }
}

/// Python's integer literal syntax: decimal without leading zeros (`0`, `00` allowed),
/// `0x`, `0o`, `0b`, with single underscores between digits.
fn int_literal(tok: &str) -> Option<i128> {
    let (radix, digits) = match tok.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &tok[2..]),
        Some("0o") => (8, &tok[2..]),
        Some("0b") => (2, &tok[2..]),
        _ => (10, tok),
    };
    // After a prefix, one underscore may come first (`0x_1f`).
    let body = if radix == 10 {
        digits
    } else {
        digits.strip_prefix('_').unwrap_or(digits)
    };
    if body.is_empty() || body.starts_with('_') || body.ends_with('_') || body.contains("__") {
        return None;
    }
    let plain: String = body.chars().filter(|&c| c != '_').collect();
    if radix == 10 && plain.len() > 1 && plain.starts_with('0') && plain.bytes().any(|c| c != b'0')
    {
        return None;
    }
    if !plain.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    // Past i128: still an int to Python, and far past any shape; saturate.
    Some(i128::from_str_radix(&plain, radix).unwrap_or(i128::MAX))
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
                "{'descr': '<u2', 'fortran_order': True, 'shape': (7, 2), }",
                "fortran_order",
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (7, 2), }",
                "2 dimensions",
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

    fn verdict(dict: &str) -> Result<(DType, usize), String> {
        parse_header(&npy(dict, 1)).map(|h| (h.dtype, h.len))
    }

    /// Each case is what `numpy.load` does with the header (numpy 2.4, checked by hand and by
    /// `tests/python/test_npy_headers.py`).
    #[test]
    fn parses_as_numpy_does() {
        for (dict, want) in [
            // Duplicate keys: the last wins, as in a Python dict display.
            (
                "{'descr': '<f4', 'descr': '<u2', 'fortran_order': False, 'shape': (3,)}",
                Some((DType::U16, 3)),
            ),
            (
                "{'shape': (4,), 'fortran_order': False, 'descr': '<u2', 'descr': '<i4'}",
                Some((DType::I32, 4)),
            ),
            (
                "{\"descr\": \"<u2\", 'fortran_order': False, 'shape': (1_000,)}",
                Some((DType::U16, 1000)),
            ),
            (
                "{'descr': '<' 'u2', 'fortran_order': False, 'shape': (0x10,)}",
                Some((DType::U16, 16)),
            ),
            (
                "{'descr': 'uint16', 'fortran_order': False, 'shape': ((5),)}",
                Some((DType::U16, 5)),
            ),
            (
                "{'descr': '<u2', 'fortran_order': True, 'shape': (5,)}",
                Some((DType::U16, 5)),
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (True,)}",
                Some((DType::U16, 1)),
            ),
            (
                "{'descr': '<u2', # comment\n 'fortran_order': False, 'shape': (2,)}  \n",
                Some((DType::U16, 2)),
            ),
            (
                "{'descr': '\\x3cu2', 'fortran_order': False, 'shape': (2,)}",
                Some((DType::U16, 2)),
            ),
            // What numpy refuses.
            ("{'descr': '<u2', 'fortran_order': 0, 'shape': (2,)}", None),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': [2]}",
                None,
            ),
            ("{'descr': '<u2', 'fortran_order': False, 'shape': 2}", None),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (2.0,)}",
                None,
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (-2,)}",
                None,
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (2,), 'x': 1}",
                None,
            ),
            ("{'descr': '<u2', 'fortran_order': False}", None),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (02,)}",
                None,
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (1__0,)}",
                None,
            ),
            (
                "{'descr': '<u2', 'fortran_order': false, 'shape': (2,)}",
                None,
            ),
            (
                "{'descr': 'u', 'fortran_order': False, 'shape': (2,)}",
                None,
            ),
            (
                "{'descr': '\u{e9}u2', 'fortran_order': False, 'shape': (2,)}",
                None,
            ),
            (
                "{'descr': '<u2', 'fortran_order': False, 'shape': (2,)} x",
                None,
            ),
            ("['descr', '<u2']", None),
        ] {
            let got = verdict(dict).ok();
            assert_eq!(got, want, "{dict}: {:?}", verdict(dict));
        }
        // Python 2's longs, in versions 1.0 and 2.0 only.
        assert_eq!(
            verdict("{'descr': '<u2', 'fortran_order': False, 'shape': (5L,)}").ok(),
            Some((DType::U16, 5))
        );
        assert!(parse_header(&npy(
            "{'descr': '<u2', 'fortran_order': False, 'shape': (5L,)}",
            3
        ))
        .is_err());
        // Minor versions other than 0 do not exist.
        let mut v11 = npy("{'descr': '<u2', 'fortran_order': False, 'shape': (5,)}", 1);
        v11[7] = 1;
        assert!(parse_header(&v11).unwrap_err().contains("1.1"));
    }

    #[test]
    fn no_byte_panics_the_parser() {
        let good = header_bytes(DType::U16, 12);
        for i in 0..good.len() {
            for b in [0u8, b'\'', b'(', b'{', b'\\', 0x80, 0xc3, 0xff, b'#', b'\n'] {
                let mut m = good.clone();
                m[i] = b;
                let _ = parse_header(&m);
                let _ = parse_header(&m[..i]);
            }
        }
        // A non-ASCII first character of descr (it panicked in `split_at`).
        let _ = parse_header(&npy(
            "{'descr': '\u{e9}2', 'fortran_order': False, 'shape': (2,)}",
            3,
        ));
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
