//! Shapes shared by many sysfs attributes.

use crate::ParseError;

/// The selected word of a choice attribute: `always [madvise] never` gives `madvise`
/// (THP's `enabled`, a block queue's `scheduler`). A file holding one bare word gives that word.
pub fn selected(text: &str) -> Result<String, ParseError> {
    let text = text.trim();
    if let Some(start) = text.find('[') {
        if let Some(len) = text[start + 1..].find(']') {
            return Ok(text[start + 1..start + 1 + len].to_owned());
        }
    }
    match text.split_whitespace().collect::<Vec<_>>().as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(ParseError::new("choice", text, "no [selected] word")),
    }
}

/// The choices of such an attribute, without brackets.
pub fn choices(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| w.trim_matches(|c| c == '[' || c == ']').to_owned())
        .collect()
}

/// An unsigned integer attribute.
pub fn parse_u64(text: &str) -> Result<u64, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| ParseError::new("integer", text, "not an unsigned integer"))
}

/// A signed integer attribute (`numa_node` is -1 when unknown).
pub fn parse_i64(text: &str) -> Result<i64, ParseError> {
    text.trim()
        .parse()
        .map_err(|_| ParseError::new("integer", text, "not an integer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_and_selection() {
        assert_eq!(selected("always [madvise] never\n").unwrap(), "madvise");
        assert_eq!(selected("[none] mq-deadline kyber bfq").unwrap(), "none");
        assert_eq!(selected("none\n").unwrap(), "none");
        assert!(selected("a b").is_err());
        assert_eq!(choices("[none] mq-deadline"), ["none", "mq-deadline"]);
    }
}
