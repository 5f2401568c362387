//! [`HostRoot`]: the one door to `/proc` and `/sys`.
//!
//! A root is either the live filesystem (`/`) or a directory that stands in for it: a capture
//! made by `osml doctor --capture`, a dump from `hwloc-gather-topology`, or a hand-built test
//! fixture. Under a directory root every path is resolved component by component inside that
//! directory, so a symbolic link in a capture (absolute or relative) can never lead outside it.
//!
//! A root can also *record* what it reads. `osml doctor --capture` reads the live host through
//! a recording root and archives exactly the bytes it saw, which is why a capture replays to the
//! same report.

// This module is the one place allowed to read files of /proc and /sys directly.
#![allow(clippy::disallowed_methods)]

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;

use crate::HostError;

/// How many symbolic links one lookup may follow, as the kernel's `MAXSYMLINKS`.
const MAX_SYMLINKS: usize = 40;

/// The most bytes read from one file of a root, live or not: 4 MiB. The largest files osml
/// reads are far smaller (`/proc/cpuinfo` of a 192-CPU host is about 300 KiB, `/proc/modules`
/// a few KiB); the cap keeps a character device or a huge file put in a capture from growing
/// memory without bound.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// The most bytes of kernel log read: 256 MiB (the kernel's own buffer is at most 32 MiB, but
/// a `dev/kmsg` put in a capture may hold more, and is read in well under a second).
pub const MAX_KMSG_BYTES: u64 = 256 << 20;

/// One thing a recording root saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A file and the bytes read from it.
    File(Vec<u8>),
    /// A symbolic link and its target, as stored.
    Symlink(String),
    /// A directory that was listed.
    Dir,
}

/// Where host facts are read from: the live `/` or a directory standing in for it.
#[derive(Debug)]
pub struct HostRoot {
    base: PathBuf,
    live: bool,
    recorder: Option<Mutex<BTreeMap<String, Recorded>>>,
}

impl HostRoot {
    /// The running host.
    pub fn live() -> Self {
        Self {
            base: PathBuf::from("/"),
            live: true,
            recorder: None,
        }
    }

    /// A directory holding `proc/`, `sys/`… as captured from some host.
    pub fn at(dir: impl Into<PathBuf>) -> Self {
        Self {
            base: dir.into(),
            live: false,
            recorder: None,
        }
    }

    /// Turns on recording of every file, link and directory read from now on.
    #[must_use]
    pub fn recording(mut self) -> Self {
        self.recorder = Some(Mutex::new(BTreeMap::new()));
        self
    }

    /// Whether this is the running host (so live probes such as `statvfs` make sense).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Whether reads are being recorded for a capture.
    pub fn is_recording(&self) -> bool {
        self.recorder.is_some()
    }

    /// The directory this root stands for (`/` when live).
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// What a recording root has read so far, by absolute path.
    pub fn recorded(&self) -> BTreeMap<String, Recorded> {
        self.recorder
            .as_ref()
            .map(|r| {
                r.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default()
    }

    fn record(&self, path: &str, what: Recorded) {
        if let Some(rec) = &self.recorder {
            rec.lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(path.to_owned(), what);
        }
    }

    /// The real path of `path` (absolute, as on the host) under this root.
    fn real(&self, path: &str) -> Result<PathBuf, HostError> {
        if self.live {
            return Ok(PathBuf::from(path));
        }
        let resolved = self.resolve(path)?;
        Ok(self.base.join(resolved.trim_start_matches('/')))
    }

    /// Reads a whole file as text (lossy UTF-8: /proc never promises valid UTF-8).
    pub fn read(&self, path: &str) -> Result<String, HostError> {
        let bytes = self.read_bytes(path)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Opens a file for reads at offsets, for files where each byte read costs (PCI
    /// configuration space: a config cycle per dword). A recording root reads the whole file
    /// instead, once, so that a capture holds all of it.
    pub fn open_random(&self, path: &str) -> Result<RandomFile, HostError> {
        if self.is_recording() {
            return self.read_bytes(path).map(RandomFile::Bytes);
        }
        let real = self.real(path)?;
        osml_sys::file::open_regular(&real)
            .map(RandomFile::File)
            .map_err(|e| HostError::io(path, &e))
    }

    /// Reads a whole file as bytes: a regular file of at most [`MAX_FILE_BYTES`], opened
    /// without blocking (`osml_sys::file::read_bounded`), so a FIFO or a device where a file
    /// belongs is an error of its own kind rather than a hang or an endless read.
    pub fn read_bytes(&self, path: &str) -> Result<Vec<u8>, HostError> {
        self.read_bytes_up_to(path, MAX_FILE_BYTES)
    }

    /// [`read_bytes`](Self::read_bytes) with another cap (the kernel log's
    /// [`MAX_KMSG_BYTES`]).
    pub(crate) fn read_bytes_up_to(&self, path: &str, limit: u64) -> Result<Vec<u8>, HostError> {
        let real = self.real(path)?;
        let bytes =
            osml_sys::file::read_bounded(&real, limit).map_err(|e| HostError::io(path, &e))?;
        self.record(path, Recorded::File(bytes.clone()));
        Ok(bytes)
    }

    /// Records `bytes` as the file at `path`, for what a recording root learnt other than by
    /// reading a file of it (the live kernel log, the answers of the live probes).
    pub(crate) fn record_file(&self, path: &str, bytes: Vec<u8>) {
        self.record(path, Recorded::File(bytes));
    }

    /// Reads a file and trims surrounding whitespace: the usual shape of a sysfs attribute.
    pub fn read_trimmed(&self, path: &str) -> Result<String, HostError> {
        self.read(path).map(|s| s.trim().to_owned())
    }

    /// Names in a directory, sorted (so reports do not depend on readdir order).
    pub fn list(&self, path: &str) -> Result<Vec<String>, HostError> {
        let real = self.real(path)?;
        let mut names = Vec::new();
        #[allow(clippy::disallowed_methods)] // HostRoot itself
        for entry in std::fs::read_dir(&real).map_err(|e| HostError::io(path, &e))? {
            let entry = entry.map_err(|e| HostError::io(path, &e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        self.record(path, Recorded::Dir);
        Ok(names)
    }

    /// Whether something exists at `path` (a file, directory or link).
    pub fn exists(&self, path: &str) -> bool {
        self.real(path)
            .is_ok_and(|p| std::fs::symlink_metadata(p).is_ok())
    }

    /// The target of the symbolic link at `path`, as stored.
    pub fn read_link(&self, path: &str) -> Result<String, HostError> {
        let real = self.real_parent(path)?;
        let target = std::fs::read_link(&real).map_err(|e| HostError::io(path, &e))?;
        let target = target.to_string_lossy().into_owned();
        self.record(path, Recorded::Symlink(target.clone()));
        Ok(target)
    }

    /// `path` with its parent resolved but its last component left alone (for `readlink`).
    fn real_parent(&self, path: &str) -> Result<PathBuf, HostError> {
        let p = Path::new(path);
        let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
            return self.real(path);
        };
        let parent = parent.to_string_lossy();
        Ok(self.real(&parent)?.join(name))
    }

    /// The canonical absolute path of `path` on the host, following every symbolic link.
    ///
    /// Under a directory root the walk stays inside that directory. Links that are followed
    /// are recorded, so a capture keeps, for example, the `/sys/bus/pci/devices/*` links that
    /// give a PCI device's chain of bridges.
    pub fn canonicalize(&self, path: &str) -> Result<String, HostError> {
        self.resolve(path)
    }

    fn resolve(&self, path: &str) -> Result<String, HostError> {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = components(path).into_iter().rev().collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let candidate = format!("/{}", join(&done, &part));
            let on_disk = if self.live {
                PathBuf::from(&candidate)
            } else {
                self.base.join(candidate.trim_start_matches('/'))
            };
            match std::fs::symlink_metadata(&on_disk) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINKS {
                        return Err(HostError::io(
                            path,
                            &io::Error::other("too many levels of symbolic links"),
                        ));
                    }
                    let target = std::fs::read_link(&on_disk)
                        .map_err(|e| HostError::io(&candidate, &e))?
                        .to_string_lossy()
                        .into_owned();
                    self.record(&candidate, Recorded::Symlink(target.clone()));
                    if target.starts_with('/') {
                        done.clear();
                    }
                    todo.extend(components(&target).into_iter().rev());
                }
                Ok(_) => done.push(part),
                // A missing component ends the walk; the caller's read reports it with the
                // path the user asked for.
                Err(_) => {
                    done.push(part);
                    done.extend(todo.drain(..).rev());
                    break;
                }
            }
        }
        Ok(format!("/{}", done.join("/")))
    }
}

fn components(path: &str) -> Vec<String> {
    Path::new(path)
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
            Component::ParentDir => Some("..".to_owned()),
            _ => None,
        })
        .collect()
}

fn join(done: &[String], part: &str) -> String {
    if done.is_empty() {
        part.to_owned()
    } else {
        format!("{}/{part}", done.join("/"))
    }
}

/// A file opened by [`HostRoot::open_random`].
#[derive(Debug)]
pub enum RandomFile {
    File(std::fs::File),
    Bytes(Vec<u8>),
}

impl crate::parse::pci_config::ConfigBytes for RandomFile {
    fn read_at(&mut self, offset: usize, buf: &mut [u8]) -> usize {
        match self {
            Self::File(f) => {
                use std::os::unix::fs::FileExt;
                let Ok(offset) = u64::try_from(offset) else {
                    return 0;
                };
                let mut done = 0;
                // sysfs `config` answers in one read; loop for short reads anyway.
                while done < buf.len() {
                    match f.read_at(&mut buf[done..], offset + done as u64) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => done += n,
                    }
                }
                done
            }
            Self::Bytes(b) => b.as_slice().read_at(offset, buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn fixture() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"))
            .unwrap();
        std::fs::write(
            d.join("sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/class"),
            "0x030200\n",
        )
        .unwrap();
        std::fs::create_dir_all(d.join("sys/bus/pci/devices")).unwrap();
        symlink(
            "../../../devices/pci0000:00/0000:00:01.0/0000:01:00.0",
            d.join("sys/bus/pci/devices/0000:01:00.0"),
        )
        .unwrap();
        // An absolute link must stay inside the root, not reach the real /etc.
        std::fs::create_dir_all(d.join("etc")).unwrap();
        std::fs::write(d.join("etc/hostname"), "inside\n").unwrap();
        symlink("/etc/hostname", d.join("sys/escape")).unwrap();
        dir
    }

    #[test]
    fn relative_links_resolve_inside_the_root() {
        let dir = fixture();
        let root = HostRoot::at(dir.path());
        assert_eq!(
            root.canonicalize("/sys/bus/pci/devices/0000:01:00.0")
                .unwrap(),
            "/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0"
        );
        assert_eq!(
            root.read_trimmed("/sys/bus/pci/devices/0000:01:00.0/class")
                .unwrap(),
            "0x030200"
        );
    }

    #[test]
    fn absolute_links_are_rebased_on_the_root() {
        let dir = fixture();
        let root = HostRoot::at(dir.path());
        assert_eq!(root.read_trimmed("/sys/escape").unwrap(), "inside");
    }

    #[test]
    fn missing_files_name_the_host_path() {
        let dir = fixture();
        let root = HostRoot::at(dir.path());
        let err = root.read("/proc/meminfo").unwrap_err();
        assert!(matches!(err, HostError::NotFound { .. }));
        assert!(err.to_string().contains("/proc/meminfo"), "{err}");
    }

    #[test]
    fn recording_keeps_bytes_links_and_dirs() {
        let dir = fixture();
        let root = HostRoot::at(dir.path()).recording();
        root.list("/sys/bus/pci/devices").unwrap();
        root.canonicalize("/sys/bus/pci/devices/0000:01:00.0")
            .unwrap();
        root.read("/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/class")
            .unwrap();
        let rec = root.recorded();
        assert_eq!(rec["/sys/bus/pci/devices"], Recorded::Dir);
        assert!(matches!(
            &rec["/sys/bus/pci/devices/0000:01:00.0"],
            Recorded::Symlink(t) if t.starts_with("../../../devices")
        ));
        assert_eq!(
            rec["/sys/devices/pci0000:00/0000:00:01.0/0000:01:00.0/class"],
            Recorded::File(b"0x030200\n".to_vec())
        );
    }

    #[test]
    fn link_loops_are_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        symlink("b", dir.path().join("a")).unwrap();
        symlink("a", dir.path().join("b")).unwrap();
        let root = HostRoot::at(dir.path());
        assert!(root.read("/a").is_err());
    }
}
