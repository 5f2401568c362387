//! Peer-to-peer routing between GPUs, and between GPUs and NICs: ACS and the IOMMU.

use std::collections::BTreeMap;

use osml_host::p2p::{self, Acs, IommuMode, Route};
use osml_host::parse::pci_config::{AcsBits, Extended};
use osml_host::{ErrorKind, Fact, PciDevice, PciKind};

use super::{check, Check, Ctx, Verdict};
use crate::Status;

pub const PCI_P2P: Check = check!(
    "pci.p2p", "PCIe peer-to-peer routing (ACS, IOMMU)", pci_p2p,
    why: "GPUs and NICs below one PCIe switch exchange data through it (NCCL's P2P and GPUDirect RDMA); ACS redirect bits on the switch's ports send that traffic up to the root complex and through the IOMMU instead, which cuts its bandwidth to what the CPU forwards, and with a translating IOMMU makes transfers crawl or hang, with nothing logged.",
    source: "ACS registers of PCI config space (extended capability 0x000D); Linux Documentation/driver-api/pci/p2pdma.rst (the diverging ports decide) and kernel commit aaca43fda742 (pci=disable_acs_redir=); NCCL troubleshooting (PCI Access Control Services); NVIDIA/nccl#199",
    evidence: ["/sys/bus/pci/devices/*/config", "/sys/bus/pci/devices/*/iommu_group", "/sys/kernel/iommu_groups/*/type", "/sys/class/iommu", "/proc/cmdline"],
);

/// One judged pair, for the report.
struct Pair<'a> {
    a: &'a PciDevice,
    b: &'a PciDevice,
}

fn name(d: &PciDevice) -> String {
    let kind = match d.kind {
        PciKind::Gpu => "GPU",
        PciKind::Nic => "NIC",
        _ => "device",
    };
    format!("{kind} {}", d.address)
}

/// Every GPU↔GPU and GPU↔NIC pair, sorted by route.
#[derive(Default)]
struct Survey<'a> {
    pairs: usize,
    switched: usize,
    via_host: usize,
    redirected: Vec<Pair<'a>>,
    /// The redirecting ports and their bits.
    ports: BTreeMap<String, AcsBits>,
    unknown: Vec<(ErrorKind, String)>,
}

fn survey<'a>(devices: &[PciDevice], gpus: &[&'a PciDevice], nics: &[&'a PciDevice]) -> Survey<'a> {
    let mut s = Survey::default();
    for (i, a) in gpus.iter().enumerate() {
        for b in gpus[i + 1..].iter().chain(nics) {
            s.pairs += 1;
            match p2p::route(devices, a, b) {
                Route::HostBridge => s.via_host += 1,
                Route::SameDevice => {}
                Route::Switch { acs, .. } => {
                    s.switched += 1;
                    match acs {
                        Acs::Redirected { ports } => {
                            s.ports.extend(ports);
                            s.redirected.push(Pair { a, b });
                        }
                        Acs::Unknown { kind, reason } => s.unknown.push((kind, reason)),
                        Acs::Direct => {}
                    }
                }
            }
        }
    }
    s
}

/// The IOMMU mode that matters, the worst among `devices`, and its evidence in words.
fn iommu(cx: &Ctx<'_>, devices: &[&PciDevice]) -> (IommuMode, String) {
    let (mode, text) = devices
        .iter()
        .map(|d| p2p::iommu_mode(cx.host, d))
        .max_by_key(|(m, _)| match m {
            IommuMode::Off => 0,
            IommuMode::Passthrough => 1,
            IommuMode::Unknown => 2,
            IommuMode::Translating => 3,
        })
        .unwrap_or((IommuMode::Unknown, String::new()));
    let word = match mode {
        IommuMode::Off => "off",
        IommuMode::Passthrough => "in passthrough",
        IommuMode::Translating => "translating",
        IommuMode::Unknown => "mode unknown",
    };
    (mode, format!("IOMMU {word}: {text}"))
}

/// `0000:15:00.0 ATS on, …` for the NICs whose ATS capability was read.
fn ats(nics: &[&PciDevice]) -> Vec<String> {
    nics.iter()
        .filter_map(|n| match n.config.as_ref()?.known()?.extended {
            Extended::Read { ats: Some(a), .. } => Some(format!(
                "{} ATS {}",
                n.address,
                if a.enabled { "on" } else { "off" }
            )),
            _ => None,
        })
        .collect()
}

const EXPECTED: &str =
    "traffic between devices below one switch stays in the switch (no ACS redirect on its ports)";

fn pci_p2p(cx: &Ctx<'_>) -> Verdict {
    let devices = match &cx.host.pci_devices {
        Fact::Known(d) => d,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let gpus = cx.host.pci_of(PciKind::Gpu);
    let nics = cx.host.pci_of(PciKind::Nic);
    if gpus.len() < 2 && (gpus.is_empty() || nics.is_empty()) {
        return Verdict::skip(format!(
            "no peer-to-peer pair: needs two GPUs, or a GPU and a NIC (found {} GPU(s), {} NIC(s))",
            gpus.len(),
            nics.len()
        ));
    }
    let s = survey(devices, &gpus, &nics);
    let ends: Vec<&PciDevice> = gpus.iter().chain(&nics).copied().collect();
    let (mode, mode_text) = iommu(cx, &ends);
    let ats = ats(&nics);
    let summary = format!(
        "{} pair(s): {} below a shared switch, {} through the host bridge; {mode_text}{}",
        s.pairs,
        s.switched,
        s.via_host,
        if ats.is_empty() {
            String::new()
        } else {
            format!("; {}", ats.join(", "))
        }
    );
    if !s.redirected.is_empty() {
        return redirected(&s, mode == IommuMode::Translating, &summary);
    }
    let unknown_note = s
        .unknown
        .first()
        .map_or_else(String::new, |(kind, reason)| {
            format!(
                "; ACS unknown for {} switch-local pair(s): {reason}{}",
                s.unknown.len(),
                if *kind == ErrorKind::Denied {
                    " (run as root to read them)"
                } else {
                    ""
                }
            )
        });
    if s.switched > 0 && s.unknown.len() == s.switched && mode != IommuMode::Translating {
        return Verdict::skip(format!("{summary}{unknown_note}"));
    }
    if mode == IommuMode::Translating && s.via_host > 0 {
        return Verdict::new(
            Status::Warn,
            format!("{summary}; the pairs through the host bridge have their DMA translated by the IOMMU{unknown_note}"),
            "IOMMU in passthrough (iommu=pt) on a host that moves GPU data peer to peer",
        )
        .why("Peer traffic that crosses the root complex is translated by the IOMMU when it is not in passthrough mode: GPUDirect RDMA and P2P between GPUs on different root ports then crawl or fail (NCCL's troubleshooting guide asks for iommu=pt or the IOMMU off).")
        .fix(
            "none at run time: the IOMMU mode is set at boot",
            "add `iommu=pt` to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)",
        );
    }
    Verdict::new(
        Status::Pass,
        format!("no switch-local pair redirected; {summary}{unknown_note}"),
        EXPECTED,
    )
}

/// The verdict when ACS redirects pairs: which, by which ports, and the fix for those ports.
fn redirected(s: &Survey<'_>, translating: bool, summary: &str) -> Verdict {
    let shown: Vec<String> = s
        .redirected
        .iter()
        .take(6)
        .map(|p| format!("{} ↔ {}", name(p.a), name(p.b)))
        .collect();
    let hidden = s.redirected.len() - shown.len();
    let by: Vec<String> = s
        .ports
        .iter()
        .map(|(port, bits)| format!("{port} ({})", bits.names()))
        .collect();
    let observed = format!(
        "{} of {} switch-local pair(s) redirected to the root complex ({}{}) by ACS on port(s) {}; {summary}",
        s.redirected.len(),
        s.switched,
        shown.join(", "),
        if hidden > 0 {
            format!(" and {hidden} more")
        } else {
            String::new()
        },
        by.join(", ")
    );
    let ports: Vec<&str> = s.ports.keys().map(String::as_str).collect();
    let setpci = ports
        .iter()
        .map(|p| format!("setpci -s {p} ECAP_ACS+0x6.w=0000"))
        .collect::<Vec<_>>()
        .join("; ");
    let runtime = format!(
        "clear the redirect bits on these ports only: `{setpci}` (as root; lost at reboot; it removes the IOMMU isolation between the devices below them, which matters only when they are passed to different VMs), then check with `lspci -vvv -s PORT | grep ACSCtl`{}",
        if translating {
            "; the IOMMU translates every DMA here, so redirected traffic also pays for translation"
        } else {
            ""
        }
    );
    let persist = format!(
        "boot with `pci=disable_acs_redir={}`{} on the kernel command line (the kernel clears those ports' redirect bits at boot), or turn ACS off for the switch in the BIOS (often \"PCIe ACS Control\")",
        ports.join(";"),
        if translating { " and `iommu=pt`" } else { "" }
    );
    Verdict::new(
        if translating {
            Status::Fail
        } else {
            Status::Warn
        },
        observed,
        EXPECTED,
    )
    .fix(runtime, persist)
}
