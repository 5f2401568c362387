//! PCI configuration space (`/sys/bus/pci/devices/*/config`): the capabilities that decide
//! where peer-to-peer traffic goes.
//!
//! Layout (PCI Express Base Specification, "Configuration Space"; Linux
//! `include/uapi/linux/pci_regs.h`):
//! - the conventional space (256 bytes) holds a list of capabilities from the pointer at
//!   `0x34`, present when bit 4 of the status register (`0x06`) is set; each is `[id, next]`.
//!   The PCI Express capability (id `0x10`) gives the device/port type in bits 7:4 of its
//!   capabilities register (offset 2);
//! - the extended space (`0x100`–`0xfff`, PCIe only) holds a list of 32-bit headers:
//!   id in bits 15:0, version in 19:16, next offset in 31:20. Access Control Services (id
//!   `0x000d`) has its capability register at +4 and its control register at +6; Address
//!   Translation Services (id `0x000f`) likewise, with the enable bit 15 of its control.
//!
//! The kernel gives an unprivileged reader only the first 64 bytes, and a device whose
//! extended space it cannot reach only 256. Reads are by offset ([`ConfigBytes`]), a few
//! dwords per device: every config access can be a trap to the hypervisor or a slow
//! transaction on the bus (here, in a VM, about 26 µs per dword, so a whole 4 KiB space costs
//! 27 ms where the walk costs well under one).

use serde::{Deserialize, Serialize};

/// Random access to one device's configuration space.
pub trait ConfigBytes {
    /// Fills `buf` from `offset`; returns how many bytes were read (fewer at the end of what
    /// is readable, 0 beyond it or on an error).
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> usize;
}

impl ConfigBytes for &[u8] {
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> usize {
        let Some(rest) = self.get(offset..) else {
            return 0;
        };
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        n
    }
}

/// ACS control or capability bits, in the order of the register (bit 0 first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AcsBits(pub u16);

impl AcsBits {
    pub const SOURCE_VALIDATION: u16 = 1 << 0;
    pub const TRANSLATION_BLOCKING: u16 = 1 << 1;
    pub const REQUEST_REDIRECT: u16 = 1 << 2;
    pub const COMPLETION_REDIRECT: u16 = 1 << 3;
    pub const UPSTREAM_FORWARDING: u16 = 1 << 4;
    pub const EGRESS_CONTROL: u16 = 1 << 5;
    pub const DIRECT_TRANSLATED: u16 = 1 << 6;

    /// The names `lspci -vvv` prints for the bits, in register order.
    const NAMES: [(u16, &'static str); 7] = [
        (Self::SOURCE_VALIDATION, "SrcValid"),
        (Self::TRANSLATION_BLOCKING, "TransBlk"),
        (Self::REQUEST_REDIRECT, "ReqRedir"),
        (Self::COMPLETION_REDIRECT, "CmpltRedir"),
        (Self::UPSTREAM_FORWARDING, "UpstreamFwd"),
        (Self::EGRESS_CONTROL, "EgressCtrl"),
        (Self::DIRECT_TRANSLATED, "DirectTrans"),
    ];

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit != 0
    }

    /// The bits that send peer-to-peer requests or completions upstream instead of across
    /// the switch: Request Redirect, Completion Redirect, Egress Control (the three that
    /// `pci=disable_acs_redir=` clears, kernel commit aaca43fda742).
    #[must_use]
    pub fn redirecting(self) -> Self {
        Self(self.0 & (Self::REQUEST_REDIRECT | Self::COMPLETION_REDIRECT | Self::EGRESS_CONTROL))
    }

    /// The names of the set bits, `lspci` style (`ReqRedir CmpltRedir`); `-` when none.
    pub fn names(self) -> String {
        let set: Vec<&str> = Self::NAMES
            .iter()
            .filter(|(bit, _)| self.has(*bit))
            .map(|(_, name)| *name)
            .collect();
        if set.is_empty() {
            "-".to_owned()
        } else {
            set.join(" ")
        }
    }
}

/// The Access Control Services capability of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acs {
    /// Offset of the capability in the extended space.
    pub offset: u16,
    /// What the port supports (ACS Capability Register).
    pub capability: AcsBits,
    /// What is enabled (ACS Control Register).
    pub control: AcsBits,
}

/// The Address Translation Services capability of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ats {
    pub offset: u16,
    /// Bit 15 of the ATS Control Register.
    pub enabled: bool,
}

/// The device/port type of the PCI Express capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PortType {
    Endpoint,
    LegacyEndpoint,
    RootPort,
    /// The upstream port of a switch.
    UpstreamPort,
    /// A downstream port of a switch.
    DownstreamPort,
    PcieToPciBridge,
    PciToPcieBridge,
    RootComplexEndpoint,
    RootComplexEventCollector,
    Reserved,
}

impl PortType {
    fn from_bits(bits: u16) -> Self {
        match bits {
            0 => Self::Endpoint,
            1 => Self::LegacyEndpoint,
            4 => Self::RootPort,
            5 => Self::UpstreamPort,
            6 => Self::DownstreamPort,
            7 => Self::PcieToPciBridge,
            8 => Self::PciToPcieBridge,
            9 => Self::RootComplexEndpoint,
            10 => Self::RootComplexEventCollector,
            _ => Self::Reserved,
        }
    }
}

/// How much of the extended space could be read, and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Extended {
    /// Only the first 64 bytes are readable: the kernel gives the rest to root only.
    NeedsRoot,
    /// 256 bytes, no extended space (conventional PCI, or a PCIe device the kernel reaches
    /// without memory-mapped configuration).
    Absent,
    /// Read. A capability the device lacks is `None`.
    Read { acs: Option<Acs>, ats: Option<Ats> },
}

/// What osml reads from one configuration space.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciConfig {
    /// `None` when the device has no PCI Express capability (or it lies beyond what is
    /// readable).
    pub port_type: Option<PortType>,
    pub extended: Extended,
}

/// Why a configuration space could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("shorter than the 64-byte header")]
    Truncated,
    /// All ones: the device did not answer (removed, powered off or fallen off the bus).
    #[error("reads as all ones (the device does not answer)")]
    NoDevice,
}

const PCI_EXT_CAP_ID_ACS: u16 = 0x000d;
const PCI_EXT_CAP_ID_ATS: u16 = 0x000f;
const PCI_CAP_ID_EXP: u8 = 0x10;
/// More entries than either list can hold (48 conventional, 960 extended, of 4 bytes each):
/// a longer walk is a loop in the list.
const MAX_CAPS: usize = 960;

fn read_u16(src: &mut dyn ConfigBytes, offset: usize) -> Option<u16> {
    let mut b = [0u8; 2];
    (src.read_at(offset, &mut b) == 2).then(|| u16::from_le_bytes(b))
}

fn read_u32(src: &mut dyn ConfigBytes, offset: usize) -> Option<u32> {
    let mut b = [0u8; 4];
    (src.read_at(offset, &mut b) == 4).then(|| u32::from_le_bytes(b))
}

/// Parses a configuration space. Never panics: a list that points outside the space, loops,
/// or is cut short ends the walk at that point.
pub fn parse(src: &mut dyn ConfigBytes) -> Result<PciConfig, ConfigError> {
    // The ids, command and status, then 0x34 to the end of the header: a few dwords of the
    // 64 bytes, since each one read can be a trap.
    let mut head = [0u8; 8];
    let mut tail = [0u8; 12];
    if src.read_at(0, &mut head) < 8 || src.read_at(0x34, &mut tail) < 12 {
        return Err(ConfigError::Truncated);
    }
    if head[..4] == [0xff; 4] {
        return Err(ConfigError::NoDevice);
    }
    let status = u16::from_le_bytes([head[6], head[7]]);
    let mut port_type = None;
    if status & (1 << 4) != 0 {
        let mut at = usize::from(tail[0] & 0xfc);
        for _ in 0..MAX_CAPS {
            if at < 0x40 {
                break;
            }
            let Some(word) = read_u16(src, at) else {
                break;
            };
            let [id, next] = word.to_le_bytes();
            if id == PCI_CAP_ID_EXP {
                port_type =
                    read_u16(src, at + 2).map(|caps| PortType::from_bits((caps >> 4) & 0xf));
                break;
            }
            at = usize::from(next & 0xfc);
        }
    }
    let extended = if read_u32(src, 0x40).is_none() {
        Extended::NeedsRoot
    } else {
        match read_u32(src, 0x100) {
            // Beyond what is readable, or all ones: a space without the extended part.
            None | Some(0xffff_ffff) => Extended::Absent,
            Some(_) => walk_extended(src),
        }
    };
    Ok(PciConfig {
        port_type,
        extended,
    })
}

fn walk_extended(src: &mut dyn ConfigBytes) -> Extended {
    let (mut acs, mut ats) = (None, None);
    let mut at = 0x100usize;
    for _ in 0..MAX_CAPS {
        let Some(header) = read_u32(src, at) else {
            break;
        };
        if header == 0 || header == 0xffff_ffff {
            break;
        }
        let id = (header & 0xffff) as u16;
        let offset = u16::try_from(at).unwrap_or(u16::MAX);
        match id {
            PCI_EXT_CAP_ID_ACS if acs.is_none() => {
                if let (Some(capability), Some(control)) =
                    (read_u16(src, at + 4), read_u16(src, at + 6))
                {
                    acs = Some(Acs {
                        offset,
                        capability: AcsBits(capability),
                        control: AcsBits(control),
                    });
                }
            }
            PCI_EXT_CAP_ID_ATS if ats.is_none() => {
                if let Some(control) = read_u16(src, at + 6) {
                    ats = Some(Ats {
                        offset,
                        enabled: control & 0x8000 != 0,
                    });
                }
            }
            _ => {}
        }
        let next = (header >> 20) as usize & 0xffc;
        if next < 0x100 {
            break;
        }
        at = next;
    }
    Extended::Read { acs, ats }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A config space of `len` bytes: a bridge (status with a capability list) whose PCIe
    /// capability at 0x40 names `port`, with the given extended capabilities chained from
    /// 0x100 as (id, offset, capability register, control register).
    pub(crate) fn space(len: usize, port: u16, ext: &[(u16, usize, u16, u16)]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..2].copy_from_slice(&0x10b5u16.to_le_bytes());
        b[6] = 0x10;
        b[0x34] = 0x40;
        b[0x40] = PCI_CAP_ID_EXP;
        b[0x41] = 0;
        b[0x42..0x44].copy_from_slice(&((port << 4) | 2).to_le_bytes());
        for (i, &(id, at, cap, ctl)) in ext.iter().enumerate() {
            let next = ext.get(i + 1).map_or(0, |e| e.1);
            let header = u32::from(id) | (1 << 16) | (u32::try_from(next).unwrap() << 20);
            b[at..at + 4].copy_from_slice(&header.to_le_bytes());
            b[at + 4..at + 6].copy_from_slice(&cap.to_le_bytes());
            b[at + 6..at + 8].copy_from_slice(&ctl.to_le_bytes());
        }
        b.truncate(len);
        b
    }

    fn parse_bytes(b: &[u8]) -> Result<PciConfig, ConfigError> {
        parse(&mut &b[..])
    }

    #[test]
    fn a_switch_port_with_acs_redirect_and_a_nic_with_ats() {
        let port = space(
            4096,
            6,
            &[
                (0x0001, 0x100, 0, 0),
                (PCI_EXT_CAP_ID_ACS, 0x148, 0x7f, 0x1d),
            ],
        );
        let c = parse_bytes(&port).unwrap();
        assert_eq!(c.port_type, Some(PortType::DownstreamPort));
        let Extended::Read {
            acs: Some(acs),
            ats: None,
        } = c.extended
        else {
            panic!("{c:?}")
        };
        assert_eq!(acs.offset, 0x148);
        assert_eq!(
            acs.control.names(),
            "SrcValid ReqRedir CmpltRedir UpstreamFwd"
        );
        assert_eq!(
            acs.control.redirecting().0,
            AcsBits::REQUEST_REDIRECT | AcsBits::COMPLETION_REDIRECT
        );
        assert_eq!(acs.capability.names().split(' ').count(), 7);

        let nic = space(4096, 0, &[(PCI_EXT_CAP_ID_ATS, 0x100, 0x20, 0x8000)]);
        let c = parse_bytes(&nic).unwrap();
        assert_eq!(c.port_type, Some(PortType::Endpoint));
        assert_eq!(
            c.extended,
            Extended::Read {
                acs: None,
                ats: Some(Ats {
                    offset: 0x100,
                    enabled: true
                })
            }
        );
    }

    #[test]
    fn what_is_readable_decides_what_is_known() {
        let full = space(4096, 6, &[(PCI_EXT_CAP_ID_ACS, 0x100, 0x7f, 0)]);
        assert_eq!(
            parse_bytes(&full[..64]).unwrap().extended,
            Extended::NeedsRoot
        );
        assert_eq!(
            parse_bytes(&full[..256]).unwrap().extended,
            Extended::Absent
        );
        assert_eq!(parse_bytes(&full[..63]), Err(ConfigError::Truncated));
        assert_eq!(parse_bytes(&[0xff; 4096]), Err(ConfigError::NoDevice));
        // The PCIe capability is past the first 64 bytes: unknown to an unprivileged reader.
        assert_eq!(parse_bytes(&full[..64]).unwrap().port_type, None);
        // Cut inside the ACS capability: its registers are unknown, not made up.
        assert_eq!(
            parse_bytes(&full[..0x104]).unwrap().extended,
            Extended::Read {
                acs: None,
                ats: None
            }
        );
        // A bridge without ACS.
        let no_acs = space(4096, 6, &[(0x0001, 0x100, 0, 0)]);
        assert_eq!(
            parse_bytes(&no_acs).unwrap().extended,
            Extended::Read {
                acs: None,
                ats: None
            }
        );
        // No extended capabilities at all: an empty header at 0x100.
        assert_eq!(
            parse_bytes(&space(4096, 0, &[])).unwrap().extended,
            Extended::Read {
                acs: None,
                ats: None
            }
        );
    }

    #[test]
    fn lists_that_loop_or_point_outside_end() {
        // A conventional capability pointing at itself, an extended one pointing back at 0x100.
        let mut b = space(4096, 6, &[(0x0001, 0x100, 0, 0)]);
        b[0x40] = 0x05;
        b[0x41] = 0x40;
        let header = 0x0001u32 | (0x100 << 20);
        b[0x100..0x104].copy_from_slice(&header.to_le_bytes());
        let c = parse_bytes(&b).unwrap();
        assert_eq!(c.port_type, None);
        assert!(matches!(c.extended, Extended::Read { acs: None, .. }));
        // An extended pointer below 0x100 and one past the end.
        let header = 0x0001u32 | (0x0fc << 20);
        b[0x100..0x104].copy_from_slice(&header.to_le_bytes());
        assert!(parse_bytes(&b[..0x200]).is_ok());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4097)) {
            let _ = parse_bytes(&bytes);
        }
    }
}
