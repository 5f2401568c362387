//! How long opening (mapping and fully validating) a Megatron dataset of one billion tokens
//! takes, against the floor of opening and mapping the same two files without looking at
//! them, measured in the same run.
//!
//! `cargo bench -p osml-data --bench open`. The `.bin` is a sparse 2 GB file: opening maps
//! it and checks its size but never reads its tokens, so its content cannot change the figure.
//! The `.idx` is real: 2,000,000 documents of 1 to 999 tokens (mean 500).
//!
//! Then the scan for an end-of-document token that a raw stream needs before a loader with
//! `documents=True` (or `inspect --eod-token`) can give its first batch: a 512 MB raw `uint16`
//! stream (GPT-2's end-of-text 50,256 after documents of 1 to 999 tokens), in the page cache,
//! against reading the same mapping (a sum of its words), interleaved, median of 5.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_precision_loss
)]

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use osml_data::{MegatronDataset, OpenOptions, TokenDataset, TokenSource};

const DOCS: u64 = 2_000_000;

fn build(prefix: &Path) -> u64 {
    let mut lengths = Vec::with_capacity(usize::try_from(DOCS).unwrap());
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut tokens = 0u64;
    for _ in 0..DOCS {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = 1 + x % 999;
        lengths.push(len);
        tokens += len;
    }
    let mut idx = BufWriter::new(File::create(prefix.with_extension("idx")).unwrap());
    idx.write_all(b"MMIDIDX\x00\x00").unwrap();
    idx.write_all(&1u64.to_le_bytes()).unwrap();
    idx.write_all(&[8]).unwrap(); // uint16
    idx.write_all(&DOCS.to_le_bytes()).unwrap();
    idx.write_all(&(DOCS + 1).to_le_bytes()).unwrap();
    for &l in &lengths {
        idx.write_all(&i32::try_from(l).unwrap().to_le_bytes())
            .unwrap();
    }
    let mut ptr = 0u64;
    for &l in &lengths {
        idx.write_all(&ptr.to_le_bytes()).unwrap();
        ptr += l * 2;
    }
    for d in 0..=DOCS {
        idx.write_all(&d.to_le_bytes()).unwrap();
    }
    idx.into_inner().unwrap().sync_all().unwrap();
    File::create(prefix.with_extension("bin"))
        .unwrap()
        .set_len(ptr)
        .unwrap();
    tokens
}

fn evict(path: &Path) {
    let f = File::open(path).unwrap();
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

fn median(mut v: Vec<Duration>) -> (Duration, Duration, Duration) {
    v.sort();
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

fn main() {
    let dir = tempfile::tempdir_in(
        std::env::var_os("OSML_BENCH_DIR").unwrap_or_else(|| env!("CARGO_TARGET_TMPDIR").into()),
    )
    .unwrap();
    let prefix = dir.path().join("one-billion");
    let tokens = build(&prefix);
    let idx = prefix.with_extension("idx");
    let bin = prefix.with_extension("bin");
    let floor = || {
        let t = Instant::now();
        // SAFETY: the benchmark's own files, written before and not modified while mapped.
        #[allow(unsafe_code)]
        let (a, b) = unsafe {
            (
                osml_sys::MappedFile::open(&idx).unwrap(),
                osml_sys::MappedFile::open(&bin).unwrap(),
            )
        };
        std::hint::black_box((a.len(), b.len()));
        t.elapsed()
    };
    let osml = || {
        let t = Instant::now();
        let ds = MegatronDataset::open(&prefix).unwrap();
        std::hint::black_box(ds.tokens());
        t.elapsed()
    };
    let ds = MegatronDataset::open(&prefix).unwrap();
    assert_eq!(ds.tokens(), tokens);
    assert_eq!(ds.num_documents() as u64, DOCS);
    drop(ds);
    let mut rows = Vec::new();
    for (name, f) in [
        ("open + mmap only (floor)", &floor as &dyn Fn() -> Duration),
        ("MegatronDataset::open (validates every entry)", &osml),
    ] {
        f();
        let warm = median((0..21).map(|_| f()).collect());
        let cold = median(
            (0..7)
                .map(|_| {
                    evict(&idx);
                    f()
                })
                .collect(),
        );
        rows.push((name, warm, cold));
    }
    println!(
        "{} tokens, {DOCS} documents, .idx {} MB",
        tokens,
        std::fs::metadata(&idx).unwrap().len() / 1_000_000
    );
    println!("| what | warm median ms (min–max) | cold .idx median ms (min–max) |");
    println!("|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, (w, wl, wh), (c, cl, ch)) in &rows {
        println!(
            "| {name} | {:.2} ({:.2}–{:.2}) | {:.2} ({:.2}–{:.2}) |",
            ms(*w),
            ms(*wl),
            ms(*wh),
            ms(*c),
            ms(*cl),
            ms(*ch)
        );
    }
    println!(
        "warm: validation costs {:.1}x the floor",
        rows[1].1 .0.as_secs_f64() / rows[0].1 .0.as_secs_f64().max(1e-9)
    );
    println!();
    eod_scan(dir.path());
}

/// The end-of-document scan of a raw stream against a read of the same bytes.
fn eod_scan(dir: &Path) {
    const TOKENS: usize = 256 << 20;
    const EOD: u16 = 50_256;
    let path = dir.join("raw.bin");
    let mut tokens = vec![0u16; TOKENS];
    let (mut x, mut next, mut documents) = (0x2545_F491_4F6C_DD1Du64, 0usize, 0usize);
    for (i, t) in tokens.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if i == next {
            *t = EOD;
            next = i + 1 + usize::try_from(x % 999).unwrap();
            documents += 1;
        } else {
            *t = u16::try_from(x % 50_000).unwrap();
        }
    }
    std::fs::write(&path, bytemuck::cast_slice::<u16, u8>(&tokens)).unwrap();
    drop(tokens);
    let warm = || std::hint::black_box(std::fs::read(&path).unwrap().len());
    let read = || {
        // SAFETY: the benchmark's own file, written above and not modified while mapped.
        #[allow(unsafe_code)]
        let m = unsafe { osml_sys::MappedFile::open(&path).unwrap() };
        let t = Instant::now();
        let words: &[u8] = m.bytes();
        let sum = words.chunks_exact(8).fold(0u64, |s, w| {
            s.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
        });
        std::hint::black_box(sum);
        t.elapsed()
    };
    let scan = || {
        let options = OpenOptions {
            eod_token: Some(u64::from(EOD)),
            ..OpenOptions::default()
        };
        let ds = TokenDataset::open(&path, options).unwrap();
        let t = Instant::now();
        let found = ds.num_documents();
        let took = t.elapsed();
        // The stream starts with the token, so each occurrence starts a document.
        assert_eq!(found, documents, "documents");
        took
    };
    let (mut reads, mut scans) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        warm();
        reads.push(read());
        warm();
        scans.push(scan());
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let (r, s) = (median(reads).0, median(scans).0);
    let gbs = |d: Duration| (TOKENS * 2) as f64 / d.as_secs_f64() / 1e9;
    println!(
        "end-of-document scan of {} M uint16 tokens ({documents} documents), in the page cache, median of 5; load average {}",
        TOKENS >> 20,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("| what | median ms | GB/s |");
    println!("|---|---|---|");
    println!(
        "| a read of the mapping (floor) | {:.1} | {:.2} |",
        r.as_secs_f64() * 1e3,
        gbs(r)
    );
    println!(
        "| the scan (`documents=True`, `--eod-token`) | {:.1} | {:.2} |",
        s.as_secs_f64() * 1e3,
        gbs(s)
    );
    println!(
        "the scan costs {:.2}x the read",
        s.as_secs_f64() / r.as_secs_f64().max(1e-9)
    );
}
