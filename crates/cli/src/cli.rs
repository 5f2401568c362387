//! Command-line arguments, as clap sees them. `doctor::Config::from_args` turns them into a
//! validated configuration in one place.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The operating-system layer for machine learning.
#[derive(Debug, Parser)]
#[command(name = "osml", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect this host and judge it for ML work.
    ///
    /// Reads /proc and /sys (or a capture of them), compares what it finds with a profile and
    /// prints one finding per check: what was seen, what is expected, why it matters and the
    /// exact fix. Exit status: 0 no check failed, 1 at least one failed, 2 usage or internal
    /// error.
    Doctor(DoctorArgs),
    /// Token datasets: pack text into them, inspect them, verify them.
    ///
    /// Formats: Megatron `.bin` + `.idx` (a PATH may be the prefix, the .idx or the .bin),
    /// a raw headerless token `.bin` (nanoGPT's; uint16 unless --dtype says otherwise) and
    /// 1-D `.npy`. Exit status: 0 success, 1 the dataset or an input is invalid (says what
    /// and where), 2 usage error, 3 a file cannot be read or written (missing, a directory,
    /// no permission).
    Data {
        #[command(subcommand)]
        command: DataCommand,
    },
    /// Measure what the operating system costs on this machine: syscalls, context switches,
    /// spawning threads, tasks and processes, page faults (4 KiB and huge), TLB reach, memcpy,
    /// reading files warm and cold, pread and io_uring, each with what it means for a loader.
    ///
    /// Each figure is the median of repetitions within a time budget after a warm-up, with a
    /// MAD-based spread and a note when it is unreliable. Exit status: 0, or 2 on a usage error.
    Bench(OsBenchArgs),
    /// Show the topology: packages, NUMA nodes, L3 domains, cores and the GPUs, NICs and NVMe
    /// drives under their node, and a GPU/NIC matrix in `nvidia-smi topo -m` words.
    ///
    /// Only the CPUs this process may use count (online, affinity, cgroup cpuset). Exit
    /// status: 0, or 2 when the root cannot be read.
    Topo(TopoArgs),
    /// Plan CPU placement for the local ranks of a job: each rank's GPU, NUMA node and CPUs, a
    /// disjoint set of CPUs for its loader threads, its nearest NIC, and the equivalent
    /// numactl and taskset commands.
    ///
    /// Exit status: 0, or 2 on a usage error (no ranks, a rank out of range, no usable CPU).
    Affinity(AffinityArgs),
    /// Run a command bound to CPUs (and optionally a memory policy): `osml run --bind auto --
    /// python train.py` under torchrun binds each rank next to its GPU.
    ///
    /// Sets the CPU affinity and memory policy of this process, sets OMP_NUM_THREADS and
    /// MKL_NUM_THREADS to the number of CPUs unless they are set, then executes the command in
    /// place. Exit status: the command's; 2 when the binding is invalid (nothing is run); 126
    /// when the command cannot be executed, 127 when it is not found.
    Run(RunArgs),
    /// Apply a profile's settings to this host, verify them, and revert them exactly.
    ///
    /// Without --apply, --revert or --verify it prints the plan (current → target, how each
    /// setting persists) and changes nothing. --apply needs root on the live host; it writes a
    /// journal under /var/lib/osml/tune/ first and rolls everything back if a write fails.
    /// Exit status: 0 done (or nothing to do); 1 --verify found differences, or --apply failed
    /// and was rolled back; 2 usage error, not root, or nothing to revert.
    Tune(TuneArgs),
    /// Run a command (or watch a process) and see what it does to the operating system.
    ///
    /// Samples the whole process tree (DataLoader workers included, as they come and go): CPU,
    /// RSS/PSS/USS, swap, faults, context switches, migrations, I/O, threads, affinity. Ends
    /// with a summary per process, totals and findings. Exit status: the command's (0 with
    /// --pid); 2 on a usage error or when the command or process cannot be traced.
    Trace(TraceArgs),
    /// Explain a process's memory.
    ///
    /// Regions grouped (heap, anonymous, stacks, files, shared memory), RSS/PSS/USS/swap per
    /// group, huge pages, page tables, the cgroup limit and what the OOM killer sees. Exit
    /// status: 0, or 2 when the process cannot be read.
    Mem(MemArgs),
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// Time between samples (e.g. 200ms, 1s).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    pub interval: std::time::Duration,
    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Also draw memory and CPU over time per process into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Count every system call of the tree, per system call and per process: `bpf` in the
    /// kernel (two small BPF programs: every call by name, exact per process, the job never
    /// stops), `perf` in the kernel (tracepoint counters on each task), `ptrace` as strace -c
    /// -f does (two stops per call: a syscall-heavy job runs 25-150× slower here; commands
    /// only), `auto` (the default when the flag is given bare) bpf where the kernel allows it,
    /// else perf, else ptrace with a warning.
    #[arg(
        long,
        value_enum,
        value_name = "HOW",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "auto"
    )]
    pub syscalls: Option<SyscallsArg>,
    /// With kernel counting: which system calls to count by name: `all`, `common` (32: read,
    /// pread64, openat, mmap, futex, …, the rest as `other`) or `none` (totals per process
    /// only). With perf counters each one on a thread is switched with it, so `all` slows a
    /// job that blocks and wakes often (2 fork workers: 1.31× step time here), `common`
    /// 1.06×, `none` ~1×; with BPF the set costs nothing.
    #[arg(long, value_enum, value_name = "SET", default_value = "all")]
    pub syscall_names: SyscallNamesArg,
    /// Watch this running process and its children instead of running a command (Ctrl-C ends).
    #[arg(long, value_name = "PID")]
    pub pid: Option<i32>,
    /// With --pid: stop after this long (e.g. 30s).
    #[arg(long, value_parser = humantime::parse_duration, requires = "pid")]
    pub duration: Option<std::time::Duration>,
    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD",
        required_unless_present = "pid",
        conflicts_with = "pid"
    )]
    pub command: Vec<std::ffi::OsString>,
}

/// Which system calls `osml trace --syscalls` counts by name in the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallNamesArg {
    All,
    Common,
    None,
}

/// How `osml trace --syscalls` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SyscallsArg {
    Auto,
    Bpf,
    Perf,
    Ptrace,
}

#[derive(Debug, Args)]
pub struct MemArgs {
    /// The process to explain.
    pub pid: i32,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

// Clap flags are one bool each; --apply, --revert and --verify exclude each other.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The profile to apply: training (default) or inference.
    #[arg(long, default_value = "training")]
    pub profile: String,
    /// Tune this directory standing in for `/` (a copy of a host or a fixture) instead.
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Apply the plan (journaled; rolled back on failure).
    #[arg(long, conflicts_with_all = ["revert", "verify"])]
    pub apply: bool,
    /// Restore what the last --apply changed, from its journal.
    #[arg(long, conflicts_with = "verify")]
    pub revert: bool,
    /// Compare the host with the profile (exit 1 on any difference).
    #[arg(long)]
    pub verify: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TopoArgs {
    /// Read the host from this directory or archive (.tar, .tar.gz, .tar.bz2) instead of `/`.
    #[arg(long, value_name = "DIR|ARCHIVE")]
    pub root: Option<PathBuf>,
    /// Print JSON (`packages`, `cores`, `pus`, `numa_nodes`, `devices`, `matrix`…).
    #[arg(long)]
    pub json: bool,
}

/// Placement modes, as torchrun's `--numa-binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BindMode {
    /// Every usable CPU of the GPU's NUMA node.
    Node,
    /// Every usable CPU of the package (socket) holding the GPU's node.
    Socket,
    /// The node's physical cores split evenly between the ranks on that node.
    Exclusive,
    /// One L3 cache domain per rank.
    CoreComplex,
}

impl From<BindMode> for osml_host::affinity::Mode {
    fn from(m: BindMode) -> Self {
        match m {
            BindMode::Node => Self::Node,
            BindMode::Socket => Self::Socket,
            BindMode::Exclusive => Self::Exclusive,
            BindMode::CoreComplex => Self::CoreComplex,
        }
    }
}

#[derive(Debug, Args)]
pub struct AffinityArgs {
    /// Processes (ranks) on this host, as torchrun's --nproc-per-node.
    #[arg(long, value_name = "N")]
    pub nproc_per_node: usize,
    /// Show only this local rank.
    #[arg(long, value_name = "R")]
    pub local_rank: Option<usize>,
    /// How wide each rank's CPU set is.
    #[arg(long, value_enum, default_value = "node")]
    pub mode: BindMode,
    /// CPUs to set aside for each rank's loader threads.
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub loader_threads: usize,
    /// Read the host from this directory or archive instead of `/`.
    #[arg(long, value_name = "DIR|ARCHIVE")]
    pub root: Option<PathBuf>,
    /// Print JSON (`ranks`, each with `local_rank`, `gpu_pci_address`, `numa_node`, `cpus`,
    /// `loader_cpus`…).
    #[arg(long)]
    pub json: bool,
}

/// Memory policies for `osml run --mem`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MemMode {
    /// Allocate only on the bound nodes (numactl --membind).
    Bind,
    /// Prefer the first bound node, fall back to others (numactl --preferred).
    Preferred,
    /// Interleave pages over the bound nodes (numactl --interleave).
    Interleave,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// `auto` (the plan for LOCAL_RANK of LOCAL_WORLD_SIZE, as torchrun sets them),
    /// `node:N` (the usable CPUs of node N) or `cpus:LIST` (e.g. `cpus:0-3,8`).
    #[arg(long, value_name = "auto|node:N|cpus:LIST")]
    pub bind: String,
    /// Also set a memory policy over the bound CPUs' nodes (default: the kernel's local
    /// allocation, which already prefers the node a thread runs on).
    #[arg(long, value_enum)]
    pub mem: Option<MemMode>,
    /// With `--bind auto`: the placement mode.
    #[arg(long, value_enum, default_value = "node")]
    pub mode: BindMode,
    /// With `--bind auto`: CPUs to plan for the rank's loader threads, exported as
    /// OSML_LOADER_CPUS (which osml.TokenLoader pins its workers to) unless already set.
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub loader_threads: usize,
    /// Print the binding to stderr before running the command.
    #[arg(short, long)]
    pub verbose: bool,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct OsBenchArgs {
    /// Run only these benchmarks (repeat or separate with commas).
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,
    /// A small budget and small buffers: a first look in a few seconds.
    #[arg(long)]
    pub quick: bool,
    /// Print JSON (`schema_version`, `results` with `id`, `median`, `unit`, `spread`…).
    #[arg(long, conflicts_with = "markdown")]
    pub json: bool,
    /// Print a Markdown table.
    #[arg(long)]
    pub markdown: bool,
    /// Directory for the scratch file of the file benchmarks (default: the system temp dir).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Tokenize text into a Megatron or raw token dataset.
    ///
    /// Inputs: `.jsonl` and `.jsonl.gz` hold one JSON object per line, whose --field is a
    /// document; in a `.txt`, a document is the whole file (or each line, or each paragraph
    /// between blank lines, with --txt-documents). Text is encoded as ordinary text (a literal
    /// `<|endoftext|>` is not special) and the end-of-document token follows every document
    /// unless --no-eod. Tokens are stored as uint16 when the vocabulary has fewer than 65500
    /// ids, else int32, as Megatron chooses. The output is the same for the same inputs
    /// whatever --workers is, and is written atomically.
    Pack(PackArgs),
    /// Describe a dataset: format, dtype, tokens, documents, document lengths, file sizes
    /// and how much of it is in the page cache now. Given a mixture (a `.json`/`.toml`
    /// mixture file, or Megatron's quoted blend string "0.7 web 0.3 code") or a --split: each
    /// source, its weight, and with --tokens how many epochs of it a run of that many tokens
    /// reads.
    Inspect(InspectArgs),
    /// Validate a dataset's structure, check every token id, read back and checksum every
    /// file (exit 1 when invalid, or when the checksum is not --expect-checksum).
    ///
    /// None of the formats stores a checksum, so a changed byte that still reads as a valid
    /// token id cannot be seen without one: record the checksum printed when the dataset is
    /// made, and pass it as --expect-checksum.
    Verify(VerifyArgs),
    /// Print documents' tokens, one JSON array per line (for scripts and comparisons); with
    /// --json, one JSON document holding them (schema in docs/data-json.md).
    Show(ShowArgs),
    /// Measure the loader on a dataset: tokens/s, batch latency, CPU, faults and system calls
    /// per batch, next to this machine's memcpy bandwidth measured in the same run.
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Samples per batch (B).
    #[arg(long, short = 'b', default_value_t = 12)]
    pub batch_size: usize,
    /// Tokens per sample (T); rows hold T + 1 tokens.
    #[arg(long, short = 't', default_value_t = 1024)]
    pub seq_len: usize,
    /// Loader worker threads (K); default: the CPUs this process may use, less one.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Batches run before timing starts (page tables and caches settle).
    #[arg(long, default_value_t = 1000)]
    pub warmup: u64,
    /// Batches to time after the first.
    #[arg(long, default_value_t = 10_000)]
    pub steps: u64,
    /// `random` offsets (nanoGPT) or every window once per `epoch` (Megatron).
    #[arg(long, default_value = "random", value_parser = ["random", "epoch"])]
    pub mode: String,
    /// Epoch mode: visit blocks of this many consecutive windows together.
    #[arg(long, value_name = "WINDOWS")]
    pub block: Option<u64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Batches prepared ahead; default: as many as fill 4 MiB, between 4 and 64.
    #[arg(long)]
    pub prefetch: Option<usize>,
    /// Element type of the batches.
    #[arg(long, default_value = "i64", value_parser = ["i64", "i32", "source"])]
    pub output: String,
    /// Pin the workers to these CPUs (kernel list syntax, e.g. 0-3,8).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Lock the batch buffers in RAM.
    #[arg(long)]
    pub mlock: bool,
    /// Map a cached dataset into the page tables up front (no page faults while gathering;
    /// the whole dataset then counts in RSS).
    #[arg(long)]
    pub populate: bool,
    /// Evict the dataset from the page cache first and measure the disk's sequential read
    /// bandwidth on it in the same run.
    #[arg(long)]
    pub cold: bool,
    /// Also measure with N CPU-bound competitor threads pinned to the first N CPUs, in
    /// rounds interleaved with idle ones: tokens/s, CPU and system calls per batch against
    /// the idle figures, and how much the competitors still got done (at most 4 per CPU).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub contend: usize,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The dataset checksum (16 hex digits, as verify prints it) it must have: a difference
    /// exits 1.
    #[arg(long, value_name = "HEX")]
    pub expect_checksum: Option<String>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// The first document to print.
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub from: usize,
    /// How many documents to print (default: all from --from on).
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

#[derive(Debug, Args)]
pub struct PackArgs {
    /// Text inputs: .txt, .jsonl, .jsonl.gz, .parquet.
    #[arg(required = true, value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
    /// Output prefix: writes PREFIX.bin (and PREFIX.idx for Megatron).
    #[arg(short, long, value_name = "PREFIX")]
    pub output: PathBuf,
    /// The tokenizer; each carries its vocabulary, nothing is downloaded.
    #[arg(long, default_value = "gpt2", value_parser = ["gpt2", "cl100k_base", "o200k_base", "bytes"])]
    pub tokenizer: String,
    /// Output format: Megatron .bin + .idx, raw tokens (nanoGPT), or llm.c's shards (a 1 KiB
    /// header; the end-of-document token before each document, as llm.c writes it).
    #[arg(long, default_value = "megatron", value_parser = ["megatron", "bin", "llmc"])]
    pub format: String,
    /// The JSON field, or Parquet column, that holds a document's text.
    #[arg(long, default_value = "text")]
    pub field: String,
    /// Do not add the end-of-document token.
    #[arg(long)]
    pub no_eod: bool,
    /// Cut the output into shards `PREFIX_000000.bin`, … of at most N tokens each, at document
    /// boundaries (a longer document is a shard of its own); stale higher-numbered shards of
    /// the same prefix are removed.
    #[arg(long, value_name = "N")]
    pub shard_tokens: Option<u64>,
    /// Tokenizer threads (default: the CPUs this process may use).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// What a document is in a .txt input.
    #[arg(long, default_value = "file", value_parser = ["file", "line", "paragraph"])]
    pub txt_documents: String,
    /// Print a JSON summary instead of the human one.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// The source: one or more of a Megatron prefix, .idx or .bin; a raw .bin; an llm.c shard;
    /// a .npy; an Arrow file; a glob (quoted: 'data/shard_*.bin'); a directory (its dataset
    /// files, or a Hugging Face dataset saved to disk). Globs and directories expand in
    /// sorted order; the list keeps its order.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Read every shard as this format instead of guessing from names and headers.
    #[arg(long, value_parser = ["megatron", "bin", "npy", "llmc", "arrow"])]
    pub format: Option<String>,
    /// The dtype of a raw .bin (numpy name).
    #[arg(long, default_value = "uint16", value_parser = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "uint64", "int64"])]
    pub dtype: String,
    /// The list-of-integers column of an Arrow dataset.
    #[arg(long, default_value = osml_data::DEFAULT_COLUMN, value_name = "NAME")]
    pub column: String,
    /// Split the documents of formats that record none (bin, npy, llmc) at this token
    /// (50256 is GPT-2's <|endoftext|>).
    #[arg(long, value_name = "ID")]
    pub eod_token: Option<u64>,
    /// Print JSON (schema in docs/data-json.md).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(flatten)]
    pub dataset: DatasetArgs,
    /// Read this split of every source's documents (Megatron's train,valid,test ratios, such
    /// as 969,30,1); a mixture file's own split otherwise.
    #[arg(long, value_name = "RATIOS")]
    pub split: Option<String>,
    /// The part of the split to describe.
    #[arg(long, default_value = "train", value_parser = ["train", "valid", "test"])]
    pub subset: String,
    /// For a run of this many input tokens (a number, or with K, M, B or T: 1T is 10^12),
    /// how many samples and epochs of each source it reads.
    #[arg(long, value_name = "N", value_parser = parse_token_count)]
    pub tokens: Option<u64>,
    /// Tokens per sample of that run.
    #[arg(long, default_value_t = 1024, value_name = "T")]
    pub seq_len: u64,
    /// Samples per global step of that run (batch size × world size): a mixture file's
    /// schedule is in steps of these, so a mixture with a schedule needs it.
    #[arg(long, value_name = "N")]
    pub global_batch: Option<u64>,
}

/// `1T`, `500B`, `4.1T`, `1.5e12`, `8K` or a plain number, as a token count: read as the
/// decimal it is written as (a float would make `4.1T` one token short), and whole.
fn parse_token_count(text: &str) -> Result<u64, String> {
    use osml_data::decimal::{Decimal, DecimalError};
    let bad = || {
        format!(
            "{text:?} is not a token count such as 1T, 500B or 1.5e12 (suffixes K, M, B or G, T)"
        )
    };
    let too_big = || format!("{text:?} is not a token count between 1 and 2^64");
    let fractional = || format!("{text:?} is not a whole number of tokens");
    let t = text.trim();
    let scale_of = |c: char| match c.to_ascii_uppercase() {
        'K' => Some(1_000u128),
        'M' => Some(1_000_000),
        'B' | 'G' => Some(1_000_000_000),
        'T' => Some(1_000_000_000_000),
        _ => None,
    };
    let (number, scale) = match t.char_indices().last() {
        Some((i, c)) => scale_of(c).map_or((t, 1), |s| (&t[..i], s)),
        None => (t, 1),
    };
    let d = Decimal::parse(number).map_err(|e| match e {
        DecimalError::TooManyDigits => too_big(),
        DecimalError::TooManyPlaces => fractional(),
        DecimalError::Negative
        | DecimalError::NotFinite
        | DecimalError::BadExponent
        | DecimalError::NotANumber => bad(),
    })?;
    let whole = d.whole_times(scale).ok_or_else(|| {
        // Past u128 is too big; otherwise it has a fractional part.
        if d.mantissa.checked_mul(scale).is_none() {
            too_big()
        } else {
            fractional()
        }
    })?;
    match u64::try_from(whole) {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(too_big()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_counts_are_read_as_written() {
        for (text, want) in [
            ("1T", 1_000_000_000_000u64),
            ("4.1T", 4_100_000_000_000),
            ("2.01B", 2_010_000_000),
            ("16.4B", 16_400_000_000),
            ("1.001K", 1_001),
            ("500b", 500_000_000_000),
            ("1.5e12", 1_500_000_000_000),
            ("2.5E3", 2_500),
            ("9007199254740993", 9_007_199_254_740_993),
            ("18446744073709551615", u64::MAX),
            (" 8K ", 8_000),
        ] {
            assert_eq!(super::parse_token_count(text), Ok(want), "{text}");
        }
        for (text, why) in [
            ("0", "between 1 and 2^64"),
            ("18446744073709551616", "between 1 and 2^64"),
            ("1e40", "between 1 and 2^64"),
            ("1.0001K", "whole number"),
            ("1e-400", "whole number"),
            ("inf", "not a token count"),
            ("nan", "not a token count"),
            ("-5", "not a token count"),
            ("1X", "suffixes K, M"),
            ("", "not a token count"),
        ] {
            let e = super::parse_token_count(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DoctorArgs {
    #[command(subcommand)]
    pub command: Option<DoctorCommand>,

    /// The profile to judge against.
    #[arg(long, default_value = "training", value_parser = ["training", "inference"])]
    pub profile: String,

    /// Read the host from this directory or archive (.tar, .tar.gz, .tar.bz2) instead of `/`:
    /// a capture made with --capture, or a dump from hwloc-gather-topology.
    #[arg(long, value_name = "DIR|ARCHIVE")]
    pub root: Option<PathBuf>,

    /// Print JSON (schema in docs/doctor-json.md) instead of the report: `--format json`.
    #[arg(long, conflicts_with = "format")]
    pub json: bool,

    /// The output: `human` (the report), `json` (docs/doctor-json.md), `prometheus` (the text
    /// format of `node_exporter`'s textfile collector), `npd` (node-problem-detector's custom
    /// plugin: one line of at most 80 characters, exit 0 OK, 1 problem, 2 unknown) or
    /// `oneline` (a Slurm drain reason).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "human")]
    pub format: DoctorFormat,

    /// Write the output to this file (atomically: a temporary file renamed over it, mode 0666
    /// less the umask) instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Run only these checks (ids as listed by --list; repeat or separate with commas).
    #[arg(long, value_name = "ID", num_args = 1.., value_delimiter = ',')]
    pub only: Vec<String>,

    /// Show passed and informational checks in full.
    #[arg(short, long)]
    pub verbose: bool,

    /// Also write every file doctor reads into this .tar.gz, for a bug report or a fixture;
    /// `--root` reads it back.
    #[arg(long, value_name = "FILE.tar.gz")]
    pub capture: Option<PathBuf>,

    /// After the snapshot, watch the host for this long (`60s`, `5m`): re-read the PCIe links
    /// of GPUs, NICs and NVMe drives, the kernel log and the PSI totals at each --interval,
    /// and judge the window (`watch.pci_link`: flaps; `watch.kernel_log`: new records;
    /// `watch.pressure`: stall time). Ctrl-C ends the window early with what was seen.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub watch: Option<std::time::Duration>,

    /// How often --watch re-reads.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration, requires = "watch")]
    pub interval: std::time::Duration,

    /// List the checks and exit.
    #[arg(long)]
    pub list: bool,
}

/// `osml doctor --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DoctorFormat {
    Human,
    Json,
    Prometheus,
    Npd,
    Oneline,
}

#[derive(Debug, Subcommand)]
pub enum DoctorCommand {
    /// Compare `osml doctor --json` reports of several hosts and show where they differ.
    ///
    /// For each check whose observed value is not the same on every host, prints host → value
    /// and marks the odd ones out (values fewer hosts share than the most common one). Exit
    /// status: 0 no difference, 1 differences, 2 usage or input error.
    Compare {
        /// Reports written by `osml doctor --json` (two or more).
        #[arg(required = true, num_args = 2.., value_name = "REPORT.json")]
        reports: Vec<PathBuf>,
        /// Print JSON instead of the table.
        #[arg(long)]
        json: bool,
    },
}
