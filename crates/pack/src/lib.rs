//! Text in, token dataset out: `osml data pack`.
//!
//! - [`Tokenizer`] ([`tokenizer`]): GPT-2, cl100k and o200k as tiktoken's `encode_ordinary`
//!   gives them, and UTF-8 bytes; each carries its vocabulary, nothing is downloaded.
//! - [`input`]: the readers of `.txt`, `.jsonl`, `.jsonl.gz` and `.parquet` (one string
//!   column, streamed row group by row group), one document at a time.
//! - [`pack`] ([`pipeline`]): reads the inputs in order, tokenizes batches of documents on
//!   [`PackOptions::workers`] threads and writes them in input order through osml-data's
//!   atomic writers (Megatron, raw, llm.c), as one dataset or as numbered shards
//!   ([`PackOptions::shard_tokens`]), so the output is the same bytes for any number of
//!   workers.
//!
//! Errors are [`osml_data::DataError`], the same as the datasets' (an input that cannot be
//! used is [`DataError::Input`](osml_data::DataError::Input)).
//!
//! ```
//! use osml_pack::{pack, PackOptions, Tokenizer};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let input = dir.path().join("corpus.jsonl");
//! std::fs::write(&input, "{\"text\": \"hello world\"}\n").unwrap();
//! let opts = PackOptions { tokenizer: Tokenizer::Gpt2, workers: 1, ..PackOptions::default() };
//! let summary = pack(&[input], &dir.path().join("out"), &opts, &mut |_| {}).unwrap();
//! // "hello", " world", then the end-of-document id.
//! assert_eq!((summary.written.documents, summary.written.tokens), (1, 3));
//! assert_eq!(Tokenizer::Gpt2.encode("hello world"), [31_373, 995]);
//! ```

pub mod input;
mod parquet_input;
pub mod pipeline;
mod shards;
pub mod tokenizer;

pub use input::TxtDocuments;
pub use pipeline::{pack, OutputFormat, PackOptions, PackSummary, Progress};
pub use tokenizer::{words, Tokenizer};
