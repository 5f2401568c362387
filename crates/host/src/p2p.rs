//! Where peer-to-peer traffic between two PCI devices goes: across the switch they share, or
//! up to the root complex because Access Control Services redirect it there.
//!
//! Two devices below one switch reach each other through it: a request enters the switch at
//! the requester's downstream port and leaves at the other's. ACS on that ingress port can
//! send it upstream instead (P2P Request Redirect, and Completion Redirect for the answers,
//! Egress Control for chosen ports), to the root complex and through the IOMMU, which keeps
//! devices isolated (what VFIO needs) at the cost of the switch's bandwidth: GPU↔GPU and
//! GPU↔NIC transfers then cross the CPU, slowly, or hang when the IOMMU translates and the
//! root complex does not forward peer traffic (NCCL's troubleshooting guide, "PCI Access
//! Control Services"; NVIDIA/nccl#199). Only the ports where the two paths diverge decide
//! (Linux `Documentation/driver-api/pci/p2pdma.rst`): the bridges above them forward
//! upstream-bound traffic whatever their ACS bits.
//!
//! [`route`] judges one pair from the snapshot's bridge paths and configuration spaces;
//! `osml doctor`'s `pci.p2p` and the `osml topo` matrix use it.

use serde::Serialize;

use crate::parse::pci_config::{AcsBits, Extended};
use crate::{ErrorKind, Fact, PciDevice};

/// How traffic between two devices is routed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "route")]
pub enum Route {
    /// Two functions of one card: no bridge between them.
    SameDevice,
    /// Below one bridge (a switch): `ports` are where the two paths diverge, one per device.
    Switch {
        /// The last bridge both paths share (the switch's upstream port).
        shared: String,
        ports: [String; 2],
        acs: Acs,
    },
    /// Through the host bridge, by topology: different root ports or host bridges.
    HostBridge,
}

/// What the ACS bits of the diverging ports do to a pair's traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "acs")]
pub enum Acs {
    /// Neither port redirects (no ACS capability, or its redirect bits clear).
    Direct,
    /// Sent to the root complex: each redirecting port with the bits that do it.
    Redirected { ports: Vec<(String, AcsBits)> },
    /// A port's configuration could not be read.
    Unknown { kind: ErrorKind, reason: String },
}

/// How many bridges, from the host bridge down, two devices' paths share.
pub(crate) fn shared_bridges(a: &[String], b: &[String]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The route between `a` and `b`, looking up the diverging ports in `devices`.
pub fn route(devices: &[PciDevice], a: &PciDevice, b: &PciDevice) -> Route {
    let same_host = a.host_bridge.is_some() && a.host_bridge == b.host_bridge;
    let common = shared_bridges(&a.bridges, &b.bridges);
    if !same_host || common == 0 {
        return Route::HostBridge;
    }
    let (Some(pa), Some(pb)) = (a.bridges.get(common), b.bridges.get(common)) else {
        // Nothing between the last shared bridge and a device: the two hang from one port,
        // so they are functions of one card.
        return Route::SameDevice;
    };
    let mut redirected = Vec::new();
    let mut unknown = None;
    for port in [pa, pb] {
        match port_acs(devices, port) {
            Ok(bits) if bits.0 != 0 => redirected.push((port.clone(), bits)),
            Ok(_) => {}
            Err(e) => unknown = unknown.or(Some(e)),
        }
    }
    let acs = match (redirected.is_empty(), unknown) {
        (false, _) => Acs::Redirected { ports: redirected },
        (true, Some((kind, reason))) => Acs::Unknown { kind, reason },
        (true, None) => Acs::Direct,
    };
    Route::Switch {
        shared: a.bridges[common - 1].clone(),
        ports: [pa.clone(), pb.clone()],
        acs,
    }
}

/// The redirecting ACS control bits of one port.
fn port_acs(devices: &[PciDevice], port: &str) -> Result<AcsBits, (ErrorKind, String)> {
    let Some(d) = devices.iter().find(|d| d.address == port) else {
        return Err((ErrorKind::Missing, format!("bridge {port} is not listed")));
    };
    match &d.config {
        None => Err((
            ErrorKind::Missing,
            format!("the configuration of {port} was not read"),
        )),
        Some(Fact::Unknown { unknown, kind }) => Err((*kind, unknown.clone())),
        Some(Fact::Known(c)) => match c.extended {
            Extended::NeedsRoot => Err((
                ErrorKind::Denied,
                format!(
                    "the ACS registers of {port} lie beyond the 64 bytes of configuration space the kernel gives to a user other than root"
                ),
            )),
            // Conventional PCI has no ACS: nothing redirects.
            Extended::Absent | Extended::Read { acs: None, .. } => Ok(AcsBits(0)),
            Extended::Read { acs: Some(acs), .. } => Ok(acs.control.redirecting()),
        },
    }
}

/// How the IOMMU treats a device's DMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IommuMode {
    /// No IOMMU translates for it (none present, or turned off).
    Off,
    /// Identity-mapped (`iommu=pt`, `iommu.passthrough=1`, group type `identity`):
    /// addresses pass unchanged.
    Passthrough,
    /// Every DMA address is translated (group type `DMA`, `DMA-FQ`, or a device assigned to a
    /// VM).
    Translating,
    /// Not known: no IOMMU group was read and the command line does not say.
    Unknown,
}

/// The IOMMU mode of `device` and the evidence for it, in words: its group's type when it
/// has one, else the IOMMU units and the command line.
pub fn iommu_mode(host: &crate::HostSnapshot, device: &PciDevice) -> (IommuMode, String) {
    let p = &host.kernel.params;
    let passthrough_param = p.iommu.as_deref() == Some("pt")
        || p.iommu_passthrough
            .as_deref()
            .is_some_and(|v| v == "1" || v == "y");
    let params: Vec<String> = [
        p.iommu.as_ref().map(|v| format!("iommu={v}")),
        p.intel_iommu.as_ref().map(|v| format!("intel_iommu={v}")),
        p.amd_iommu.as_ref().map(|v| format!("amd_iommu={v}")),
        p.iommu_passthrough
            .as_ref()
            .map(|v| format!("iommu.passthrough={v}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    let params = if params.is_empty() {
        "no IOMMU parameter on the command line".to_owned()
    } else {
        params.join(" ")
    };
    if let Some(group) = &device.iommu_group {
        if let Fact::Known(domain) = &group.domain {
            let mode = match domain.as_str() {
                "identity" => IommuMode::Passthrough,
                _ => IommuMode::Translating,
            };
            return (
                mode,
                format!("IOMMU group {} of type {domain} ({params})", group.id),
            );
        }
    }
    match host.iommu.units.known() {
        Some(units) if units.is_empty() => (
            IommuMode::Off,
            format!("no IOMMU registered in /sys/class/iommu ({params})"),
        ),
        _ if passthrough_param => (IommuMode::Passthrough, params),
        _ => (IommuMode::Unknown, params),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::pci_config::{self, PciConfig, PortType};
    use crate::PciKind;

    fn dev(address: &str, bridges: &[&str], acs_control: Option<u16>) -> PciDevice {
        PciDevice {
            address: address.into(),
            kind: if bridges.len().is_multiple_of(2) {
                PciKind::Bridge
            } else {
                PciKind::Gpu
            },
            class: 0,
            vendor: 0,
            device: 0,
            numa_node: Fact::Known(0),
            local_cpus: Fact::unknown(ErrorKind::Missing, "-"),
            link_speed: Fact::unknown(ErrorKind::Missing, "-"),
            link_width: Fact::unknown(ErrorKind::Missing, "-"),
            max_link_speed: Fact::unknown(ErrorKind::Missing, "-"),
            max_link_width: Fact::unknown(ErrorKind::Missing, "-"),
            driver: None,
            bridges: bridges.iter().map(|b| (*b).to_owned()).collect(),
            host_bridge: Some("pci0000:10".into()),
            config: acs_control.map(|control| {
                Fact::Known(PciConfig {
                    port_type: Some(PortType::DownstreamPort),
                    extended: Extended::Read {
                        acs: (control != 0xffff).then_some(pci_config::Acs {
                            offset: 0x148,
                            capability: AcsBits(0x7f),
                            control: AcsBits(control),
                        }),
                        ats: None,
                    },
                })
            }),
            iommu_group: None,
        }
    }

    #[test]
    fn the_diverging_ports_decide() {
        let rp = "0000:10:01.0";
        let up = "0000:11:00.0";
        let devices = vec![
            dev(rp, &[], Some(0x1d)),
            dev(up, &[rp], Some(0x1d)),
            // One port redirects requests and completions, its neighbour has no ACS at all.
            dev("0000:12:00.0", &[rp, up], Some(0x1d)),
            dev("0000:12:01.0", &[rp, up], Some(0xffff)),
            dev("0000:12:02.0", &[rp, up], Some(0x01)),
            dev("0000:13:00.0", &[rp, up, "0000:12:00.0"], None),
            dev("0000:14:00.0", &[rp, up, "0000:12:01.0"], None),
            dev("0000:15:00.0", &[rp, up, "0000:12:02.0"], None),
            dev("0000:15:00.1", &[rp, up, "0000:12:02.0"], None),
            dev("0000:16:00.0", &[rp, up, "0000:12:03.0"], None),
            dev("0000:90:00.0", &["0000:8f:01.0"], None),
        ];
        let get = |a: &str| devices.iter().find(|d| d.address == a).unwrap();
        let r = |a: &str, b: &str| route(&devices, get(a), get(b));
        assert_eq!(
            r("0000:13:00.0", "0000:14:00.0"),
            Route::Switch {
                shared: up.into(),
                ports: ["0000:12:00.0".into(), "0000:12:01.0".into()],
                acs: Acs::Redirected {
                    ports: vec![(
                        "0000:12:00.0".into(),
                        AcsBits(AcsBits::REQUEST_REDIRECT | AcsBits::COMPLETION_REDIRECT)
                    )]
                },
            }
        );
        // Source validation alone does not redirect; no ACS capability does not either.
        assert!(matches!(
            r("0000:14:00.0", "0000:15:00.0"),
            Route::Switch {
                acs: Acs::Direct,
                ..
            }
        ));
        assert_eq!(r("0000:15:00.0", "0000:15:00.1"), Route::SameDevice);
        assert!(matches!(
            r("0000:15:00.0", "0000:16:00.0"),
            Route::Switch {
                acs: Acs::Unknown {
                    kind: ErrorKind::Missing,
                    ..
                },
                ..
            }
        ));
        assert_eq!(r("0000:13:00.0", "0000:90:00.0"), Route::HostBridge);
    }
}
