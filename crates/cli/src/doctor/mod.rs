//! `osml doctor`: gather, judge, render; `--capture`; `compare`.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use osml_doctor::compare::{compare, HostFindings};
use osml_doctor::{diagnose, Profile, CHECKS};
use osml_host::{HostRoot, HostSnapshot};

use crate::archive;
use crate::cli::{DoctorArgs, DoctorCommand, DoctorFormat};
use crate::output::{self, fleet, Style};

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let style = Style::detect();
    let mut out = std::io::stdout().lock();
    if let Some(DoctorCommand::Compare { reports, json }) = &args.command {
        return run_compare(reports, *json, style, &mut out);
    }
    if args.list {
        for c in CHECKS {
            writeln!(out, "{:<20} {}", c.info.id, c.info.title)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let profile = Profile::by_name(&args.profile).with_context(|| {
        format!(
            "unknown profile {} (known: {})",
            args.profile,
            Profile::names().join(", ")
        )
    })?;

    let opened = args.root.as_deref().map(archive::open_root).transpose()?;
    let root = match &opened {
        Some(o) => o.root(),
        None => HostRoot::live(),
    };
    let root = if args.capture.is_some() {
        root.recording()
    } else {
        root
    };
    let mut host = HostSnapshot::gather(&root);
    if let Some(dir) = &args.root {
        // Report the path the user gave, not a temporary unpack directory.
        host.root = dir.display().to_string();
    }
    if let Some(duration) = args.watch {
        host.watch = Some(watch(&root, &host, duration, args.interval)?);
    }
    if let Some(dest) = &args.capture {
        let n = archive::write_capture(dest, &root.recorded())?;
        output::say!(
            "osml: wrote {n} entries to {} (read it back with --root)",
            output::escape(&dest.display().to_string())
        );
    }
    let report = diagnose(host, profile, &args.only)?;
    let format = if args.json {
        DoctorFormat::Json
    } else {
        args.format
    };
    let failed = u8::from(report.failed());
    let (text, code) = match format {
        DoctorFormat::Human => {
            let mut buf = Vec::new();
            // Colour only when the report goes to a terminal.
            let style = if args.output.is_some() {
                Style { color: false }
            } else {
                style
            };
            output::human::write_report(&mut buf, &report, args.verbose, style)?;
            (buf, failed)
        }
        DoctorFormat::Json => {
            let mut buf = serde_json::to_vec_pretty(&report)?;
            buf.push(b'\n');
            (buf, failed)
        }
        DoctorFormat::Prometheus => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            (fleet::prometheus(&report, now).into_bytes(), failed)
        }
        DoctorFormat::Npd => {
            let (line, code) = fleet::npd(&report);
            ((line + "\n").into_bytes(), code)
        }
        DoctorFormat::Oneline => ((fleet::oneline(&report) + "\n").into_bytes(), failed),
    };
    if let Some(path) = &args.output {
        output::write_atomic(path, &text)?;
    } else {
        out.write_all(&text)?;
        out.flush()?;
    }
    Ok(ExitCode::from(code))
}

/// Watches the host after its snapshot; Ctrl-C (SIGINT) ends the window early, with its
/// report. Another signal ends osml as usual: nothing is half-written, since the report (or
/// `-o`'s file, written atomically) comes after the window.
fn watch(
    root: &HostRoot,
    host: &HostSnapshot,
    duration: std::time::Duration,
    interval: std::time::Duration,
) -> Result<osml_host::watch::Watch> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    if interval.is_zero() || interval > duration {
        return Err(crate::exit::Usage::new(format!(
            "--interval {} must be above zero and at most --watch {}",
            humantime::format_duration(interval),
            humantime::format_duration(duration)
        ))
        .into());
    }
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    // Fails only when a handler is already set, which no other path of doctor does.
    let _ = ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed));
    output::say!(
        "osml: watching for {} (every {}; Ctrl-C ends early)",
        humantime::format_duration(duration),
        humantime::format_duration(interval)
    );
    let spec = osml_host::watch::WatchSpec {
        duration,
        interval,
        stop: &stop,
    };
    Ok(if root.is_live() {
        osml_host::watch::watch(root, host, &spec, &osml_host::LiveProbes)
    } else {
        osml_host::watch::watch(root, host, &spec, &osml_host::ReplayedProbes::new(root))
    })
}

fn run_compare(
    paths: &[std::path::PathBuf],
    json: bool,
    style: Style,
    out: &mut impl Write,
) -> Result<ExitCode> {
    let reports = paths
        .iter()
        .map(|p| HostFindings::read(p))
        .collect::<Result<Vec<_>, _>>()?;
    let drift = compare(&reports);
    if json {
        serde_json::to_writer_pretty(
            &mut *out,
            &serde_json::json!({
                "schema_version": osml_doctor::SCHEMA_VERSION,
                "hosts": reports.iter().map(HostFindings::label).collect::<Vec<_>>(),
                "drift": drift,
            }),
        )?;
        writeln!(out)?;
    } else {
        output::compare::write(out, &reports, &drift, style)?;
    }
    Ok(if drift.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl Style {
    /// Colour only on a terminal, and never when `NO_COLOR` is set (no-color.org).
    pub fn detect() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: std::io::stdout().is_terminal() && !no_color,
        }
    }
}
