//! `/dev/shm`: its mount, size and use.

use serde::{Deserialize, Serialize};

use crate::parse::mounts;
use crate::{ErrorKind, Fact, Mount, Probes};

/// `/dev/shm`, where PyTorch DataLoader workers and NCCL put shared memory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shm {
    pub mount: Fact<Mount>,
    /// The tmpfs `size=` option, in bytes (absent means half of RAM).
    pub size_bytes: Fact<u64>,
    /// Bytes in use (statvfs: live, or as a capture recorded it).
    pub used_bytes: Fact<u64>,
}

pub(super) fn gather_shm(probes: &dyn Probes, mounts: &Fact<Vec<Mount>>) -> Shm {
    let mount = mounts.as_ref().and_then(|m| {
        // The last mount on a path is the one in effect.
        m.iter()
            .rev()
            .find(|m| m.target == "/dev/shm")
            .cloned()
            .map_or_else(
                || Fact::unknown(ErrorKind::Absent, "nothing is mounted on /dev/shm"),
                Fact::Known,
            )
    });
    let usage = match probes.statvfs("/dev/shm") {
        Fact::Known(u) => Ok(u),
        Fact::Unknown { unknown, kind } => Err((kind, unknown)),
    };
    let size_bytes = match (&usage, mount.known()) {
        (Ok(u), _) => Fact::Known(u.total_bytes),
        (Err(_), Some(m)) => match m.option("size").map(mounts::parse_size) {
            Some(Some(b)) => Fact::Known(b),
            Some(None) => Fact::unknown(
                ErrorKind::NotApplicable,
                format!(
                    "size={} is relative to RAM",
                    m.option("size").unwrap_or_default()
                ),
            ),
            None => Fact::unknown(
                ErrorKind::NotApplicable,
                "no size= option (tmpfs then defaults to half of RAM)",
            ),
        },
        (Err((kind, why)), None) => Fact::unknown(*kind, why.clone()),
    };
    Shm {
        mount,
        size_bytes,
        used_bytes: usage
            .map(|u| u.used_bytes)
            .map_or_else(|(kind, why)| Fact::unknown(kind, why), Fact::Known),
    }
}
