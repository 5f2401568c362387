//! Renderers, one file per output format. JSON is serde's rendering of the library types.

pub mod compare;
pub mod fleet;
pub mod human;

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context, Result};
use osml_doctor::Status;

/// Writes `content` to `path` atomically: a temporary file beside it (`TempBeside`: mode 0666
/// less the umask, removed if a signal ends the run) renamed over it, so a reader of the
/// directory (a metrics collector, a plot viewer) never sees half a file.
pub fn write_atomic(path: &Path, content: &[u8]) -> Result<()> {
    let mut tmp = osml_sys::atomic::TempBeside::new(path, ".osml-")
        .with_context(|| format!("creating a file beside {}", path.display()))?;
    tmp.write_all(content)
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// How to render for this terminal.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    pub fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn status(self, s: Status) -> String {
        let code = match s {
            Status::Pass => "32",
            Status::Info => "36",
            Status::Skip => "2",
            Status::Warn => "33",
            Status::Fail => "1;31",
        };
        self.paint(code, s.mark())
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// `s` safe to print on a terminal: control characters (C0, DEL, C1: escape sequences, carriage
/// returns, newlines) and the bidirectional overrides that reorder what a reader sees are shown
/// as `\x1b`, `\n`, `\u{202e}`. Every string osml did not write itself (a hostname from a
/// capture, a report's fields, a file name) goes through this before human output, so a
/// capture cannot retitle the terminal, clear the screen or forge a line of the report.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    use std::fmt::Write as _;
    fn unsafe_char(c: char) -> bool {
        c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    }
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if unsafe_char(c) && u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if unsafe_char(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A writer that passes every line through [`escape`] (newlines kept), for commands whose human
/// output is mostly foreign strings: file names, device and process names, values read from a
/// root. They print no colour of their own, so no escape sequence needs to survive. Lines are
/// buffered until their newline so a character split across writes is escaped whole; call
/// [`Sanitized::finish`] to write a last partial line and see its error.
pub struct Sanitized<W: std::io::Write> {
    inner: W,
    line: Vec<u8>,
}

impl<W: std::io::Write> Sanitized<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            line: Vec::new(),
        }
    }

    fn write_line(&mut self) -> std::io::Result<()> {
        let text = String::from_utf8_lossy(&self.line);
        let (body, newline) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        let escaped = escape(body);
        self.inner.write_all(escaped.as_bytes())?;
        self.inner.write_all(newline.as_bytes())?;
        self.line.clear();
        Ok(())
    }

    /// Writes what is left and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        if !self.line.is_empty() {
            self.write_line()?;
        }
        self.inner.flush()
    }
}

impl<W: std::io::Write> std::io::Write for Sanitized<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.line.extend_from_slice(&rest[..=i]);
            self.write_line()?;
            rest = &rest[i + 1..];
        }
        self.line.extend_from_slice(rest);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Like `eprintln!`, but a closed or full stderr is not a panic: diagnostics are best effort.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
pub(crate) use say;

#[cfg(test)]
mod tests {
    use super::{escape, Sanitized};
    use std::io::Write;

    #[test]
    fn sanitized_output_escapes_lines_split_across_writes() {
        let mut buf = Vec::new();
        let mut out = Sanitized::new(&mut buf);
        // U+009B (CSI) is two bytes in UTF-8: split them across writes.
        out.write_all(b"file ev\x1b[2Jil\nnext \xc2").unwrap();
        out.write_all(b"\x9b done\npartial\x07").unwrap();
        out.finish().unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "file ev\\x1b[2Jil\nnext \\x9b done\npartial\\x07"
        );
    }

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escape("gpu-01"), "gpu-01");
        assert_eq!(escape("héllo ✓"), "héllo ✓");
        assert_eq!(
            escape("a\x1b]0;pwned\x07b\nc\u{9b}d\u{202e}"),
            "a\\x1b]0;pwned\\x07b\\nc\\x9bd\\u{202e}"
        );
    }
}
