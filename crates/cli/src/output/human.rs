//! The human report of `osml doctor`.

use std::io::{self, Write};

use osml_doctor::{Finding, Report, Status};

use super::{escape, Style};

fn area_name(area: &str) -> &str {
    match area {
        "cpu" => "CPU",
        "cgroup" => "cgroups",
        "mem" => "Memory",
        "numa" => "NUMA",
        "ipc" => "Shared memory",
        "limits" => "Limits",
        "io" => "Storage",
        "kernel" => "Kernel",
        "pressure" => "Pressure",
        "gpu" => "GPU",
        "rdma" => "RDMA",
        "pci" => "PCIe",
        "watch" => "Over the --watch window",
        other => other,
    }
}

pub fn write_report(
    out: &mut impl Write,
    r: &Report,
    verbose: bool,
    style: Style,
) -> io::Result<()> {
    let h = &r.host;
    // Hostname, kernel, root path and every finding's values come from the host (or a
    // capture of it): escaped, so a capture cannot drive the terminal.
    let name = escape(h.hostname.known().map_or("unknown host", String::as_str));
    let release = escape(h.kernel.release.known().map_or("?", String::as_str));
    let source = if h.live {
        String::new()
    } else {
        format!(", read from {}", escape(&h.root))
    };
    writeln!(
        out,
        "{} {name} (Linux {release}{source}) · profile {}",
        style.bold("osml doctor:"),
        r.profile.name
    )?;
    let mut area = "";
    for f in &r.findings {
        if f.area != area {
            area = &f.area;
            writeln!(out)?;
            writeln!(out, "{}", style.bold(area_name(area)))?;
        }
        write_finding(out, f, verbose, style)?;
    }
    let s = r.summary;
    let plural =
        |n: usize, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    writeln!(out)?;
    writeln!(
        out,
        "{} checks: {} passed, {}, {}, {} skipped, {} for information",
        r.findings.len(),
        s.pass,
        plural(s.warn, "warning", "warnings"),
        plural(s.fail, "failure", "failures"),
        s.skip,
        s.info
    )?;
    if !verbose {
        writeln!(
            out,
            "{}",
            style.dim("-v shows every check in full; --json for machines.")
        )?;
    }
    Ok(())
}

fn write_finding(out: &mut impl Write, f: &Finding, verbose: bool, style: Style) -> io::Result<()> {
    let observed = escape(&f.observed);
    let observed = if f.status == Status::Skip {
        format!("skipped: {observed}")
    } else {
        observed.into_owned()
    };
    writeln!(
        out,
        "  {} {:<34} {observed}",
        style.status(f.status),
        f.title
    )?;
    let full = verbose || matches!(f.status, Status::Warn | Status::Fail);
    if !full {
        return Ok(());
    }
    let label = |l: &str| style.dim(&format!("{l:>9}"));
    if !f.expected.is_empty() {
        writeln!(out, "      {} {}", label("expected"), escape(&f.expected))?;
    }
    writeln!(out, "      {} {}", label("why"), f.why)?;
    if let Some(fix) = &f.fix {
        writeln!(out, "      {} {}", label("fix now"), escape(&fix.runtime))?;
        writeln!(out, "      {} {}", label("persist"), escape(&fix.persist))?;
    }
    if verbose {
        writeln!(
            out,
            "      {} {}",
            label("read"),
            escape(&f.evidence.join(", "))
        )?;
        writeln!(out, "      {} {}", label("source"), f.source)?;
    }
    writeln!(out, "      {} {}", label("check"), f.id)?;
    Ok(())
}
