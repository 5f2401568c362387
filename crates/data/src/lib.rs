//! Token datasets in the formats people already have, memory-mapped and validated on open.
//!
//! - [`TokenDataset::open_source`] reads a source of one or many shards (paths, globs,
//!   directories) as one stream: Megatron `.bin` + `.idx` ([`MegatronDataset`]), nanoGPT's
//!   headerless `.bin`, llm.c shards ([`llmc`]), `.npy`, and Hugging Face Arrow files
//!   ([`ArrowTokens`]), all through one trait, [`TokenSource`]: dtype, token and document
//!   counts, a document's tokens, and a window at any global offset, across shards.
//! - [`write`](mod@write) has atomic writers for Megatron, raw and llm.c files (osml-pack tokenizes
//!   text into them); [`inspect`] and [`verify`] describe and check a dataset.
//!
//! ```
//! use osml_data::{write::MegatronWriter, DType, OpenOptions, TokenDataset, TokenSource};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let prefix = dir.path().join("corpus");
//! let mut w = MegatronWriter::create(&prefix, DType::U16).unwrap();
//! w.add_document(&[5, 6, 7]).unwrap();
//! w.add_document(&[8]).unwrap();
//! w.finish().unwrap();
//!
//! let ds = TokenDataset::open(&prefix, OpenOptions::default()).unwrap();
//! assert_eq!((ds.num_tokens(), ds.num_documents()), (4, 2));
//! assert_eq!(ds.window(2, 2).unwrap().to_vec(), [7, 8]); // crosses a document boundary
//! ```

mod arrow;
pub mod bench;
mod block_index;
pub mod decimal;
mod dtype;
mod error;
mod flat;
mod hf;
pub mod inspect;
pub mod llmc;
pub mod loader;
mod megatron;
pub mod mixture;
mod mixture_spec;
mod npy;
pub mod sampler;
mod shard;
mod source;
mod tokens;
pub mod verify;
pub mod write;

pub use arrow::ArrowTokens;
pub use dtype::DType;
pub use error::{Access, DataError, FileFormat, InputAt};
pub use flat::FlatTokens;
pub use hf::save_to_disk_files;
pub use megatron::MegatronDataset;
pub use mixture_spec::{MixtureSpec, SourceSpec};
pub use shard::Shard;
pub use source::{Format, OpenOptions, TokenDataset, TokenSource, DEFAULT_COLUMN};
pub use tokens::{Tokens, Window};
