//! Input readers: each input file becomes a stream of units, one per document, in file
//! order. Parsing a JSON line is left to the worker that tokenizes it (the unit carries the
//! raw line), so the reading thread only finds line ends.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use osml_data::{DataError, InputAt};
use serde::Serialize;

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

/// The kind of an input, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Txt,
    Jsonl { gz: bool },
    Parquet,
}

pub(crate) fn kind_of(path: &Path) -> Result<Kind, DataError> {
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
    } else if has(".parquet") {
        Ok(Kind::Parquet)
    } else {
        Err(DataError::Usage(format!(
            "{}: unknown input type; pack reads .txt, .jsonl, .jsonl.gz and .parquet",
            path.display()
        )))
    }
}

/// One document waiting to be tokenized: raw text, or a JSON line to parse first.
pub(crate) enum Unit {
    Text(String),
    Json { line: Vec<u8>, number: u64 },
}

impl Unit {
    /// Bytes of input it stands for (what a batch is measured in).
    pub(crate) fn len(&self) -> usize {
        match self {
            Unit::Text(t) => t.len(),
            Unit::Json { line, .. } => line.len(),
        }
    }

    /// Its text: the unit's own, or the JSON line's `field`.
    pub(crate) fn into_text(self, path: &Path, field: &str) -> Result<String, DataError> {
        match self {
            Unit::Text(t) => Ok(t),
            Unit::Json { line, number } => {
                json_text(&line, field).map_err(|reason| DataError::Input {
                    path: path.to_path_buf(),
                    at: InputAt::Line(number),
                    reason,
                })
            }
        }
    }
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

/// What [`read`] needs besides the file: how documents are cut, and where to count bytes.
pub(crate) struct Reading<'a> {
    pub txt_documents: TxtDocuments,
    /// The JSON field or Parquet column holding the text.
    pub field: &'a str,
    /// Bytes read from the files as stored, all inputs together (for progress).
    pub read: &'a Arc<AtomicU64>,
}

/// What reading one input found besides its documents.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ReadStats {
    /// Parquet rows whose text is null: skipped.
    pub null_rows: u64,
}

/// Reads one input, handing each document to `emit` in order.
pub(crate) fn read(
    path: &Path,
    how: &Reading<'_>,
    emit: &mut dyn FnMut(Unit) -> Result<(), DataError>,
) -> Result<ReadStats, DataError> {
    let kind = kind_of(path)?;
    let file = osml_sys::file::open_regular(path).map_err(|e| DataError::io(path, e))?;
    if kind == Kind::Parquet {
        return crate::parquet_input::read(path, &file, how, emit);
    }
    let stored = Arc::new(AtomicU64::new(0));
    let counted = Counting {
        inner: file,
        count: Arc::clone(how.read),
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
    if let (Kind::Txt, TxtDocuments::File) = (kind, how.txt_documents) {
        reader.read_to_end(&mut buf).map_err(|e| fail(0, e))?;
        let text = utf8(path, InputAt::File, buf)?;
        emit(Unit::Text(text))?;
        return Ok(ReadStats::default());
    }
    let paragraph = how.txt_documents == TxtDocuments::Paragraph;
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
                emit(Unit::Json { line, number })?;
            }
            Kind::Jsonl { .. } => {}
            Kind::Txt if !paragraph => {
                if !blank {
                    let line = utf8(path, InputAt::Line(number), std::mem::take(&mut buf))?;
                    emit(Unit::Text(line))?;
                }
            }
            Kind::Txt if blank => {
                if !doc.is_empty() {
                    emit(Unit::Text(std::mem::take(&mut doc)))?;
                }
            }
            Kind::Txt | Kind::Parquet => {
                let line =
                    std::str::from_utf8(&buf).map_err(|_| not_utf8(path, InputAt::Line(number)))?;
                if !doc.is_empty() {
                    doc.push('\n');
                }
                doc.push_str(line);
            }
        }
    }
    if !doc.is_empty() {
        emit(Unit::Text(doc))?;
    }
    Ok(ReadStats::default())
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

#[cfg(test)]
mod tests {
    use super::*;

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
