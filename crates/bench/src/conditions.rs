//! What else happened on the machine while a benchmark ran: time stolen by the hypervisor,
//! CPU-quota throttling of this process's cgroup, and a frequency governor that is not
//! `performance`. Each one turns into a note beside the figure it may have distorted.

use osml_host::parse::cgroup::{parse_proc_self_cgroup, Membership};
use osml_host::HostRoot;

/// Counters read before and after a benchmark. Missing files give `None`: no note, no error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// (steal ticks, all ticks) from the `cpu` line of `/proc/stat`.
    pub steal: Option<(u64, u64)>,
    /// `nr_throttled` of this process's cgroup `cpu.stat` (v1 or v2).
    pub throttled: Option<u64>,
}

/// The aggregate `cpu` line of `/proc/stat`: (steal, total) ticks.
pub fn parse_stat_steal(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    // user nice system idle iowait irq softirq steal [guest guest_nice]; guest time is
    // already counted in user, so the total stops at steal.
    let steal = *v.get(7)?;
    Some((steal, v.iter().take(8).sum()))
}

/// `nr_throttled` from a `cpu.stat` file (same key in v1 and v2).
pub fn parse_nr_throttled(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("nr_throttled "))
        .and_then(|v| v.trim().parse().ok())
}

/// Where this process's `cpu.stat` lives: the v1 `cpu` hierarchy (mounted as `cpu` or
/// `cpu,cpuacct`), else the unified v2 one.
fn cpu_stat_paths(memberships: &[Membership]) -> Vec<String> {
    let mut out = Vec::new();
    for m in memberships {
        let path = m.path.trim_end_matches('/');
        if m.controllers.iter().any(|c| c == "cpu") {
            for mount in ["cpu", "cpu,cpuacct", "cpuacct,cpu"] {
                out.push(format!("/sys/fs/cgroup/{mount}{path}/cpu.stat"));
            }
        } else if m.hierarchy == 0 && m.controllers.is_empty() {
            out.push(format!("/sys/fs/cgroup{path}/cpu.stat"));
        }
    }
    out
}

impl Counters {
    pub fn read(root: &HostRoot) -> Self {
        let steal = root
            .read("/proc/stat")
            .ok()
            .and_then(|t| parse_stat_steal(&t));
        let throttled = root
            .read("/proc/self/cgroup")
            .ok()
            .and_then(|t| parse_proc_self_cgroup(&t).ok())
            .and_then(|m| {
                cpu_stat_paths(&m)
                    .iter()
                    .find_map(|p| root.read(p).ok().and_then(|t| parse_nr_throttled(&t)))
            });
        Self { steal, throttled }
    }

    /// Notes on what happened between `self` (before) and `after`.
    pub fn notes(&self, after: &Self) -> Vec<String> {
        let mut notes = Vec::new();
        if let (Some((s0, t0)), Some((s1, t1))) = (self.steal, after.steal) {
            let (ds, dt) = (s1.saturating_sub(s0), t1.saturating_sub(t0));
            if dt > 0 && ds * 50 > dt {
                notes.push(format!(
                    "the hypervisor stole {:.0}% of CPU time during the run",
                    100.0 * ds as f64 / dt as f64
                ));
            }
        }
        if let (Some(a), Some(b)) = (self.throttled, after.throttled) {
            if b > a {
                notes.push(format!(
                    "this cgroup's CPU quota throttled it {} times during the run",
                    b - a
                ));
            }
        }
        notes
    }
}

/// A note when a CPU this process may use scales its frequency with load (governor other than
/// `performance`): short CPU-bound figures then depend on how busy the CPU just was.
pub fn governor_note(root: &HostRoot, cpus: &[usize]) -> Option<String> {
    let mut others: Vec<String> = cpus
        .iter()
        .filter_map(|c| {
            root.read_trimmed(&format!(
                "/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
            ))
            .ok()
        })
        .filter(|g| g != "performance")
        .collect();
    others.sort();
    others.dedup();
    (!others.is_empty()).then(|| {
        format!(
            "frequency scaling: governor `{}`, not `performance` (osml tune sets it)",
            others.join("`, `")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steal_from_proc_stat() {
        let text = "cpu  100 0 50 800 10 5 5 30 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 1\n";
        assert_eq!(parse_stat_steal(text), Some((30, 1000)));
        assert_eq!(
            parse_stat_steal("cpu  1 2 3\n"),
            None,
            "too old to have steal"
        );
        assert_eq!(parse_stat_steal("garbage"), None);
    }

    #[test]
    fn throttling_from_cpu_stat() {
        let v1 = "nr_periods 10\nnr_throttled 3\nthrottled_time 123\n";
        assert_eq!(parse_nr_throttled(v1), Some(3));
        let v2 = "usage_usec 5\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n";
        assert_eq!(parse_nr_throttled(v2), Some(0));
        assert_eq!(parse_nr_throttled("usage_usec 5\n"), None);
    }

    #[test]
    fn notes_only_for_what_changed() {
        let before = Counters {
            steal: Some((0, 1000)),
            throttled: Some(2),
        };
        let calm = Counters {
            steal: Some((10, 2000)),
            throttled: Some(2),
        };
        assert!(before.notes(&calm).is_empty(), "1% steal is noise");
        let busy = Counters {
            steal: Some((200, 2000)),
            throttled: Some(7),
        };
        let notes = before.notes(&busy);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("stole 20%"), "{notes:?}");
        assert!(notes[1].contains("throttled it 5 times"), "{notes:?}");
        assert!(Counters::default().notes(&busy).is_empty());
    }

    #[test]
    fn cpu_stat_paths_for_v1_and_v2() {
        let m = parse_proc_self_cgroup("4:cpu,cpuacct:/job\n0::/user.slice\n").unwrap();
        let p = cpu_stat_paths(&m);
        assert!(p.contains(&"/sys/fs/cgroup/cpu,cpuacct/job/cpu.stat".to_owned()));
        assert!(p.contains(&"/sys/fs/cgroup/user.slice/cpu.stat".to_owned()));
        let root = parse_proc_self_cgroup("0::/\n").unwrap();
        assert_eq!(cpu_stat_paths(&root), ["/sys/fs/cgroup/cpu.stat"]);
    }

    #[test]
    fn governor_note_from_a_fixture_root() {
        let dir = tempfile::tempdir().unwrap();
        for (cpu, g) in [(0, "performance"), (1, "powersave")] {
            let d = dir
                .path()
                .join(format!("sys/devices/system/cpu/cpu{cpu}/cpufreq"));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("scaling_governor"), format!("{g}\n")).unwrap();
        }
        let root = HostRoot::at(dir.path());
        let note = governor_note(&root, &[0, 1]).unwrap();
        assert!(note.contains("`powersave`"), "{note}");
        assert_eq!(governor_note(&root, &[0]), None);
        assert_eq!(
            governor_note(&root, &[5]),
            None,
            "no cpufreq: nothing to say"
        );
    }
}
