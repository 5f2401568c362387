//! The table of `osml doctor compare`.

use std::io::{self, Write};

use osml_doctor::compare::{Drift, HostFindings};

use super::{escape, Style};

/// How a host is named in the table: its hostname and the report's file, escaped (both come
/// from outside osml), so two reports of one host stay apart.
fn label(host: &str, file: &str) -> String {
    format!("{} ({})", escape(host), escape(file))
}

pub fn write(
    out: &mut impl Write,
    reports: &[HostFindings],
    drift: &[Drift],
    style: Style,
) -> io::Result<()> {
    let hosts: Vec<String> = reports.iter().map(|r| label(&r.host, &r.file)).collect();
    writeln!(
        out,
        "{} {} hosts: {}",
        style.bold("osml doctor compare:"),
        hosts.len(),
        hosts.join(", ")
    )?;
    if drift.is_empty() {
        writeln!(out, "every check observed the same value on every host")?;
        return Ok(());
    }
    let width = hosts.iter().map(|h| h.chars().count()).max().unwrap_or(4);
    for d in drift {
        writeln!(out)?;
        writeln!(out, "{}", style.bold(&escape(&d.id)))?;
        for h in &d.hosts {
            let mark = if h.odd {
                style.paint("33", "≠")
            } else {
                " ".to_owned()
            };
            writeln!(
                out,
                "  {mark} {:<width$}  {:<4}  {}",
                label(&h.host, &h.file),
                escape(&h.status),
                escape(&h.observed)
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "{} check(s) differ; ≠ marks values held by fewer hosts than the most common one",
        drift.len()
    )?;
    Ok(())
}
