//! `/proc/meminfo`: `Key:   value kB` lines (proc(5)).

use std::collections::BTreeMap;

use crate::ParseError;

/// Parses meminfo into bytes per key (`kB` values are multiplied out; `HugePages_*` counts are
/// kept as counts). Lines that do not fit the shape are skipped: new kernels add keys.
pub fn parse(text: &str) -> Result<BTreeMap<String, u64>, ParseError> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let Some(Ok(value)) = words.next().map(str::parse::<u64>) else {
            continue;
        };
        let value = match words.next() {
            Some("kB") => value.saturating_mul(1024),
            _ => value,
        };
        out.insert(key.trim().to_owned(), value);
    }
    if out.is_empty() {
        return Err(ParseError::new("meminfo", text, "no `Key: value` lines"));
    }
    Ok(out)
}

/// The `MemTotal` of a node's `meminfo` (`Node 0 MemTotal:  24634564 kB`), in bytes.
pub fn parse_node_total(text: &str) -> Result<u64, ParseError> {
    parse_node_field(text, "MemTotal")
}

/// One `Node N KEY: V kB` line of a node's `meminfo`, in bytes.
pub fn parse_node_field(text: &str, key: &str) -> Result<u64, ParseError> {
    text.lines()
        .find_map(|l| {
            let (k, value) = l.split_once(':')?;
            if k.split_whitespace().last() != Some(key) {
                return None;
            }
            let kb: u64 = value.split_whitespace().next()?.parse().ok()?;
            Some(kb.saturating_mul(1024))
        })
        .ok_or_else(|| ParseError::new("node meminfo", text, "no such line"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_contents() {
        let text = "MemTotal:       24634564 kB\nMemFree:        20338880 kB\n\
                    MemAvailable:   23551012 kB\nHugePages_Total:       0\n\
                    Hugepagesize:       2048 kB\nDirectMap1G:    23068672 kB\n";
        let m = super::parse(text).unwrap();
        assert_eq!(m["MemTotal"], 24_634_564 * 1024);
        assert_eq!(m["HugePages_Total"], 0);
        assert_eq!(m["Hugepagesize"], 2048 * 1024);
    }

    #[test]
    fn node_total() {
        let t = "Node 1 MemTotal:       16777216 kB\nNode 1 MemFree:        1024 kB\n";
        assert_eq!(super::parse_node_total(t).unwrap(), 16 << 30);
        assert!(super::parse_node_total("Node 1 MemFree: 3 kB").is_err());
    }

    #[test]
    fn empty_is_an_error() {
        assert!(super::parse("").is_err());
    }
}
