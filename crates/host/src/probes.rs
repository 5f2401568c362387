//! [`Probes`]: the facts that come from system calls rather than files — the affinity, a
//! filesystem's use, `io_uring_setup`, the page size — and the kernel log, behind one
//! interface, so that a capture can replay them.
//!
//! [`LiveProbes`] makes the calls. [`ReplayedProbes`] answers for a directory root from its
//! file [`PROBES_PATH`] (`/.osml/probes.json`, a path no real host has), a [`ProbeRecord`]
//! that `osml doctor --capture` writes from what the live probes answered; a probe the file
//! does not answer, or every probe when there is no file, is unknown of kind
//! [`ErrorKind::LiveOnly`], as it was before captures kept the answers. The kernel log is
//! kept as a file of its own: a capture stores it as `/dev/kmsg`, and a directory root's
//! `dev/kmsg` answers it.
//!
//! ```no_run
//! use osml_host::{HostRoot, HostSnapshot, Probes, ReplayedProbes};
//!
//! let root = HostRoot::at("capture-dir");
//! let probes = ReplayedProbes::new(&root);
//! println!("{:?}", probes.io_uring_setup());
//! let host = HostSnapshot::gather_with(&root, &probes);
//! # let _ = host;
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{CpuList, ErrorKind, Fact, HostError, HostRoot, ParseError, MAX_KMSG_BYTES};

/// Where a root keeps the answers of the live probes: `/.osml/probes.json`.
pub const PROBES_PATH: &str = "/.osml/probes.json";

/// The `schema_version` of the [`ProbeRecord`] this osml writes and reads.
pub const PROBES_SCHEMA_VERSION: u32 = 1;

const KMSG: &str = "/dev/kmsg";

/// What only the running host can tell: one method per probe.
///
/// [`HostSnapshot::gather`](crate::HostSnapshot::gather) picks [`LiveProbes`] for the live
/// root and [`ReplayedProbes`] for a directory;
/// [`HostSnapshot::gather_with`](crate::HostSnapshot::gather_with) takes any.
pub trait Probes {
    /// The CPUs this process may run on (`sched_getaffinity(2)`).
    fn allowed_cpus(&self) -> Fact<CpuList>;

    /// Size and use of the filesystem holding `path`, a path on the host (`statvfs(3)`).
    fn statvfs(&self, path: &str) -> Fact<FsUsage>;

    /// Whether this process can create an `io_uring`: `true`, or unknown with the error of
    /// `io_uring_setup(2)`.
    fn io_uring_setup(&self) -> Fact<bool>;

    /// The page size, in bytes (`sysconf(_SC_PAGESIZE)`).
    fn page_size(&self) -> Fact<u64>;

    /// The kernel log: every record of `/dev/kmsg`, at most [`MAX_KMSG_BYTES`].
    fn kernel_log(&self) -> Result<String, HostError>;
}

/// Size and use of a mounted filesystem, in bytes, as `statvfs(3)` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsUsage {
    pub total_bytes: u64,
    /// `total - free`, where free includes root's reserve.
    pub used_bytes: u64,
}

/// The probes of the running host: the system calls themselves.
#[derive(Debug, Clone, Copy, Default)]
pub struct LiveProbes;

impl Probes for LiveProbes {
    fn allowed_cpus(&self) -> Fact<CpuList> {
        osml_sys::allowed_cpus()
            .map(|c| c.into_iter().collect())
            .map_or_else(
                |e| Fact::unknown(ErrorKind::Unreadable, e.to_string()),
                Fact::Known,
            )
    }

    fn statvfs(&self, path: &str) -> Fact<FsUsage> {
        osml_sys::statvfs(Path::new(path)).map_or_else(
            |e| Fact::unknown(ErrorKind::Unreadable, e.to_string()),
            |u| {
                Fact::Known(FsUsage {
                    total_bytes: u.total_bytes,
                    used_bytes: u.used_bytes,
                })
            },
        )
    }

    fn io_uring_setup(&self) -> Fact<bool> {
        match osml_sys::probe_io_uring() {
            Ok(()) => Fact::Known(true),
            Err(e) => Fact::unknown(ErrorKind::Unreadable, e.to_string()),
        }
    }

    fn page_size(&self) -> Fact<u64> {
        Fact::Known(osml_sys::page_size() as u64)
    }

    /// Every record of the live `/dev/kmsg`, read without waiting, one record per read
    /// (`osml_sys::file::read_records`).
    fn kernel_log(&self) -> Result<String, HostError> {
        osml_sys::file::read_records(Path::new(KMSG), MAX_KMSG_BYTES)
            .map(|(bytes, _)| text(bytes))
            .map_err(|e| HostError::io(KMSG, &e))
    }
}

/// No copy when the log is valid UTF-8, as it nearly always is (the kernel escapes
/// unprintable bytes in `/dev/kmsg`).
fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The answers of probes, as kept in a root at [`PROBES_PATH`]: each absent when not
/// recorded, else a [`Fact`] (a probe that failed on the live host is kept as the unknown it
/// gave). The format is in `docs/doctor-json.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeRecord {
    /// [`PROBES_SCHEMA_VERSION`]; a file of another version is malformed.
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_cpus: Option<Fact<CpuList>>,
    /// By the path asked about (`/dev/shm`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub statvfs: BTreeMap<String, Fact<FsUsage>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_uring_setup: Option<Fact<bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<Fact<u64>>,
}

impl Default for ProbeRecord {
    fn default() -> Self {
        Self {
            schema_version: PROBES_SCHEMA_VERSION,
            allowed_cpus: None,
            statvfs: BTreeMap::new(),
            io_uring_setup: None,
            page_size: None,
        }
    }
}

impl ProbeRecord {
    /// Parses the text of a probes file.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let what = "probe record";
        let record: Self = serde_json::from_str(text).map_err(|e| {
            let reason = match e.classify() {
                serde_json::error::Category::Data => "JSON, but not of a probe record's shape",
                serde_json::error::Category::Eof => "JSON that ends early",
                serde_json::error::Category::Syntax | serde_json::error::Category::Io => "not JSON",
            };
            ParseError::new(what, text, reason)
        })?;
        if record.schema_version != PROBES_SCHEMA_VERSION {
            return Err(ParseError::new(
                what,
                text,
                "a schema_version this osml does not read",
            ));
        }
        Ok(record)
    }

    /// Whether it answers nothing.
    pub fn is_empty(&self) -> bool {
        self.allowed_cpus.is_none()
            && self.statvfs.is_empty()
            && self.io_uring_setup.is_none()
            && self.page_size.is_none()
    }
}

/// The probes of a directory root: the answers of its [`PROBES_PATH`], and its `dev/kmsg`.
#[derive(Debug)]
pub struct ReplayedProbes<'a> {
    root: &'a HostRoot,
    /// The record, empty without a file; the error when the file is there but cannot be read
    /// or parsed, which every probe then answers.
    answers: Result<ProbeRecord, HostError>,
}

impl<'a> ReplayedProbes<'a> {
    /// Reads the root's probes file, if any. Never fails: a file that cannot be read or parsed
    /// makes every probe unknown with the reason.
    pub fn new(root: &'a HostRoot) -> Self {
        let answers = match root.read(PROBES_PATH) {
            Ok(text) => ProbeRecord::parse(&text).map_err(|error| HostError::Parse {
                path: PROBES_PATH.to_owned(),
                error,
            }),
            Err(HostError::NotFound { .. }) => Ok(ProbeRecord::default()),
            Err(e) => Err(e),
        };
        Self { root, answers }
    }

    fn answer<T: Clone>(
        &self,
        pick: impl FnOnce(&ProbeRecord) -> Option<&Fact<T>>,
        what: impl FnOnce() -> String,
    ) -> Fact<T> {
        match &self.answers {
            Ok(record) => pick(record)
                .cloned()
                .unwrap_or_else(|| HostError::LiveOnly { what: what() }.into()),
            Err(e) => e.clone().into(),
        }
    }
}

impl Probes for ReplayedProbes<'_> {
    fn allowed_cpus(&self) -> Fact<CpuList> {
        self.answer(|r| r.allowed_cpus.as_ref(), || "sched_getaffinity".into())
    }

    fn statvfs(&self, path: &str) -> Fact<FsUsage> {
        self.answer(|r| r.statvfs.get(path), || format!("statvfs({path})"))
    }

    fn io_uring_setup(&self) -> Fact<bool> {
        self.answer(|r| r.io_uring_setup.as_ref(), || "io_uring_setup".into())
    }

    fn page_size(&self) -> Fact<u64> {
        self.answer(|r| r.page_size.as_ref(), || "the page size".into())
    }

    /// The root's `dev/kmsg` when it is a regular file of such records.
    fn kernel_log(&self) -> Result<String, HostError> {
        self.root.read_bytes_up_to(KMSG, MAX_KMSG_BYTES).map(text)
    }
}

/// Probes that pass `inner`'s answers on and keep them for a recording root: the kernel log as
/// `/dev/kmsg`, the rest in a [`ProbeRecord`] written to [`PROBES_PATH`] by
/// [`finish`](Self::finish). Live-only unknowns are not kept (they say nothing a replay
/// would not say anyway).
pub(crate) struct Recorder<'a> {
    root: &'a HostRoot,
    inner: &'a dyn Probes,
    answers: RefCell<ProbeRecord>,
}

/// `fact` unless it is a live-only unknown.
fn kept<T: Clone>(fact: &Fact<T>) -> Option<Fact<T>> {
    (fact.unknown_kind() != Some(ErrorKind::LiveOnly)).then(|| fact.clone())
}

impl<'a> Recorder<'a> {
    pub(crate) fn new(root: &'a HostRoot, inner: &'a dyn Probes) -> Self {
        Self {
            root,
            inner,
            answers: RefCell::new(ProbeRecord::default()),
        }
    }

    /// Records the answers kept, if any, as the root's [`PROBES_PATH`].
    pub(crate) fn finish(self) {
        let answers = self.answers.into_inner();
        if answers.is_empty() {
            return;
        }
        // Cannot fail: every map of a record has string keys.
        let Ok(mut json) = serde_json::to_vec_pretty(&answers) else {
            return;
        };
        json.push(b'\n');
        self.root.record_file(PROBES_PATH, json);
    }
}

impl Probes for Recorder<'_> {
    fn allowed_cpus(&self) -> Fact<CpuList> {
        let answer = self.inner.allowed_cpus();
        self.answers.borrow_mut().allowed_cpus = kept(&answer);
        answer
    }

    fn statvfs(&self, path: &str) -> Fact<FsUsage> {
        let answer = self.inner.statvfs(path);
        if let Some(kept) = kept(&answer) {
            self.answers
                .borrow_mut()
                .statvfs
                .insert(path.to_owned(), kept);
        }
        answer
    }

    fn io_uring_setup(&self) -> Fact<bool> {
        let answer = self.inner.io_uring_setup();
        self.answers.borrow_mut().io_uring_setup = kept(&answer);
        answer
    }

    fn page_size(&self) -> Fact<u64> {
        let answer = self.inner.page_size();
        self.answers.borrow_mut().page_size = kept(&answer);
        answer
    }

    fn kernel_log(&self) -> Result<String, HostError> {
        let log = self.inner.kernel_log()?;
        self.root.record_file(KMSG, log.as_bytes().to_vec());
        Ok(log)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with(probes: Option<&str>) -> (tempfile::TempDir, HostRoot) {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = probes {
            std::fs::create_dir(dir.path().join(".osml")).unwrap();
            std::fs::write(dir.path().join(".osml/probes.json"), text).unwrap();
        }
        let root = HostRoot::at(dir.path());
        (dir, root)
    }

    #[test]
    fn answers_come_from_the_probes_file() {
        let (_dir, root) = root_with(Some(
            r#"{
              "schema_version": 1,
              "allowed_cpus": "0-3,8",
              "statvfs": {"/dev/shm": {"total_bytes": 1073741824, "used_bytes": 4096}},
              "io_uring_setup": {"unknown": "io_uring_setup: Operation not permitted", "kind": "unreadable"},
              "page_size": 65536,
              "a_probe_of_a_later_osml": true
            }"#,
        ));
        let p = ReplayedProbes::new(&root);
        assert_eq!(
            p.allowed_cpus(),
            Fact::Known(CpuList::parse("0-3,8").unwrap())
        );
        assert_eq!(
            p.statvfs("/dev/shm"),
            Fact::Known(FsUsage {
                total_bytes: 1 << 30,
                used_bytes: 4096
            })
        );
        assert_eq!(
            p.io_uring_setup(),
            Fact::unknown(
                ErrorKind::Unreadable,
                "io_uring_setup: Operation not permitted"
            )
        );
        assert_eq!(p.page_size(), Fact::Known(65536));
        // A path the file does not answer for is live-only, as without a file.
        assert_eq!(p.statvfs("/tmp").unknown_kind(), Some(ErrorKind::LiveOnly));
    }

    #[test]
    fn without_a_file_every_probe_is_live_only_as_before() {
        let (_dir, root) = root_with(None);
        let p = ReplayedProbes::new(&root);
        assert_eq!(p.allowed_cpus().unknown_kind(), Some(ErrorKind::LiveOnly));
        assert_eq!(p.io_uring_setup().unknown_kind(), Some(ErrorKind::LiveOnly));
        assert_eq!(p.page_size().unknown_kind(), Some(ErrorKind::LiveOnly));
        // The very words of the unknowns of fixtures' reports.
        assert_eq!(
            p.statvfs("/dev/shm"),
            Fact::unknown(
                ErrorKind::LiveOnly,
                "statvfs(/dev/shm) is measured on the live host only"
            )
        );
        assert_eq!(
            p.io_uring_setup().reason(),
            Some("io_uring_setup is measured on the live host only")
        );
        // A file that answers nothing is the same.
        let (_dir, root) = root_with(Some(r#"{"schema_version": 1}"#));
        let p = ReplayedProbes::new(&root);
        assert_eq!(p.page_size().unknown_kind(), Some(ErrorKind::LiveOnly));
    }

    #[test]
    fn a_malformed_file_is_a_malformed_unknown_naming_it() {
        for text in [
            "",
            "{",
            "not json",
            "[]",
            r#"{"allowed_cpus": "0-3"}"#,
            r#"{"schema_version": 2, "page_size": 4096}"#,
            r#"{"schema_version": 1, "page_size": "big"}"#,
            r#"{"schema_version": 1, "allowed_cpus": "3-1"}"#,
            r#"{"schema_version": 1, "statvfs": {"/dev/shm": {"total_bytes": -1}}}"#,
        ] {
            let (_dir, root) = root_with(Some(text));
            let p = ReplayedProbes::new(&root);
            for (probe, answer) in [
                ("allowed", p.allowed_cpus().map(drop)),
                ("statvfs", p.statvfs("/dev/shm").map(drop)),
                ("io_uring", p.io_uring_setup().map(drop)),
                ("page", p.page_size().map(drop)),
            ] {
                assert_eq!(
                    answer.unknown_kind(),
                    Some(ErrorKind::Malformed),
                    "{probe} of {text:?}"
                );
                assert!(
                    answer.reason().unwrap().contains(PROBES_PATH),
                    "{probe} of {text:?}: {answer:?}"
                );
            }
        }
    }

    #[test]
    fn an_unreadable_file_is_an_unknown_of_its_kind() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".osml/probes.json")).unwrap();
        let root = HostRoot::at(dir.path());
        let a = ReplayedProbes::new(&root).page_size();
        assert_eq!(a.unknown_kind(), Some(ErrorKind::Unreadable), "{a:?}");
        assert!(a.reason().unwrap().contains(PROBES_PATH), "{a:?}");
    }

    #[test]
    fn the_kernel_log_is_the_roots_dev_kmsg() {
        let (dir, root) = root_with(None);
        let err = ReplayedProbes::new(&root).kernel_log().unwrap_err();
        assert!(
            matches!(err, HostError::NotFound { ref path } if path == KMSG),
            "{err}"
        );
        std::fs::create_dir(dir.path().join("dev")).unwrap();
        std::fs::write(dir.path().join("dev/kmsg"), "6,1,2,-;hello\n").unwrap();
        assert_eq!(
            ReplayedProbes::new(&root).kernel_log().unwrap(),
            "6,1,2,-;hello\n"
        );
    }

    /// Probes with fixed answers.
    struct Fixed;

    impl Probes for Fixed {
        fn allowed_cpus(&self) -> Fact<CpuList> {
            Fact::Known(CpuList::parse("1,3").unwrap())
        }
        fn statvfs(&self, path: &str) -> Fact<FsUsage> {
            Fact::Known(FsUsage {
                total_bytes: path.len() as u64,
                used_bytes: 1,
            })
        }
        fn io_uring_setup(&self) -> Fact<bool> {
            Fact::unknown(ErrorKind::Unreadable, "io_uring_setup: EPERM")
        }
        fn page_size(&self) -> Fact<u64> {
            HostError::LiveOnly {
                what: "the page size".into(),
            }
            .into()
        }
        fn kernel_log(&self) -> Result<String, HostError> {
            Ok("4,7,8,-;a log\n".into())
        }
    }

    #[test]
    fn a_recording_keeps_the_answers_and_a_replay_gives_them_back() {
        let (_dir, root) = root_with(None);
        let root = root.recording();
        let recorder = Recorder::new(&root, &Fixed);
        assert_eq!(recorder.statvfs("/dev/shm"), Fixed.statvfs("/dev/shm"));
        assert_eq!(recorder.allowed_cpus(), Fixed.allowed_cpus());
        assert_eq!(recorder.io_uring_setup(), Fixed.io_uring_setup());
        assert_eq!(recorder.page_size(), Fixed.page_size());
        assert_eq!(recorder.kernel_log().unwrap(), "4,7,8,-;a log\n");
        recorder.finish();

        let files = root.recorded();
        let out = tempfile::tempdir().unwrap();
        let archive = out.path().join("c.tar.gz");
        crate::capture::write(&archive, &files).unwrap();
        let opened = crate::capture::open(&archive).unwrap();
        let replay_root = opened.root();
        let replay = ReplayedProbes::new(&replay_root);
        assert_eq!(replay.allowed_cpus(), Fixed.allowed_cpus());
        assert_eq!(replay.statvfs("/dev/shm"), Fixed.statvfs("/dev/shm"));
        assert_eq!(replay.io_uring_setup(), Fixed.io_uring_setup());
        assert_eq!(replay.kernel_log().unwrap(), "4,7,8,-;a log\n");
        // A live-only unknown is not kept: the replay says it again.
        assert_eq!(replay.page_size(), Fixed.page_size());
        let Some(crate::Recorded::File(json)) = files.get(PROBES_PATH) else {
            panic!("no {PROBES_PATH} in {:?}", files.keys());
        };
        let record = ProbeRecord::parse(std::str::from_utf8(json).unwrap()).unwrap();
        assert_eq!(record.page_size, None);
    }

    #[test]
    fn nothing_kept_writes_no_file() {
        let (_dir, root) = root_with(None);
        let root = root.recording();
        let replay = ReplayedProbes::new(&root);
        let recorder = Recorder::new(&root, &replay);
        let _ = recorder.io_uring_setup();
        let _ = recorder.statvfs("/dev/shm");
        recorder.finish();
        assert!(root.recorded().is_empty(), "{:?}", root.recorded());
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(text in "\\PC{0,200}") {
            let _ = ProbeRecord::parse(&text);
        }

        #[test]
        fn parsing_json_like_text_never_panics(
            text in r#"\{"schema_version": ?1(, "(allowed_cpus|page_size|io_uring_setup|statvfs)": ?[-0-9a-z",{}:\[\]]{0,20}){0,3}\}"#
        ) {
            let _ = ProbeRecord::parse(&text);
        }
    }
}
