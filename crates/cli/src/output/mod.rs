//! Renderers, one file per output format. JSON is serde's rendering of the library types.

pub mod compare;
pub mod human;

use osml_doctor::Status;

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
    use super::escape;

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
