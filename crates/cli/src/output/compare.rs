//! The table of `osml doctor compare`.

use std::io::{self, Write};

use osml_doctor::compare::{Drift, HostFindings};

use super::Style;

pub fn write(
    out: &mut impl Write,
    reports: &[HostFindings],
    drift: &[Drift],
    style: Style,
) -> io::Result<()> {
    let hosts: Vec<&str> = reports.iter().map(|r| r.host.as_str()).collect();
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
    let width = hosts.iter().map(|h| h.len()).max().unwrap_or(4);
    for d in drift {
        writeln!(out)?;
        writeln!(out, "{}", style.bold(&d.id))?;
        for h in &d.hosts {
            let mark = if h.odd {
                style.paint("33", "≠")
            } else {
                " ".to_owned()
            };
            writeln!(
                out,
                "  {mark} {:<width$}  {:<4}  {}",
                h.host, h.status, h.observed
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
