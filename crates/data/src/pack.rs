//! `pack`: text in, token dataset out.
//!
//! Inputs are read in order and cut into batches of whole documents (about
//! [`PackOptions::batch_bytes`] of text each). Each batch is parsed and tokenized by a pool
//! of worker threads and written in input order, so the output bytes depend only on the
//! inputs and options, never on the number of workers.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use crate::write::{MegatronWriter, RawWriter, Written};
use crate::{DType, DataError, InputAt};

/// A tokenizer that carries its vocabulary in the binary (no download).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tokenizer {
    /// GPT-2's BPE (`r50k_base`), 50257 ids, end of document 50256.
    Gpt2,
    /// `cl100k_base`, 100277 ids, end of document 100257.
    Cl100kBase,
    /// `o200k_base`, 200019 ids, end of document 199999.
    O200kBase,
    /// UTF-8 bytes as ids 0-255, end of document 256.
    Bytes,
}

impl Tokenizer {
    pub const NAMES: [&'static str; 4] = ["gpt2", "cl100k_base", "o200k_base", "bytes"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "gpt2" | "r50k_base" => Some(Self::Gpt2),
            "cl100k_base" => Some(Self::Cl100kBase),
            "o200k_base" => Some(Self::O200kBase),
            "bytes" => Some(Self::Bytes),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
            Self::Bytes => "bytes",
        }
    }

    /// Ids in the vocabulary, special tokens included (tiktoken's `n_vocab`).
    pub fn vocab_size(self) -> usize {
        match self {
            Self::Gpt2 => 50_257,
            Self::Cl100kBase => 100_277,
            Self::O200kBase => 200_019,
            Self::Bytes => 257,
        }
    }

    /// The `<|endoftext|>` id appended after each document.
    pub fn eod(self) -> u32 {
        match self {
            Self::Gpt2 => 50_256,
            Self::Cl100kBase => 100_257,
            Self::O200kBase => 199_999,
            Self::Bytes => 256,
        }
    }

    /// Encodes text as ordinary text: a literal `<|endoftext|>` in a document is not special.
    ///
    /// Gives exactly tiktoken's `encode_ordinary`, faster: the text is cut into words at
    /// single spaces (see [`words`]) and each short word's ids are cached per thread, so a
    /// word seen before costs one hash lookup instead of a regex scan and a BPE merge. A word
    /// over 4 KiB is encoded by a linear-time BPE encoder, to the same ids.
    pub fn encode(self, text: &str) -> Vec<u32> {
        if self == Self::Bytes {
            return text.bytes().map(u32::from).collect();
        }
        let slot = self as usize;
        WORD_CACHE.with(|cache| {
            let mut cache = cache.borrow_mut();
            let cache = &mut cache[slot];
            if cache.len() > WORD_CACHE_ENTRIES {
                cache.clear();
            }
            let mut out = Vec::with_capacity(text.len() / 3);
            for word in words(text) {
                if word.len() > LONG_WORD {
                    self.encode_long(word, &mut out);
                } else if word.len() > WORD_CACHE_MAX_LEN {
                    out.extend(self.encode_uncached(word));
                } else if let Some(ids) = cache.get(word) {
                    out.extend_from_slice(ids);
                } else {
                    let ids = self.encode_uncached(word);
                    out.extend_from_slice(&ids);
                    cache.insert(word.into(), ids.into_boxed_slice());
                }
            }
            out
        })
    }

    /// tiktoken's own `encode_ordinary`, on the whole text.
    pub fn encode_uncached(self, text: &str) -> Vec<u32> {
        match self.core() {
            Some(core) => core.encode_ordinary(text),
            None => text.bytes().map(u32::from).collect(),
        }
    }

    fn core(self) -> Option<&'static tiktoken_rs::CoreBPE> {
        match self {
            Self::Gpt2 => Some(tiktoken_rs::r50k_base_singleton()),
            Self::Cl100kBase => Some(tiktoken_rs::cl100k_base_singleton()),
            Self::O200kBase => Some(tiktoken_rs::o200k_base_singleton()),
            Self::Bytes => None,
        }
    }

    /// Ordinary (non-special) ids: exactly `0..n` decode to bytes in tiktoken's vocabulary.
    fn ordinary_ids(self) -> u32 {
        match self {
            Self::Gpt2 => 50_256,
            Self::Cl100kBase => 100_256,
            Self::O200kBase => 199_998,
            Self::Bytes => 256,
        }
    }

    /// tiktoken's pre-tokenizer pattern (as tiktoken-rs 0.12 builds each `CoreBPE`).
    fn pattern(self) -> &'static str {
        match self {
            Self::Gpt2 | Self::Bytes => {
                r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"
            }
            Self::Cl100kBase => {
                r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"
            }
            Self::O200kBase => tiktoken_rs::O200K_BASE_PAT_STR,
        }
    }

    /// Encodes one long word as tiktoken does, in time and memory linear in its length.
    ///
    /// tiktoken cuts text into pieces with its regex and runs BPE on each piece; a piece is
    /// unbounded (a run of letters is one `\p{L}+` piece), and tiktoken's merge of a large
    /// piece keeps a heap and about 56 bytes of state per byte, in O(n log n) time. Here the
    /// pieces are found with the same pattern by the same regex engine (`fancy-regex`, the
    /// version tiktoken-rs uses: one entry in `Cargo.lock`), so they are tiktoken's pieces,
    /// and each is encoded by GitHub's `bpe` backtracking encoder: linear time, a bit and a
    /// token per byte at most. That encoder computes the BPE encoding as tiktoken defines it
    /// (repeatedly merge the adjacent pair whose joined bytes have the lowest rank), built
    /// here from tiktoken's own vocabulary, id for id; its authors test it against
    /// tiktoken-rs, and so do we (`long_runs_encode_as_tiktoken`, `long_path_is_tiktokens`).
    /// Where that encoder cannot be built, or the regex gives up, tiktoken encodes the word.
    fn encode_long(self, word: &str, out: &mut Vec<u32>) {
        let Some(long) = LongPath::get(self) else {
            out.extend(self.encode_uncached(word));
            return;
        };
        let start = out.len();
        for piece in long.regex.find_iter(word) {
            let Ok(piece) = piece else {
                out.truncate(start);
                out.extend(self.encode_uncached(word));
                return;
            };
            out.extend(long.bpe.encode_via_backtracking(piece.as_str().as_bytes()));
        }
    }
}

/// Words longer than this (in bytes) are encoded by [`Tokenizer::encode_long`]: below it,
/// tiktoken's own BPE is as fast (its quadratic merge for pieces under 100 bytes, its heap
/// above) and needs no second vocabulary in memory.
const LONG_WORD: usize = 4096;

/// What [`Tokenizer::encode_long`] needs beyond tiktoken: its pattern, compiled, and a
/// linear-time encoder over the same vocabulary. Built on first use, once per tokenizer
/// (tens of MB and about a second for o200k), so text without long words never pays for it.
struct LongPath {
    regex: fancy_regex::Regex,
    bpe: bpe::byte_pair_encoding::BytePairEncoding,
}

impl LongPath {
    fn get(tok: Tokenizer) -> Option<&'static Self> {
        static PATHS: [std::sync::OnceLock<Option<LongPath>>; 3] =
            [const { std::sync::OnceLock::new() }; 3];
        PATHS
            .get(tok as usize)?
            .get_or_init(|| Self::build(tok))
            .as_ref()
    }

    fn build(tok: Tokenizer) -> Option<Self> {
        let core = tok.core()?;
        // Token `i` of the dictionary must be tiktoken's rank `i`: the ranks are the ids.
        let tokens = (0..tok.ordinary_ids())
            .map(|rank| core.decode_bytes(&[rank]).ok())
            .collect::<Option<Vec<_>>>()?;
        // Hash factors under which no two tokens of the vocabulary collide (`bpe` asserts
        // it): the ones `bpe-openai` ships for cl100k and o200k, and 1 for r50k as it did.
        let hash_factor = match tok {
            Tokenizer::Gpt2 => 1,
            _ => 17_846_336_922_010_275_747,
        };
        Some(Self {
            regex: fancy_regex::Regex::new(tok.pattern()).ok()?,
            bpe: bpe::byte_pair_encoding::BytePairEncoding::from_dictionary(
                tokens,
                Some(hash_factor),
            ),
        })
    }
}

/// Words longer than this are encoded directly, not cached.
const WORD_CACHE_MAX_LEN: usize = 48;
/// A thread's cache is emptied when it grows past this many words (bounded memory).
const WORD_CACHE_ENTRIES: usize = 1 << 20;

type WordCache = rustc_hash::FxHashMap<Box<str>, Box<[u32]>>;

thread_local! {
    /// One cache per BPE tokenizer (indexed by the enum's discriminant).
    static WORD_CACHE: std::cell::RefCell<[WordCache; 3]> = std::cell::RefCell::default();
}

/// Cuts text before every ASCII space that is followed by a non-whitespace character.
///
/// No piece of the GPT-2, cl100k or o200k pre-tokenizer regex crosses such a cut: a space
/// followed by a non-space is always the first character of its piece (`' ?\p{L}+'`,
/// `'[^\r\n\p{L}\p{N}]?\p{L}+'`, or a lone `\s+`), because the whitespace-run pieces
/// before it stop short of it (`\s+(?!\S)` backs off one character) and the pieces that
/// absorb trailing characters take only `\r`, `\n` or `/`. At a word's end, the
/// look-arounds that differ from the whole text (`$` matches, `(?!\S)` sees the end) end the
/// same whitespace run there. So encoding word by word gives the ids of encoding the whole
/// text; a property test checks it against tiktoken's encoder on arbitrary text.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    let b = text.as_bytes();
    let mut start = 0;
    let mut i = 1;
    std::iter::from_fn(move || {
        while i + 1 < b.len() {
            let at = i;
            i += 1;
            if b[at] == b' ' && !whitespace_after(text, at + 1) {
                let word = &text[start..at];
                start = at;
                return Some(word);
            }
        }
        if start < b.len() {
            let word = &text[start..];
            start = b.len();
            return Some(word);
        }
        None
    })
}

fn whitespace_after(text: &str, at: usize) -> bool {
    let next = text.as_bytes()[at];
    if next.is_ascii() {
        // The ASCII members of Unicode White_Space (what regex's `\s` and `char::is_whitespace` use).
        return matches!(next, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r');
    }
    text[at..].chars().next().is_some_and(char::is_whitespace)
}

/// What counts as a document in a `.txt` input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TxtDocuments {
    /// The whole file is one document.
    #[default]
    File,
    /// Each line is a document (without its newline); empty lines are skipped.
    Line,
    /// Paragraphs separated by blank lines are documents (inner newlines kept).
    Paragraph,
}

/// The output format of `pack`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    Megatron,
    Bin,
}

#[derive(Debug, Clone)]
pub struct PackOptions {
    pub tokenizer: Tokenizer,
    pub format: OutputFormat,
    /// The JSON field holding the text of a `.jsonl` line.
    pub field: String,
    /// Append the end-of-document token to every document.
    pub eod: bool,
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
    pub written: Written,
    pub seconds: f64,
}

enum Kind {
    Txt,
    Jsonl { gz: bool },
}

fn kind_of(path: &Path) -> Result<Kind, DataError> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    let has = |suffix: &str| name.ends_with(suffix);
    if has(".jsonl.gz") || has(".json.gz") {
        Ok(Kind::Jsonl { gz: true })
    } else if has(".jsonl") || has(".json") {
        Ok(Kind::Jsonl { gz: false })
    } else if has(".txt") {
        Ok(Kind::Txt)
    } else {
        Err(DataError::Usage(format!(
            "{}: unknown input type; pack reads .txt, .jsonl and .jsonl.gz",
            path.display()
        )))
    }
}

/// One document waiting to be tokenized: raw text, or a JSON line to parse first.
enum Unit {
    Text(String),
    Json { line: Vec<u8>, number: u64 },
}

/// Counts bytes read from the file beneath any decompressor: in all inputs (progress) and in
/// this one (where a corrupt `.gz` went wrong).
struct Counting<R> {
    inner: R,
    count: Arc<AtomicU64>,
    own: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.own.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

enum Writer {
    Megatron(MegatronWriter),
    Bin(RawWriter),
}

impl Writer {
    fn add(&mut self, tokens: &[u32]) -> Result<(), DataError> {
        match self {
            Self::Megatron(w) => w.add_document(tokens),
            Self::Bin(w) => w.add_document(tokens),
        }
    }

    fn finish(self) -> Result<Written, DataError> {
        match self {
            Self::Megatron(w) => w.finish(),
            Self::Bin(w) => w.finish(),
        }
    }
}

struct Packer<'a> {
    opts: &'a PackOptions,
    pool: rayon::ThreadPool,
    writer: Writer,
    batch: Vec<Unit>,
    batch_len: usize,
    documents: u64,
    tokens: u64,
    text_bytes: u64,
    read: Arc<AtomicU64>,
    total: u64,
    path: PathBuf,
}

impl Packer<'_> {
    fn push(&mut self, unit: Unit, progress: &mut dyn FnMut(Progress)) -> Result<(), DataError> {
        self.batch_len += match &unit {
            Unit::Text(t) => t.len(),
            Unit::Json { line, .. } => line.len(),
        };
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
                    let mut ids = match unit {
                        Unit::Text(t) => opts.tokenizer.encode(&t),
                        Unit::Json { line, number } => {
                            let text = json_text(&line, &opts.field).map_err(|reason| {
                                DataError::Input {
                                    path: path.clone(),
                                    at: InputAt::Line(number),
                                    reason,
                                }
                            })?;
                            drop(line);
                            opts.tokenizer.encode(&text)
                        }
                    };
                    if opts.eod {
                        ids.push(opts.tokenizer.eod());
                    }
                    Ok(ids)
                })
                .collect()
        });
        for ids in encoded {
            let ids = ids?;
            self.writer.add(&ids)?;
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
        let kind = kind_of(path)?;
        let file = osml_sys::file::open_regular(path).map_err(|e| DataError::io(path, e))?;
        self.path = path.to_path_buf();
        let stored = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: file,
            count: Arc::clone(&self.read),
            own: Arc::clone(&stored),
        };
        let gz = matches!(kind, Kind::Jsonl { gz: true });
        let reader: Box<dyn Read> = if gz {
            // Multi-member gzip (concatenated .gz files) is common for corpora.
            Box::new(flate2::read::MultiGzDecoder::new(counted))
        } else {
            Box::new(counted)
        };
        let mut reader = BufReader::with_capacity(1 << 20, reader);
        let fail = |line: u64, e: std::io::Error| {
            read_error(path, gz, line, stored.load(Ordering::Relaxed), e)
        };
        let mut buf = Vec::new();
        let mut number = 0u64;
        if let (Kind::Txt, TxtDocuments::File) = (&kind, self.opts.txt_documents) {
            reader.read_to_end(&mut buf).map_err(|e| fail(0, e))?;
            let text = utf8(path, InputAt::File, buf)?;
            return self.push(Unit::Text(text), progress);
        }
        let paragraph = self.opts.txt_documents == TxtDocuments::Paragraph;
        let mut doc = String::new();
        loop {
            buf.clear();
            if reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| fail(number + 1, e))?
                == 0
            {
                break;
            }
            number += 1;
            if buf.ends_with(b"\n") {
                buf.pop();
                if buf.ends_with(b"\r") {
                    buf.pop();
                }
            }
            let blank = buf.iter().all(u8::is_ascii_whitespace);
            match kind {
                Kind::Jsonl { .. } if !blank => {
                    // The buffer becomes the unit: a long line is held once, not copied.
                    let line = std::mem::take(&mut buf);
                    self.push(Unit::Json { line, number }, progress)?;
                }
                Kind::Jsonl { .. } => {}
                Kind::Txt if !paragraph => {
                    if !blank {
                        let line = utf8(path, InputAt::Line(number), std::mem::take(&mut buf))?;
                        self.push(Unit::Text(line), progress)?;
                    }
                }
                Kind::Txt if blank => {
                    if !doc.is_empty() {
                        self.push(Unit::Text(std::mem::take(&mut doc)), progress)?;
                    }
                }
                Kind::Txt => {
                    let line = std::str::from_utf8(&buf)
                        .map_err(|_| not_utf8(path, InputAt::Line(number)))?;
                    if !doc.is_empty() {
                        doc.push('\n');
                    }
                    doc.push_str(line);
                }
            }
        }
        if !doc.is_empty() {
            self.push(Unit::Text(doc), progress)?;
        }
        Ok(())
    }
}

fn not_utf8(path: &Path, at: InputAt) -> DataError {
    DataError::Input {
        path: path.to_path_buf(),
        at,
        reason: "not valid UTF-8 text".into(),
    }
}

fn utf8(path: &Path, at: InputAt, bytes: Vec<u8>) -> Result<String, DataError> {
    String::from_utf8(bytes).map_err(|_| not_utf8(path, at))
}

/// A failed read of line `line` of an input. An error the OS reported is a file that cannot be
/// read (`Io`); any other error under a `.gz` is the decoder's: corrupt or truncated data,
/// which is invalid input, located by line and by how far into the compressed file it was.
fn read_error(path: &Path, gz: bool, line: u64, stored: u64, e: std::io::Error) -> DataError {
    if !gz || e.raw_os_error().is_some() {
        return DataError::io(path, e);
    }
    let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
        "truncated gzip data"
    } else {
        "corrupt gzip data"
    };
    DataError::Input {
        path: path.to_path_buf(),
        at: if line > 0 {
            InputAt::Line(line)
        } else {
            InputAt::Byte(stored)
        },
        reason: format!("{what} ({e}) within the first {stored} compressed bytes"),
    }
}

/// The text of `field` in one JSON line. Only that field's value is built: every other value
/// is skipped as it is parsed, so a line costs its bytes and the one string taken from it.
/// As with a map, the last of duplicate keys wins.
fn json_text(line: &[u8], field: &str) -> Result<String, String> {
    let line = std::str::from_utf8(line).map_err(|_| "not valid UTF-8 text".to_owned())?;
    let mut de = serde_json::Deserializer::from_str(line);
    let found = serde::de::DeserializeSeed::deserialize(FieldOf(field), &mut de)
        .and_then(|found| de.end().map(|()| found))
        .map_err(|e| format!("not a JSON object: {e}"))?;
    match found {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "field \"{field}\" is {}, not a string",
            kind_name(&other)
        )),
        None => Err(format!(
            "no field \"{field}\" (use --field to name the text field)"
        )),
    }
}

/// Deserializes a JSON object into the value of one of its fields.
struct FieldOf<'a>(&'a str);

impl<'de> serde::de::DeserializeSeed<'de> for FieldOf<'_> {
    type Value = Option<serde_json::Value>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FieldOf<'_> {
    type Value = Option<serde_json::Value>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                found = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

fn kind_name(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
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
        kind_of(p)?;
        // Opened, not stat'ed by name: a FIFO or device is refused here, before any output.
        let meta = osml_sys::file::open_regular(p)
            .and_then(|f| f.metadata())
            .map_err(|e| DataError::io(p, e))?;
        total += meta.len();
    }
    let dtype = DType::for_vocab(opts.tokenizer.vocab_size());
    let writer = match opts.format {
        OutputFormat::Megatron => Writer::Megatron(MegatronWriter::create(output, dtype)?),
        OutputFormat::Bin => {
            let path = if output.extension().is_some_and(|e| e == "bin") {
                output.to_path_buf()
            } else {
                let mut p = output.as_os_str().to_owned();
                p.push(".bin");
                PathBuf::from(p)
            };
            Writer::Bin(RawWriter::create(&path, dtype)?)
        }
    };
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
        writer,
        batch: Vec::new(),
        batch_len: 0,
        documents: 0,
        tokens: 0,
        text_bytes: 0,
        read: Arc::new(AtomicU64::new(0)),
        total,
        path: PathBuf::new(),
    };
    for p in inputs {
        packer.read_input(p, progress)?;
    }
    packer.flush(progress)?;
    let text_bytes = packer.text_bytes;
    let written = packer.writer.finish()?;
    Ok(PackSummary {
        tokenizer: opts.tokenizer,
        dtype,
        format: opts.format,
        inputs: inputs.to_vec(),
        text_bytes,
        written,
        seconds: start.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt2_matches_known_ids() {
        assert_eq!(Tokenizer::Gpt2.encode("hello world"), [31_373, 995]);
        // A literal special token is ordinary text.
        assert_ne!(Tokenizer::Gpt2.encode("<|endoftext|>"), [50_256]);
        assert_eq!(Tokenizer::Bytes.encode("hé"), [104, 195, 169]);
    }

    #[test]
    fn words_cut_before_spaces_that_start_a_word() {
        let w: Vec<&str> = words("Hello, big  world! \tx y\n z  ").collect();
        assert_eq!(w, ["Hello,", " big ", " world! \tx", " y\n", " z  "]);
        assert_eq!(words("").count(), 0);
        assert_eq!(words(" ").collect::<Vec<_>>(), [" "]);
        assert_eq!(words("a b").collect::<Vec<_>>(), ["a", " b"]);
        assert_eq!(words("é ü").collect::<Vec<_>>(), ["é", " ü"]);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]
        /// Word-by-word encoding is tiktoken's encoding, for every BPE vocabulary.
        #[test]
        fn cached_encoding_is_tiktokens(text in "([a-zA-Z0-9'’.,;:!?/\\-_(){}\\[\\]      \t\n\n\r\u{a0}\u{2003}\u{3000}\u{85}éüß东京한🚀]|\\PC){0,80}") {
            for tok in [Tokenizer::Gpt2, Tokenizer::Cl100kBase, Tokenizer::O200kBase] {
                // Twice: the second pass is served from the cache.
                proptest::prop_assert_eq!(tok.encode(&text), tok.encode_uncached(&text));
                proptest::prop_assert_eq!(tok.encode(&text), tok.encode_uncached(&text));
            }
        }
    }

    const BPE: [Tokenizer; 3] = [Tokenizer::Gpt2, Tokenizer::Cl100kBase, Tokenizer::O200kBase];

    /// `n` characters drawn from `alphabet` by xorshift (reproducible, no dependency).
    fn random_text(alphabet: &[char], n: usize, mut x: u64) -> String {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                alphabet[usize::try_from(x % alphabet.len() as u64).unwrap()]
            })
            .collect()
    }

    /// The ids are tiktoken's on runs that are one regex piece of megabytes, where tiktoken's
    /// merge is at its slowest and `encode_long` takes over.
    #[test]
    fn long_runs_encode_as_tiktoken() {
        let latin: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        // CJK Unified Ideographs: all `\p{L}` (Lo), so a run is one piece for every pattern.
        let cjk: Vec<char> = ('\u{4E00}'..='\u{9FFF}').collect();
        let runs = [
            ("one letter", "a".repeat(MB)),
            (
                "random letters",
                random_text(&latin, MB, 0x9E37_79B9_7F4A_7C15),
            ),
            ("a word repeated", "encyclopedia".repeat(MB / 12)),
            (
                "random CJK",
                random_text(&cjk, MB / 3, 0x2545_F491_4F6C_DD1D),
            ),
        ];
        for tok in BPE {
            for (what, text) in &runs {
                let want = tok.encode_uncached(text);
                let got = tok.encode(text);
                assert!(
                    got == want,
                    "{} on {what}: {} ids, tiktoken {}; first difference at {:?}",
                    tok.name(),
                    got.len(),
                    want.len(),
                    got.iter().zip(&want).position(|(a, b)| a != b)
                );
            }
        }
    }

    /// Input size of [`long_runs_encode_as_tiktoken`]: tiktoken's own encoding of it is the
    /// slow part (seconds per megabyte, even optimised).
    const MB: usize = 1 << 20;

    #[test]
    fn every_ordinary_id_is_in_the_long_path_and_no_other() {
        for tok in BPE {
            let core = tok.core().unwrap();
            let long = LongPath::get(tok).expect("built");
            assert_eq!(long.bpe.num_tokens(), tok.ordinary_ids() as usize);
            // Past the ordinary ids, tiktoken has only special tokens or holes.
            let vocab = u32::try_from(tok.vocab_size()).unwrap();
            for id in tok.ordinary_ids()..vocab {
                if let Ok(bytes) = core.decode_bytes(&[id]) {
                    assert!(bytes.starts_with(b"<|"), "{}: {id}", tok.name());
                }
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Long random letter strings, words of them and mixed text: the long path (every
        /// word, whatever its length) gives tiktoken's ids.
        #[test]
        fn long_path_is_tiktokens(
            text in "([a-zA-Z]{1,3000}|[a-z]{0,40}[ 0-9.,'’\n\t\u{a0}]|[éüß东京한🚀]{1,50}|\\PC){1,12}"
        ) {
            for tok in BPE {
                let mut got = Vec::new();
                for word in words(&text) {
                    tok.encode_long(word, &mut got);
                }
                proptest::prop_assert_eq!(got, tok.encode_uncached(&text));
            }
        }
    }

    #[test]
    fn json_fields() {
        assert_eq!(
            json_text(br#"{"text": "a\nb", "id": 3}"#, "text").unwrap(),
            "a\nb"
        );
        assert!(json_text(r#"{"body": "x"}"#.as_bytes(), "text")
            .unwrap_err()
            .contains("--field"));
        assert!(json_text(r#"{"text": 5}"#.as_bytes(), "text")
            .unwrap_err()
            .contains("a number"));
        assert!(json_text("[1]".as_bytes(), "text")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(json_text("{oops".as_bytes(), "text")
            .unwrap_err()
            .contains("not a JSON object"));
    }
}
