//! `osml data verify`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_data::verify::verify;
use osml_doctor::human_bytes;

use super::{grouped, open_options};
use crate::cli::DatasetArgs;

pub fn run(a: &DatasetArgs) -> Result<ExitCode> {
    let v = verify(&a.path, open_options(a))?;
    let mut out = std::io::stdout().lock();
    if a.json {
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "ok: {} ({}, {}): {} tokens in {} documents",
            v.path,
            v.format.name(),
            v.dtype,
            grouped(v.tokens),
            grouped(v.documents)
        )?;
        for c in &v.files {
            writeln!(
                out,
                "  xxh3-64 {}  {}  {}",
                c.xxh3_64,
                human_bytes(c.bytes),
                c.path
            )?;
        }
        for w in &v.warnings {
            writeln!(out, "  warning: {w}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
