//! Pure parsers, one per file they read, each a function of text. None of them panics on any
//! input (a property test feeds them arbitrary strings).

pub mod buddyinfo;
pub mod cgroup;
pub mod cmdline;
pub mod cpuinfo;
pub mod kmsg;
pub mod limits;
pub mod meminfo;
pub mod modules;
pub mod mounts;
pub mod pci_config;
pub mod pressure;
pub mod status;
pub mod swaps;
pub mod sysfs;

#[cfg(test)]
mod never_panic {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn no_parser_panics(s in "(\\PC|\n|\t| ){0,400}") {
            let _ = super::buddyinfo::parse(&s);
            let _ = super::kmsg::summarise(&s);
            let _ = super::buddyinfo::vmstat(&s, &["thp_fault_alloc"]);
            let _ = super::meminfo::parse_node_field(&s, "MemFree");
            let _ = super::cgroup::parse_proc_self_cgroup(&s);
            let _ = super::cgroup::parse_cpu_max(&s);
            let _ = super::cgroup::parse_limit(&s);
            let _ = super::cmdline::KernelParams::parse(&s);
            let _ = super::cpuinfo::parse(&s);
            let _ = super::limits::parse(&s);
            let _ = super::meminfo::parse(&s);
            let _ = super::meminfo::parse_node_total(&s);
            let _ = super::modules::parse(&s);
            let _ = super::mounts::parse(&s);
            let _ = super::pressure::parse(&s);
            let _ = super::status::cpus_allowed_list(&s);
            let _ = super::swaps::parse(&s);
            let _ = super::sysfs::selected(&s);
            let _ = super::sysfs::parse_u64(&s);
            let _ = super::sysfs::parse_i64(&s);
        }
    }
}
