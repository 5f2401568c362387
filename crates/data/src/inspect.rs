//! `inspect`: what a dataset holds and how much of it is in RAM right now.

use std::path::PathBuf;

use serde::Serialize;

use crate::{DType, DataError, Format, TokenDataset, TokenSource};

/// The JSON of `osml data inspect --json` (see `docs/data-json.md`).
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    pub schema_version: u32,
    /// The source as named (its entries joined by spaces).
    pub path: String,
    /// The source's entries as named (a path, glob or directory each).
    pub source: Vec<String>,
    pub format: Format,
    pub dtype: DType,
    pub tokens: u64,
    pub documents: u64,
    /// Megatron only: sequences (one per document unless written otherwise).
    pub sequences: Option<u64>,
    pub sequence_modes: bool,
    /// The end-of-document token documents were split at (`eod_token`), if any.
    pub eod_token: Option<u64>,
    pub document_lengths: LengthStats,
    /// Documents by length, in power-of-two buckets `[from, to)` (empty buckets left out).
    pub histogram: Vec<Bucket>,
    /// Each shard, in stream order.
    pub shards: Vec<ShardInfo>,
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
pub struct ShardInfo {
    pub path: String,
    /// Global offset of its first token in the source's stream.
    pub first_token: u64,
    pub tokens: u64,
    /// Documents the shard records (flat formats record none: `null`).
    pub documents: Option<u64>,
    /// Bytes of its files, and of those in the page cache.
    pub bytes: u64,
    pub resident_bytes: u64,
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

/// Describes an open source. `source` is how the user named it.
pub fn inspect(ds: &TokenDataset, source: &[PathBuf]) -> Result<Inspection, DataError> {
    let lengths: Vec<u64> = (0..ds.num_documents())
        .filter_map(|i| ds.document_range(i).map(|(s, e)| e - s))
        .collect();
    let (document_lengths, histogram) = length_stats(&lengths);
    let mut files = Vec::new();
    let mut shards = Vec::new();
    let (mut resident, mut total) = (0, 0);
    for (i, shard) in ds.shards().iter().enumerate() {
        let (mut shard_resident, mut shard_bytes) = (0, 0);
        for f in shard.files() {
            let r = f.resident_bytes()?;
            shard_resident += r;
            shard_bytes += f.len() as u64;
            files.push(FileInfo {
                path: f.path().display().to_string(),
                bytes: f.len() as u64,
                resident_bytes: r,
            });
        }
        resident += shard_resident;
        total += shard_bytes;
        shards.push(ShardInfo {
            path: shard.path().display().to_string(),
            first_token: ds.shard_start(i),
            tokens: shard.num_tokens(),
            documents: shard.recorded_documents().map(|d| d as u64),
            bytes: shard_bytes,
            resident_bytes: shard_resident,
        });
    }
    let megatron: Vec<&crate::MegatronDataset> = ds
        .shards()
        .iter()
        .filter_map(crate::Shard::as_megatron)
        .collect();
    let source: Vec<String> = source.iter().map(|p| p.display().to_string()).collect();
    Ok(Inspection {
        schema_version: 1,
        path: source.join(" "),
        source,
        format: ds.format(),
        dtype: ds.dtype(),
        tokens: ds.num_tokens(),
        documents: ds.num_documents() as u64,
        sequences: (!megatron.is_empty())
            .then(|| megatron.iter().map(|m| m.num_sequences() as u64).sum()),
        sequence_modes: megatron.iter().any(|m| m.has_sequence_modes()),
        eod_token: ds.eod_token(),
        document_lengths,
        histogram,
        shards,
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
