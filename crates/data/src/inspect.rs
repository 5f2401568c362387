//! `inspect`: what a dataset holds and how much of it is in RAM right now.

use std::path::Path;

use serde::Serialize;

use crate::{DType, DataError, Format, TokenDataset, TokenSource};

/// The JSON of `osml data inspect --json` (see `docs/data-json.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub schema_version: u32,
    pub path: String,
    pub format: Format,
    pub dtype: DType,
    pub tokens: u64,
    pub documents: u64,
    /// Megatron only: sequences (one per document unless written otherwise).
    pub sequences: Option<u64>,
    pub sequence_modes: bool,
    pub document_lengths: LengthStats,
    /// Documents by length, in power-of-two buckets `[from, to)` (empty buckets left out).
    pub histogram: Vec<Bucket>,
    pub files: Vec<FileInfo>,
    /// Bytes of all files in the page cache (`mincore`).
    pub resident_bytes: u64,
    pub resident_fraction: f64,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct LengthStats {
    pub min: u64,
    pub median: u64,
    pub p99: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Bucket {
    pub from: u64,
    pub to: u64,
    pub count: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileInfo {
    pub path: String,
    pub bytes: u64,
    pub resident_bytes: u64,
}

/// The `q`-quantile (0..=1) of sorted values, nearest rank.
fn quantile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn length_stats(lengths: &[u64]) -> (LengthStats, Vec<Bucket>) {
    let mut sorted = lengths.to_vec();
    sorted.sort_unstable();
    let stats = LengthStats {
        min: sorted.first().copied().unwrap_or(0),
        median: quantile(&sorted, 0.5),
        p99: quantile(&sorted, 0.99),
        max: sorted.last().copied().unwrap_or(0),
        mean: if sorted.is_empty() {
            0.0
        } else {
            sorted.iter().sum::<u64>() as f64 / sorted.len() as f64
        },
    };
    // Bucket 0 holds empty documents; bucket k holds lengths in [2^(k-1), 2^k).
    let mut counts = [0u64; 65];
    for &l in &sorted {
        counts[(64 - l.leading_zeros()) as usize] += 1;
    }
    let histogram = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(k, &count)| {
            let (from, to) = if k == 0 {
                (0, 1)
            } else {
                (
                    1u64 << (k - 1),
                    1u64.checked_shl(u32::try_from(k).unwrap_or(64))
                        .unwrap_or(u64::MAX),
                )
            };
            Bucket { from, to, count }
        })
        .collect();
    (stats, histogram)
}

/// Describes an open dataset. `path` is how the user named it.
pub fn inspect(ds: &TokenDataset, path: &Path) -> Result<Inspection, DataError> {
    let lengths: Vec<u64> = (0..ds.num_documents())
        .filter_map(|i| ds.document_range(i).map(|(s, e)| e - s))
        .collect();
    let (document_lengths, histogram) = length_stats(&lengths);
    let mut files = Vec::new();
    let (mut resident, mut total) = (0, 0);
    for f in ds.files() {
        let r = f.resident_bytes()?;
        resident += r;
        total += f.len() as u64;
        files.push(FileInfo {
            path: f.path().display().to_string(),
            bytes: f.len() as u64,
            resident_bytes: r,
        });
    }
    let m = ds.as_megatron();
    Ok(Inspection {
        schema_version: 1,
        path: path.display().to_string(),
        format: ds.format(),
        dtype: ds.dtype(),
        tokens: ds.num_tokens(),
        documents: ds.num_documents() as u64,
        sequences: m.map(|m| m.num_sequences() as u64),
        sequence_modes: m.is_some_and(crate::MegatronDataset::has_sequence_modes),
        document_lengths,
        histogram,
        files,
        resident_bytes: resident,
        resident_fraction: if total == 0 {
            0.0
        } else {
            resident as f64 / total as f64
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_and_buckets() {
        let (s, h) = length_stats(&[0, 1, 2, 3, 4, 100]);
        assert_eq!((s.min, s.median, s.p99, s.max), (0, 2, 100, 100));
        let got: Vec<(u64, u64, u64)> = h.iter().map(|b| (b.from, b.to, b.count)).collect();
        assert_eq!(
            got,
            [(0, 1, 1), (1, 2, 1), (2, 4, 2), (4, 8, 1), (64, 128, 1)]
        );
        let (s, h) = length_stats(&[]);
        assert_eq!(s.max, 0);
        assert!(h.is_empty());
    }
}
