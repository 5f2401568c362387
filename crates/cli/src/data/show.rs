//! `osml data show`: documents as JSON arrays, one per line.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use osml_data::{DataError, TokenDataset, TokenSource};

use super::open_options;
use crate::cli::ShowArgs;

pub fn run(a: &ShowArgs) -> Result<ExitCode> {
    let ds = TokenDataset::open(&a.dataset.path, open_options(&a.dataset))?;
    let n = ds.num_documents();
    if a.from > n {
        return Err(DataError::Usage(format!(
            "--from {} is past the last document ({n} documents)",
            a.from
        ))
        .into());
    }
    let end = a.count.map_or(n, |c| a.from.saturating_add(c).min(n));
    let mut out = BufWriter::new(std::io::stdout().lock());
    let mut buf = Vec::new();
    for i in a.from..end {
        let Some(doc) = ds.document(i) else { break };
        buf.resize(doc.len(), 0i64);
        doc.write_i64(&mut buf);
        serde_json::to_writer(&mut out, &buf)?;
        writeln!(out)?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
