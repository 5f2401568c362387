//! How long a full `osml doctor` takes on this machine, against `sysctl -a` measured in the
//! same run (this machine is noisy: the ratio means more than the milliseconds).
//!
//! `cargo bench -p osml --bench doctor` (or `make bench-doctor`). Prints a Markdown table.

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
        "\n{RUNS} runs each after one warm-up; {} CPUs online.",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
}
