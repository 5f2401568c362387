//! The ordered parallel pipeline: inputs are read in order and cut into batches of whole
//! documents (about [`PackOptions::batch_bytes`] of text each). Each batch is parsed and
//! tokenized by a pool of worker threads and written in input order, so the output bytes
//! depend only on the inputs and options, never on the number of workers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use osml_data::write::Written;
use osml_data::{DType, DataError};
use rayon::prelude::*;
use serde::Serialize;

use crate::input::{self, Reading, TxtDocuments, Unit};
use crate::shards::Output;
use crate::Tokenizer;

/// The output format of `pack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Megatron's `.bin` + `.idx`.
    Megatron,
    /// Headerless tokens (nanoGPT's `.bin`).
    Bin,
    /// llm.c's shards: a 1 KiB header, then the tokens. The end-of-document token goes
    /// *before* each document, as llm.c's `dev/data/fineweb.py` puts it, so the file is
    /// token for token what llm.c's own preprocessing writes for the same texts.
    Llmc,
}

impl OutputFormat {
    /// The token type of this format for `tokenizer`'s vocabulary.
    pub fn dtype(self, tokenizer: Tokenizer) -> DType {
        match self {
            Self::Llmc => osml_data::llmc::dtype_for_vocab(tokenizer.vocab_size()),
            Self::Megatron | Self::Bin => DType::for_vocab(tokenizer.vocab_size()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub tokenizer: Tokenizer,
    pub format: OutputFormat,
    /// The JSON field holding the text of a `.jsonl` line, or the Parquet column.
    pub field: String,
    /// Add the end-of-document token to every document: after it, or before it for
    /// [`OutputFormat::Llmc`].
    pub eod: bool,
    /// Cut the output into shards of at most this many tokens, at document boundaries
    /// (`PREFIX_000000.bin`, …); a document longer than this is a shard of its own.
    pub shard_tokens: Option<u64>,
    /// Tokenizer threads (at least 1).
    pub workers: usize,
    pub txt_documents: TxtDocuments,
    /// Text per batch handed to the workers; part of the output's definition only through
    /// the order it preserves, so any value gives the same bytes.
    pub batch_bytes: usize,
}

impl Default for PackOptions {
    fn default() -> Self {
        Self {
            tokenizer: Tokenizer::Gpt2,
            format: OutputFormat::Megatron,
            field: "text".into(),
            eod: true,
            workers: std::thread::available_parallelism().map_or(1, usize::from),
            txt_documents: TxtDocuments::File,
            shard_tokens: None,
            batch_bytes: 8 << 20,
        }
    }
}

/// Progress so far, passed to the caller after each batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Bytes read from the input files (compressed bytes for `.gz`).
    pub input_bytes: u64,
    /// Bytes of all inputs.
    pub total_bytes: u64,
    pub documents: u64,
    pub tokens: u64,
}

/// The result of a pack.
#[derive(Debug, Clone, Serialize)]
pub struct PackSummary {
    pub tokenizer: Tokenizer,
    pub dtype: DType,
    pub format: OutputFormat,
    pub inputs: Vec<PathBuf>,
    /// Bytes of text tokenized (after decompression).
    pub text_bytes: u64,
    /// Parquet rows whose text was null, skipped.
    pub null_rows: u64,
    /// Every file written, and the totals.
    pub written: Written,
    /// With `shard_tokens`: each shard, in order (empty without).
    pub shards: Vec<Written>,
    /// Documents longer than `shard_tokens`, each written as a shard of its own.
    pub oversized_documents: u64,
    /// Shards of the same prefix numbered past the last one written (left by an earlier,
    /// longer pack), removed.
    pub removed_stale: Vec<PathBuf>,
    pub seconds: f64,
}

/// Batches documents, tokenizes each batch on the pool, and writes the ids in order.
struct Packer<'a> {
    opts: &'a PackOptions,
    pool: rayon::ThreadPool,
    output: Output,
    batch: Vec<Unit>,
    batch_len: usize,
    documents: u64,
    tokens: u64,
    text_bytes: u64,
    null_rows: u64,
    read: Arc<AtomicU64>,
    total: u64,
    /// The input being read (named in a JSON line's error).
    path: PathBuf,
}

impl Packer<'_> {
    fn push(&mut self, unit: Unit, progress: &mut dyn FnMut(Progress)) -> Result<(), DataError> {
        self.batch_len += unit.len();
        self.batch.push(unit);
        if self.batch_len >= self.opts.batch_bytes {
            self.flush(progress)?;
        }
        Ok(())
    }

    fn flush(&mut self, progress: &mut dyn FnMut(Progress)) -> Result<(), DataError> {
        let batch = std::mem::take(&mut self.batch);
        self.text_bytes += self.batch_len as u64;
        self.batch_len = 0;
        let (opts, path) = (self.opts, &self.path);
        let encoded: Vec<Result<Vec<u32>, DataError>> = self.pool.install(|| {
            // Consumed, so each line is freed once its text is taken out.
            batch
                .into_par_iter()
                .map(|unit| {
                    let text = unit.into_text(path, &opts.field)?;
                    let mut ids = opts.tokenizer.encode(&text);
                    if opts.eod {
                        if opts.format == OutputFormat::Llmc {
                            ids.insert(0, opts.tokenizer.eod());
                        } else {
                            ids.push(opts.tokenizer.eod());
                        }
                    }
                    Ok(ids)
                })
                .collect()
        });
        for ids in encoded {
            let ids = ids?;
            self.output.add(&ids)?;
            self.documents += 1;
            self.tokens += ids.len() as u64;
        }
        progress(Progress {
            input_bytes: self.read.load(Ordering::Relaxed),
            total_bytes: self.total,
            documents: self.documents,
            tokens: self.tokens,
        });
        Ok(())
    }

    fn read_input(
        &mut self,
        path: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), DataError> {
        self.path = path.to_path_buf();
        let read = Arc::clone(&self.read);
        let how = Reading {
            txt_documents: self.opts.txt_documents,
            field: &self.opts.field,
            read: &read,
        };
        let stats = input::read(path, &how, &mut |unit| self.push(unit, progress))?;
        self.null_rows += stats.null_rows;
        Ok(())
    }
}

/// Tokenizes `inputs` into a dataset at `output` (a prefix: `output.bin` and, for Megatron,
/// `output.idx`). `progress` is called after every batch.
pub fn pack(
    inputs: &[PathBuf],
    output: &Path,
    opts: &PackOptions,
    progress: &mut dyn FnMut(Progress),
) -> Result<PackSummary, DataError> {
    let start = Instant::now();
    if inputs.is_empty() {
        return Err(DataError::Usage("no inputs".into()));
    }
    let mut total = 0;
    for p in inputs {
        input::kind_of(p)?;
        // Opened, not stat'ed by name: a FIFO or device is refused here, before any output.
        let meta = osml_sys::file::open_regular(p)
            .and_then(|f| f.metadata())
            .map_err(|e| DataError::io(p, e))?;
        total += meta.len();
    }
    if opts.shard_tokens == Some(0) {
        return Err(DataError::Usage("shards must hold at least 1 token".into()));
    }
    let dtype = opts.format.dtype(opts.tokenizer);
    let output = Output::start(output, opts.format, dtype, opts.shard_tokens)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.workers.max(1))
        .thread_name(|i| format!("osml-pack-{i}"))
        .build()
        .map_err(|e| DataError::System {
            call: "starting tokenizer threads",
            error: std::io::Error::other(e.to_string()),
        })?;
    let mut packer = Packer {
        opts,
        pool,
        output,
        batch: Vec::new(),
        batch_len: 0,
        documents: 0,
        tokens: 0,
        text_bytes: 0,
        null_rows: 0,
        read: Arc::new(AtomicU64::new(0)),
        total,
        path: PathBuf::new(),
    };
    for p in inputs {
        packer.read_input(p, progress)?;
    }
    packer.flush(progress)?;
    let (text_bytes, null_rows) = (packer.text_bytes, packer.null_rows);
    let done = packer.output.finish()?;
    Ok(PackSummary {
        tokenizer: opts.tokenizer,
        dtype,
        format: opts.format,
        inputs: inputs.to_vec(),
        text_bytes,
        null_rows,
        written: done.written,
        shards: done.shards,
        oversized_documents: done.oversized_documents,
        removed_stale: done.removed_stale,
        seconds: start.elapsed().as_secs_f64(),
    })
}
