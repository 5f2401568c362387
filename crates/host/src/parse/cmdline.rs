//! `/proc/cmdline`: the kernel parameters that decide what osml may tune at run time
//! (`Documentation/admin-guide/kernel-parameters.txt`).

use serde::{Deserialize, Serialize};

use crate::CpuList;

/// The parameters osml cares about; each is `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KernelParams {
    /// CPUs removed from the scheduler's balancing (`isolcpus=[flags,]list`).
    pub isolcpus: Option<CpuList>,
    /// CPUs without the periodic tick (`nohz_full=list`).
    pub nohz_full: Option<CpuList>,
    /// THP mode pinned at boot (`transparent_hugepage=`).
    pub transparent_hugepage: Option<String>,
    /// `numa_balancing=enable|disable`.
    pub numa_balancing: Option<String>,
    /// `iommu=` (GPUDirect RDMA wants `pt`).
    pub iommu: Option<String>,
    /// `intel_iommu=` (`on`, `off`, `sm_on`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_iommu: Option<String>,
    /// `amd_iommu=` (`off`, `pgtbl_v2`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amd_iommu: Option<String>,
    /// `iommu.passthrough=` (`1` is identity mapping, as `iommu=pt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iommu_passthrough: Option<String>,
    /// The devices of `pci=disable_acs_redir=dev[;dev…]`, whose ACS redirect bits the kernel
    /// clears at boot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable_acs_redir: Vec<String>,
    /// `hugepages=` (a boot-time hugetlb pool).
    pub hugepages: Option<String>,
    /// `psi=` (0 turns pressure stall information off).
    pub psi: Option<String>,
}

impl KernelParams {
    /// Parses a command line. Quoted values are not split; unknown parameters are ignored.
    pub fn parse(cmdline: &str) -> Self {
        let mut p = Self::default();
        for word in split_quoted(cmdline) {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, v.trim_matches('"')),
                None => (word.as_str(), ""),
            };
            // The kernel treats `-` and `_` alike in parameter names.
            match key.replace('-', "_").as_str() {
                "isolcpus" => {
                    // Flags such as `domain,managed_irq,` precede the list.
                    let list = value.trim_start_matches(|c: char| {
                        c.is_ascii_alphabetic() || c == '_' || c == ','
                    });
                    p.isolcpus = CpuList::parse(list).ok();
                }
                "nohz_full" => p.nohz_full = CpuList::parse(value).ok(),
                "transparent_hugepage" => p.transparent_hugepage = Some(value.to_owned()),
                "numa_balancing" => p.numa_balancing = Some(value.to_owned()),
                "iommu" => p.iommu = Some(value.to_owned()),
                "intel_iommu" => p.intel_iommu = Some(value.to_owned()),
                "amd_iommu" => p.amd_iommu = Some(value.to_owned()),
                "iommu.passthrough" => p.iommu_passthrough = Some(value.to_owned()),
                // `pci=` takes comma-separated options; this one lists devices by `;`.
                "pci" => {
                    for option in value.split(',') {
                        if let Some(list) = option.strip_prefix("disable_acs_redir=") {
                            p.disable_acs_redir.extend(
                                list.split(';').filter(|d| !d.is_empty()).map(str::to_owned),
                            );
                        }
                    }
                }
                "hugepages" => p.hugepages = Some(value.to_owned()),
                "psi" => p.psi = Some(value.to_owned()),
                _ => {}
            }
        }
        p
    }
}

fn split_quoted(s: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_contents() {
        let p = KernelParams::parse(
            "BOOT_IMAGE=/vmlinuz root=/dev/vda1 isolcpus=domain,managed_irq,2-5 nohz_full=2-5 \
             transparent_hugepage=never numa-balancing=disable iommu=pt acpi=\"a b\"\n",
        );
        assert_eq!(p.isolcpus.unwrap().ids(), &[2, 3, 4, 5]);
        assert_eq!(p.nohz_full.unwrap().ids(), &[2, 3, 4, 5]);
        assert_eq!(p.transparent_hugepage.as_deref(), Some("never"));
        assert_eq!(p.numa_balancing.as_deref(), Some("disable"));
        assert_eq!(p.iommu.as_deref(), Some("pt"));
    }

    #[test]
    fn iommu_and_acs_parameters() {
        let p = KernelParams::parse(
            "intel_iommu=on iommu.passthrough=0 amd_iommu=off \
             pci=noaer,disable_acs_redir=0000:52:00.0;0000:92:00.0,realloc",
        );
        assert_eq!(p.intel_iommu.as_deref(), Some("on"));
        assert_eq!(p.amd_iommu.as_deref(), Some("off"));
        assert_eq!(p.iommu_passthrough.as_deref(), Some("0"));
        assert_eq!(p.iommu, None);
        assert_eq!(p.disable_acs_redir, ["0000:52:00.0", "0000:92:00.0"]);
    }

    #[test]
    fn absent_parameters_stay_none() {
        let p = KernelParams::parse("console=ttyS0 reboot=k panic=1");
        assert_eq!(p, KernelParams::default());
    }
}
