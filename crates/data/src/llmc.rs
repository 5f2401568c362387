//! llm.c's token shards (also modded-nanogpt's): a header of 256 little-endian `int32`, then
//! the tokens.
//!
//! As `dev/data/data_common.py` of karpathy/llm.c writes them (`write_datafile`):
//!
//! | header word | value |
//! |---|---|
//! | 0 | magic: 20240520 (GPT-2, `uint16` tokens) or 20240801 (Llama 3, `uint32` tokens) |
//! | 1 | version: 1 with the first magic, 7 with the second |
//! | 2 | tokens after the 1024-byte header (`int32`, so fewer than 2^31 per file) |
//! | 3..256 | zero |

use crate::DType;

/// Bytes of the header: 256 `int32`.
pub const HEADER_BYTES: usize = 1024;
/// Magic and version of shards of `uint16` tokens (GPT-2's vocabulary).
pub const MAGIC_U16: i32 = 20_240_520;
pub const VERSION_U16: i32 = 1;
/// Magic and version of shards of `uint32` tokens (Llama 3's vocabulary).
pub const MAGIC_U32: i32 = 20_240_801;
pub const VERSION_U32: i32 = 7;
/// The most tokens one file counts in its int32 word 2 (`data_common.py` asserts fewer than
/// 2^31).
pub const MAX_TOKENS: u64 = i32::MAX as u64;

fn word(bytes: &[u8], i: usize) -> Option<i32> {
    let b = bytes.get(i * 4..i * 4 + 4)?;
    Some(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

/// The token type a magic and version stand for.
fn dtype_of(magic: i32, version: i32) -> Option<DType> {
    match (magic, version) {
        (MAGIC_U16, VERSION_U16) => Some(DType::U16),
        (MAGIC_U32, VERSION_U32) => Some(DType::U32),
        _ => None,
    }
}

/// The dtype llm.c uses for a vocabulary of `vocab_size` ids: `uint16` when every id fits.
pub fn dtype_for_vocab(vocab_size: usize) -> DType {
    if vocab_size <= 1 << 16 {
        DType::U16
    } else {
        DType::U32
    }
}

/// The header of a shard of `tokens` tokens of `dtype` (`uint16` or `uint32`; `None` for
/// another dtype or a count past [`MAX_TOKENS`]).
pub fn header(dtype: DType, tokens: u64) -> Option<[u8; HEADER_BYTES]> {
    let (magic, version) = match dtype {
        DType::U16 => (MAGIC_U16, VERSION_U16),
        DType::U32 => (MAGIC_U32, VERSION_U32),
        _ => return None,
    };
    let count = i32::try_from(tokens).ok()?;
    let mut head = [0u8; HEADER_BYTES];
    for (i, v) in [magic, version, count].into_iter().enumerate() {
        head[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    Some(head)
}

/// Whether a file starts as an llm.c shard does: a known magic with its version. A raw
/// `uint16` array starting with these two words would need tokens 43464, 308, 1, 0 in a row
/// (or 43473, 308, 7, 0), which `.bin` files of real text do not hold.
pub fn looks_like(bytes: &[u8]) -> bool {
    matches!((word(bytes, 0), word(bytes, 1)), (Some(m), Some(v)) if dtype_of(m, v).is_some())
}

/// The dtype and token count of a shard of `len` bytes whose header is `bytes`, or why not.
pub fn parse_header(bytes: &[u8]) -> Result<(DType, u64), String> {
    if bytes.len() < HEADER_BYTES {
        return Err(format!(
            "{} bytes, shorter than the 1024-byte header of 256 int32 (truncated?)",
            bytes.len()
        ));
    }
    let (magic, version, count) = (
        word(bytes, 0).unwrap_or(0),
        word(bytes, 1).unwrap_or(0),
        word(bytes, 2).unwrap_or(0),
    );
    let dtype = match (magic, dtype_of(magic, version)) {
        (_, Some(d)) => d,
        (MAGIC_U16 | MAGIC_U32, None) => {
            let want = if magic == MAGIC_U16 { VERSION_U16 } else { VERSION_U32 };
            return Err(format!(
                "magic {magic} with version {version}: llm.c writes version {want} with that magic"
            ));
        }
        _ => {
            return Err(format!(
                "magic {magic}, expected {MAGIC_U16} (uint16 tokens) or {MAGIC_U32} (uint32 tokens): not an llm.c shard"
            ))
        }
    };
    let count = u64::try_from(count)
        .map_err(|_| format!("the header's token count (word 2) is negative: {count}"))?;
    let data = (bytes.len() - HEADER_BYTES) as u64;
    let want = count * dtype.size() as u64;
    if want != data {
        return Err(format!(
            "the header says {count} {dtype} tokens ({want} bytes after the header) but {data} bytes follow it{}",
            if want > data { " (truncated?)" } else { "" }
        ));
    }
    Ok((dtype, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(magic: i32, version: i32, count: i32, tokens: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_BYTES];
        for (i, w) in [magic, version, count].into_iter().enumerate() {
            h[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        h.extend_from_slice(tokens);
        h
    }

    #[test]
    fn both_versions_and_their_checks() {
        let s = shard(MAGIC_U16, 1, 2, &[1, 0, 2, 0]);
        assert!(looks_like(&s));
        assert_eq!(parse_header(&s), Ok((DType::U16, 2)));
        let s = shard(MAGIC_U32, 7, 1, &[1, 0, 0, 0]);
        assert_eq!(parse_header(&s), Ok((DType::U32, 1)));
        let e = parse_header(&shard(MAGIC_U16, 7, 0, &[])).unwrap_err();
        assert!(e.contains("version 1"), "{e}");
        assert!(!looks_like(&shard(MAGIC_U16, 7, 0, &[])));
        let e = parse_header(&shard(MAGIC_U16, 1, 3, &[1, 0])).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let e = parse_header(&shard(MAGIC_U16, 1, -1, &[])).unwrap_err();
        assert!(e.contains("negative"), "{e}");
        let e = parse_header(&shard(7, 1, 0, &[])).unwrap_err();
        assert!(e.contains("not an llm.c shard"), "{e}");
        assert!(parse_header(&[0; 10]).unwrap_err().contains("shorter"));
    }
}
