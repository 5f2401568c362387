//! RDMA ports (`/sys/class/infiniband`).

use serde::{Deserialize, Serialize};

use super::pci::is_pci_address;
use super::{basename, trimmed};
use crate::{Fact, HostError, HostRoot};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rdma {
    pub ports: Fact<Vec<RdmaPort>>,
}

/// One port of an RDMA device (`/sys/class/infiniband/<dev>/ports/<n>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RdmaPort {
    pub device: String,
    pub port: u32,
    /// e.g. `4: ACTIVE`.
    pub state: Fact<String>,
    /// e.g. `5: LinkUp`.
    pub phys_state: Fact<String>,
    /// e.g. `400 Gb/sec (4X NDR)`.
    pub rate: Fact<String>,
    /// `InfiniBand` or `Ethernet` (RoCE).
    pub link_layer: Fact<String>,
    pub pci_address: Option<String>,
}

pub(super) fn gather_rdma(root: &HostRoot) -> Fact<Vec<RdmaPort>> {
    let base = "/sys/class/infiniband";
    let devices = match root.list(base) {
        Ok(d) => d,
        Err(HostError::NotFound { .. }) => return Fact::Known(Vec::new()),
        Err(e) => return e.into(),
    };
    let mut ports = Vec::new();
    for device in devices {
        let pci_address = root
            .read_link(&format!("{base}/{device}/device"))
            .ok()
            .map(|t| basename(&t).to_owned())
            .filter(|a| is_pci_address(a));
        let Ok(numbers) = root.list(&format!("{base}/{device}/ports")) else {
            continue;
        };
        for n in numbers {
            let Ok(port) = n.parse() else { continue };
            let p = format!("{base}/{device}/ports/{n}");
            ports.push(RdmaPort {
                device: device.clone(),
                port,
                state: trimmed(root, &format!("{p}/state")),
                phys_state: trimmed(root, &format!("{p}/phys_state")),
                rate: trimmed(root, &format!("{p}/rate")),
                link_layer: trimmed(root, &format!("{p}/link_layer")),
                pci_address: pci_address.clone(),
            });
        }
    }
    Fact::Known(ports)
}
