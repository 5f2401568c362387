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
    fn absent_parameters_stay_none() {
        let p = KernelParams::parse("console=ttyS0 reboot=k panic=1");
        assert_eq!(p, KernelParams::default());
    }
}
