//! The plan: every setting of a profile that osml can apply, its current value, its target and
//! how it persists. Built from the same [`Profile`] table that doctor judges with.

use std::fmt::Write as _;

use osml_doctor::Profile;
use osml_host::parse::sysfs;
use osml_host::{Fact, HostError, HostRoot, HostSnapshot, LimitValue};
use serde::Serialize;

/// How a target compares with the current value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// A minimum: a value already above it is kept (never lowered).
    AtLeast,
    /// A maximum: a value already below it is kept.
    AtMost,
    /// This exact value (or, for a selector file, this choice).
    Exactly,
}

/// How the file shows its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A number or word, one line (`/proc/sys/vm/swappiness`).
    Plain,
    /// Choices with the active one in brackets (`always [madvise] never`); written as the bare
    /// word.
    Selector,
}

/// Where a setting is kept across reboots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Persist {
    /// `key = value` in `/etc/sysctl.d/90-osml.conf`.
    Sysctl { key: String },
    /// `w PATH - - - - VALUE` in `/etc/tmpfiles.d/90-osml.conf` (applied at boot).
    Tmpfiles,
    /// The `/dev/shm` line of `/etc/fstab`.
    Fstab,
}

/// What happens to one setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "action")]
pub enum Action {
    /// Already at target.
    Keep,
    /// Will be written.
    Set,
    /// Not touched: why, as a kind for code and as words for people.
    Skip { kind: SkipKind, reason: String },
}

/// Why a setting is not touched. Code decides on this, never on the reason's wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipKind {
    /// The file does not exist: this kernel has no such setting.
    Absent,
    /// The file exists but cannot be read (permission, I/O).
    Unreadable,
    /// A selector file shows no selected choice.
    NoSelection,
    /// The file or driver does not offer the profile's value.
    NotOffered,
    /// The kernel command line pins it.
    Pinned,
    /// The setting has no effect on this host (`vm.swappiness` without swap).
    NotApplicable,
    /// Changing it needs the live host (a `/dev/shm` remount under `--root`).
    NeedsLiveHost,
}

/// One setting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The doctor check this setting answers.
    pub check: &'static str,
    /// A short name: `vm.swappiness`, `THP enabled`, `read_ahead_kb nvme0n1`…
    pub name: String,
    /// The file written at run time (absolute, inside the root), or `/dev/shm` for a remount.
    pub path: String,
    pub format: Format,
    pub rule: Rule,
    /// The current value (the selected word for selector files), if readable.
    pub current: Option<String>,
    /// The value to write: the profile's target, or the current value where the rule keeps it.
    pub target: String,
    pub action: Action,
    pub persist: Persist,
}

/// A whole file written to persist settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PersistFile {
    pub path: String,
    /// What is there now (`None`: absent).
    pub current: Option<String>,
    pub content: String,
}

impl PersistFile {
    pub fn changes(&self) -> bool {
        self.current.as_deref() != Some(self.content.as_str())
    }
}

/// The plan for a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub profile: &'static str,
    pub root: String,
    pub settings: Vec<Setting>,
    pub files: Vec<PersistFile>,
    /// What osml leaves to the user, and why.
    pub notes: Vec<String>,
}

impl Plan {
    /// Whether applying would change anything.
    pub fn changes(&self) -> bool {
        self.settings.iter().any(|s| s.action == Action::Set)
            || self.files.iter().any(PersistFile::changes)
    }
}

pub const SYSCTL_FILE: &str = "/etc/sysctl.d/90-osml.conf";
pub const TMPFILES_FILE: &str = "/etc/tmpfiles.d/90-osml.conf";
pub const LIMITS_FILE: &str = "/etc/security/limits.d/90-osml.conf";
pub const FSTAB: &str = "/etc/fstab";
const THP: &str = "/sys/kernel/mm/transparent_hugepage";

/// The value a file shows: trimmed, or the selected word (osml-host's parser, the one doctor
/// judges with).
pub fn shown(text: &str, format: Format) -> Option<String> {
    match format {
        Format::Plain => Some(text.trim().to_owned()),
        Format::Selector => sysfs::selected(text).ok(),
    }
}

/// What the rule makes of `current` and `target`: the value to write, and whether it changes.
fn decide(rule: Rule, current: &str, target: &str) -> (String, bool) {
    let num = |s: &str| sysfs::parse_u64(s).ok();
    match (rule, num(current), num(target)) {
        (Rule::AtLeast, Some(c), Some(t)) if c >= t => (current.to_owned(), false),
        (Rule::AtMost, Some(c), Some(t)) if c <= t => (current.to_owned(), false),
        _ => (target.to_owned(), current.trim() != target),
    }
}

struct Builder<'a> {
    root: &'a HostRoot,
    settings: Vec<Setting>,
}

impl Builder<'_> {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        check: &'static str,
        name: &str,
        path: &str,
        format: Format,
        rule: Rule,
        target: &str,
        persist: Persist,
    ) {
        let (current, action, value) = match self.root.read(path) {
            Err(e) => {
                let (kind, reason) = match e {
                    HostError::NotFound { .. } => {
                        (SkipKind::Absent, format!("this kernel has no {path}"))
                    }
                    e => (SkipKind::Unreadable, e.to_string()),
                };
                (None, Action::Skip { kind, reason }, target.to_owned())
            }
            Ok(text) => match shown(&text, format) {
                None => (
                    None,
                    Action::Skip {
                        kind: SkipKind::NoSelection,
                        reason: format!("{path} does not show a selected value: {:?}", text.trim()),
                    },
                    target.to_owned(),
                ),
                Some(cur) => {
                    if format == Format::Selector
                        && !sysfs::choices(&text).iter().any(|c| c == target)
                    {
                        let reason = format!("{path} offers no `{target}` ({})", text.trim());
                        let action = Action::Skip {
                            kind: SkipKind::NotOffered,
                            reason,
                        };
                        (Some(cur), action, target.to_owned())
                    } else {
                        let (value, changes) = decide(rule, &cur, target);
                        let action = if changes { Action::Set } else { Action::Keep };
                        (Some(cur), action, value)
                    }
                }
            },
        };
        self.settings.push(Setting {
            check,
            name: name.to_owned(),
            path: path.to_owned(),
            format,
            rule,
            current,
            target: value,
            action,
            persist,
        });
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

/// Builds the plan for `profile` on the host behind `root`.
pub fn build(root: &HostRoot, host: &HostSnapshot, profile: &'static Profile) -> Plan {
    let mut b = Builder {
        root,
        settings: Vec::new(),
    };
    let mut notes = Vec::new();
    sysctl_settings(&mut b, host, profile, &mut notes);
    thp_settings(&mut b, host, profile);
    governor_settings(&mut b, host, profile);
    block_settings(&mut b, host, profile);
    shm_setting(&mut b, host, profile, &mut notes);
    let mut settings = b.settings;
    let files = persist_files(root, host, profile, &mut settings, &mut notes);
    if host.memory.swap_total_bytes.known().is_some_and(|&s| s > 0) {
        notes.push("swap stays on: osml lowers vm.swappiness but does not run swapoff (it can stall a loaded host); see doctor's mem.swap".to_owned());
    }
    Plan {
        profile: profile.name,
        root: if root.is_live() {
            "/".to_owned()
        } else {
            root.base().display().to_string()
        },
        settings,
        files,
        notes,
    }
}

fn sysctl_settings(
    b: &mut Builder<'_>,
    host: &HostSnapshot,
    profile: &Profile,
    notes: &mut Vec<String>,
) {
    let cpu_nodes = host
        .numa
        .known()
        .map_or(1, |n| n.iter().filter(|x| !x.cpus.is_empty()).count());
    let sysctl = |b: &mut Builder<'_>, check, key: &str, rule, target: String| {
        b.add(
            check,
            key,
            &sysctl_path(key),
            Format::Plain,
            rule,
            &target,
            Persist::Sysctl {
                key: key.to_owned(),
            },
        );
    };
    sysctl(
        b,
        "mem.swappiness",
        "vm.swappiness",
        Rule::AtMost,
        profile.swappiness_max.to_string(),
    );
    // Without swap, reclaim never scans anonymous memory (mm/vmscan.c get_scan_count: "If we
    // have no swap space, do not bother scanning anon folios"), so swappiness has no effect.
    // Doctor's mem.swappiness says the same: not applicable.
    if host.memory.swap_total_bytes.known() == Some(&0) {
        if let Some(s) = b.settings.last_mut().filter(|s| s.action == Action::Set) {
            s.action = Action::Skip {
                kind: SkipKind::NotApplicable,
                reason: "no swap is configured, so vm.swappiness has no effect".to_owned(),
            };
        }
    }
    sysctl(
        b,
        "mem.max_map_count",
        "vm.max_map_count",
        Rule::AtLeast,
        profile.max_map_count_min.to_string(),
    );
    if cpu_nodes > 1 {
        sysctl(
            b,
            "mem.zone_reclaim",
            "vm.zone_reclaim_mode",
            Rule::Exactly,
            "0".to_owned(),
        );
        if profile.numa_balancing_off {
            sysctl(
                b,
                "numa.balancing",
                "kernel.numa_balancing",
                Rule::Exactly,
                "0".to_owned(),
            );
        }
    } else {
        notes.push("one NUMA node with CPUs: vm.zone_reclaim_mode and kernel.numa_balancing are left alone".to_owned());
    }
}

/// THP `enabled` and `defrag`, unless the kernel command line pins them.
fn thp_settings(b: &mut Builder<'_>, host: &HostSnapshot, profile: &Profile) {
    let pinned = host.kernel.params.transparent_hugepage.clone();
    for (check, file, choices) in [
        ("mem.thp", "enabled", profile.thp_enabled),
        ("mem.thp_defrag", "defrag", profile.thp_defrag),
    ] {
        let path = format!("{THP}/{file}");
        let current = b
            .root
            .read(&path)
            .ok()
            .and_then(|t| sysfs::selected(&t).ok());
        // A value the profile accepts is kept; otherwise its first choice is set.
        let target = match &current {
            Some(c) if choices.contains(&c.as_str()) => c.clone(),
            _ => choices[0].to_owned(),
        };
        b.add(
            check,
            &format!("THP {file}"),
            &path,
            Format::Selector,
            Rule::Exactly,
            &target,
            Persist::Tmpfiles,
        );
        if let (Some(p), "enabled") = (&pinned, file) {
            if let Some(s) = b.settings.last_mut() {
                if s.action == Action::Set {
                    s.action = Action::Skip {
                        kind: SkipKind::Pinned,
                        reason: format!("the kernel command line pins transparent_hugepage={p}: change it in the boot loader (osml does not fight it)"),
                    };
                }
            }
        }
    }
}

/// The frequency governor of every CPU that has one.
fn governor_settings(b: &mut Builder<'_>, host: &HostSnapshot, profile: &Profile) {
    let Some(groups) = host.cpu.frequency.known() else {
        return;
    };
    for g in groups {
        for cpu in g.cpus.ids() {
            let base = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
            let available = b
                .root
                .read(&format!("{base}/scaling_available_governors"))
                .unwrap_or_default();
            let before = b.settings.len();
            b.add(
                "cpu.governor",
                &format!("governor cpu{cpu}"),
                &format!("{base}/scaling_governor"),
                Format::Plain,
                Rule::Exactly,
                profile.governor,
                Persist::Tmpfiles,
            );
            if !available.trim().is_empty()
                && !sysfs::choices(&available)
                    .iter()
                    .any(|w| w == profile.governor)
            {
                if let Some(s) = b.settings.get_mut(before) {
                    s.action = Action::Skip {
                        kind: SkipKind::NotOffered,
                        reason: format!(
                            "cpu{cpu}'s driver offers no `{}` governor ({})",
                            profile.governor,
                            available.trim()
                        ),
                    };
                }
            }
        }
    }
}

/// Block devices: read-ahead for sequential dataset reads; no scheduler on NVMe.
fn block_settings(b: &mut Builder<'_>, host: &HostSnapshot, profile: &Profile) {
    let Some(devs) = host.block_devices.known() else {
        return;
    };
    for d in devs {
        if let Some(min) = profile.readahead_min_kb {
            b.add(
                "io.readahead",
                &format!("read_ahead_kb {}", d.name),
                &format!("/sys/block/{}/queue/read_ahead_kb", d.name),
                Format::Plain,
                Rule::AtLeast,
                &min.to_string(),
                Persist::Tmpfiles,
            );
        }
        // NVMe: `none` or `mq-deadline` are kept, anything else (bfq) becomes `none`.
        if let (true, Some(cur)) = (d.name.starts_with("nvme"), d.scheduler.known()) {
            let target = if cur == "none" || cur == "mq-deadline" {
                cur.as_str()
            } else {
                "none"
            };
            b.add(
                "io.scheduler",
                &format!("scheduler {}", d.name),
                &format!("/sys/block/{}/queue/scheduler", d.name),
                Format::Selector,
                Rule::Exactly,
                target,
                Persist::Tmpfiles,
            );
        }
    }
}

/// The `/dev/shm` size: a remount now (live hosts only), the fstab line for boot.
fn shm_setting(
    b: &mut Builder<'_>,
    host: &HostSnapshot,
    profile: &Profile,
    notes: &mut Vec<String>,
) {
    let Fact::Known(_) = &host.shm.mount else {
        notes.push(
            "no tmpfs on /dev/shm: osml does not create one; see doctor's ipc.shm".to_owned(),
        );
        return;
    };
    let size = host
        .shm
        .size_bytes
        .known()
        .copied()
        .or_else(|| host.memory.total_bytes.known().map(|t| t / 2));
    let Some(size) = size else { return };
    // As doctor suggests: a quarter of RAM, between the profile's floor and 64 GiB.
    let want = host.memory.total_bytes.known().map_or(16 << 30, |t| {
        (t / 4).clamp(profile.shm_warn_below, 64 << 30)
    });
    let gib = want.div_ceil(1 << 30);
    let (target, action) = if size >= profile.shm_warn_below {
        (size.to_string(), Action::Keep)
    } else if b.root.is_live() {
        ((gib << 30).to_string(), Action::Set)
    } else {
        (
            (gib << 30).to_string(),
            Action::Skip {
                kind: SkipKind::NeedsLiveHost,
                reason: "a remount needs the live host; under --root only /etc/fstab is written"
                    .to_owned(),
            },
        )
    };
    b.settings.push(Setting {
        check: "ipc.shm",
        name: "/dev/shm size".to_owned(),
        path: "/dev/shm".to_owned(),
        format: Format::Plain,
        rule: Rule::AtLeast,
        current: Some(size.to_string()),
        target,
        action,
        persist: Persist::Fstab,
    });
}

/// The persist files, from every setting that is set or kept (so that a second run writes the
/// same bytes), plus the limits file.
fn persist_files(
    root: &HostRoot,
    host: &HostSnapshot,
    profile: &Profile,
    settings: &mut [Setting],
    notes: &mut Vec<String>,
) -> Vec<PersistFile> {
    let current = |p: &str| root.read(p).ok();
    let applicable =
        |s: &&Setting| !matches!(s.action, Action::Skip { .. }) || s.path == "/dev/shm";
    let mut files = Vec::new();

    let mut sysctl = String::from("# Written by osml tune (profile ");
    sysctl.push_str(profile.name);
    sysctl.push_str("); `osml tune --revert` removes it.\n");
    let mut tmpfiles = sysctl.clone();
    let mut any_sysctl = false;
    let mut any_tmpfiles = false;
    let mut shm_size = None;
    // One glob line for the governors when they all get the same value, as tmpfiles.d allows.
    let governors: Vec<&Setting> = settings
        .iter()
        .filter(applicable)
        .filter(|s| s.check == "cpu.governor")
        .collect();
    let one_governor = governors
        .first()
        .map(|g| g.target.clone())
        .filter(|t| governors.iter().all(|g| &g.target == t));
    if let Some(t) = &one_governor {
        let _ = writeln!(
            tmpfiles,
            "w /sys/devices/system/cpu/cpu*/cpufreq/scaling_governor - - - - {t}"
        );
        any_tmpfiles = true;
    }
    for s in settings.iter().filter(applicable) {
        if one_governor.is_some() && s.check == "cpu.governor" {
            continue;
        }
        match &s.persist {
            Persist::Sysctl { key } => {
                let _ = writeln!(sysctl, "{key} = {}", s.target);
                any_sysctl = true;
            }
            Persist::Tmpfiles => {
                let _ = writeln!(tmpfiles, "w {} - - - - {}", s.path, s.target);
                any_tmpfiles = true;
            }
            Persist::Fstab => {
                if s.target != s.current.clone().unwrap_or_default() || s.action != Action::Keep {
                    shm_size = s.target.parse::<u64>().ok();
                }
            }
        }
    }
    if any_sysctl {
        files.push(PersistFile {
            path: SYSCTL_FILE.to_owned(),
            current: current(SYSCTL_FILE),
            content: sysctl,
        });
    }
    if any_tmpfiles {
        files.push(PersistFile {
            path: TMPFILES_FILE.to_owned(),
            current: current(TMPFILES_FILE),
            content: tmpfiles,
        });
    }

    // Limits: nofile for every profile, memlock where RDMA needs it.
    let mut limits = format!(
        "# Written by osml tune (profile {}); `osml tune --revert` removes it. Applies at the next login.\n",
        profile.name
    );
    // Never below the hard limit sessions already get.
    let nofile = match host.limits.known().map(|l| l.nofile.hard) {
        Some(LimitValue::Value(h)) => h.max(profile.nofile_min),
        _ => profile.nofile_min,
    };
    let _ = writeln!(limits, "* soft nofile {nofile}\n* hard nofile {nofile}");
    let rdma = host.rdma.ports.known().is_some_and(|p| !p.is_empty());
    if rdma {
        limits.push_str("* soft memlock unlimited\n* hard memlock unlimited\n");
    }
    files.push(PersistFile {
        path: LIMITS_FILE.to_owned(),
        current: current(LIMITS_FILE),
        content: limits,
    });
    notes.push("nofile (and memlock, with RDMA) limits apply to sessions started after --apply; this shell keeps its own".to_owned());

    if let Some(size) = shm_size {
        let gib = size.div_ceil(1 << 30);
        let old = current(FSTAB).unwrap_or_default();
        let line = format!("tmpfs /dev/shm tmpfs defaults,size={gib}g 0 0");
        let mut lines: Vec<String> = old
            .lines()
            .filter(|l| {
                l.split_whitespace().nth(1) != Some("/dev/shm") || l.trim_start().starts_with('#')
            })
            .map(str::to_owned)
            .collect();
        lines.push(line);
        files.push(PersistFile {
            path: FSTAB.to_owned(),
            current: current(FSTAB),
            content: lines.join("\n") + "\n",
        });
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_files() {
        assert_eq!(
            shown("always [madvise] never\n", Format::Selector).as_deref(),
            Some("madvise")
        );
        assert_eq!(
            shown("[none] mq-deadline kyber bfq", Format::Selector).as_deref(),
            Some("none")
        );
        assert_eq!(shown("a b", Format::Selector), None);
        assert_eq!(shown(" 60\n", Format::Plain).as_deref(), Some("60"));
    }

    #[test]
    fn rules_never_move_a_value_the_wrong_way() {
        assert_eq!(
            decide(Rule::AtLeast, "65530", "1048576"),
            ("1048576".into(), true)
        );
        assert_eq!(
            decide(Rule::AtLeast, "2097152", "1048576"),
            ("2097152".into(), false)
        );
        assert_eq!(decide(Rule::AtMost, "60", "10"), ("10".into(), true));
        assert_eq!(decide(Rule::AtMost, "1", "10"), ("1".into(), false));
        assert_eq!(decide(Rule::Exactly, "1", "0"), ("0".into(), true));
        assert_eq!(decide(Rule::Exactly, "0", "0"), ("0".into(), false));
        assert_eq!(
            decide(Rule::Exactly, "powersave", "performance"),
            ("performance".into(), true)
        );
    }
}
