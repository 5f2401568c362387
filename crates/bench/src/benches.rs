//! The benchmarks. Each returns samples of one figure; [`crate::run`] summarises them.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use osml_sys::{HugeBuffer, MappedFile};

use crate::harness::{repeat, Budget, Clock};
use crate::stats::Summary;
use crate::BenchError;

fn ns(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e9
}

fn io(what: &'static str) -> impl Fn(std::io::Error) -> BenchError {
    move |e| BenchError::Io { what, error: e }
}

/// A trivial system call round trip (`getppid`), in ns.
pub fn syscall(clock: &dyn Clock, b: &Budget) -> Option<Summary> {
    const N: u32 = 200_000;
    repeat(clock, b, || {
        let t = Instant::now();
        for _ in 0..N {
            std::hint::black_box(rustix::process::getppid());
        }
        ns(t) / f64::from(N)
    })
}

/// Runs `f` with the calling thread (and what it starts) pinned to one CPU, then restores
/// its affinity. Context switches are measured on one CPU: across CPUs the figure is mostly
/// the cost of waking the other CPU (an inter-processor interrupt, expensive in a VM), and
/// where the scheduler puts the two ends changes it several-fold from run to run.
fn on_one_cpu<T>(f: impl FnOnce() -> T) -> Result<T, BenchError> {
    let before = osml_sys::allowed_cpus()?;
    osml_sys::pin_current_thread(&before[..1])?;
    let out = f();
    osml_sys::pin_current_thread(&before)?;
    Ok(out)
}

/// Repetitions of `n` one-byte round trips through an echoing peer: µs per round trip.
fn round_trips(
    clock: &dyn Clock,
    b: &Budget,
    n: u32,
    to: &mut impl Write,
    from: &mut impl Read,
) -> Option<Summary> {
    let mut byte = [0u8; 1];
    repeat(clock, b, || {
        let t = Instant::now();
        for _ in 0..n {
            let _ = to.write_all(&[1]);
            let _ = from.read_exact(&mut byte);
        }
        ns(t) / f64::from(n) / 1e3
    })
}

/// One-byte pipe ping-pong between two threads on one CPU: µs per round trip (two context
/// switches).
pub fn ctxswitch_thread(clock: &dyn Clock, b: &Budget) -> Result<Option<Summary>, BenchError> {
    on_one_cpu(|| ctxswitch_thread_here(clock, b, None))?
}

/// The same ping-pong with the two threads pinned to two different CPUs: each hand-over
/// wakes the other CPU (an inter-processor interrupt, and in a VM often a VM exit), the
/// price a loader thread pays to wake a training thread on another core.
pub fn ctxswitch_cross(clock: &dyn Clock, b: &Budget) -> Result<Option<Summary>, BenchError> {
    let before = osml_sys::allowed_cpus()?;
    let [first, second, ..] = before[..] else {
        return Err(BenchError::Io {
            what: "a cross-CPU context switch",
            error: std::io::Error::other(format!(
                "needs two CPUs, this process may use {}",
                before.len()
            )),
        });
    };
    osml_sys::pin_current_thread(&[first])?;
    let out = ctxswitch_thread_here(clock, b, Some(second));
    osml_sys::pin_current_thread(&before)?;
    out
}

fn ctxswitch_thread_here(
    clock: &dyn Clock,
    b: &Budget,
    echo_cpu: Option<usize>,
) -> Result<Option<Summary>, BenchError> {
    const N: u32 = 20_000;
    // Two pipes: main → echo thread, and back.
    let (mut to_echo_r, mut to_echo_w) = std::io::pipe().map_err(io("pipe"))?;
    let (mut back_r, mut back_w) = std::io::pipe().map_err(io("pipe"))?;
    let echo = std::thread::spawn(move || {
        if let Some(cpu) = echo_cpu {
            let _ = osml_sys::pin_current_thread(&[cpu]);
        }
        let mut byte = [0u8; 1];
        while to_echo_r.read_exact(&mut byte).is_ok() {
            if back_w.write_all(&byte).is_err() {
                break;
            }
        }
    });
    let s = round_trips(clock, b, N, &mut to_echo_w, &mut back_r);
    drop(to_echo_w); // the echo thread sees end of file and returns
    let _ = echo.join();
    Ok(s)
}

/// The same ping-pong with another process (`cat` echoing its stdin, started on the same
/// CPU: a spawned process inherits the caller's affinity): µs per round trip.
pub fn ctxswitch_process(clock: &dyn Clock, b: &Budget) -> Result<Option<Summary>, BenchError> {
    on_one_cpu(|| ctxswitch_process_here(clock, b))?
}

fn ctxswitch_process_here(clock: &dyn Clock, b: &Budget) -> Result<Option<Summary>, BenchError> {
    const N: u32 = 10_000;
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(io("spawning cat"))?;
    let (Some(mut w), Some(mut r)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(BenchError::Io {
            what: "cat's pipes",
            error: std::io::Error::other("missing"),
        });
    };
    let s = round_trips(clock, b, N, &mut w, &mut r);
    drop(w);
    let _ = child.wait();
    Ok(s)
}

/// Starting and joining a thread, in µs.
pub fn spawn_thread(clock: &dyn Clock, b: &Budget) -> Option<Summary> {
    const N: u32 = 200;
    repeat(clock, b, || {
        let t = Instant::now();
        for _ in 0..N {
            let _ = std::thread::spawn(|| std::hint::black_box(1)).join();
        }
        ns(t) / f64::from(N) / 1e3
    })
}

/// Running `/bin/true` to completion, in µs: with `std::process::Command` as it is
/// (`posix_spawn(3)`, a `vfork`-style clone that shares the parent's memory until exec) or,
/// with `fork`, through `fork(2)` + `execve(2)`, which copies the parent's page tables first.
pub fn spawn_process(
    clock: &dyn Clock,
    b: &Budget,
    fork: bool,
) -> Result<Option<Summary>, BenchError> {
    const N: u32 = 20;
    let mut failed = None;
    let s = repeat(clock, b, || {
        let t = Instant::now();
        for _ in 0..N {
            let mut cmd = Command::new("/bin/true");
            let status = if fork {
                osml_sys::fork_exec_status(&mut cmd)
            } else {
                cmd.status()
            };
            if let Err(e) = status {
                failed.get_or_insert(e);
            }
        }
        ns(t) / f64::from(N) / 1e3
    });
    or_io(s, failed, "running /bin/true")
}

/// Spawning a task on a tokio multi-thread runtime (one worker per allowed CPU) and awaiting
/// its result, in µs per task: the unit of work of an async loader.
pub fn spawn_task(clock: &dyn Clock, b: &Budget) -> Result<Option<Summary>, BenchError> {
    const N: u32 = 10_000;
    let workers = osml_sys::allowed_cpus().map_or(1, |c| c.len());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .build()
        .map_err(io("starting a tokio runtime"))?;
    Ok(repeat(clock, b, || {
        rt.block_on(async {
            let t = Instant::now();
            let handles: Vec<_> = (0..N)
                .map(|i| tokio::spawn(async move { std::hint::black_box(i) }))
                .collect();
            for h in handles {
                let _ = h.await;
            }
            ns(t) / f64::from(N) / 1e3
        })
    }))
}

/// First touch of fresh anonymous memory, 1 byte per 4 KiB: returns (µs per fault, ns per
/// KiB). `huge` asks for transparent huge pages (one fault per 2 MiB).
pub fn first_touch(
    clock: &dyn Clock,
    b: &Budget,
    huge: bool,
    len: usize,
) -> Result<(Option<Summary>, Option<Summary>), BenchError> {
    let mut per_fault = Vec::new();
    let mut per_kib = Vec::new();
    let mut err = None;
    let page = if huge {
        osml_sys::HUGE_PAGE
    } else {
        osml_sys::page_size()
    };
    let _ = repeat(clock, b, || {
        match HugeBuffer::with_pages(len, huge, false) {
            Ok((mut buf, _)) => {
                let bytes = buf.as_mut_slice();
                let t = Instant::now();
                for i in (0..bytes.len()).step_by(4096) {
                    bytes[i] = 1;
                }
                let total = ns(t);
                per_fault.push(total / (len / page) as f64 / 1e3);
                per_kib.push(total / (len / 1024) as f64);
                total
            }
            Err(e) => {
                err.get_or_insert(e);
                0.0
            }
        }
    });
    if let Some(e) = err {
        return Err(e.into());
    }
    // The harness's first (warm-up) rep is in the vectors too: drop it.
    Ok((
        Summary::of(&per_fault[b.warmup.min(per_fault.len())..]),
        Summary::of(&per_kib[b.warmup.min(per_kib.len())..]),
    ))
}

/// Random 8-byte reads over `len` bytes (larger than the TLB's reach): ns per read.
pub fn tlb(
    clock: &dyn Clock,
    b: &Budget,
    huge: bool,
    len: usize,
) -> Result<Option<Summary>, BenchError> {
    const N: u32 = 2_000_000;
    let (mut buf, _) = HugeBuffer::with_pages(len, huge, false)?;
    let words = buf.len() / 8;
    for (i, c) in buf.as_mut_slice().chunks_exact_mut(8).enumerate() {
        c.copy_from_slice(&(i as u64).to_le_bytes());
    }
    let bytes = buf.as_slice();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    Ok(repeat(clock, b, || {
        let t = Instant::now();
        let mut sum = 0u64;
        for _ in 0..N {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let at = usize::try_from(x % words as u64).unwrap_or(0) * 8;
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            sum = sum.wrapping_add(u64::from_le_bytes(w));
        }
        std::hint::black_box(sum);
        ns(t) / f64::from(N)
    }))
}

/// memcpy between two warm huge-page buffers on `threads` threads at once: GB/s in all.
pub fn memcpy(
    clock: &dyn Clock,
    b: &Budget,
    threads: usize,
    len: usize,
) -> Result<Option<Summary>, BenchError> {
    let mut pairs = Vec::new();
    for _ in 0..threads {
        let (mut a, _) = HugeBuffer::new(len, false)?;
        let (mut c, _) = HugeBuffer::new(len, false)?;
        a.as_mut_slice().fill(1);
        c.as_mut_slice().fill(2);
        pairs.push((a, c));
    }
    Ok(repeat(clock, b, || {
        let t = Instant::now();
        std::thread::scope(|s| {
            for (a, c) in &mut pairs {
                s.spawn(|| c.as_mut_slice().copy_from_slice(a.as_slice()));
            }
        });
        (threads * len) as f64 / t.elapsed().as_secs_f64() / 1e9
    }))
}

/// The benchmarks' scratch file: removed when dropped (an error while writing it included)
/// and, in the `osml` binary, when a terminating signal arrives.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    _registered: osml_sys::cleanup::Registered,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A scratch file of `len` bytes written with data (not a sparse file, which reads without I/O).
pub fn scratch_file(dir: &Path, len: usize) -> Result<Scratch, BenchError> {
    let path = dir.join(format!("osml-bench-{}-{len}.bin", std::process::id()));
    let file_err = |what: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |error| BenchError::File { what, path, error }
    };
    let (mut f, registered) =
        osml_sys::cleanup::create(false, || File::create(&path), |_| path.clone())
            .map_err(file_err("cannot create", &path))?;
    let scratch = Scratch {
        _registered: registered,
        path,
    };
    let block: Vec<u8> = (0..1 << 20)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let mut left = len;
    while left > 0 {
        let n = left.min(block.len());
        f.write_all(&block[..n])
            .map_err(file_err("cannot write", &scratch.path))?;
        left -= n;
    }
    f.sync_all()
        .map_err(file_err("cannot sync", &scratch.path))?;
    Ok(scratch)
}

/// Reading a file front to back with `read(2)` of `block` bytes: GB/s. `cold` evicts it from
/// the page cache before each repetition.
pub fn read_file(
    clock: &dyn Clock,
    b: &Budget,
    path: &Path,
    block: usize,
    cold: bool,
) -> Result<Option<Summary>, BenchError> {
    let mut buf = vec![0u8; block];
    let mut err = None;
    let s = repeat(clock, b, || {
        set_cache(path, cold);
        let t = Instant::now();
        let mut total = 0usize;
        match osml_sys::file::open_regular(path) {
            Ok(mut f) => loop {
                match f.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => total += n,
                    Err(e) => {
                        err.get_or_insert(e);
                        break;
                    }
                }
            },
            Err(e) => {
                err.get_or_insert(e);
            }
        }
        total as f64 / t.elapsed().as_secs_f64() / 1e9
    });
    or_io(s, err, "reading the scratch file")
}

/// The figure, or the first I/O error a repetition met (`what` names what was being done).
fn or_io<T>(value: T, err: Option<std::io::Error>, what: &'static str) -> Result<T, BenchError> {
    err.map_or(Ok(value), |error| Err(BenchError::Io { what, error }))
}

/// Evicts `path` from the page cache (`cold`), or reads it all so it is cached.
fn set_cache(path: &Path, cold: bool) {
    if cold {
        let _ = osml_sys::evict_from_page_cache(path);
    } else {
        warm(path);
    }
}

fn warm(path: &Path) {
    if let Ok(mut f) = osml_sys::file::open_regular(path) {
        let mut buf = vec![0u8; 1 << 20];
        while f.read(&mut buf).is_ok_and(|n| n > 0) {}
    }
}

/// Maps a benchmark's own scratch file.
#[allow(unsafe_code)]
fn map_file(path: &Path) -> Result<MappedFile, osml_sys::SysError> {
    // SAFETY: the file is this benchmark's scratch file, written before and not modified
    // while mapped.
    unsafe { MappedFile::open(path) }
}

/// Touching every 8 bytes of a mapped file (summing them): GB/s. `cold` evicts first.
pub fn mmap_file(
    clock: &dyn Clock,
    b: &Budget,
    path: &Path,
    cold: bool,
) -> Result<Option<Summary>, BenchError> {
    let mut err = None;
    let s = repeat(clock, b, || {
        set_cache(path, cold);
        let t = Instant::now();
        match map_file(path) {
            Ok(m) => {
                let sum = m.bytes().chunks_exact(8).fold(0u64, |s, c| {
                    s.wrapping_add(u64::from_le_bytes([
                        c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7],
                    ]))
                });
                std::hint::black_box(sum);
                m.len() as f64 / t.elapsed().as_secs_f64() / 1e9
            }
            Err(e) => {
                err.get_or_insert(e);
                0.0
            }
        }
    });
    match err {
        Some(e) => Err(e.into()),
        None => Ok(s),
    }
}

/// The scratch file for random reads: with `O_DIRECT` when the filesystem allows it (so every
/// read reaches the device), else buffered (and then evicted before each repetition).
fn open_for_random_reads(path: &Path) -> Result<(File, bool), BenchError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_o_direct())
        .open(path)
    {
        Ok(f) => Ok((f, true)),
        Err(_) => Ok((
            osml_sys::file::open_regular(path).map_err(io("opening the scratch file"))?,
            false,
        )),
    }
}

/// `n` random 4 KiB-aligned offsets below `len` (xorshift64: the same sequence every run).
fn random_offsets(n: usize, len: usize, seed: &mut u64) -> Vec<u64> {
    let blocks = (len / 4096).max(1) as u64;
    (0..n)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed % blocks) * 4096
        })
        .collect()
}

/// Random 4 KiB `pread(2)`s, `depth` threads each with one read in flight (queue depth
/// `depth`): thousands of reads per second, and whether `O_DIRECT` was used.
pub fn pread_random(
    clock: &dyn Clock,
    b: &Budget,
    path: &Path,
    len: usize,
    depth: usize,
) -> Result<(Option<Summary>, bool), BenchError> {
    let per_thread = if depth == 1 { 2_000 } else { 256 };
    let (file, direct) = open_for_random_reads(path)?;
    let mut bufs = (0..depth)
        .map(|_| HugeBuffer::new(4096, false).map(|(b, _)| b))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut err = None;
    let s = repeat(clock, b, || {
        if !direct {
            let _ = osml_sys::evict_from_page_cache(path);
        }
        let offsets: Vec<Vec<u64>> = (0..depth)
            .map(|_| random_offsets(per_thread, len, &mut seed))
            .collect();
        let t = Instant::now();
        let failures: Vec<std::io::Error> = std::thread::scope(|scope| {
            let file = &file;
            let workers: Vec<_> = bufs
                .iter_mut()
                .zip(&offsets)
                .map(|(buf, offs)| {
                    scope.spawn(move || {
                        for &o in offs {
                            file.read_exact_at(buf.as_mut_slice(), o)?;
                        }
                        Ok::<(), std::io::Error>(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .filter_map(|w| w.join().ok().and_then(Result::err))
                .collect()
        });
        let secs = t.elapsed().as_secs_f64();
        if let Some(e) = failures.into_iter().next() {
            err.get_or_insert(e);
        }
        (depth * per_thread) as f64 / secs / 1e3
    });
    or_io((s, direct), err, "pread of the scratch file")
}

/// Random 4 KiB reads through `io_uring` with `depth` in flight: thousands of reads per
/// second, and whether `O_DIRECT` was used.
pub fn uring_random(
    clock: &dyn Clock,
    b: &Budget,
    path: &Path,
    len: usize,
    depth: usize,
) -> Result<(Option<Summary>, bool), BenchError> {
    let n = if depth == 1 { 2_000 } else { 8_192 };
    let (file, direct) = open_for_random_reads(path)?;
    let mut ring = osml_sys::UringReader::new(depth, 4096)?;
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    let mut err = None;
    let s = repeat(clock, b, || {
        if !direct {
            let _ = osml_sys::evict_from_page_cache(path);
        }
        let offsets = random_offsets(n, len, &mut seed);
        let t = Instant::now();
        if let Err(e) = ring.read_at_offsets(&file, &offsets) {
            err.get_or_insert(e);
        }
        n as f64 / t.elapsed().as_secs_f64() / 1e3
    });
    match err {
        Some(e) => Err(e.into()),
        None => Ok((s, direct)),
    }
}

/// Random 4 KiB reads of a file evicted from the page cache, buffered: with `pread(2)`, or
/// (`mmap`) by touching one byte of a random page of a mapping, where each fault may also read
/// the pages around it. Thousands of reads per second.
pub fn cold_random(
    clock: &dyn Clock,
    b: &Budget,
    path: &Path,
    len: usize,
    mmap: bool,
) -> Result<Option<Summary>, BenchError> {
    const N: usize = 1_000;
    let file = osml_sys::file::open_regular(path).map_err(io("opening the scratch file"))?;
    let mut buf = vec![0u8; 4096];
    let mut seed = 0xD1B5_4A32_D192_ED03u64;
    let mut err = None;
    let s = repeat(clock, b, || {
        // Evicted before mapping: the kernel keeps pages that a mapping uses.
        let _ = osml_sys::evict_from_page_cache(path);
        let offsets = random_offsets(N, len, &mut seed);
        let t = Instant::now();
        if mmap {
            match map_file(path) {
                Ok(m) => {
                    let bytes = m.bytes();
                    let sum = offsets.iter().fold(0u8, |s, &o| {
                        let at = usize::try_from(o).unwrap_or(0);
                        s.wrapping_add(bytes.get(at).copied().unwrap_or(0))
                    });
                    std::hint::black_box(sum);
                }
                Err(e) => {
                    err.get_or_insert(std::io::Error::other(e.to_string()));
                }
            }
        } else {
            for &o in &offsets {
                if let Err(e) = file.read_exact_at(&mut buf, o) {
                    err.get_or_insert(e);
                    break;
                }
            }
        }
        N as f64 / t.elapsed().as_secs_f64() / 1e3
    });
    or_io(s, err, "pread of the scratch file")
}

/// `O_DIRECT` for x86-64 and arm64 Linux (rustix exposes it only through its own open).
const fn libc_o_direct() -> i32 {
    if cfg!(target_arch = "aarch64") {
        0o200_000
    } else {
        0o40_000
    }
}
