//! Sampling a process tree from `/proc`: which processes descend from the root, and for each
//! one its CPU time, memory (RSS, PSS, USS, swap), faults, context switches, migrations, I/O,
//! threads and affinity. A process that vanishes between listing and reading is simply absent
//! from that sample.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use procfs::process::Process;
use serde::Serialize;

/// A process is identified by its pid and start time, so a reused pid is a new process.
pub type Key = (i32, u64);

/// One process at one instant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcSample {
    pub pid: i32,
    pub ppid: i32,
    pub start: u64,
    /// Seconds since tracing began.
    pub t: f64,
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    pub rss_bytes: u64,
    pub pss_bytes: Option<u64>,
    /// Private (clean + dirty) bytes: what the process alone holds.
    pub uss_bytes: Option<u64>,
    pub swap_bytes: u64,
    pub minor_faults: u64,
    pub major_faults: u64,
    pub voluntary_switches: u64,
    pub involuntary_switches: u64,
    /// Migrations between CPUs summed over threads (`se.nr_migrations`), when the kernel shows
    /// it; otherwise `None` and migrations are counted from the CPU each sample ran on.
    pub migrations: Option<u64>,
    /// CPU each thread last ran on (tid → cpu), for counting migrations without sched stats.
    pub thread_cpus: BTreeMap<i32, i32>,
    pub read_bytes: Option<u64>,
    pub write_bytes: Option<u64>,
    /// Bytes read-like system calls returned (`rchar`), page cache and sockets included.
    pub read_chars: Option<u64>,
    pub threads: u64,
    /// Threads in state R (running or runnable).
    pub runnable: u64,
    pub cpus_allowed: Option<String>,
}

/// Process `pid` under `host`'s `/proc` (the live one, or a recorded tree), if it exists.
pub fn process(host: &osml_host::HostRoot, pid: i32) -> Option<Process> {
    Process::new_with_root(host.base().join("proc").join(pid.to_string())).ok()
}

/// Descendants of `roots` (and the roots) under `host`'s `/proc`, from each process's parent.
pub fn tree(host: &osml_host::HostRoot, roots: &[i32]) -> Vec<Process> {
    let Ok(all) = procfs::process::all_processes_with_root(host.base().join("proc")) else {
        return Vec::new();
    };
    let procs: Vec<(Process, i32)> = all
        .filter_map(Result::ok)
        .filter_map(|p| {
            let ppid = p.stat().ok()?.ppid;
            Some((p, ppid))
        })
        .collect();
    let mut children: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (p, ppid) in &procs {
        children.entry(*ppid).or_default().push(p.pid);
    }
    let mut wanted: BTreeSet<i32> = BTreeSet::new();
    let mut todo: Vec<i32> = roots.to_vec();
    while let Some(pid) = todo.pop() {
        if wanted.insert(pid) {
            todo.extend(children.get(&pid).into_iter().flatten());
        }
    }
    procs
        .into_iter()
        .filter(|(p, _)| wanted.contains(&p.pid))
        .map(|(p, _)| p)
        .collect()
}

fn sched_migrations(text: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with("se.nr_migrations"))
        .and_then(|l| l.split(':').nth(1))
        .and_then(|v| v.trim().parse().ok())
}

/// Reads one process; `None` when it vanished or cannot be read.
pub fn read(p: &Process, t0: Instant, host: &osml_host::HostRoot) -> Option<ProcSample> {
    let stat = p.stat().ok()?;
    let status = p.status().ok()?;
    // A zombie, or a process tearing its memory down on exit, has no VmRSS: its figures
    // would read as zero, so it is left out of this sample.
    if matches!(stat.state, 'Z' | 'X') {
        return None;
    }
    status.vmrss?;
    let ticks = procfs::ticks_per_second() as f64;
    let rollup = p.smaps_rollup().ok();
    // smaps_rollup is one pseudo-mapping, `[rollup]`, whose fields are in bytes.
    let field = |k: &str| {
        rollup
            .as_ref()
            .and_then(|r| r.memory_map_rollup.0.first())
            .and_then(|m| m.extension.map.get(k).copied())
    };
    let pss = field("Pss");
    if rollup.is_some() && pss.is_none() {
        return None;
    }
    let uss = match (field("Private_Clean"), field("Private_Dirty")) {
        (Some(a), Some(b)) => Some(a + b),
        _ => None,
    };
    let io = p.io().ok();
    let mut thread_cpus = BTreeMap::new();
    let mut migrations = Some(0u64);
    let mut runnable = 0;
    if let Ok(tasks) = p.tasks() {
        for task in tasks.flatten() {
            if let Ok(ts) = task.stat() {
                if let Some(cpu) = ts.processor {
                    thread_cpus.insert(task.tid, cpu);
                }
                if ts.state == 'R' {
                    runnable += 1;
                }
            }
            let sched = host
                .read(&format!("/proc/{}/task/{}/sched", p.pid, task.tid))
                .ok()
                .and_then(|t| sched_migrations(&t));
            migrations = match (migrations, sched) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
    }
    let kb = |v: Option<u64>| v.unwrap_or(0) * 1024;
    Some(ProcSample {
        pid: p.pid,
        ppid: stat.ppid,
        start: stat.starttime,
        t: t0.elapsed().as_secs_f64(),
        cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
        rss_bytes: kb(status.vmrss),
        pss_bytes: pss,
        uss_bytes: uss,
        swap_bytes: kb(status.vmswap),
        minor_faults: stat.minflt,
        major_faults: stat.majflt,
        voluntary_switches: status.voluntary_ctxt_switches.unwrap_or(0),
        involuntary_switches: status.nonvoluntary_ctxt_switches.unwrap_or(0),
        migrations,
        thread_cpus,
        read_bytes: io.as_ref().map(|i| i.read_bytes),
        write_bytes: io.as_ref().map(|i| i.write_bytes),
        read_chars: io.as_ref().map(|i| i.rchar),
        threads: u64::try_from(stat.num_threads).unwrap_or(0),
        runnable,
        cpus_allowed: status.cpus_allowed_list.map(|l| {
            l.iter()
                .map(|(a, b)| {
                    if a == b {
                        a.to_string()
                    } else {
                        format!("{a}-{b}")
                    }
                })
                .collect::<Vec<_>>()
                .join(",")
        }),
    })
}

/// The command line of a process, or its name when the command line is empty.
pub fn command(p: &Process) -> String {
    match p.cmdline() {
        Ok(c) if !c.is_empty() => c.join(" ").split_whitespace().collect::<Vec<_>>().join(" "),
        _ => p
            .stat()
            .map(|s| format!("[{}]", s.comm))
            .unwrap_or_default(),
    }
}

/// The executable of a process, when readable.
pub fn exe(p: &Process) -> Option<String> {
    p.exe().ok().map(|e| e.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = std::process::id().cast_signed();
        let host = osml_host::HostRoot::live();
        let procs = tree(&host, &[me]);
        let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
        assert!(pids.contains(&me));
        assert!(pids.contains(&child.id().cast_signed()), "{pids:?}");
        let s = read(&process(&host, me).unwrap(), Instant::now(), &host).unwrap();
        assert!(s.rss_bytes > 0 && s.threads >= 1);
        assert!(s.pss_bytes.unwrap() > 0 && s.uss_bytes.unwrap() > 0);
        assert!(s.cpu_seconds >= 0.0);
        child.kill().unwrap();
        child.wait().unwrap();
        // A process that is gone reads as None, not a panic.
        let gone = process(&host, child.id().cast_signed());
        assert!(gone.is_none_or(|p| read(&p, Instant::now(), &host).is_none()));
    }

    #[test]
    fn migrations_from_sched() {
        let text = "sleep (1, #threads: 1)\nse.exec_start : 1.0\nse.nr_migrations                             :                    7\n";
        assert_eq!(sched_migrations(text), Some(7));
        assert_eq!(sched_migrations("nothing"), None);
    }

    /// Writes `/proc/PID` of a recorded tree under `dir`: this process's own files with the
    /// pid, name, parent, CPU ticks and RSS replaced.
    #[allow(clippy::similar_names, clippy::disallowed_methods)] // pid/ppid; the live files copied
    fn record(
        dir: &std::path::Path,
        pid: i32,
        ppid: i32,
        comm: &str,
        ticks: (u64, u64),
        rss_kb: u64,
    ) {
        let me = std::process::id();
        let at = dir.join(format!("proc/{pid}"));
        std::fs::create_dir_all(at.join(format!("task/{pid}"))).unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
        let (_, rest) = stat.rsplit_once(") ").unwrap();
        let mut f: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
        // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt
        // cmajflt utime stime cutime cstime priority nice num_threads ...
        f[1] = ppid.to_string();
        f[11] = ticks.0.to_string();
        f[12] = ticks.1.to_string();
        f[17] = "1".to_owned(); // num_threads
        let stat = format!("{pid} ({comm}) {}\n", f.join(" "));
        std::fs::write(at.join("stat"), &stat).unwrap();
        std::fs::write(at.join(format!("task/{pid}/stat")), &stat).unwrap();
        std::fs::write(
            at.join(format!("task/{pid}/sched")),
            format!("{comm} ({pid}, #threads: 1)\nse.nr_migrations : 7\n"),
        )
        .unwrap();
        let status: String = std::fs::read_to_string(format!("/proc/{me}/status"))
            .unwrap()
            .lines()
            .map(|l| match l.split(':').next() {
                Some("Pid" | "Tgid") => format!("{}:\t{pid}", l.split(':').next().unwrap()),
                Some("PPid") => format!("PPid:\t{ppid}"),
                Some("Name") => format!("Name:\t{comm}"),
                Some("VmRSS") => format!("VmRSS:\t{rss_kb} kB"),
                Some("Threads") => "Threads:\t1".to_owned(),
                _ => l.to_owned(),
            })
            .map(|l| l + "\n")
            .collect();
        std::fs::write(at.join("status"), status).unwrap();
        for file in ["io", "smaps_rollup"] {
            std::fs::copy(format!("/proc/{me}/{file}"), at.join(file)).unwrap();
        }
        std::fs::write(at.join("cmdline"), format!("{comm}\0train.py\0")).unwrap();
    }

    #[test]
    fn a_recorded_tree_is_sampled_like_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        record(dir.path(), 100, 1, "python3", (150, 30), 2048);
        record(dir.path(), 101, 100, "pt_data_worker", (40, 2), 1024);
        record(dir.path(), 102, 101, "pt_data_worker", (1, 1), 512);
        record(dir.path(), 200, 1, "sshd", (5, 5), 4096);
        let host = osml_host::HostRoot::at(dir.path());
        let mut pids: Vec<i32> = tree(&host, &[100]).iter().map(|p| p.pid).collect();
        pids.sort_unstable();
        assert_eq!(
            pids,
            vec![100, 101, 102],
            "the root and its descendants, not pid 200"
        );
        assert_eq!(tree(&host, &[101]).len(), 2);
        let s = read(&process(&host, 101).unwrap(), Instant::now(), &host).unwrap();
        assert_eq!((s.pid, s.ppid), (101, 100));
        let ticks = procfs::ticks_per_second() as f64;
        assert!(
            (s.cpu_seconds - 42.0 / ticks).abs() < 1e-9,
            "{}",
            s.cpu_seconds
        );
        assert_eq!(s.rss_bytes, 1024 * 1024);
        assert_eq!(s.migrations, Some(7), "from the recorded task's sched");
        assert_eq!(s.threads, 1);
        assert_eq!(command(&process(&host, 100).unwrap()), "python3 train.py");
        assert!(process(&host, 300).is_none());
    }
}
