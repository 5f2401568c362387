//! One process's virtual memory explained: regions grouped (heap, anonymous, stacks, files —
//! datasets and libraries named —, shared memory, kernel), RSS, PSS, USS and swap per group,
//! transparent huge pages, page-table size, the overcommit policy, the cgroup limit and what
//! the OOM killer sees.

use std::collections::BTreeMap;

use osml_host::HostRoot;
use procfs::process::MMapPath;
use serde::Serialize;

use crate::TraceError;

/// Memory of a set of regions, in bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    pub regions: usize,
    /// Virtual size.
    pub size_bytes: u64,
    pub rss_bytes: u64,
    pub pss_bytes: u64,
    /// Private clean + dirty: freed if the process exits.
    pub uss_bytes: u64,
    pub swap_bytes: u64,
    pub anon_huge_bytes: u64,
}

impl Usage {
    fn add(&mut self, m: &BTreeMap<&str, u64>, size: u64) {
        let g = |k: &str| m.get(k).copied().unwrap_or(0);
        self.regions += 1;
        self.size_bytes += size;
        self.rss_bytes += g("Rss");
        self.pss_bytes += g("Pss");
        self.uss_bytes += g("Private_Clean") + g("Private_Dirty");
        self.swap_bytes += g("Swap");
        self.anon_huge_bytes += g("AnonHugePages");
    }
}

/// A file mapped by the process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MappedFile {
    pub path: String,
    /// `library`, `executable`, `dataset` (a token or array file format osml knows) or `file`.
    pub kind: &'static str,
    #[serde(flatten)]
    pub usage: Usage,
}

/// The whole explanation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemReport {
    pub pid: i32,
    pub cmd: String,
    /// Group name → usage: heap, anonymous, stack, file, shared memory, kernel.
    pub groups: BTreeMap<&'static str, Usage>,
    pub total: Usage,
    /// Files by RSS, largest first.
    pub files: Vec<MappedFile>,
    pub page_tables_bytes: Option<u64>,
    pub thp_bytes: u64,
    pub overcommit_memory: Option<String>,
    pub commit_limit_bytes: Option<u64>,
    pub committed_bytes: Option<u64>,
    pub cgroup_limit_bytes: Option<u64>,
    pub cgroup_usage_bytes: Option<u64>,
    pub oom_score: Option<i64>,
    pub oom_score_adj: Option<i64>,
    /// What the OOM killer would see, in words.
    pub oom_explained: String,
}

const DATASET_SUFFIXES: &[&str] = &[
    ".bin",
    ".idx",
    ".npy",
    ".npz",
    ".arrow",
    ".parquet",
    ".mds",
    ".litdata",
    ".beton",
    ".tar",
    ".safetensors",
    ".pt",
    ".ckpt",
];

fn file_kind(path: &str, exe: Option<&str>) -> &'static str {
    // File names are compared as the kernel shows them; lower-case for the suffix checks.
    let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
    let name = name.as_str();
    if Some(path) == exe {
        "executable"
    } else if std::path::Path::new(name)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("so"))
        || name
            .split_once(".so.")
            .is_some_and(|(_, v)| v.starts_with(|c: char| c.is_ascii_digit()))
    {
        "library"
    } else if DATASET_SUFFIXES.iter().any(|s| name.ends_with(s)) {
        "dataset"
    } else {
        "file"
    }
}

fn group_of(p: &MMapPath) -> &'static str {
    match p {
        MMapPath::Heap => "heap",
        MMapPath::Stack | MMapPath::TStack(_) => "stack",
        MMapPath::Vdso | MMapPath::Vvar | MMapPath::Vsyscall => "kernel",
        MMapPath::Vsys(_) => "shared memory",
        MMapPath::Path(path) => {
            let s = path.to_string_lossy();
            if s.starts_with("/dev/shm/") || s.starts_with("/memfd:") || s.starts_with("/SYSV") {
                "shared memory"
            } else {
                "file"
            }
        }
        MMapPath::Other(o) if o.starts_with("memfd:") => "shared memory",
        MMapPath::Anonymous | MMapPath::Rollup | MMapPath::Other(_) => "anonymous",
    }
}

fn kb_line(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|v| v * 1024)
}

/// What the kernel's OOM score is made of, read from `/proc/PID/status` and `/proc/meminfo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OomInputs {
    /// `/proc/PID/oom_score`.
    pub score: Option<i64>,
    /// `/proc/PID/oom_score_adj`, -1000 ..= 1000.
    pub adj: Option<i64>,
    /// `VmRSS`, `VmSwap`, `VmPTE` of the status file: what `oom_badness` counts.
    pub rss_bytes: u64,
    pub swap_bytes: u64,
    pub page_tables_bytes: u64,
    /// `MemTotal` and `SwapTotal`: the "total pages" the score is a share of.
    pub ram_bytes: Option<u64>,
    pub swap_total_bytes: Option<u64>,
}

impl OomInputs {
    /// Reads them from a process's `status`, `oom_score`, `oom_score_adj` and the host's
    /// `meminfo` text.
    pub fn parse(status: &str, score: &str, adj: &str, meminfo: &str) -> Self {
        Self {
            score: score.trim().parse().ok(),
            adj: adj.trim().parse().ok(),
            rss_bytes: kb_line(status, "VmRSS:").unwrap_or(0),
            swap_bytes: kb_line(status, "VmSwap:").unwrap_or(0),
            page_tables_bytes: kb_line(status, "VmPTE:").unwrap_or(0),
            ram_bytes: kb_line(meminfo, "MemTotal:"),
            swap_total_bytes: kb_line(meminfo, "SwapTotal:"),
        }
    }

    /// The process's memory (RSS + swap + page tables) in per mille of RAM + swap, as the
    /// kernel rounds it (down).
    pub fn permille(&self) -> Option<i64> {
        let total = self.ram_bytes? + self.swap_total_bytes.unwrap_or(0);
        let used = self.rss_bytes + self.swap_bytes + self.page_tables_bytes;
        (total > 0)
            .then(|| i64::try_from(u128::from(used) * 1000 / u128::from(total)).unwrap_or(i64::MAX))
    }

    /// The score the kernel's formula gives for these inputs (see [`explain_oom`]).
    pub fn expected_score(&self) -> Option<i64> {
        let adj = self.adj.unwrap_or(0);
        if adj == -1000 {
            return Some(0);
        }
        Some((1000 + self.permille()? + adj) * 2 / 3)
    }
}

/// `oom_score` in words.
///
/// Since Linux 5.9 (commit 9066e5cfb73c, "mm, oom: make the calculation of oom badness more
/// accurate"), `oom_badness()` in `mm/oom_kill.c` returns pages, not per mille:
/// `rss + swap entries + page tables / PAGE_SIZE + oom_score_adj × (totalpages / 1000)`, and
/// `proc_oom_score()` in `fs/proc/base.c` shows
/// `(1000 + badness × 1000 / totalpages) × 2 / 3`, with `totalpages` = RAM + swap — the old
/// 0..2000 range (per mille plus adj, offset by 1000) scaled by 2/3. So a process that holds
/// nothing shows 666, each 1 % of RAM + swap adds about 6.7, `oom_score_adj` adds 2/3 of its
/// value, and the range is 0 ..= 1333; 0 means never chosen (`oom_score_adj` -1000, or a
/// kernel thread). The OOM killer kills the highest.
pub fn explain_oom(o: &OomInputs) -> String {
    let hb = |b: u64| crate::report::human_bytes(b as f64);
    let adj = o.adj.unwrap_or(0);
    let score = o.score.map_or_else(|| "?".to_owned(), |s| s.to_string());
    if adj == -1000 {
        return format!(
            "oom_score {score}: oom_score_adj is -1000, so the OOM killer never chooses this process"
        );
    }
    let share = match (o.permille(), o.expected_score()) {
        (Some(p), Some(e)) => format!(
            "here (RSS {} + swap {} + page tables {}) is {p}‰ of RAM + swap ({}), which with oom_score_adj {adj} gives {e}",
            hb(o.rss_bytes),
            hb(o.swap_bytes),
            hb(o.page_tables_bytes),
            hb(o.ram_bytes.unwrap_or(0) + o.swap_total_bytes.unwrap_or(0)),
        ),
        _ => format!("RAM + swap is unknown here; oom_score_adj is {adj}"),
    };
    format!(
        "oom_score {score} of 0..1333: the kernel (5.9 and later) shows 2/3 × (1000 + per mille of RAM + swap held as RSS, swap and page tables + oom_score_adj), so 666 is a process holding nothing and each 1% of memory adds about 6.7; {share}. The OOM killer kills the highest score"
    )
}

/// The process's memory cgroup limit and usage (v2 `memory.max`, else v1
/// `memory.limit_in_bytes`).
fn cgroup_memory(root: &HostRoot, pid: i32) -> (Option<u64>, Option<u64>) {
    let Ok(text) = root.read(&format!("/proc/{pid}/cgroup")) else {
        return (None, None);
    };
    let num = |p: &str| {
        root.read(p).ok().and_then(|t| {
            let t = t.trim();
            // v1 reports "no limit" as a huge page-rounded number.
            t.parse::<u64>().ok().filter(|&v| v < 1 << 62)
        })
    };
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let path = path.trim_end_matches('/');
        if ctrl.split(',').any(|c| c == "memory") {
            let base = format!("/sys/fs/cgroup/memory{path}");
            return (
                num(&format!("{base}/memory.limit_in_bytes")),
                num(&format!("{base}/memory.usage_in_bytes")),
            );
        }
        if id == "0" && ctrl.is_empty() {
            let base = format!("/sys/fs/cgroup{path}");
            if root.exists(&format!("{base}/memory.max")) {
                return (
                    num(&format!("{base}/memory.max")),
                    num(&format!("{base}/memory.current")),
                );
            }
        }
    }
    (None, None)
}

/// Reads `/proc/PID/smaps` and the rest, under `host`.
pub fn explain(host: &HostRoot, pid: i32) -> Result<MemReport, TraceError> {
    let p = crate::sample::process(host, pid).ok_or(TraceError::NoSuchProcess(pid))?;
    let maps = p.smaps().map_err(|e| {
        TraceError::Proc(format!(
            "reading /proc/{pid}/smaps: {e} (another user's process needs root)"
        ))
    })?;
    let exe = p.exe().ok().map(|e| e.display().to_string());
    let mut groups: BTreeMap<&'static str, Usage> = BTreeMap::new();
    let mut total = Usage::default();
    let mut files: BTreeMap<String, Usage> = BTreeMap::new();
    for m in &maps.0 {
        let fields: BTreeMap<&str, u64> = m
            .extension
            .map
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        let size = m.address.1.saturating_sub(m.address.0);
        let g = group_of(&m.pathname);
        groups.entry(g).or_default().add(&fields, size);
        total.add(&fields, size);
        if let MMapPath::Path(path) = &m.pathname {
            files
                .entry(path.display().to_string())
                .or_default()
                .add(&fields, size);
        }
    }
    let mut files: Vec<MappedFile> = files
        .into_iter()
        .map(|(path, usage)| MappedFile {
            kind: file_kind(&path, exe.as_deref()),
            path,
            usage,
        })
        .collect();
    files.sort_by_key(|f| std::cmp::Reverse(f.usage.rss_bytes));

    let root = host;
    let status = root
        .read(&format!("/proc/{pid}/status"))
        .unwrap_or_default();
    let meminfo = root.read("/proc/meminfo").unwrap_or_default();
    let num = |path: String| {
        root.read(&path)
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
    };
    let oom_score = num(format!("/proc/{pid}/oom_score"));
    let oom_score_adj = num(format!("/proc/{pid}/oom_score_adj"));
    let (cgroup_limit_bytes, cgroup_usage_bytes) = cgroup_memory(root, pid);
    let page_tables = kb_line(&status, "VmPTE:");
    let oom = OomInputs {
        score: oom_score,
        adj: oom_score_adj,
        ..OomInputs::parse(&status, "", "", &meminfo)
    };
    let oom_explained = format!(
        "{}{}",
        explain_oom(&oom),
        match cgroup_limit_bytes {
            Some(l) => format!(
                "; inside its cgroup the limit is {}, and the cgroup's OOM killer acts first when usage reaches it",
                crate::report::human_bytes(l as f64)
            ),
            None => String::new(),
        }
    );
    Ok(MemReport {
        pid,
        cmd: crate::sample::command(&p),
        thp_bytes: total.anon_huge_bytes,
        groups,
        total,
        files,
        page_tables_bytes: page_tables,
        overcommit_memory: root.read_trimmed("/proc/sys/vm/overcommit_memory").ok(),
        commit_limit_bytes: kb_line(&meminfo, "CommitLimit:"),
        committed_bytes: kb_line(&meminfo, "Committed_AS:"),
        cgroup_limit_bytes,
        cgroup_usage_bytes,
        oom_score,
        oom_score_adj,
        oom_explained,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explains_this_process() {
        // A mapped dataset-like file and a heap allocation, then the report sees both.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.bin");
        std::fs::write(&path, vec![7u8; 4 << 20]).unwrap();
        // SAFETY: the test's own file, not modified while mapped.
        #[allow(unsafe_code)]
        let map = unsafe { osml_sys::MappedFile::open(&path) }.unwrap();
        let sum: u64 = map
            .bytes()
            .iter()
            .step_by(4096)
            .map(|&b| u64::from(b))
            .sum();
        assert_eq!(sum, 7 * 1024);
        let big = vec![1u8; 16 << 20];
        let r = explain(&HostRoot::live(), std::process::id().cast_signed()).unwrap();
        assert!(r.total.rss_bytes >= 16 << 20);
        assert!(r.groups.contains_key("file") && r.groups.contains_key("anonymous"));
        let f = r
            .files
            .iter()
            .find(|f| f.path.ends_with("tokens.bin"))
            .unwrap();
        assert_eq!(f.kind, "dataset");
        assert!(f.usage.rss_bytes >= 4 << 20, "{f:?}");
        assert!(r
            .files
            .iter()
            .any(|f| f.kind == "library" || f.kind == "executable"));
        assert!(r.oom_explained.contains("oom_score_adj"));
        assert!(r.page_tables_bytes.is_some());
        std::hint::black_box(big);
    }

    /// A real process: Python holding 226 MiB on a 6.18 kernel with 23.5 GiB of RAM and no
    /// swap read 672 (the old "per mille" reading would be 9).
    #[test]
    fn oom_score_is_explained_with_the_kernel_formula() {
        let fixture = HostRoot::at(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/oom-226mib"
        ));
        let read = |f: &str| fixture.read(&format!("/{f}")).unwrap();
        let o = OomInputs::parse(
            &read("status"),
            &read("oom_score"),
            &read("oom_score_adj"),
            &read("meminfo"),
        );
        assert_eq!((o.score, o.adj), (Some(672), Some(0)));
        assert_eq!(o.permille(), Some(9));
        assert_eq!(o.expected_score(), o.score);
        let text = explain_oom(&o);
        assert!(text.contains("oom_score 672 of 0..1333"), "{text}");
        assert!(text.contains("is 9‰ of RAM + swap"), "{text}");
        assert!(text.contains("gives 672"), "{text}");
        assert!(!text.contains("score 672 of 1000"), "{text}");
        // oom_score_adj -1000: never chosen, whatever the memory.
        let never = OomInputs {
            score: Some(0),
            adj: Some(-1000),
            ..o
        };
        assert_eq!(never.expected_score(), Some(0));
        assert!(explain_oom(&never).contains("never chooses"));
        // An idle process with oom_score_adj 300 (a browser tab): (1000 + 0 + 300) × 2/3.
        let tab = OomInputs {
            adj: Some(300),
            rss_bytes: 0,
            page_tables_bytes: 0,
            ..o
        };
        assert_eq!(tab.expected_score(), Some(866));
    }

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(matches!(
            explain(&HostRoot::live(), i32::MAX),
            Err(TraceError::NoSuchProcess(_))
        ));
    }

    #[test]
    fn kinds_of_files() {
        assert_eq!(
            file_kind("/usr/lib/x86_64-linux-gnu/libc.so.6", None),
            "library"
        );
        assert_eq!(file_kind("/data/owt_text_document.bin", None), "dataset");
        assert_eq!(
            file_kind("/usr/bin/python3.12", Some("/usr/bin/python3.12")),
            "executable"
        );
        assert_eq!(file_kind("/etc/ld.so.cache", None), "file");
    }
}
