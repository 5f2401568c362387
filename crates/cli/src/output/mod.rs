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
