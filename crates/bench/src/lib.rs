//! What the operating system costs on this machine, measured and explained.
//!
//! [`run`] measures the benchmarks of [`CATALOG`] (or those asked for) with the [`harness`]:
//! warm-up, repetitions within a time budget, median and MAD spread, outliers, and a note when
//! a figure is unreliable. Each [`Result`](BenchResult) says what its figure means for a data
//! loader.
//!
//! ```no_run
//! let report = osml_bench::run(&["syscall".to_string()], true, &std::env::temp_dir(), &mut |_, _, _| {})
//!     .unwrap();
//! println!("{} ns per syscall", report.results[0].summary.median);
//! ```

mod benches;
pub mod conditions;
pub mod harness;
pub mod stats;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::harness::{Budget, Clock, RealClock};
use crate::stats::Summary;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{what}: {error}")]
    Io {
        what: &'static str,
        /// Part of the message, so not also the `source()`.
        error: std::io::Error,
    },
    /// The scratch file could not be made in the directory given.
    #[error("{what} the scratch file {}: {error}", path.display())]
    File {
        what: &'static str,
        path: std::path::PathBuf,
        /// Part of the message, so not also the `source()`.
        error: std::io::Error,
    },
    #[error(transparent)]
    Sys(#[from] osml_sys::SysError),
    #[error("unknown benchmark id `{0}` (known: {1})")]
    Unknown(String, String),
}

/// One benchmark of the catalog.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Info {
    pub id: &'static str,
    pub unit: &'static str,
    /// What it measures; `{table}`, `{buffer}` and `{file}` stand for the [`Sizes`] used.
    pub what: &'static str,
}

impl Info {
    /// What it measures, with the sizes a run actually used.
    pub fn label(&self, sizes: Sizes) -> String {
        self.what
            .replace("{table}", &size(sizes.table))
            .replace("{buffer}", &size(sizes.buffer))
            .replace("{file}", &size(sizes.file))
    }
}

/// The memory and file sizes of a run: `--quick` uses an eighth of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sizes {
    /// The table the TLB benchmarks read at random.
    pub table: usize,
    /// The buffer first touched (faults) and copied (memcpy), per thread.
    pub buffer: usize,
    /// The scratch file of the read, mmap, pread and io_uring benchmarks.
    pub file: usize,
}

impl Sizes {
    pub fn new(quick: bool) -> Self {
        let full = Self {
            table: 1 << 30,
            buffer: 256 << 20,
            file: 256 << 20,
        };
        if quick {
            Self {
                table: full.table / 8,
                buffer: full.buffer / 8,
                file: full.file / 8,
            }
        } else {
            full
        }
    }
}

/// `1 GiB`, `128 MiB`, `32 KiB`: sizes here are powers of two.
fn size(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} bytes"),
    }
}

/// `statfs(2)` `f_type` of a filesystem whose files live in memory (linux/magic.h), with its
/// name.
const MEMORY_BACKED: &[(i128, &str)] = &[(0x0102_1994, "tmpfs"), (0x8584_58f6, "ramfs")];

/// The name of `dir`'s filesystem if its files live in memory (tmpfs, ramfs): "disk" figures
/// measured there are RAM figures.
pub fn memory_backed(dir: &Path) -> Option<&'static str> {
    let st = rustix::fs::statfs(dir).ok()?;
    let f_type = i128::from(st.f_type);
    MEMORY_BACKED
        .iter()
        .find(|(magic, _)| *magic == f_type)
        .map(|(_, name)| *name)
}

/// Every benchmark, in report order.
pub const CATALOG: &[Info] = &[
    Info {
        id: "syscall",
        unit: "ns",
        what: "a trivial system call round trip (getppid)",
    },
    Info {
        id: "ctxswitch.thread",
        unit: "µs",
        what: "one-byte pipe round trip between two threads (two context switches)",
    },
    Info {
        id: "ctxswitch.process",
        unit: "µs",
        what: "one-byte pipe round trip with another process (two context switches)",
    },
    Info {
        id: "ctxswitch.cross",
        unit: "µs",
        what: "one-byte pipe round trip between two threads pinned to two different CPUs",
    },
    Info {
        id: "spawn.thread",
        unit: "µs",
        what: "start and join a thread",
    },
    Info {
        id: "spawn.task",
        unit: "µs",
        what: "spawn and await a task on a tokio multi-thread runtime",
    },
    Info {
        id: "spawn.process",
        unit: "µs",
        what: "run /bin/true to completion with posix_spawn, then wait",
    },
    Info {
        id: "spawn.fork",
        unit: "µs",
        what: "run /bin/true to completion with fork + exec, then wait",
    },
    Info {
        id: "fault.4k",
        unit: "µs",
        what: "first touch of anonymous memory with 4 KiB pages, per fault",
    },
    Info {
        id: "fault.thp",
        unit: "µs",
        what: "first touch of anonymous memory with transparent huge pages, per 2 MiB fault",
    },
    Info {
        id: "tlb.4k",
        unit: "ns",
        what: "random 8-byte read over {table} with 4 KiB pages",
    },
    Info {
        id: "tlb.thp",
        unit: "ns",
        what: "random 8-byte read over {table} with 2 MiB pages",
    },
    Info {
        id: "memcpy",
        unit: "GB/s",
        what: "memcpy of {buffer}, one thread",
    },
    Info {
        id: "memcpy.all",
        unit: "GB/s",
        what: "memcpy of {buffer} per thread, one thread per CPU",
    },
    Info {
        id: "read.warm",
        unit: "GB/s",
        what: "read() of a cached {file} file in 1 MiB blocks",
    },
    Info {
        id: "read.warm.4k",
        unit: "GB/s",
        what: "read() of a cached {file} file in 4 KiB blocks",
    },
    Info {
        id: "mmap.warm",
        unit: "GB/s",
        what: "mapping a cached {file} file and reading every byte",
    },
    Info {
        id: "read.cold",
        unit: "GB/s",
        what: "read() in 1 MiB blocks of a {file} file evicted from the page cache",
    },
    Info {
        id: "mmap.cold",
        unit: "GB/s",
        what: "mapping and reading a {file} file evicted from the page cache",
    },
    Info {
        id: "read.cold.random",
        unit: "kIOPS",
        what: "random 4 KiB pread of a file evicted from the page cache (buffered)",
    },
    Info {
        id: "mmap.cold.random",
        unit: "kIOPS",
        what: "touching random 4 KiB pages of a mapped file evicted from the page cache",
    },
    Info {
        id: "pread",
        unit: "kIOPS",
        what: "random 4 KiB pread, queue depth 1 (O_DIRECT when allowed)",
    },
    Info {
        id: "pread.qd32",
        unit: "kIOPS",
        what: "random 4 KiB pread from 32 threads, queue depth 32 (O_DIRECT when allowed)",
    },
    Info {
        id: "io_uring",
        unit: "kIOPS",
        what: "random 4 KiB reads through io_uring, queue depth 1 (O_DIRECT when allowed)",
    },
    Info {
        id: "io_uring.qd32",
        unit: "kIOPS",
        what: "random 4 KiB reads through io_uring, queue depth 32 (O_DIRECT when allowed)",
    },
];

/// One measured figure.
#[derive(Debug, Clone, Serialize)]
pub struct BenchResult {
    pub id: &'static str,
    pub unit: &'static str,
    /// What it measured, with the sizes used.
    pub what: String,
    /// Median, MAD-based spread (in `unit`), min, max, samples and outliers.
    #[serde(flatten)]
    pub summary: Summary,
    /// Why not to trust the figure, when that is the case.
    pub unreliable: Option<String>,
    /// What the figure means for a data loader.
    pub meaning: String,
    /// Secondary figures (e.g. `ns_per_kib` for faults).
    pub extra: BTreeMap<&'static str, f64>,
}

/// `osml bench --json` (`schema_version` 1).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub quick: bool,
    /// The sizes used.
    pub sizes: Sizes,
    /// What makes the whole run misleading (scratch files on a memory-backed filesystem).
    pub warnings: Vec<String>,
    pub results: Vec<BenchResult>,
    /// Benchmarks that could not run here, with the reason.
    pub skipped: Vec<(String, String)>,
}

fn meaning(id: &str, median: f64) -> String {
    match id {
        "syscall" => format!("a 12x1024 batch gathered with one read() per sample spends ~{:.1} µs in syscall entry and exit alone", 12.0 * median / 1e3),
        "ctxswitch.thread" | "ctxswitch.process" => format!("handing each batch to another {} and back costs ~{median:.1} µs; at 1,000 batches/s that is {:.1}% of a core", if id.ends_with("thread") { "thread" } else { "process" }, median / 10.0),
        "ctxswitch.cross" => format!("waking a thread on another CPU and back costs ~{median:.1} µs: hand batches over in bulk, not per sample"),
        "spawn.task" => format!("an async task costs {median:.2} µs: one per sample is affordable up to ~{:.0} k samples/s per core", 1e3 / median.max(1e-9)),
        "spawn.thread" => format!("starting a loader thread costs {median:.0} µs: start them once, not per epoch"),
        "spawn.process" => format!("starting a worker process costs at least {:.2} ms before it imports anything", median / 1e3),
        "spawn.fork" => format!("forking costs {:.2} ms here and grows with the parent's memory: a DataLoader worker forked from a 10 GiB trainer copies its page tables", median / 1e3),
        "fault.4k" => format!("a fresh 98 KB batch buffer (12x1025 int64) takes 24 faults, ~{:.0} µs: allocate buffers once", 24.0 * median),
        "fault.thp" => format!("with huge pages the same buffer takes one fault of {median:.0} µs"),
        "tlb.4k" | "tlb.thp" => format!("a random token lookup in a large table costs ~{median:.0} ns"),
        "memcpy" | "memcpy.all" => format!("the ceiling for gathering batches: {median:.1} GB/s is {:.0} batches/s of 12x1025 int64", median * 1e9 / 98_400.0),
        "read.warm" | "read.warm.4k" | "mmap.warm" => format!("reading a cached dataset: {median:.1} GB/s"),
        "read.cold" | "mmap.cold" => format!("streaming a dataset from this disk: {median:.2} GB/s, {:.0} M uint16 tokens/s", median * 1e9 / 2.0 / 1e6),
        "read.cold.random" => format!("random samples from an uncached dataset through the page cache: {:.0} µs each", 1e3 / median.max(1e-9)),
        "mmap.cold.random" => format!("random samples from an uncached mapped dataset: {:.0} µs each, read-around included", 1e3 / median.max(1e-9)),
        "pread" | "io_uring" => format!("one random sample read from the device costs {:.0} µs when only one is in flight", 1e3 / median.max(1e-9)),
        "pread.qd32" => format!("{median:.0} k random samples/s when 32 threads each keep a read in flight"),
        "io_uring.qd32" => format!("{median:.0} k random samples/s from one thread keeping 32 reads in flight"),
        _ => String::new(),
    }
}

fn result(
    info: &Info,
    sizes: Sizes,
    s: Summary,
    extra: BTreeMap<&'static str, f64>,
    notes: Vec<String>,
) -> BenchResult {
    let unreliable: Vec<String> = s.unreliable().into_iter().chain(notes).collect();
    BenchResult {
        id: info.id,
        unit: info.unit,
        what: info.label(sizes),
        summary: s,
        unreliable: (!unreliable.is_empty()).then(|| unreliable.join("; ")),
        meaning: meaning(info.id, s.median),
        extra,
    }
}

/// Benchmarks whose figure is mostly CPU time, and so moves with the CPU's frequency.
fn cpu_bound(id: &str) -> bool {
    !(id.starts_with("read")
        || id.starts_with("mmap")
        || id.starts_with("pread")
        || id.starts_with("io_uring"))
}

/// Whether a benchmark needs the scratch file.
fn needs_file(id: &str) -> bool {
    !cpu_bound(id)
}

/// Runs the benchmarks named in `only` (all when empty); `quick` uses a small budget and small
/// buffers; scratch files go in `dir` and are removed. `progress` is called before each
/// benchmark with its index, the number to run and its id.
pub fn run(
    only: &[String],
    quick: bool,
    dir: &Path,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<Report, BenchError> {
    for id in only {
        if !CATALOG.iter().any(|c| c.id == id) {
            let known: Vec<&str> = CATALOG.iter().map(|c| c.id).collect();
            return Err(BenchError::Unknown(id.clone(), known.join(", ")));
        }
    }
    let clock = RealClock::default();
    let budget = if quick { Budget::QUICK } else { Budget::NORMAL };
    let sizes = Sizes::new(quick);
    let wanted: Vec<&Info> = CATALOG
        .iter()
        .filter(|c| only.is_empty() || only.iter().any(|o| o == c.id))
        .collect();
    let mut results = Vec::new();
    let mut skipped = Vec::new();
    let file_len = sizes.file;
    let mut warnings = Vec::new();
    let file = if wanted.iter().any(|c| needs_file(c.id)) {
        if let Some(fs) = memory_backed(dir) {
            warnings.push(format!(
                "{} is on {fs}, which keeps files in memory: the read, mmap, pread and io_uring figures measure RAM, not a disk (give --dir a directory on the disk that holds your datasets)",
                dir.display()
            ));
        }
        Some(benches::scratch_file(dir, file_len)?)
    } else {
        None
    };
    let host = osml_host::HostRoot::live();
    let governor = osml_sys::allowed_cpus()
        .ok()
        .and_then(|cpus| conditions::governor_note(&host, &cpus));
    for (i, info) in wanted.iter().enumerate() {
        progress(i, wanted.len(), info.id);
        let before = conditions::Counters::read(&host);
        let outcome = measure(
            info.id,
            &clock,
            &budget,
            file.as_ref().map(benches::Scratch::path),
            sizes,
        );
        let mut notes = before.notes(&conditions::Counters::read(&host));
        if cpu_bound(info.id) {
            notes.extend(governor.clone());
        }
        match outcome {
            Ok((Some(s), extra)) => results.push(result(info, sizes, s, extra, notes)),
            Ok((None, _)) => skipped.push((info.id.to_owned(), "no samples".to_owned())),
            Err(e) => skipped.push((info.id.to_owned(), e.to_string())),
        }
    }
    drop(file);
    Ok(Report {
        schema_version: 1,
        quick,
        sizes,
        warnings,
        results,
        skipped,
    })
}

type Measured = (Option<Summary>, BTreeMap<&'static str, f64>);

fn measure(
    id: &str,
    clock: &dyn Clock,
    b: &Budget,
    file: Option<&Path>,
    sizes: Sizes,
) -> Result<Measured, BenchError> {
    let none = BTreeMap::new;
    let (big, buffer, file_len) = (sizes.table, sizes.buffer, sizes.file);
    let file = || {
        file.ok_or_else(|| BenchError::Io {
            what: "scratch file",
            error: std::io::Error::other("missing"),
        })
    };
    Ok(match id {
        "syscall" => (benches::syscall(clock, b), none()),
        "ctxswitch.thread" => (benches::ctxswitch_thread(clock, b)?, none()),
        "ctxswitch.process" => (benches::ctxswitch_process(clock, b)?, none()),
        "ctxswitch.cross" => (benches::ctxswitch_cross(clock, b)?, none()),
        "spawn.task" => (benches::spawn_task(clock, b)?, none()),
        "spawn.fork" => (benches::spawn_process(clock, b, true)?, none()),
        "spawn.thread" => (benches::spawn_thread(clock, b), none()),
        "spawn.process" => (benches::spawn_process(clock, b, false)?, none()),
        "fault.4k" | "fault.thp" => {
            let (per_fault, per_kib) = benches::first_touch(clock, b, id == "fault.thp", buffer)?;
            let mut extra = BTreeMap::new();
            if let Some(k) = per_kib {
                extra.insert("ns_per_kib", k.median);
            }
            (per_fault, extra)
        }
        "tlb.4k" | "tlb.thp" => (benches::tlb(clock, b, id == "tlb.thp", big)?, none()),
        "memcpy" => (benches::memcpy(clock, b, 1, buffer)?, none()),
        "memcpy.all" => {
            let n = osml_sys::allowed_cpus().map_or(1, |c| c.len());
            (benches::memcpy(clock, b, n, buffer)?, none())
        }
        "read.warm" => (
            benches::read_file(clock, b, file()?, 1 << 20, false)?,
            none(),
        ),
        "read.warm.4k" => (benches::read_file(clock, b, file()?, 4096, false)?, none()),
        "mmap.warm" => (benches::mmap_file(clock, b, file()?, false)?, none()),
        "read.cold" => (
            benches::read_file(clock, b, file()?, 1 << 20, true)?,
            none(),
        ),
        "mmap.cold" => (benches::mmap_file(clock, b, file()?, true)?, none()),
        "read.cold.random" | "mmap.cold.random" => (
            benches::cold_random(clock, b, file()?, file_len, id.starts_with("mmap"))?,
            none(),
        ),
        "pread" | "pread.qd32" | "io_uring" | "io_uring.qd32" => {
            let depth = if id.ends_with("qd32") { 32 } else { 1 };
            let (s, direct) = if id.starts_with("pread") {
                benches::pread_random(clock, b, file()?, file_len, depth)?
            } else {
                benches::uring_random(clock, b, file()?, file_len, depth)?
            };
            (
                s,
                BTreeMap::from([("o_direct", if direct { 1.0 } else { 0.0 })]),
            )
        }
        _ => (None, none()),
    })
}
