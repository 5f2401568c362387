//! [`ArrowTokens`]: one Arrow IPC file holding a list-of-integers column (Hugging Face `datasets`'
//! cache and `save_to_disk` files), read zero-copy from its mapping.
//!
//! `datasets` writes its Arrow files in the IPC *stream* format (`pa.RecordBatchStreamWriter`
//! in `src/datasets/arrow_writer.py`); the IPC *file* format (`ARROW1` magic, padding, the
//! messages, a footer, its length and `ARROW1` again) is read too, through the footer's list
//! of record batch blocks. Format: <https://arrow.apache.org/docs/format/Columnar.html#ipc-streaming-format>.
//!
//! The messages are framed here (a continuation marker `0xFFFFFFFF`, or none in the pre-0.15
//! format, a little-endian length, the flatbuffer, the body) because `arrow-ipc`'s
//! `StreamDecoder` has no projection: it would build and validate every column (a `text`
//! column's whole UTF-8 check) to read one. Each record batch is handed to `arrow-ipc`'s
//! [`FileDecoder`] with a projection of the one column, over an [`arrow_buffer::Buffer`] that
//! is the mapping itself (no copy), with alignment required so the decoder never copies a
//! buffer to realign it. What is kept is only byte offsets into the mapping (each batch's
//! values run and offsets array); the Arrow objects are dropped once a batch is checked.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, GenericListArray, OffsetSizeTrait};
use arrow_buffer::Buffer;
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::{Block, MessageHeader};
use arrow_schema::DataType;
use osml_sys::MappedFile;

use crate::{DType, DataError, FileFormat};

/// The file format's magic, at both ends of the file (`format/File.fbs`).
const FILE_MAGIC: &[u8; 6] = b"ARROW1";
/// The magic padded to 8 bytes: the least a file format's messages can start at.
const FILE_STREAM_START: usize = 8;
/// The trailer: the footer's length (`i32`) and the magic.
const FILE_TRAILER: usize = 4 + FILE_MAGIC.len();
const CONTINUATION: u32 = 0xFFFF_FFFF;

/// Owns the mapping for the `arrow_buffer::Buffer` built over it, so Arrow's arrays borrow the
/// mapped bytes without a copy and without `unsafe` (`bytes::Bytes::from_owner`).
struct Owner(Arc<MappedFile>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// One non-empty record batch, as offsets into the mapping.
#[derive(Debug, Clone, Copy)]
struct Batch {
    /// Documents in the batches before this one.
    rows_before: u64,
    /// Tokens in the batches before this one.
    tokens_before: u64,
    /// Byte offset in the mapping of this batch's `offsets[0]` (the list array's own slice).
    offsets_at: usize,
    /// 8-byte offsets (`LargeList`), else 4.
    wide: bool,
    /// `offsets[0]`: where this batch's first document starts in its values array.
    first: u64,
}

/// One Arrow IPC file (stream format, as `datasets` writes its cache and `save_to_disk` files;
/// also the file format, `ARROW1` magic, whose body is a stream) holding a list-of-integers
/// column: the column's values are the token stream, its list offsets the document boundaries.
#[derive(Debug)]
pub struct ArrowTokens {
    map: Arc<MappedFile>,
    dtype: DType,
    tokens: u64,
    documents: u64,
    /// Batches with at least one row, in file order.
    batches: Vec<Batch>,
    /// (byte offset in the mapping of the first token, tokens) per batch with tokens.
    pieces: Vec<(usize, u64)>,
}

impl ArrowTokens {
    /// Maps and validates `path`; `column` is the list column (`input_ids` by default at the
    /// call site).
    pub fn open(path: &Path, column: &str) -> Result<Self, DataError> {
        let map = Arc::new(crate::source::map(path)?);
        Self::from_map(map, column)
    }

    /// [`ArrowTokens::open`] over a file already mapped.
    pub(crate) fn from_map(map: Arc<MappedFile>, column: &str) -> Result<Self, DataError> {
        let path = map.path().to_path_buf();
        let bad = |r: String| DataError::invalid(&path, FileFormat::Arrow, r);
        let footer = footer_bounds(map.bytes()).map_err(bad)?;
        let buffer = Buffer::from(bytes::Bytes::from_owner(Owner(Arc::clone(&map))));
        let mut reader = Reader {
            map: &map,
            buffer: &buffer,
            column,
            decoder: None,
            dtype: DType::I32,
            out: Collected::default(),
        };
        match footer {
            Some(footer) => read_file_format(&mut reader, footer),
            None => walk(&mut reader, 0, map.len()),
        }
        .map_err(bad)?;
        let Some(_) = reader.decoder else {
            return Err(bad("the stream has no schema message".into()));
        };
        let dtype = reader.dtype;
        let out = reader.out;
        drop(buffer);
        Ok(Self {
            map,
            dtype,
            tokens: out.tokens,
            documents: out.rows,
            batches: out.batches,
            pieces: out.pieces,
        })
    }

    /// The list's value type: int8/uint8/int16/uint16/int32/uint32/int64/uint64.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// All documents' tokens.
    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Rows, over all record batches.
    pub fn num_documents(&self) -> usize {
        usize::try_from(self.documents).unwrap_or(usize::MAX)
    }

    /// Document `i`'s token range in this file's stream (the [`pieces`](Self::pieces)
    /// concatenated), or `None` past the last document.
    pub fn document_range(&self, i: usize) -> Option<(u64, u64)> {
        let i = i as u64;
        if i >= self.documents {
            return None;
        }
        let b = self.batches.partition_point(|b| b.rows_before <= i) - 1;
        let batch = self.batches[b];
        let j = usize::try_from(i - batch.rows_before).ok()?;
        let start = self.offset(batch, j)?;
        let end = self.offset(batch, j + 1)?;
        // Arrow's validation on open checked the offsets are non-decreasing from `first`.
        Some((
            batch.tokens_before + (start - batch.first),
            batch.tokens_before + (end - batch.first),
        ))
    }

    /// Entry `j` of a batch's offsets, read from the mapping (little-endian, any alignment).
    fn offset(&self, batch: Batch, j: usize) -> Option<u64> {
        let bytes = self.map.bytes();
        if batch.wide {
            let at = batch.offsets_at + j * 8;
            let v = i64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?);
            u64::try_from(v).ok()
        } else {
            let at = batch.offsets_at + j * 4;
            let v = i32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?);
            u64::try_from(v).ok()
        }
    }

    /// The token stream as contiguous byte runs of the mapping, in order: (byte offset of the
    /// first token in the mapping, tokens). One per record batch with tokens:
    /// `values[offsets[0]..offsets[n]]` of that batch.
    pub fn pieces(&self) -> &[(usize, u64)] {
        &self.pieces
    }

    pub fn map(&self) -> &MappedFile {
        &self.map
    }
}

/// Whether the file is in the file format (`ARROW1` first): then where its footer lies.
fn footer_bounds(bytes: &[u8]) -> Result<Option<(usize, usize)>, String> {
    if bytes.is_empty() {
        return Err("the file is empty".into());
    }
    if !bytes.starts_with(FILE_MAGIC) {
        return Ok(None);
    }
    let len = bytes.len();
    if len < FILE_STREAM_START + FILE_TRAILER || !bytes.ends_with(FILE_MAGIC) {
        return Err(format!(
            "it starts with the Arrow file magic ARROW1 but does not end with it ({len} bytes): truncated"
        ));
    }
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[len - FILE_TRAILER..len - FILE_MAGIC.len()]);
    let footer_len = i32::from_le_bytes(word);
    let footer_start = usize::try_from(footer_len)
        .ok()
        .and_then(|f| (len - FILE_TRAILER).checked_sub(f))
        .filter(|&s| s >= FILE_STREAM_START)
        .ok_or_else(|| {
            format!("its footer length {footer_len} does not fit in the file ({len} bytes)")
        })?;
    Ok(Some((footer_start, len - FILE_TRAILER)))
}

/// Reads the file format through its footer: the schema, then each record batch block. The
/// stream inside the file is not walked: writers pad the magic to their own alignment
/// (arrow-rs to 64 bytes), so only the footer says where the messages are.
fn read_file_format(r: &mut Reader<'_>, footer: (usize, usize)) -> Result<(), String> {
    let bytes = r.map.bytes();
    let footer_start = footer.0;
    let fb = arrow_ipc::root_as_footer(&bytes[footer.0..footer.1])
        .map_err(|e| format!("its footer (at byte {footer_start}) is not valid: {e}"))?;
    let schema = fb
        .schema()
        .ok_or_else(|| format!("its footer (at byte {footer_start}) has no schema"))?;
    schema_decoder(r, schema, fb.version())?;
    for (i, block) in fb.recordBatches().iter().flatten().enumerate() {
        let bad_block = || {
            format!(
                "record batch {i} of the footer (offset {}, {} + {} bytes) does not lie inside the file before the footer: truncated or corrupt",
                block.offset(),
                block.metaDataLength(),
                block.bodyLength()
            )
        };
        let pos = usize::try_from(block.offset()).map_err(|_| bad_block())?;
        let meta = usize::try_from(block.metaDataLength()).map_err(|_| bad_block())?;
        let body = usize::try_from(block.bodyLength()).map_err(|_| bad_block())?;
        let end = pos
            .checked_add(meta)
            .and_then(|e| e.checked_add(body))
            .filter(|&e| e <= footer_start && meta >= 8)
            .ok_or_else(bad_block)?;
        let prefix = if bytes[pos..pos + 4] == CONTINUATION.to_le_bytes() {
            8
        } else {
            4
        };
        let message =
            arrow_ipc::root_as_message(&bytes[pos + prefix..pos + meta]).map_err(|e| {
                format!("the message at byte {pos} is not a valid Arrow IPC message: {e}")
            })?;
        if message.header_type() != MessageHeader::RecordBatch {
            return Err(format!(
                "the footer's record batch {i} at byte {pos} is a {:?} message",
                message.header_type()
            ));
        }
        if usize::try_from(message.bodyLength()).ok() != Some(body) {
            return Err(format!(
                "the message at byte {pos} has a body of {} bytes, its footer block {body}",
                message.bodyLength()
            ));
        }
        record_batch(r, &message, block, pos, end)?;
    }
    Ok(())
}

#[derive(Default)]
struct Collected {
    rows: u64,
    tokens: u64,
    batches: Vec<Batch>,
    pieces: Vec<(usize, u64)>,
}

struct Reader<'a> {
    map: &'a MappedFile,
    buffer: &'a Buffer,
    column: &'a str,
    /// Set by the schema message.
    decoder: Option<FileDecoder>,
    dtype: DType,
    out: Collected,
}

/// Reads every message of the stream format in `[start, end)` up to its end-of-stream marker.
fn walk(r: &mut Reader<'_>, start: usize, end: usize) -> Result<(), String> {
    let bytes = r.map.bytes();
    let word = |at: usize| -> Option<u32> {
        let b = bytes.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes(b.try_into().ok()?))
    };
    let truncated = |at: usize, what: &str| {
        format!(
            "truncated: the stream ends at byte {end} inside {what} at byte {at} (no end-of-stream marker)"
        )
    };
    let mut pos = start;
    loop {
        if pos >= end {
            return Err(if pos == start {
                "no Arrow IPC message in the file".into()
            } else {
                truncated(pos, "nothing: the file stops after a whole message")
            });
        }
        let first = word(pos)
            .filter(|_| pos + 4 <= end)
            .ok_or_else(|| truncated(pos, "a message length"))?;
        let (prefix, meta_len) = if first == CONTINUATION {
            let len = word(pos + 4)
                .filter(|_| pos + 8 <= end)
                .ok_or_else(|| truncated(pos, "a message length"))?;
            (8usize, len)
        } else {
            // Before Arrow 0.15 a message was its length alone, with no continuation marker.
            (4, first)
        };
        if meta_len == 0 {
            return Ok(());
        }
        let meta_len = i32::try_from(meta_len)
            .ok()
            .and_then(|l| usize::try_from(l).ok())
            .ok_or_else(|| {
                if pos == start {
                    not_arrow(bytes)
                } else {
                    format!("the message at byte {pos} has a negative length ({meta_len:#x})")
                }
            })?;
        let meta_start = pos + prefix;
        let meta_end = meta_start
            .checked_add(meta_len)
            .filter(|&e| e <= end)
            .ok_or_else(|| {
                if pos == start {
                    not_arrow(bytes)
                } else {
                    truncated(pos, "the message")
                }
            })?;
        let message = arrow_ipc::root_as_message(&bytes[meta_start..meta_end]).map_err(|e| {
            if pos == start {
                format!("{} ({e})", not_arrow(bytes))
            } else {
                format!("the message at byte {pos} is not a valid Arrow IPC message: {e}")
            }
        })?;
        let body_len = usize::try_from(message.bodyLength())
            .map_err(|_| format!("the message at byte {pos} has a negative body length"))?;
        let next = meta_end
            .checked_add(body_len)
            .filter(|&e| e <= end)
            .ok_or_else(|| truncated(pos, "the body of the message"))?;
        match message.header_type() {
            MessageHeader::Schema => {
                if r.decoder.is_some() {
                    return Err(format!("a second schema message at byte {pos}"));
                }
                let schema = message
                    .header_as_schema()
                    .ok_or_else(|| format!("the schema message at byte {pos} has no schema"))?;
                schema_decoder(r, schema, message.version())?;
            }
            MessageHeader::RecordBatch => {
                let too_large = |_| format!("the message at byte {pos} is too large");
                let block = Block::new(
                    i64::try_from(pos).map_err(too_large)?,
                    i32::try_from(prefix + meta_len).map_err(too_large)?,
                    i64::try_from(body_len).map_err(too_large)?,
                );
                record_batch(r, &message, &block, pos, next)?;
            }
            // A list of integers has no dictionary; other columns' dictionaries are skipped.
            MessageHeader::DictionaryBatch | MessageHeader::NONE => {}
            other => {
                return Err(format!(
                    "unexpected {other:?} message at byte {pos} in an Arrow IPC stream"
                ));
            }
        }
        pos = next;
    }
}

fn not_arrow(bytes: &[u8]) -> String {
    let head: Vec<String> = bytes.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!(
        "not an Arrow IPC stream or file: it starts with bytes {} (a stream starts with ff ff ff ff, a file with ARROW1)",
        head.join(" ")
    )
}

/// Checks the column's type from the schema message and builds the decoder projected on it.
fn schema_decoder(
    r: &mut Reader<'_>,
    fb: arrow_ipc::Schema<'_>,
    version: arrow_ipc::MetadataVersion,
) -> Result<(), String> {
    let schema = guarded("schema", || arrow_ipc::convert::fb_to_schema(fb))?;
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let Some(index) = names.iter().position(|n| *n == r.column) else {
        return Err(format!(
            "no column {:?}; its columns are {}: name the token column (--column; column= in Python)",
            r.column,
            if names.is_empty() {
                "none".to_string()
            } else {
                names
                    .iter()
                    .map(|n| format!("{n:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ));
    };
    let field = &schema.fields()[index];
    let col = r.column;
    r.dtype = match field.data_type() {
        DataType::List(item) | DataType::LargeList(item) => {
            value_dtype(item.data_type()).ok_or_else(|| {
                format!(
                    "column {col:?} is a list of {}, not of integers: osml reads token ids (int8 to uint64)",
                    item.data_type()
                )
            })?
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            return Err(format!(
                "column {col:?} is text ({}), not token ids: tokenize it with `osml data pack`, or name the column of token ids",
                field.data_type()
            ));
        }
        other => {
            return Err(format!(
                "column {col:?} is of type {other}, not a list of integers (token ids, one list per document)"
            ));
        }
    };
    r.decoder = Some(
        FileDecoder::new(Arc::new(schema), version)
            .with_projection(vec![index])
            .with_require_alignment(true),
    );
    Ok(())
}

/// Runs an `arrow-ipc` decode that may panic on corrupt input, and turns a panic into the
/// reason the file is refused. arrow-rs checks a flatbuffer's structure but not every field
/// its conversions then assume (`fb_to_schema` unwraps absent children and panics on an
/// integer's unknown bit width; building an array panics on a validity bitmap shorter than the
/// array, `arrow-buffer` `BooleanBuffer::new`), and this module's proptest finds such inputs
/// in a few hundred mutations. The panic message also reaches stderr through the default hook.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let detail = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("no message");
        format!("the {what} is corrupt: the Arrow decoder failed on it ({detail})")
    })
}

fn value_dtype(t: &DataType) -> Option<DType> {
    Some(match t {
        DataType::Int8 => DType::I8,
        DataType::UInt8 => DType::U8,
        DataType::Int16 => DType::I16,
        DataType::UInt16 => DType::U16,
        DataType::Int32 => DType::I32,
        DataType::UInt32 => DType::U32,
        DataType::Int64 => DType::I64,
        DataType::UInt64 => DType::U64,
        _ => return None,
    })
}

/// Decodes the record batch `message` in `[pos, end)` of the file (the projected column
/// only) and records where its offsets and values lie in the mapping.
fn record_batch(
    r: &mut Reader<'_>,
    message: &arrow_ipc::Message<'_>,
    block: &Block,
    pos: usize,
    end: usize,
) -> Result<(), String> {
    let header = message
        .header_as_record_batch()
        .ok_or_else(|| format!("the record batch message at byte {pos} has no header"))?;
    if let Some(c) = header.compression() {
        return Err(format!(
            "the record batch at byte {pos} is compressed ({:?}); osml reads uncompressed Arrow files only (as `datasets` writes them): rewrite it without compression",
            c.codec()
        ));
    }
    let decoder = r
        .decoder
        .as_ref()
        .ok_or_else(|| format!("a record batch at byte {pos} before the schema message"))?;
    let buf = r.buffer.slice_with_length(pos, end - pos);
    let batch = guarded(&format!("record batch at byte {pos}"), || {
        decoder.read_record_batch(block, &buf)
    })?
    .map_err(|e| format!("the record batch at byte {pos} is invalid: {e}"))?;
    let Some(batch) = batch else {
        return Ok(());
    };
    let column = batch.column(0);
    if let Some(list) = column.as_any().downcast_ref::<GenericListArray<i32>>() {
        list_batch(r, list, false, pos)
    } else if let Some(list) = column.as_any().downcast_ref::<GenericListArray<i64>>() {
        list_batch(r, list, true, pos)
    } else {
        Err(format!(
            "the record batch at byte {pos} decoded column {:?} as {}, not the schema's list",
            r.column,
            column.data_type()
        ))
    }
}

fn list_batch<O: OffsetSizeTrait>(
    r: &mut Reader<'_>,
    list: &GenericListArray<O>,
    wide: bool,
    pos: usize,
) -> Result<(), String> {
    let rows = list.len();
    if rows == 0 {
        return Ok(());
    }
    let rows_before = r.out.rows;
    if let Some(nulls) = list.nulls() {
        if let Some(i) = (0..rows).find(|&i| nulls.is_null(i)) {
            return Err(format!(
                "document {} (column {:?}) is null: osml needs a list of token ids in every row (an empty list for an empty document)",
                rows_before + i as u64,
                r.column
            ));
        }
    }
    let offsets = list.offsets();
    let first = offsets[0].as_usize();
    let end = offsets[rows].as_usize();
    let values: &ArrayRef = list.values();
    if let Some(nulls) = values.nulls() {
        if let Some(p) = (first..end).find(|&p| nulls.is_null(p)) {
            let doc = offsets.partition_point(|o| o.as_usize() <= p) - 1;
            return Err(format!(
                "document {} (column {:?}) holds a null token at its position {}: token ids cannot be null",
                rows_before + doc as u64,
                r.column,
                p - offsets[doc].as_usize()
            ));
        }
    }
    let base = r.map.bytes();
    // The offsets' buffer, already sliced by arrow to this array's `rows + 1` entries.
    let offsets_bytes = offsets.inner().inner().as_slice();
    let offsets_at = in_mapping(base, offsets_bytes).ok_or_else(|| copied(pos, "offsets"))?;
    let tokens = (end - first) as u64;
    if tokens > 0 {
        let data = values.to_data();
        let size = r.dtype.size();
        let values_buf = data
            .buffers()
            .first()
            .ok_or_else(|| format!("the record batch at byte {pos} has no values buffer"))?;
        let from = (data.offset() + first) * size;
        let to = (data.offset() + end) * size;
        let run = values_buf
            .as_slice()
            .get(from..to)
            .ok_or_else(|| format!("the record batch at byte {pos}: offsets past its values"))?;
        let values_at = in_mapping(base, run).ok_or_else(|| copied(pos, "values"))?;
        r.out.pieces.push((values_at, tokens));
    }
    r.out.batches.push(Batch {
        rows_before,
        tokens_before: r.out.tokens,
        offsets_at,
        wide,
        first: first as u64,
    });
    r.out.rows += rows as u64;
    r.out.tokens += tokens;
    Ok(())
}

/// Where `part` starts in `map`, if it lies entirely inside it.
fn in_mapping(map: &[u8], part: &[u8]) -> Option<usize> {
    let at = part.as_ptr().addr().checked_sub(map.as_ptr().addr())?;
    (at.checked_add(part.len())? <= map.len()).then_some(at)
}

fn copied(pos: usize, what: &str) -> String {
    format!(
        "osml bug: the Arrow decoder copied the {what} of the record batch at byte {pos} instead of reading them from the mapping; please report it with the file"
    )
}
