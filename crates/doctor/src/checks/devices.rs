//! GPUs and RDMA: locality and readiness.

use std::collections::BTreeMap;

use osml_host::{CpuList, Fact, PciKind};

use super::{check, Check, Ctx, Verdict};
use crate::Status;

pub const GPU_NUMA: Check = check!(
    "gpu.numa", "GPU NUMA locality", gpu_numa,
    why: "Each rank should run on CPUs of its GPU's NUMA node, so host-to-device copies and pinned buffers stay off the inter-socket link; a GPU whose node is unknown (-1) gets bound to node 0 by torchrun, wrongly for half of the GPUs.",
    source: "torch numa/binding.py (-1 mapped to 0); nvidia-smi topo -m (CPU and NUMA affinity)",
    evidence: ["/sys/bus/pci/devices/*/class", "/sys/bus/pci/devices/*/numa_node", "/sys/bus/pci/devices/*/local_cpulist", "/sys/devices/system/node/node*/cpulist", "/proc/self/status"],
);

fn gpu_numa(cx: &Ctx<'_>) -> Verdict {
    if let Fact::Unknown { unknown, .. } = &cx.host.pci_devices {
        return Verdict::skip(format!("PCI devices unknown: {unknown}"));
    }
    let gpus = cx.host.pci_of(PciKind::Gpu);
    if gpus.is_empty() {
        return Verdict::skip("no GPU on the PCI bus");
    }
    let multi = cx.host.cpu_nodes().len() > 1;
    let allowed = cx.host.cpu.allowed.known();
    let node_cpus = |node: i64| -> Option<CpuList> {
        let nodes = cx.host.numa.known()?;
        nodes
            .iter()
            .find(|n| i64::try_from(n.id).ok() == Some(node))
            .map(|n| n.cpus.clone())
    };
    let mut by_node: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut unknown = Vec::new();
    let mut unreachable = Vec::new();
    for g in &gpus {
        let node = g.numa_node.known().copied().unwrap_or(-1);
        let key = if node < 0 {
            "unknown".to_owned()
        } else {
            format!("node{node}")
        };
        by_node.entry(key).or_default().push(&g.address);
        if node < 0 {
            unknown.push(g.address.as_str());
        }
        let local = g
            .local_cpus
            .known()
            .cloned()
            .filter(|l| !l.is_empty())
            .or_else(|| node_cpus(node));
        if let (Some(local), Some(allowed)) = (local, allowed) {
            if local.intersection(allowed).is_empty() {
                unreachable.push(format!("{} (local CPUs {local})", g.address));
            }
        }
    }
    let observed = format!(
        "{} GPU(s): {}",
        gpus.len(),
        by_node
            .iter()
            .map(|(n, a)| format!("{n}: {}", a.join(" ")))
            .collect::<Vec<_>>()
            .join("; ")
    );
    let observed = if multi || unknown.is_empty() {
        observed
    } else {
        format!("{observed} (one NUMA node: every CPU is local)")
    };
    let expected = "every GPU on a known node, with allowed CPUs on that node";
    if !unreachable.is_empty() {
        return Verdict::new(
            Status::Fail,
            format!("{observed}; no allowed CPU is local to {}", unreachable.join(", ")),
            expected,
        )
        .fix(
            "run the job with CPUs of each GPU's node in its affinity (taskset/numactl, or the scheduler's CPU binding)",
            "widen the job's cpuset (Slurm --cpu-bind, Kubernetes CPU manager policy) to include each GPU's local CPUs",
        );
    }
    if multi && !unknown.is_empty() {
        return Verdict::new(Status::Warn, observed, expected)
            .fix(
                "bind ranks by the GPU's local_cpulist instead of numa_node, or pass the CPU list explicitly",
                "enable ACPI _PXM / SRAT reporting in the BIOS (\"NUMA per socket\"), or a kernel that exposes numa_node for these devices",
            );
    }
    Verdict::new(Status::Pass, observed, expected)
}

pub const RDMA_PORTS: Check = check!(
    "rdma.ports", "RDMA ports", rdma_ports,
    why: "NCCL spreads inter-node traffic over every RDMA port it finds; a port that is down or trained to a lower rate slows every collective to its speed, or makes NCCL fall back to TCP sockets.",
    source: "NHC check_hw_ib (state ACTIVE, phys_state LinkUp, rate); azurehpc-health-checks conf (400 Gb/s per port)",
    evidence: ["/sys/class/infiniband/*/ports/*/state", "/sys/class/infiniband/*/ports/*/phys_state", "/sys/class/infiniband/*/ports/*/rate", "/sys/class/infiniband/*/ports/*/link_layer"],
);

fn rdma_ports(cx: &Ctx<'_>) -> Verdict {
    let ports = match &cx.host.rdma.ports {
        Fact::Known(p) if !p.is_empty() => p,
        Fact::Known(_) => {
            return Verdict::skip("no RDMA devices (/sys/class/infiniband is empty or absent)")
        }
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let show = |f: &Fact<String>| f.known().cloned().unwrap_or_else(|| "?".into());
    let observed = ports
        .iter()
        .map(|p| {
            format!(
                "{}/{} {} {} {}",
                p.device,
                p.port,
                show(&p.state),
                show(&p.phys_state),
                show(&p.rate)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let down: Vec<String> = ports
        .iter()
        .filter(|p| {
            !p.state.known().is_some_and(|s| s.contains("ACTIVE"))
                || !p.phys_state.known().is_some_and(|s| s.contains("LinkUp"))
        })
        .map(|p| format!("{}/{}", p.device, p.port))
        .collect();
    let expected = "every port ACTIVE / LinkUp at one rate";
    if !down.is_empty() {
        return Verdict::new(Status::Fail, observed, expected).fix(
            format!("check cabling and the subnet manager for {}: `ibstat`, `ibv_devinfo`, `sminfo`", down.join(", ")),
            "bring the links up at the switch or the subnet manager (opensm); drain the node until then",
        );
    }
    let mut rates: Vec<String> = ports
        .iter()
        .filter_map(|p| p.rate.known().cloned())
        .collect();
    rates.sort();
    rates.dedup();
    if rates.len() > 1 {
        return Verdict::new(Status::Warn, observed, expected)
            .why("Ports trained at different rates: collectives run at the pace of the slowest port.")
            .fix("`ibstat` on each port; reseat or replace the cable of the slow one", "none at run time: a hardware or switch fix");
    }
    Verdict::new(Status::Pass, observed, expected)
}

pub const RDMA_PEERMEM: Check = check!(
    "rdma.peermem", "GPUDirect RDMA (nvidia_peermem)", rdma_peermem,
    why: "Without the nvidia_peermem module the NIC cannot read GPU memory directly, so NCCL stages every inter-node transfer through host memory, costing PCIe bandwidth and latency.",
    source: "NCCL GPUDirect RDMA troubleshooting; NVIDIA GPUDirect RDMA docs (nvidia-peermem)",
    evidence: ["/proc/modules", "/sys/class/infiniband", "/sys/bus/pci/devices/*/class", "/proc/cmdline"],
);

fn rdma_peermem(cx: &Ctx<'_>) -> Verdict {
    let nvidia_gpus = cx
        .host
        .pci_of(PciKind::Gpu)
        .iter()
        .filter(|g| g.vendor == 0x10de)
        .count();
    let rdma = cx.host.rdma.ports.known().map_or(0, Vec::len);
    if nvidia_gpus == 0 || rdma == 0 {
        return Verdict::skip(format!(
            "needs NVIDIA GPUs and RDMA ports (found {nvidia_gpus} and {rdma})"
        ));
    }
    let modules = match &cx.host.kernel.modules {
        Fact::Known(m) => m,
        f @ Fact::Unknown { .. } => return Verdict::unknown(f),
    };
    let loaded = |name: &str| modules.iter().any(|m| m == name);
    let iommu = cx.host.kernel.params.iommu.as_deref();
    let observed = format!(
        "nvidia {}, nvidia_peermem {}{}",
        if loaded("nvidia") {
            "loaded"
        } else {
            "not loaded"
        },
        if loaded("nvidia_peermem") || loaded("nv_peer_mem") {
            "loaded"
        } else {
            "not loaded"
        },
        iommu.map_or_else(String::new, |i| format!(", iommu={i}"))
    );
    if loaded("nvidia_peermem") || loaded("nv_peer_mem") {
        return Verdict::new(Status::Pass, observed, "nvidia_peermem loaded");
    }
    Verdict::new(Status::Warn, observed, "nvidia_peermem loaded").fix(
        "modprobe nvidia_peermem",
        "echo nvidia_peermem > /etc/modules-load.d/nvidia-peermem.conf",
    )
}
pub const PCI_LINK: Check = check!(
    "pci.link", "PCIe link speed and width", pci_link,
    why: "A GPU, NIC or NVMe drive that trained at fewer lanes or a lower speed than it and its port support moves data at a fraction of its bandwidth (x16 Gen2 is 8 GB/s instead of 64) with nothing logged; a narrower link is a seating, riser or slot fault, a slower one can also be a GPU saving power at idle.",
    source: "sysfs current_link_speed/width against max_link_speed/width of the device and of its port (Documentation/ABI/testing/sysfs-bus-pci); osml judgment: narrower fails, slower warns",
    evidence: ["/sys/bus/pci/devices/*/current_link_speed", "/sys/bus/pci/devices/*/current_link_width", "/sys/bus/pci/devices/*/max_link_speed", "/sys/bus/pci/devices/*/max_link_width"],
);

/// `32.0 GT/s PCIe` (or the older `8 GT/s`) in GT/s.
fn gts(speed: &str) -> Option<f64> {
    speed.split_whitespace().next()?.parse().ok()
}

/// One link judged: the device, what it trained at, what it and its port support.
struct LinkState {
    address: String,
    kind: PciKind,
    speed: f64,
    width: u32,
    max_speed: f64,
    max_width: u32,
}

fn links(cx: &Ctx<'_>) -> Vec<LinkState> {
    let Some(devices) = cx.host.pci_devices.known() else {
        return Vec::new();
    };
    let by_address: BTreeMap<&str, &osml_host::PciDevice> =
        devices.iter().map(|d| (d.address.as_str(), d)).collect();
    let mut out = Vec::new();
    for d in cx.host.data_path_devices() {
        let address = d.address.as_str();
        // A device an odd number of bridges down (under a root port, or under a switch's
        // downstream port) reports the link above it; the ports in between report the link
        // below them, which is judged at the device there.
        let Some(port) = d.bridges.last().and_then(|b| by_address.get(b.as_str())) else {
            continue;
        };
        if d.bridges.len() % 2 == 0 {
            continue;
        }
        let (Some(speed), Some(width), Some(max_speed), Some(max_width)) = (
            d.link_speed.known().and_then(|s| gts(s)),
            d.link_width.known().copied(),
            d.max_link_speed.known().and_then(|s| gts(s)),
            d.max_link_width.known().copied(),
        ) else {
            continue;
        };
        // The port's capability bounds what the link can reach.
        let port_speed = port
            .max_link_speed
            .known()
            .and_then(|s| gts(s))
            .unwrap_or(max_speed);
        let port_width = port.max_link_width.known().copied().unwrap_or(max_width);
        out.push(LinkState {
            address: address.to_owned(),
            kind: d.kind,
            speed,
            width,
            max_speed: max_speed.min(port_speed),
            max_width: max_width.min(port_width),
        });
    }
    out
}

fn pci_link(cx: &Ctx<'_>) -> Verdict {
    if let f @ Fact::Unknown { .. } = &cx.host.pci_devices {
        return Verdict::unknown(f);
    }
    let all = links(cx);
    if all.is_empty() {
        return Verdict::skip(
            "no PCIe link to judge: no GPU, NIC or NVMe drive with link attributes (a VM's virtual devices have none)",
        );
    }
    let kind = |k: PciKind| match k {
        PciKind::Gpu => "GPU",
        PciKind::Nic => "NIC",
        PciKind::Nvme => "NVMe",
        _ => "bridge",
    };
    let narrow: Vec<String> = all
        .iter()
        .filter(|l| l.width < l.max_width)
        .map(|l| {
            format!(
                "{} {} x{} of x{}",
                kind(l.kind),
                l.address,
                l.width,
                l.max_width
            )
        })
        .collect();
    let slow: Vec<&LinkState> = all
        .iter()
        .filter(|l| l.speed + 1e-9 < l.max_speed)
        .collect();
    let slow_text: Vec<String> = slow
        .iter()
        .map(|l| {
            format!(
                "{} {} {} GT/s of {}",
                kind(l.kind),
                l.address,
                l.speed,
                l.max_speed
            )
        })
        .collect();
    let expected = "every link at its device's and port's maximum speed and width".to_owned();
    if narrow.is_empty() && slow.is_empty() {
        return Verdict::new(
            Status::Pass,
            format!("{} link(s) at full speed and width", all.len()),
            expected,
        );
    }
    let observed = narrow
        .iter()
        .chain(&slow_text)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let idle_gpus = slow.iter().any(|l| l.kind == PciKind::Gpu);
    let mut v = Verdict::new(
        if narrow.is_empty() {
            Status::Warn
        } else {
            Status::Fail
        },
        observed,
        expected,
    );
    if idle_gpus && narrow.is_empty() {
        v = v.why("A GPU saves power by lowering its link speed when idle, so a slow GPU link may be normal at rest; one that stays slow under load moves data at a fraction of its bandwidth with nothing logged.");
    }
    v.fix(
        "confirm under load: `nvidia-smi -q -d PCIE` (Link Width/Generation, Current vs Max) or `lspci -vv -s ADDRESS` (LnkSta vs LnkCap) while a job runs; a narrower link: reseat the card, check the riser or cable and the slot's lanes in the BIOS",
        "after reseating, `osml doctor --only pci.link` on every boot (a fleet: --format prometheus); `osml doctor compare` shows hosts whose links differ",
    )
}
