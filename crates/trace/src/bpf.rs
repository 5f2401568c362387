//! Counting a process tree's system calls with BPF (`--syscalls=bpf`, and `auto`'s first
//! choice): [`osml_sys::bpf::SyscallTally`] counts, in the kernel, every call of the traced
//! processes and of everything they start (its fork program adds each child and thread from
//! its first instruction), by number and by process. Exact per-process figures, every call by
//! name, and no per-task counter: the job's context switches cost nothing more, and attaching
//! and detaching take a few milliseconds where closing hundreds of perf counters takes
//! seconds. Each system call of the host pays one hash lookup while the trace runs.
//! Time spent in system calls is not measured in this mode.

use std::collections::BTreeSet;

use osml_host::{CpuList, HostRoot};
use osml_sys::bpf::{BpfError, SyscallTally, SLOTS};

use crate::kernel::{Coverage, NameSet, Unavailable, ESSENTIAL};
use crate::syscalls::{SyscallCounts, SyscallStat};

/// What loading the programs needs from tracefs and sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setup {
    /// `sched:sched_process_fork`'s id and the offset of `child_pid` in its record.
    fork_id: u64,
    child_pid_offset: u16,
    /// Possible CPUs: the per-CPU counters of a map come back one per possible CPU.
    cpus: usize,
}

/// Reads the fork tracepoint's id and record layout (tracefs) and the possible CPUs.
pub fn setup(host: &HostRoot) -> Result<Setup, Unavailable> {
    let mut found = None;
    for t in crate::kernel::TRACEFS {
        let dir = format!("{t}/events/sched/sched_process_fork");
        if let (Ok(id), Ok(format)) = (
            host.read_trimmed(&format!("{dir}/id")),
            host.read(&format!("{dir}/format")),
        ) {
            found = Some((id, format));
            break;
        }
    }
    let Some((id, format)) = found else {
        return Err(match crate::kernel::tracefs_unavailable(host) {
            Unavailable::TracefsUnreadable => Unavailable::Bpf(
                "tracefs (/sys/kernel/tracing) is not readable by this user (it is root's by default): BPF needs root, or CAP_BPF and CAP_PERFMON"
                    .into(),
            ),
            other => other,
        });
    };
    let offset = child_pid_offset(&format);
    let (Ok(fork_id), Some(child_pid_offset)) = (id.parse(), offset) else {
        return Err(Unavailable::Bpf(
            "sched_process_fork's tracefs format has no child_pid field".into(),
        ));
    };
    let cpus = host
        .read_trimmed("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|t| CpuList::parse(&t).ok())
        .map_or(1, |l| l.len());
    Ok(Setup {
        fork_id,
        child_pid_offset,
        cpus,
    })
}

/// The offset of `child_pid` in a tracefs `format` (`field:pid_t child_pid; offset:20; …`).
fn child_pid_offset(format: &str) -> Option<u16> {
    format
        .lines()
        .find(|l| l.contains(" child_pid;"))?
        .split("offset:")
        .nth(1)?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// The name of system call `nr` on this architecture, as ptrace mode and strace give it.
fn name(nr: u32) -> Option<&'static str> {
    if nr >= SLOTS - 1 {
        return None;
    }
    syscalls::Sysno::new(nr as usize).map(|s| s.name())
}

/// The tally of a traced tree.
pub struct BpfCounter {
    tally: SyscallTally,
    names: NameSet,
    added: BTreeSet<i32>,
    coverage: Coverage,
}

impl BpfCounter {
    /// Loads and attaches the programs; nothing is counted until [`BpfCounter::add`].
    pub fn open(setup: &Setup, names: NameSet) -> Result<Self, Unavailable> {
        let tally =
            SyscallTally::open(setup.fork_id, setup.child_pid_offset, setup.cpus).map_err(|e| {
                let denied = matches!(&e, BpfError::Sys(osml_sys::SysError::Call { error, .. })
                    if matches!(error.raw_os_error(), Some(libc::EPERM | libc::EACCES)));
                Unavailable::Bpf(if denied {
                    format!("{e}: BPF needs root, or CAP_BPF and CAP_PERFMON")
                } else {
                    e.to_string()
                })
            })?;
        let known = (0..SLOTS).filter(|&nr| name(nr).is_some()).count();
        Ok(Self {
            tally,
            names,
            added: BTreeSet::new(),
            coverage: Coverage {
                counted_by_name: match names {
                    NameSet::All => known,
                    NameSet::Common => ESSENTIAL.len(),
                    NameSet::None => 0,
                },
                tracepoints: known,
                ..Coverage::default()
            },
        })
    }

    /// Counts the processes of `tasks` (process id, thread id) from now on, and what they
    /// start.
    pub fn add(&mut self, tasks: &[(i32, i32)]) -> Result<(), Unavailable> {
        for &(tgid, _) in tasks {
            if self.added.insert(tgid) {
                self.tally
                    .add(tgid)
                    .map_err(|e| Unavailable::Bpf(e.to_string()))?;
                self.coverage.tasks += 1;
            }
        }
        Ok(())
    }

    /// Adds the processes of `tasks` not yet counted (found by the sampler: started while the
    /// tree was being attached, before their parent was counted); each is a late task.
    pub fn watch(&mut self, tasks: &[(i32, i32)]) {
        for &(tgid, _) in tasks {
            // Those the fork program added are in the set already: not late.
            if self.added.insert(tgid) && !self.tally.contains(tgid) && self.tally.add(tgid).is_ok()
            {
                self.coverage.late_tasks += 1;
            }
        }
    }

    /// The counts by name (as `--syscall-names` asks; `other` for the rest) and by process.
    /// `execve_of`: the process whose `execve` completed before it was added (the command),
    /// counted once as ptrace mode counts it.
    pub fn finish(mut self, execve_of: Option<i32>) -> (SyscallCounts, Coverage) {
        let mut counts = SyscallCounts::default();
        let mut other = 0;
        for (nr, n) in self.tally.by_number() {
            // A number this osml has no name for is `syscall_N`, as ptrace mode has it; the
            // overflow slot is `other`.
            let named = match (self.names, name(nr)) {
                (_, None) if nr >= SLOTS - 1 => None,
                (NameSet::All, None) => Some(format!("syscall_{nr}")),
                (NameSet::All, Some(s)) => Some(s.to_owned()),
                (NameSet::Common, Some(s)) if ESSENTIAL.contains(&s) => Some(s.to_owned()),
                _ => None,
            };
            match named {
                Some(s) => counts.by_name.entry(s).or_default().count += n,
                None => other += n,
            }
        }
        if other > 0 {
            counts.by_name.insert(
                "other".to_owned(),
                SyscallStat {
                    count: other,
                    seconds: 0.0,
                },
            );
        }
        let total: u64 = counts.by_name.values().map(|s| s.count).sum();
        for (pid, n) in self.tally.by_process() {
            *counts.by_pid.entry(pid).or_default() += n;
        }
        let attributed: u64 = counts.by_pid.values().sum();
        self.coverage.unattributed = total.saturating_sub(attributed);
        if let Some(pid) = execve_of {
            counts.by_name.entry("execve".to_owned()).or_default().count += 1;
            *counts.by_pid.entry(pid).or_default() += 1;
        }
        (counts, std::mem::take(&mut self.coverage))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_fork_records_child_pid_offset() {
        let format = "name: sched_process_fork\nID: 366\nformat:\n\
            \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
            \tfield:__data_loc char[] parent_comm;\toffset:8;\tsize:4;\tsigned:0;\n\
            \tfield:pid_t parent_pid;\toffset:12;\tsize:4;\tsigned:1;\n\
            \tfield:pid_t child_pid;\toffset:20;\tsize:4;\tsigned:1;\n";
        assert_eq!(super::child_pid_offset(format), Some(20));
        // Older kernels: comm arrays inline, child_pid at 44.
        assert_eq!(
            super::child_pid_offset("\tfield:pid_t child_pid;\toffset:44;\tsize:4;\tsigned:1;"),
            Some(44)
        );
        assert_eq!(super::child_pid_offset("no such field"), None);
    }

    #[test]
    fn numbers_are_named_as_ptrace_names_them() {
        let getppid = u32::try_from(libc::SYS_getppid).unwrap();
        assert_eq!(super::name(getppid), Some("getppid"));
        assert_eq!(
            super::name(super::SLOTS - 1),
            None,
            "the overflow slot is other"
        );
    }
}
