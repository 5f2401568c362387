//! `osml doctor` in the formats fleets consume: the Prometheus text exposition format (for
//! `node_exporter`'s textfile collector), node-problem-detector's custom-plugin protocol, and
//! one line for a Slurm drain reason.

use std::fmt::Write as _;

use osml_doctor::{Finding, Report, Status};

/// The number a status is exported as: ordered by severity, so `>= 3` is "warn or worse".
pub fn severity(s: Status) -> u8 {
    match s {
        Status::Pass => 0,
        Status::Info => 1,
        Status::Skip => 2,
        Status::Warn => 3,
        Status::Fail => 4,
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Info => "info",
        Status::Skip => "skip",
        Status::Warn => "warn",
        Status::Fail => "fail",
    }
}

/// A label value escaped as the exposition format requires: backslash, double quote and line
/// feed.
fn label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// The observed value when it is one number (`60`, `0.5`), else `None`.
fn numeric(observed: &str) -> Option<f64> {
    observed
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
}

/// The report in the Prometheus text format, without sample timestamps (`node_exporter`'s
/// textfile collector refuses them): one `osml_doctor_check` gauge per check, its value the
/// severity, with `id`, `area` and `status` labels; `osml_doctor_check_observed` where the
/// observed value is a number; the count per status; and when the report was made.
pub fn prometheus(r: &Report, unix_time: f64) -> String {
    let mut out = String::new();
    let host = label(r.host.hostname.known().map_or("", String::as_str));
    let _ = writeln!(
        out,
        "# HELP osml_doctor_check Outcome of one osml doctor check: 0 pass, 1 info, 2 skip, 3 warn, 4 fail."
    );
    let _ = writeln!(out, "# TYPE osml_doctor_check gauge");
    for f in &r.findings {
        let _ = writeln!(
            out,
            "osml_doctor_check{{id=\"{}\",area=\"{}\",status=\"{}\",profile=\"{}\"}} {}",
            label(&f.id),
            label(&f.area),
            status_name(f.status),
            label(r.profile.name),
            severity(f.status)
        );
    }
    let observed: Vec<(&Finding, f64)> = r
        .findings
        .iter()
        .filter_map(|f| numeric(&f.observed).map(|v| (f, v)))
        .collect();
    if !observed.is_empty() {
        let _ = writeln!(
            out,
            "# HELP osml_doctor_check_observed The value an osml doctor check observed, where it is a number."
        );
        let _ = writeln!(out, "# TYPE osml_doctor_check_observed gauge");
        for (f, v) in observed {
            let _ = writeln!(
                out,
                "osml_doctor_check_observed{{id=\"{}\"}} {v}",
                label(&f.id)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP osml_doctor_checks osml doctor checks per status."
    );
    let _ = writeln!(out, "# TYPE osml_doctor_checks gauge");
    let s = &r.summary;
    for (name, n) in [
        ("pass", s.pass),
        ("info", s.info),
        ("skip", s.skip),
        ("warn", s.warn),
        ("fail", s.fail),
    ] {
        let _ = writeln!(out, "osml_doctor_checks{{status=\"{name}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP osml_doctor_run_timestamp_seconds When osml doctor made this report (Unix time): alert when it is stale."
    );
    let _ = writeln!(out, "# TYPE osml_doctor_run_timestamp_seconds gauge");
    let _ = writeln!(
        out,
        "osml_doctor_run_timestamp_seconds{{hostname=\"{host}\",osml_version=\"{}\"}} {unix_time:.3}",
        label(r.osml_version)
    );
    out
}

/// The worst finding: highest severity, then report order.
fn worst(r: &Report) -> Option<&Finding> {
    r.findings
        .iter()
        .filter(|f| matches!(f.status, Status::Warn | Status::Fail))
        .max_by_key(|f| severity(f.status))
}

/// Text cut to `max` characters (not bytes), ending in `…` when cut; control characters
/// become spaces, so the result is one line.
fn one_line(text: &str, max: usize) -> String {
    let clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if clean.chars().count() <= max {
        return clean;
    }
    let mut cut: String = clean.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// node-problem-detector's custom-plugin protocol: the exit status (0 OK, 1 a problem: a
/// failed or warning check, 2 unknown: more checks skipped than judged) and one line of at
/// most 80 characters naming the worst finding (npd's default `max_output_length`).
pub fn npd(r: &Report) -> (String, u8) {
    let s = &r.summary;
    if let Some(f) = worst(r) {
        let others = s.fail + s.warn - 1;
        let more = if others > 0 {
            format!(" (+{others} more)")
        } else {
            String::new()
        };
        let head = format!("{} {}: ", status_name(f.status), f.id);
        let room = 80usize.saturating_sub(head.chars().count() + more.chars().count());
        return (format!("{head}{}{more}", one_line(&f.observed, room)), 1);
    }
    if s.skip > s.pass + s.info {
        return (
            one_line(
                &format!(
                    "unknown: {} of {} checks skipped (the host could not be read)",
                    s.skip,
                    s.skip + s.pass + s.info
                ),
                80,
            ),
            2,
        );
    }
    (
        format!("ok: {} passed, {} skipped", s.pass + s.info, s.skip),
        0,
    )
}

/// One line for a Slurm drain reason (`scontrol update nodename=… state=drain reason=…`):
/// the failed checks with what was observed, then the warnings' ids; `ok` when nothing
/// failed or warned. At most 256 characters.
pub fn oneline(r: &Report) -> String {
    let fails: Vec<String> = r
        .findings
        .iter()
        .filter(|f| f.status == Status::Fail)
        .map(|f| format!("{} ({})", f.id, one_line(&f.observed, 40)))
        .collect();
    let warns: Vec<&str> = r
        .findings
        .iter()
        .filter(|f| f.status == Status::Warn)
        .map(|f| f.id.as_str())
        .collect();
    let mut parts = Vec::new();
    if !fails.is_empty() {
        parts.push(format!("fail: {}", fails.join(", ")));
    }
    if !warns.is_empty() {
        parts.push(format!("warn: {}", warns.join(", ")));
    }
    if parts.is_empty() {
        parts.push(format!(
            "ok: {} checks passed",
            r.summary.pass + r.summary.info
        ));
    }
    one_line(&format!("osml doctor: {}", parts.join("; ")), 256)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_lines_are_escaped_and_cut() {
        assert_eq!(label("a\"b\\c\nd"), r#"a\"b\\c\nd"#);
        assert_eq!(one_line("x\ny", 10), "x y");
        let long = "é".repeat(100);
        let cut = one_line(&long, 80);
        assert_eq!(cut.chars().count(), 80);
        assert!(cut.ends_with('…'));
        assert_eq!(numeric(" 60 "), Some(60.0));
        assert_eq!(numeric("always [madvise] never"), None);
        assert_eq!(numeric("NaN"), None);
    }
}
