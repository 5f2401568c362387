//! `osml data verify`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_data::verify::verify;
use osml_doctor::human_bytes;

use super::{grouped, open_options};
use crate::cli::VerifyArgs;
use crate::exit::Usage;
use crate::output::escape;

/// `--expect-checksum` as verify prints checksums: 16 lowercase hex digits.
fn expected(hex: &str) -> Result<String, Usage> {
    let lower = hex.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix("0x").unwrap_or(&lower).to_owned();
    if lower.len() == 16 && lower.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(lower)
    } else {
        Err(Usage::new(format!(
            "--expect-checksum {}: not a checksum (16 hex digits)",
            escape(hex)
        ))
        .hint("pass the checksum osml data verify printed for the dataset"))
    }
}

pub fn run(a: &VerifyArgs) -> Result<ExitCode> {
    let expect = a.expect_checksum.as_deref().map(expected).transpose()?;
    let v = verify(&a.dataset.paths, &open_options(&a.dataset))?;
    let matches = expect.as_ref().map(|e| *e == v.checksum);
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.dataset.json {
        let mut value = serde_json::to_value(&v)?;
        value["expected_checksum"] = serde_json::json!(expect);
        value["checksum_matches"] = serde_json::json!(matches);
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        let verdict = match matches {
            Some(false) => "checksum differs",
            _ => "ok",
        };
        writeln!(
            out,
            "{verdict}: {} ({}, {}): {} tokens in {} documents",
            escape(&v.path),
            v.format.name(),
            v.dtype,
            grouped(v.tokens),
            grouped(v.documents)
        )?;
        writeln!(
            out,
            "  checksum {}  (XXH3-64 of the files below, in order)",
            v.checksum
        )?;
        if let (Some(e), Some(false)) = (&expect, matches) {
            writeln!(
                out,
                "  expected {e}: the bytes are not those the checksum was made of"
            )?;
        }
        for c in &v.files {
            writeln!(
                out,
                "  xxh3-64 {}  {}  {}",
                c.xxh3_64,
                human_bytes(c.bytes),
                escape(&c.path)
            )?;
        }
        writeln!(out, "  checked:")?;
        for c in &v.checked {
            writeln!(out, "    {c}")?;
        }
        for w in &v.warnings {
            writeln!(out, "  warning: {w}")?;
        }
    }
    Ok(if matches == Some(false) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
