//! Time and peak memory of `pack` on one long JSON line without whitespace: printed, not
//! asserted (a loaded machine changes them; see the misuse issue for the figures before).
//!
//! `cargo bench -p osml-pack --bench pack_long_line` (`MB=50` by default; `KINDS=b64,letters`).
//! Each case runs in a child process of its own, so its peak RSS (`VmHWM`) is its own.
//! `b64` is base64-like text: tiktoken's pre-tokenizer cuts it into short pieces at every
//! change between letters, digits and punctuation. `letters` is one run of letters, a single
//! regex piece: tiktoken's merge of it (heap-based `_byte_pair_merge_large`, O(n log n), about
//! 56 bytes of state per byte) took 88 s and 2.4 GB for 50 MB; pack now gives words over 4 KiB
//! to `bpe`'s linear-time encoder (4 s, 325 MiB; figures in the README).

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_precision_loss
)]

use std::io::Write;
use std::time::Instant;

use osml_pack::{pack, PackOptions, Tokenizer};

fn peak_rss_kib() -> u64 {
    let status = String::from_utf8(std::fs::read("/proc/self/status").unwrap()).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn line(kind: &str, bytes: usize) -> Vec<u8> {
    let alphabet: &[u8] = if kind == "letters" {
        b"abcdefghijklmnopqrstuvwxyz"
    } else {
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    };
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut out = b"{\"text\": \"".to_vec();
    out.extend((0..bytes).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        alphabet[usize::try_from(x % alphabet.len() as u64).unwrap()]
    }));
    out.extend_from_slice(b"\"}\n");
    out
}

fn one(kind: &str, mb: usize) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("line.jsonl");
    std::fs::File::create(&input)
        .unwrap()
        .write_all(&line(kind, mb << 20))
        .unwrap();
    let before = peak_rss_kib();
    let t = Instant::now();
    let opts = PackOptions {
        tokenizer: Tokenizer::Gpt2,
        workers: 1,
        ..PackOptions::default()
    };
    let s = pack(&[input], &dir.path().join("out"), &opts, &mut |_| {}).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let peak = peak_rss_kib();
    println!(
        "{kind:>8} {mb} MB line: {:.1} s ({:.2} MB/s), {} tokens, peak RSS {} MiB ({:.1} bytes per input byte; {} MiB before)",
        secs,
        mb as f64 / secs,
        s.written.tokens,
        peak >> 10,
        (peak.saturating_sub(before) << 10) as f64 / (mb << 20) as f64,
        before >> 10
    );
}

fn main() {
    let mb: usize = std::env::var("MB").map_or(50, |v| v.parse().unwrap());
    if let Ok(kind) = std::env::var("OSML_BENCH_CASE") {
        one(&kind, mb);
        return;
    }
    let kinds = std::env::var("KINDS").unwrap_or_else(|_| "b64,letters".into());
    for kind in kinds.split(',') {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .env("OSML_BENCH_CASE", kind)
            .env("MB", mb.to_string())
            .status()
            .unwrap();
        assert!(status.success(), "{kind}: {status}");
    }
}
