//! scratch
#![allow(clippy::unwrap_used)]
use std::time::Instant;
use osml_data::pack::Tokenizer;

fn hwm() -> String {
    let s = String::from_utf8(std::fs::read("/proc/self/status").unwrap()).unwrap();
    s.lines().find(|l| l.starts_with("VmHWM")).unwrap().to_owned()
}

fn main() {
    let mb: usize = std::env::var("MB").map_or(2, |v| v.parse().unwrap());
    let kind = std::env::var("KIND").unwrap_or_else(|_| "letters".into());
    let n = mb << 20;
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let alphabet: &[u8] = match kind.as_str() {
        "letters" => b"abcdefghijklmnopqrstuvwxyz",
        "a" => b"a",
        _ => b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    };
    let text: String = (0..n).map(|_| { x ^= x << 13; x ^= x >> 7; x ^= x << 17; alphabet[(x % alphabet.len() as u64) as usize] as char }).collect();
    eprintln!("before {}", hwm());
    let t = Instant::now();
    let ids = Tokenizer::Gpt2.encode_uncached(&text);
    eprintln!("{kind} {mb} MB: {} ids in {:.2}s; {}", ids.len(), t.elapsed().as_secs_f64(), hwm());
}
