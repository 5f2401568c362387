//! The kernel: release, command line, modules, io_uring and its log.

use serde::{Deserialize, Serialize};

use super::{read_with, trimmed};
use crate::parse::modules;
use crate::{Fact, HostRoot, KernelParams, Probes};

/// Kernel release, command line, and what can be done with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    pub release: Fact<String>,
    pub cmdline: Fact<String>,
    /// The command-line parameters that matter to osml.
    pub params: KernelParams,
    /// Loaded modules (`/proc/modules`).
    pub modules: Fact<Vec<String>>,
    /// Whether this process could create an io_uring (live, or as a capture recorded it):
    /// `true`, or unknown with the errno of `io_uring_setup`.
    pub io_uring_setup: Fact<bool>,
    /// What the kernel log (`/dev/kmsg`) says, by class.
    pub log: Fact<crate::parse::kmsg::KernelLog>,
}

pub(super) fn gather_kernel(root: &HostRoot, probes: &dyn Probes) -> Kernel {
    let cmdline = trimmed(root, "/proc/cmdline");
    let release = match root.read_trimmed("/proc/sys/kernel/osrelease") {
        Ok(r) => Fact::Known(r),
        // `/proc/version` is "Linux version 6.1.0-18-amd64 (…)".
        Err(e) => root
            .read("/proc/version")
            .ok()
            .and_then(|v| v.split_whitespace().nth(2).map(str::to_owned))
            .map_or_else(|| e.into(), Fact::Known),
    };
    let modules = match read_with(root, "/proc/modules", modules::parse) {
        Ok(m) => Fact::Known(m),
        Err(e) => match root.list("/sys/module") {
            // Built-in modules also appear under /sys/module; good enough to test presence.
            Ok(m) => Fact::Known(m),
            Err(_) => e.into(),
        },
    };
    Kernel {
        params: cmdline
            .known()
            .map(|c| KernelParams::parse(c))
            .unwrap_or_default(),
        release,
        cmdline,
        modules,
        io_uring_setup: probes.io_uring_setup(),
        log: match probes.kernel_log() {
            Ok(text) => Fact::Known(crate::parse::kmsg::summarise(&text)),
            Err(e) => e.into(),
        },
    }
}
