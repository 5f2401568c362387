//! `/proc/swaps`: active swap areas (swapon(8)); sizes are in KiB.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// One active swap area.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwapDevice {
    pub name: String,
    pub kind: String,
    pub size_bytes: u64,
    pub used_bytes: u64,
    pub priority: i64,
}

/// Parses the table after its header line.
pub fn parse(text: &str) -> Result<Vec<SwapDevice>, ParseError> {
    let mut lines = text.lines();
    match lines.next() {
        Some(h) if h.starts_with("Filename") => {}
        _ => return Err(ParseError::new("swaps", text, "header line missing")),
    }
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let [name, kind, size, used, prio] = f.as_slice() else {
                return Err(ParseError::new("swaps", line, "expected 5 columns"));
            };
            let num = |s: &str| {
                s.parse::<u64>()
                    .map_err(|_| ParseError::new("swaps", line, "size is not a number"))
            };
            Ok(SwapDevice {
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                size_bytes: num(size)?.saturating_mul(1024),
                used_bytes: num(used)?.saturating_mul(1024),
                priority: prio
                    .parse()
                    .map_err(|_| ParseError::new("swaps", line, "priority is not a number"))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn none_and_one() {
        let header = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n";
        assert!(super::parse(header).unwrap().is_empty());
        let one = format!(
            "{header}/swapfile                               file\t\t8388604\t\t1024\t\t-2\n"
        );
        let s = super::parse(&one).unwrap();
        assert_eq!(s[0].size_bytes, 8_388_604 * 1024);
        assert_eq!(s[0].used_bytes, 1024 * 1024);
        assert_eq!(s[0].priority, -2);
    }
}
