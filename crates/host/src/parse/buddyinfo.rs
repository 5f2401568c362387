//! `/proc/buddyinfo`: free memory per node and zone, counted in blocks of 2^order pages.
//!
//! ```text
//! Node 0, zone      DMA      1      1      0      0      2      1      1      0      1      1      3
//! Node 0, zone   Normal   4375   2960   1574    739    343    164     84     41     32     22    510
//! ```
//!
//! One column per order from 0 (`mm/vmstat.c`, `frag_show_print`): 11 on most kernels
//! (`MAX_ORDER` 10, or `MAX_PAGE_ORDER` 10 since 6.8), more where configured.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// The free blocks of one zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuddyZone {
    pub node: usize,
    /// `DMA`, `DMA32`, `Normal`, `Movable`…
    pub zone: String,
    /// Free blocks of 2^order pages, by order.
    pub free_blocks: Vec<u64>,
}

impl BuddyZone {
    /// Free bytes, given the page size.
    pub fn free_bytes(&self, page: u64) -> u64 {
        self.free_blocks
            .iter()
            .enumerate()
            .map(|(order, n)| n.saturating_mul(page << order.min(40)))
            .fold(0, u64::saturating_add)
    }

    /// Free bytes in blocks of at least `block` bytes (2 MiB: what a transparent huge page
    /// needs without compaction).
    pub fn free_bytes_in_blocks_of(&self, page: u64, block: u64) -> u64 {
        self.free_blocks
            .iter()
            .enumerate()
            .filter(|(order, _)| page << (*order).min(40) >= block)
            .map(|(order, n)| n.saturating_mul(page << order.min(40)))
            .fold(0, u64::saturating_add)
    }
}

pub fn parse(text: &str) -> Result<Vec<BuddyZone>, ParseError> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let bad = |reason| ParseError::new("buddyinfo", line, reason);
        let rest = line
            .strip_prefix("Node ")
            .ok_or_else(|| bad("no Node prefix"))?;
        let (node, rest) = rest
            .split_once(',')
            .ok_or_else(|| bad("no comma after the node"))?;
        let node = node
            .trim()
            .parse()
            .map_err(|_| bad("node is not a number"))?;
        let mut words = rest.split_whitespace();
        if words.next() != Some("zone") {
            return Err(bad("no zone"));
        }
        let zone = words.next().ok_or_else(|| bad("no zone name"))?.to_owned();
        let free_blocks = words
            .map(|w| w.parse().map_err(|_| bad("a count is not a number")))
            .collect::<Result<Vec<u64>, _>>()?;
        if free_blocks.is_empty() {
            return Err(bad("no counts"));
        }
        out.push(BuddyZone {
            node,
            zone,
            free_blocks,
        });
    }
    if out.is_empty() {
        return Err(ParseError::new("buddyinfo", text, "no zones"));
    }
    Ok(out)
}

/// The `name value` lines of `/proc/vmstat` named in `keys`.
pub fn vmstat(text: &str, keys: &[&str]) -> std::collections::BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            keys.contains(&k)
                .then(|| v.trim().parse().ok().map(|v| (k.to_owned(), v)))
                .flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_block_sizes() {
        let t = "Node 0, zone      DMA      1      1      0      0      2      1      1      0      1      1      3 \n\
                 Node 0, zone   Normal   4375   2960   1574    739    343    164     84     41     32     22    510 \n";
        let z = parse(t).unwrap();
        assert_eq!(z.len(), 2);
        assert_eq!(
            (z[1].node, z[1].zone.as_str(), z[1].free_blocks.len()),
            (0, "Normal", 11)
        );
        let page = 4096;
        // Orders 9 and 10 (2 and 4 MiB blocks) hold 22 × 2 MiB + 510 × 4 MiB.
        assert_eq!(
            z[1].free_bytes_in_blocks_of(page, 2 << 20),
            (22 * 2 + 510 * 4) << 20
        );
        assert_eq!(
            z[0].free_bytes(page),
            (1 + 2 + 2 * 16 + 32 + 64 + 256 + 512 + 3 * 1024) * 4096
        );
        assert!(parse("").is_err());
        assert!(parse("Node x, zone Normal 1").is_err());
        assert!(parse("Node 0, zone Normal").is_err());
        let v = vmstat(
            "thp_fault_alloc 10\nthp_fault_fallback 5\nnr_free_pages 7\n",
            &["thp_fault_alloc", "thp_fault_fallback"],
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v["thp_fault_fallback"], 5);
    }
}
