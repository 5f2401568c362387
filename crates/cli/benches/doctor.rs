//! How long a full `osml doctor` takes on this machine, against `sysctl -a` measured in the
//! same run (this machine is noisy: the ratio means more than the milliseconds).
//!
//! A second table times the kernel-log checks on a 100 MB `dev/kmsg` under `--root`, against
//! `wc -l` of the same file (a read of every byte) measured in the same run.
//!
//! `cargo bench -p osml --bench doctor` (or `make bench-doctor`). Prints Markdown tables.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use osml_doctor::{diagnose, TRAINING};
use osml_host::{HostRoot, HostSnapshot};

const RUNS: usize = 41;

struct Stats {
    median: Duration,
    min: Duration,
    max: Duration,
    mad: Duration,
}

fn stats(mut v: Vec<Duration>) -> Stats {
    v.sort();
    let median = v[v.len() / 2];
    let mut dev: Vec<Duration> = v.iter().map(|d| d.abs_diff(median)).collect();
    dev.sort();
    Stats {
        median,
        min: v[0],
        max: v[v.len() - 1],
        mad: dev[dev.len() / 2],
    }
}

fn time(mut f: impl FnMut()) -> Stats {
    f(); // warm-up: page cache, dentries
    let mut v = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f();
        v.push(t.elapsed());
    }
    stats(v)
}

fn run(cmd: &str, args: &[&str]) {
    let status = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.code().is_some(), "{cmd} was killed");
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let osml = env!("CARGO_BIN_EXE_osml");
    let rows = [
        ("`sysctl -a` (baseline)", time(|| run("sysctl", &["-a"]))),
        (
            "`osml doctor --json` (process)",
            time(|| run(osml, &["doctor", "--json"])),
        ),
        (
            "`osml doctor` (process, human report)",
            time(|| run(osml, &["doctor"])),
        ),
        (
            "gather + diagnose (in process)",
            time(|| {
                let host = HostSnapshot::gather(&HostRoot::live());
                std::hint::black_box(diagnose(host, &TRAINING, &[]).unwrap());
            }),
        ),
    ];
    let base = rows[0].1.median.as_secs_f64();
    println!("| what | median ms | MAD ms | min–max ms | × sysctl -a |");
    println!("|---|---|---|---|---|");
    for (name, s) in &rows {
        println!(
            "| {name} | {} | {} | {}–{} | {:.2} |",
            ms(s.median),
            ms(s.mad),
            ms(s.min),
            ms(s.max),
            s.median.as_secs_f64() / base
        );
        if s.mad.as_secs_f64() > 0.25 * s.median.as_secs_f64() {
            println!(
                "|   ↳ unreliable: spread above 25% of the median (a noisy machine) | | | | |"
            );
        }
    }
    println!(
        "\n{RUNS} runs each after one warm-up; {} CPUs online; load average {}.",
        std::thread::available_parallelism().map_or(0, usize::from),
        load()
    );
    big_log(osml);
}

fn load() -> String {
    #[allow(clippy::disallowed_methods)] // the bench's own context, not a host fact
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| "?".into(),
        |l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// `osml doctor --only kernel.oom_kill,gpu.xid,pci.aer` on a root whose `dev/kmsg` holds
/// 100 MB of records (one in a thousand an Xid, an OOM kill or junk), interleaved with
/// `wc -l` of the file.
fn big_log(osml: &str) {
    use std::io::Write;
    const LOG_RUNS: usize = 7;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("dev")).unwrap();
    let path = dir.path().join("dev/kmsg");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let (mut written, mut seq) = (0usize, 0u64);
    while written < 100 << 20 {
        let t = seq * 10;
        let line = match seq % 1000 {
            0 => format!("4,{seq},{t},-;NVRM: Xid (PCI:0000:3b:00): 48, pid=1, name=python, DBE\n"),
            1 => {
                format!("3,{seq},{t},-;Out of memory: Killed process {seq} (python) anon-rss:4kB\n")
            }
            2 => format!("6,{seq},{t},-;\u{1}junk\u{7f}\n SUBSYSTEM=pci\n"),
            _ => format!(
                "6,{seq},{t},-;eth0: link up, 100Gbps, full duplex, lpa 0x0000 and some padding\n"
            ),
        };
        written += line.len();
        f.write_all(line.as_bytes()).unwrap();
        seq += 1;
    }
    f.flush().unwrap();
    drop(f);
    let root = dir.path().to_str().unwrap();
    let file = path.to_str().unwrap();
    let only = "kernel.oom_kill,gpu.xid,pci.aer";
    let (mut base, mut ours) = (Vec::new(), Vec::new());
    run("wc", &["-l", file]); // warm-up: the page cache
    for _ in 0..LOG_RUNS {
        let t = Instant::now();
        run("wc", &["-l", file]);
        base.push(t.elapsed());
        let t = Instant::now();
        run(osml, &["doctor", "--json", "--root", root, "--only", only]);
        ours.push(t.elapsed());
    }
    let (base, ours) = (stats(base), stats(ours));
    println!("\n| 100 MB dev/kmsg ({seq} records) | median ms | MAD ms | min–max ms | × wc -l |");
    println!("|---|---|---|---|---|");
    for (name, s) in [
        ("`wc -l` (baseline)", &base),
        (
            "`osml doctor --root DIR --only kernel.oom_kill,gpu.xid,pci.aer`",
            &ours,
        ),
    ] {
        println!(
            "| {name} | {} | {} | {}–{} | {:.2} |",
            ms(s.median),
            ms(s.mad),
            ms(s.min),
            ms(s.max),
            s.median.as_secs_f64() / base.median.as_secs_f64()
        );
    }
    println!(
        "\n{LOG_RUNS} runs each, interleaved; load average {}.",
        load()
    );
}
