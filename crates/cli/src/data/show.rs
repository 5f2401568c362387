//! `osml data show`: documents as JSON arrays, one per line, or with `--json` one JSON
//! document (`schema_version` 1, see docs/data-json.md).

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Result;
use osml_data::{DataError, TokenDataset, TokenSource};

use super::open_options;
use crate::cli::ShowArgs;

pub fn run(a: &ShowArgs) -> Result<ExitCode> {
    let ds = TokenDataset::open_source(&a.dataset.paths, &open_options(&a.dataset))?;
    let n = ds.num_documents();
    if a.from > n {
        return Err(DataError::Usage(format!(
            "--from {} is past the last document ({n} documents)",
            a.from
        ))
        .into());
    }
    let end = a.count.map_or(n, |c| a.from.saturating_add(c).min(n));
    let max = osml_data::DType::I64.max_token();
    let mut out = BufWriter::new(std::io::stdout().lock());
    if a.dataset.json {
        // Written by hand around the arrays, so documents stream out as they are read.
        write!(
            out,
            "{{\"schema_version\":1,\"path\":{},\"format\":\"{}\",\"dtype\":\"{}\",\"from\":{},\"documents\":[",
            serde_json::to_string(
                &a.dataset
                    .paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            )?,
            ds.format().name(),
            ds.dtype(),
            a.from
        )?;
    }
    let mut buf = Vec::new();
    for i in a.from..end {
        let Some(doc) = ds.document(i) else { break };
        if let Some((j, value)) = doc.first_unfit(max) {
            let at = ds.document_range(i).map_or(0, |(s, _)| s) + j as u64;
            let (path, local) = ds
                .locate(at)
                .map_or((std::path::PathBuf::new(), at), |(s, l)| {
                    (s.path().to_path_buf(), l)
                });
            return Err(DataError::Invalid {
                path,
                format: osml_data::FileFormat::Dataset,
                reason: format!(
                    "token {local} of this shard (token {at} of the stream, document {i}) is {value}, which is not a token id in 0..={max}"
                ),
            }
            .into());
        }
        buf.resize(doc.len(), 0i64);
        doc.write_i64(&mut buf);
        if a.dataset.json && i > a.from {
            write!(out, ",")?;
        }
        serde_json::to_writer(&mut out, &buf)?;
        if !a.dataset.json {
            writeln!(out)?;
        }
    }
    if a.dataset.json {
        writeln!(out, "]}}")?;
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
