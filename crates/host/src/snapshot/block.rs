//! Block devices: scheduler, read-ahead, rotational, model and size.

use serde::{Deserialize, Serialize};

use super::{fact, trimmed};
use crate::parse::sysfs;
use crate::{Fact, HostRoot};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockDevice {
    pub name: String,
    pub scheduler: Fact<String>,
    pub read_ahead_kb: Fact<u64>,
    pub rotational: Fact<bool>,
    pub model: Fact<String>,
    pub size_bytes: Fact<u64>,
}

/// Block devices that are not storage: loop, RAM disks, compressed swap, optical and floppy.
fn is_pseudo_block(name: &str) -> bool {
    ["loop", "ram", "zram", "sr", "fd", "nbd"]
        .iter()
        .any(|p| name.starts_with(p) && name[p.len()..].chars().all(|c| c.is_ascii_digit()))
}

pub(super) fn gather_block(root: &HostRoot) -> Fact<Vec<BlockDevice>> {
    let names = match root.list("/sys/block") {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    Fact::Known(
        names
            .into_iter()
            .filter(|n| !is_pseudo_block(n))
            .map(|name| {
                let base = format!("/sys/block/{name}");
                let num = |f: &str| fact(root, &format!("{base}/{f}"), sysfs::parse_u64);
                BlockDevice {
                    scheduler: fact(root, &format!("{base}/queue/scheduler"), sysfs::selected),
                    read_ahead_kb: num("queue/read_ahead_kb"),
                    rotational: num("queue/rotational").map(|r| r == 1),
                    model: trimmed(root, &format!("{base}/device/model")),
                    size_bytes: num("size").map(|s| s.saturating_mul(512)),
                    name,
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_block_devices() {
        assert!(is_pseudo_block("loop0"));
        assert!(is_pseudo_block("ram12"));
        assert!(!is_pseudo_block("nvme0n1"));
        assert!(!is_pseudo_block("sda"));
        assert!(!is_pseudo_block("fd0x"));
    }
}
