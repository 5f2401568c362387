//! `osml trace` and `osml mem`.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use osml_trace::kernel::NameSet;
use osml_trace::report::{human_bytes, Report};
use osml_trace::{
    Counting, Mechanism, Options, SyscallMode, Target, MAX_DURATION, MAX_INTERVAL, MIN_INTERVAL,
};

use crate::cli::{MemArgs, SyscallNamesArg, SyscallsArg, TraceArgs};
use crate::exit::Usage;

/// The interval and duration limits ([`osml_trace::MIN_INTERVAL`] …): an interval of a
/// billion years or a `--duration` shorter than one sample is a mistake, refused before
/// anything runs.
fn check_times(interval: Duration, duration: Option<Duration>) -> Result<(), Usage> {
    let ms = |d: Duration| humantime::format_duration(d).to_string();
    if !(MIN_INTERVAL..=MAX_INTERVAL).contains(&interval) {
        return Err(Usage::new(format!(
            "--interval {}: must be between {} and {}",
            ms(interval),
            ms(MIN_INTERVAL),
            ms(MAX_INTERVAL)
        )));
    }
    if let Some(d) = duration {
        if d > MAX_DURATION {
            return Err(Usage::new(format!(
                "--duration {}: at most {}",
                ms(d),
                ms(MAX_DURATION)
            )));
        }
        if d < interval {
            return Err(Usage::new(format!(
                "--duration {} is shorter than --interval {}: the trace would take one sample",
                ms(d),
                ms(interval)
            ))
            .hint("give an --interval at most as long as the --duration"));
        }
    }
    Ok(())
}
pub fn run(a: &TraceArgs) -> Result<ExitCode> {
    let target = match a.pid {
        Some(pid) => Target::Pid(pid),
        None => Target::Command(a.command.clone()),
    };
    check_times(a.interval, a.duration)?;
    let opts = Options {
        interval: a.interval,
        syscalls: a.syscalls.map(|m| match m {
            SyscallsArg::Auto => SyscallMode::Auto,
            SyscallsArg::Bpf => SyscallMode::Bpf,
            SyscallsArg::Perf => SyscallMode::Perf,
            SyscallsArg::Ptrace => SyscallMode::Ptrace,
        }),
        syscall_names: match a.syscall_names {
            SyscallNamesArg::All => NameSet::All,
            SyscallNamesArg::Common => NameSet::Common,
            SyscallNamesArg::None => NameSet::None,
        },
        duration: a.duration,
    };
    // Ctrl-C ends a --pid trace with its report; a traced command gets the signal itself.
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let report = osml_trace::trace(&target, &opts, &stop)?;
    if let Some(c) = report.syscall_counting.as_ref().filter(|c| c.fell_back) {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "osml: warning: system calls counted with ptrace: {}",
            crate::output::escape(&c.reason)
        );
    }
    if let Some(path) = &a.json {
        crate::output::write_atomic(
            path,
            (serde_json::to_string_pretty(&report)? + "\n").as_bytes(),
        )?;
    }
    if let Some(path) = &a.plot {
        crate::output::write_atomic(path, osml_trace::plot::svg(&report).as_bytes())?;
    }
    // The command's own output went to the terminal; the summary goes to stderr so that a
    // pipeline reading the command's stdout is undisturbed.
    // A closed stderr must not turn the command's status into ours.
    let mut err = crate::output::Sanitized::new(std::io::stderr().lock());
    let _ = write_summary(&mut err, &report).and_then(|()| err.finish());
    let code = report.exit_status.unwrap_or(0);
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

/// How the system calls were counted, for the summary line: the mechanism, why, and what a
/// kernel count left out.
fn counting_note(c: &Counting) -> String {
    let Some(cov) = c
        .coverage
        .as_ref()
        .filter(|_| c.mechanism != Mechanism::Ptrace)
    else {
        return format!(", counted with ptrace ({})", c.reason);
    };
    let how = if c.mechanism == Mechanism::Bpf {
        "with BPF"
    } else {
        "with perf counters"
    };
    let mut parts = vec![format!(", counted in the kernel {how} ({})", c.reason)];
    if cov.counted_by_name < cov.tracepoints {
        parts.push(format!(
            "{} of {} system calls by name, the rest as other",
            cov.counted_by_name, cov.tracepoints
        ));
    }
    if cov.late_tasks > 0 {
        parts.push(format!(
            "{} thread(s) started while the counters opened, counted only if their creator was",
            cov.late_tasks
        ));
    }
    if cov.unattributed > 0 {
        parts.push(format!(
            "{} call(s) made by threads before the sampler saw them are in no process's figure",
            cov.unattributed
        ));
    }
    if cov.threads_unwatched > 0 {
        parts.push(format!(
            "{} thread(s) got no counter of their own (descriptor limit)",
            cov.threads_unwatched
        ));
    }
    parts.join("; ")
}

fn write_summary(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    writeln!(
        out,
        "\nosml trace: {} — {:.1} s, {} process(es), sampled every {} ms{}",
        r.command,
        r.duration_s,
        r.totals.processes,
        r.interval_ms,
        r.exit_status
            .map_or_else(String::new, |s| format!(", exit {s}"))
    )?;
    writeln!(
        out,
        "  {:>7} {:>7} {:>6} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>6} {:>4}  cmd",
        "pid",
        "cpu s",
        "cpu%↑",
        "RSS↑",
        "PSS↑",
        "PSS Δ",
        "minflt",
        "majflt",
        "invol",
        "migr",
        "thr"
    )?;
    for p in &r.processes {
        let cmd: String = p.cmd.chars().take(60).collect();
        writeln!(
            out,
            "  {:>7} {:>7.2} {:>6.0} {:>9} {:>9} {:>9} {:>8} {:>7} {:>7} {:>6} {:>4}  {cmd}",
            p.pid,
            p.cpu_seconds,
            p.peak_cpu_percent,
            human_bytes(p.peak_rss_bytes as f64),
            p.peak_pss_bytes
                .map_or_else(|| "?".to_owned(), |b| human_bytes(b as f64)),
            human_bytes(p.pss_growth_bytes as f64),
            p.minor_faults,
            p.major_faults,
            p.involuntary_switches,
            p.migrations,
            p.peak_threads
        )?;
    }
    let t = &r.totals;
    writeln!(
        out,
        "  total: {:.2} CPU s, peak RSS {} / PSS {}, {} minor and {} major faults, {} involuntary switches, {} migrations, up to {} runnable threads on {} CPU(s)",
        t.cpu_seconds,
        human_bytes(t.peak_rss_bytes as f64),
        human_bytes(t.peak_pss_bytes as f64),
        t.minor_faults,
        t.major_faults,
        t.involuntary_switches,
        t.migrations,
        t.peak_runnable_threads,
        r.cpus
    )?;
    if let Some(times) = &r.syscall_times {
        let total: u64 = times.values().map(|s| s.count).sum();
        let how = r
            .syscall_counting
            .as_ref()
            .map_or_else(String::new, counting_note);
        writeln!(
            out,
            "  system calls: {total} ({:.0}/s){how}",
            total as f64 / r.duration_s.max(1e-9)
        )?;
        let timed = r.syscall_counting.as_ref().is_none_or(|c| c.times_measured);
        let mut top: Vec<_> = times.iter().collect();
        top.sort_by_key(|(_, s)| std::cmp::Reverse(s.count));
        for (name, s) in top.iter().take(12) {
            if timed {
                writeln!(out, "    {name:<20} {:>10} {:>10.4} s", s.count, s.seconds)?;
            } else {
                writeln!(out, "    {name:<20} {:>10}", s.count)?;
            }
        }
    }
    if r.findings.is_empty() {
        writeln!(out, "  findings: none")?;
    } else {
        writeln!(out, "  findings:")?;
        for f in &r.findings {
            writeln!(out, "    {}: {}", f.id, f.message)?;
        }
    }
    Ok(())
}

pub fn mem(a: &MemArgs) -> Result<ExitCode> {
    let r = osml_trace::mem::explain(&osml_host::HostRoot::live(), a.pid)?;
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.json {
        serde_json::to_writer_pretty(&mut out, &r)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let hb = |b: u64| human_bytes(b as f64);
    writeln!(out, "pid {}: {}", r.pid, r.cmd)?;
    writeln!(
        out,
        "  {:<14} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "group", "regions", "virtual", "RSS", "PSS", "USS", "swap", "THP"
    )?;
    let row = |out: &mut crate::output::Sanitized<std::io::StdoutLock<'_>>,
               name: &str,
               u: &osml_trace::mem::Usage| {
        writeln!(
            out,
            "  {:<14} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
            name,
            u.regions,
            hb(u.size_bytes),
            hb(u.rss_bytes),
            hb(u.pss_bytes),
            hb(u.uss_bytes),
            hb(u.swap_bytes),
            hb(u.anon_huge_bytes)
        )
    };
    for (g, u) in &r.groups {
        row(&mut out, g, u)?;
    }
    row(&mut out, "total", &r.total)?;
    writeln!(out, "  files by RSS:")?;
    for f in r.files.iter().take(12) {
        writeln!(
            out,
            "    {:<10} {:>10} RSS {:>10} PSS  {}",
            f.kind,
            hb(f.usage.rss_bytes),
            hb(f.usage.pss_bytes),
            f.path
        )?;
    }
    writeln!(
        out,
        "  page tables {}, transparent huge pages {}",
        r.page_tables_bytes.map_or_else(|| "?".to_owned(), hb),
        hb(r.thp_bytes)
    )?;
    writeln!(
        out,
        "  overcommit_memory {}, committed {} of limit {}",
        r.overcommit_memory.as_deref().unwrap_or("?"),
        r.committed_bytes.map_or_else(|| "?".to_owned(), hb),
        r.commit_limit_bytes.map_or_else(|| "?".to_owned(), hb)
    )?;
    match (r.cgroup_limit_bytes, r.cgroup_usage_bytes) {
        (Some(l), u) => writeln!(
            out,
            "  cgroup memory limit {} (in use {})",
            hb(l),
            u.map_or_else(|| "?".to_owned(), hb)
        )?,
        (None, _) => writeln!(out, "  cgroup memory limit: none")?,
    }
    writeln!(out, "  OOM: {}", r.oom_explained)?;
    Ok(ExitCode::SUCCESS)
}
