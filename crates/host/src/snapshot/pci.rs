//! PCI devices: class, ids, NUMA node, link and the bridges above them.

use serde::{Deserialize, Serialize};

use super::{basename, fact, read_with, trimmed};
use crate::parse::pci_config::{self, PciConfig};
use crate::parse::sysfs;
use crate::{CpuList, ErrorKind, Fact, HostError, HostRoot, ParseError};

/// What a PCI device is, for placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PciKind {
    Gpu,
    Nic,
    Nvme,
    Nvswitch,
    Bridge,
    Other,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PciDevice {
    /// Domain:bus:device.function, e.g. `0000:3b:00.0`.
    pub address: String,
    pub kind: PciKind,
    /// The 24-bit class code (`0x030200` is a 3D controller).
    pub class: u32,
    pub vendor: u16,
    pub device: u16,
    /// -1 when the firmware does not say (torchrun then assumes node 0).
    pub numa_node: Fact<i64>,
    pub local_cpus: Fact<CpuList>,
    /// The negotiated link (`current_link_speed`, e.g. `32.0 GT/s PCIe`, and
    /// `current_link_width`): for an endpoint or a switch's upstream port the link above it,
    /// for a root or downstream port the link below it.
    pub link_speed: Fact<String>,
    pub link_width: Fact<u32>,
    /// What the device supports (`max_link_speed`, `max_link_width`).
    pub max_link_speed: Fact<String>,
    pub max_link_width: Fact<u32>,
    pub driver: Option<String>,
    /// Bridges from the host bridge down to this device, outermost first.
    pub bridges: Vec<String>,
    /// The host bridge (`pci0000:00`) the device hangs from.
    pub host_bridge: Option<String>,
    /// What its configuration space says about peer-to-peer routing (ACS, ATS, port type):
    /// read for GPUs, NICs and the bridges above them; absent for other devices.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<Fact<PciConfig>>,
    /// Its IOMMU group, for GPUs and NICs on a host with an IOMMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_group: Option<IommuGroup>,
}

/// An IOMMU group (`/sys/kernel/iommu_groups/N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IommuGroup {
    pub id: String,
    /// How the group's DMA is mapped (`type`): `identity` (passthrough), `DMA` or `DMA-FQ`
    /// (translated), `unmanaged` (assigned to a VM through VFIO), `blocked`.
    pub domain: Fact<String>,
}

/// The IOMMU units the kernel registered (`/sys/class/iommu`: `dmar0`, `ivhd0`…).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Iommu {
    /// Empty when the kernel runs without an IOMMU.
    pub units: Fact<Vec<String>>,
}

pub(super) fn gather_iommu(root: &HostRoot) -> Iommu {
    Iommu {
        units: match root.list("/sys/class/iommu") {
            Ok(u) => Fact::Known(u),
            // Kernels built without IOMMU support have no such class.
            Err(HostError::NotFound { .. }) => Fact::Known(Vec::new()),
            Err(e) => e.into(),
        },
    }
}

/// The configuration space of the device at `dir`, read by offset (a few dwords).
fn read_config(root: &HostRoot, dir: &str) -> Fact<PciConfig> {
    let path = format!("{dir}/config");
    match root.open_random(&path) {
        Ok(mut file) => match pci_config::parse(&mut file) {
            Ok(c) => Fact::Known(c),
            Err(e) => Fact::unknown(ErrorKind::Malformed, format!("{path}: {e}")),
        },
        Err(e) => e.into(),
    }
}

fn read_iommu_group(root: &HostRoot, dir: &str) -> Option<IommuGroup> {
    let target = root.read_link(&format!("{dir}/iommu_group")).ok()?;
    let id = basename(&target).to_owned();
    Some(IommuGroup {
        domain: trimmed(root, &format!("/sys/kernel/iommu_groups/{id}/type")),
        id,
    })
}

/// Whether a path component is a PCI address (`0000:3b:00.0`).
pub(super) fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 12
        && b[b.len() - 2] == b'.'
        && b[b.len() - 5] == b':'
        && b[b.len() - 8] == b':'
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
}

fn classify(class: u32, vendor: u16) -> PciKind {
    const NVIDIA: u16 = 0x10de;
    const AMD: u16 = 0x1002;
    const MELLANOX: u16 = 0x15b3;
    match class >> 8 {
        // VGA and 3D controllers from the two GPU vendors; an onboard BMC VGA is "other".
        0x0300 | 0x0302 if vendor == NVIDIA || vendor == AMD => PciKind::Gpu,
        0x0380 if vendor == AMD => PciKind::Gpu,
        0x0200 | 0x0207 => PciKind::Nic,
        // Old Mellanox HCAs report "other network controller" or "serial bus / InfiniBand".
        0x0280 | 0x0c06 if vendor == MELLANOX => PciKind::Nic,
        0x0108 => PciKind::Nvme,
        0x0680 if vendor == NVIDIA => PciKind::Nvswitch,
        0x0604 => PciKind::Bridge,
        _ => PciKind::Other,
    }
}

pub(super) fn gather_pci(root: &HostRoot) -> Fact<Vec<PciDevice>> {
    let base = "/sys/bus/pci/devices";
    let names = match root.list(base) {
        Ok(n) => n,
        Err(e) => return e.into(),
    };
    let hex = |t: &str| {
        u32::from_str_radix(t.trim().trim_start_matches("0x"), 16)
            .map_err(|_| ParseError::new("pci id", t, "not hexadecimal"))
    };
    let mut out = Vec::new();
    let mut dirs = Vec::new();
    for address in names {
        let link = format!("{base}/{address}");
        let dir = root.canonicalize(&link).unwrap_or_else(|_| link.clone());
        let Ok(class) = read_with(root, &format!("{dir}/class"), hex) else {
            continue;
        };
        let vendor = read_with(root, &format!("{dir}/vendor"), hex).unwrap_or(0);
        let device = read_with(root, &format!("{dir}/device"), hex).unwrap_or(0);
        let vendor = u16::try_from(vendor).unwrap_or(0);
        let parts: Vec<&str> = dir.split('/').collect();
        let bridges = parts
            .iter()
            .filter(|p| is_pci_address(p) && **p != address)
            .map(|p| (*p).to_owned())
            .collect();
        out.push(PciDevice {
            kind: classify(class, vendor),
            class,
            vendor,
            device: u16::try_from(device).unwrap_or(0),
            numa_node: fact(root, &format!("{dir}/numa_node"), sysfs::parse_i64),
            local_cpus: fact(root, &format!("{dir}/local_cpulist"), CpuList::parse),
            link_speed: trimmed(root, &format!("{dir}/current_link_speed")),
            link_width: fact(root, &format!("{dir}/current_link_width"), |t| {
                sysfs::parse_u64(t).map(|w| u32::try_from(w).unwrap_or(u32::MAX))
            }),
            max_link_speed: trimmed(root, &format!("{dir}/max_link_speed")),
            max_link_width: fact(root, &format!("{dir}/max_link_width"), |t| {
                sysfs::parse_u64(t).map(|w| u32::try_from(w).unwrap_or(u32::MAX))
            }),
            driver: root
                .read_link(&format!("{dir}/driver"))
                .ok()
                .map(|t| basename(&t).to_owned()),
            bridges,
            host_bridge: parts
                .iter()
                .find(|p| p.starts_with("pci") && p.contains(':'))
                .map(|p| (*p).to_owned()),
            address,
            config: None,
            iommu_group: None,
        });
        dirs.push(dir);
    }
    // Peer-to-peer routing concerns GPUs and NICs and the bridges above them only: each
    // config read costs, so no other device's is read.
    let mut wanted = std::collections::BTreeSet::new();
    for d in out
        .iter()
        .filter(|d| matches!(d.kind, PciKind::Gpu | PciKind::Nic))
    {
        wanted.insert(d.address.clone());
        wanted.extend(d.bridges.iter().cloned());
    }
    for (d, dir) in out.iter_mut().zip(&dirs) {
        if wanted.contains(&d.address) {
            d.config = Some(read_config(root, dir));
            if d.kind != PciKind::Bridge {
                d.iommu_group = read_iommu_group(root, dir);
            }
        }
    }
    Fact::Known(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        assert!(is_pci_address("0000:3b:00.0"));
        assert!(is_pci_address("10000:00:02.0"));
        assert!(!is_pci_address("pci0000:00"));
        assert!(!is_pci_address("infiniband"));
    }

    #[test]
    fn classification() {
        assert_eq!(classify(0x030200, 0x10de), PciKind::Gpu);
        assert_eq!(classify(0x030000, 0x102b), PciKind::Other);
        assert_eq!(classify(0x020700, 0x15b3), PciKind::Nic);
        assert_eq!(classify(0x0c0600, 0x15b3), PciKind::Nic);
        assert_eq!(classify(0x010802, 0x144d), PciKind::Nvme);
        assert_eq!(classify(0x068000, 0x10de), PciKind::Nvswitch);
    }
}
