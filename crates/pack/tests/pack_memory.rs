//! Memory `pack`'s tokenizer takes for one long run of letters: the peak resident set while
//! it encodes, against a bound per input byte (a size, not a timing, so a busy machine does
//! not change it). Its own test binary, so no other test allocates meanwhile.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_precision_loss
)]

use osml_pack::Tokenizer;

/// `VmRSS` or `VmHWM` (the peak since the last reset) of this process, in bytes.
fn status_bytes(field: &str) -> usize {
    let status = String::from_utf8(std::fs::read("/proc/self/status").unwrap()).unwrap();
    let kib: usize = status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib << 10
}

/// Bytes per input byte that tokenizing may take beyond its input: the ids (4 bytes per token,
/// a token per 1 to 5 letters) and the encoder's state. tiktoken's own merge of one piece this
/// long keeps about 56.
const MAX_BYTES_PER_BYTE: usize = 12;

#[test]
fn a_long_letter_run_is_tokenized_in_a_few_bytes_per_byte() {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let letters = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let text: String = (0..4usize << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(letters[usize::try_from(x % 52).unwrap()])
        })
        .collect();
    for tok in [Tokenizer::Gpt2, Tokenizer::Cl100kBase, Tokenizer::O200kBase] {
        // Vocabularies and encoders are built once per process, on first use: not counted.
        tok.encode(&text[..8192]);
        let before = status_bytes("VmRSS:");
        // "5" resets the peak to the current resident set (proc(5), /proc/pid/clear_refs).
        std::fs::write("/proc/self/clear_refs", "5").unwrap();
        let ids = tok.encode(&text);
        let taken = status_bytes("VmHWM:").saturating_sub(before);
        assert!(
            ids.len() > text.len() / 8,
            "{}: {} ids",
            tok.name(),
            ids.len()
        );
        assert!(
            taken <= MAX_BYTES_PER_BYTE * text.len(),
            "{}: peak RSS grew {taken} bytes for {} bytes of text ({:.1} per byte)",
            tok.name(),
            text.len(),
            taken as f64 / text.len() as f64
        );
    }
}
