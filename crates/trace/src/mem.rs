//! One process's virtual memory explained: regions grouped (heap, anonymous, stacks, files —
//! datasets and libraries named —, shared memory, kernel), RSS, PSS, USS and swap per group,
//! transparent huge pages, page-table size, the overcommit policy, the cgroup limit and what
//! the OOM killer sees.

use std::collections::BTreeMap;

use osml_host::HostRoot;
use procfs::process::{MMapPath, Process};
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

/// Reads `/proc/PID/smaps` and the rest.
pub fn explain(pid: i32) -> Result<MemReport, TraceError> {
    let p = Process::new(pid).map_err(|_| TraceError::NoSuchProcess(pid))?;
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

    let root = HostRoot::live();
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
    let (cgroup_limit_bytes, cgroup_usage_bytes) = cgroup_memory(&root, pid);
    let page_tables = kb_line(&status, "VmPTE:");
    let oom_explained = format!(
        "the OOM killer ranks processes by (RSS {} + swap {} + page tables {}) per mille of RAM + swap, plus oom_score_adj {}: score {} of 1000{}",
        crate::report::human_bytes(total.rss_bytes as f64),
        crate::report::human_bytes(total.swap_bytes as f64),
        crate::report::human_bytes(page_tables.unwrap_or(0) as f64),
        oom_score_adj.unwrap_or(0),
        oom_score.map_or_else(|| "?".to_owned(), |s| s.to_string()),
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
        let r = explain(std::process::id().cast_signed()).unwrap();
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

    #[test]
    fn a_missing_process_is_an_error() {
        assert!(matches!(
            explain(i32::MAX),
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
