//! Applying a plan, with a journal written first; rolling back on failure; reverting later.
//!
//! The journal (`/var/lib/osml/tune/journal.json` inside the root) lists every value that will
//! be written with its previous bytes and value, every file with its previous content (or that
//! it did not exist), and every directory osml created. It is written atomically before the
//! first change and again after the last, so a crash in between leaves a journal that
//! `--revert` can use. A journal of a `schema_version` this build does not know is refused,
//! never reverted. It is written with [`TempBeside`] (mode `0666` less the umask: it holds
//! previous kernel values and the previous content of world-readable files under `/etc`,
//! nothing secret).
//!
//! Every apply, revert and verify holds [`Lock`], an `flock(2)` on the journal's directory,
//! from before it reads the host to after the journal's last write: two applies at once would
//! otherwise journal each other's new values as "previous" and lose the originals. A second
//! one is refused at once (`LOCK_NB`) rather than made to wait: it would plan against the
//! first one's result, and a refusal that names the root is clearer than a silent queue.
//!
//! Under a directory root (a fixture, a copy of a host) files are written as the kernel would
//! show them after the write: a selector file such as THP `enabled` keeps its choices and moves
//! the brackets. On the live host the bare value is written, as `echo VALUE > FILE` does.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use osml_host::parse::{mounts, sysfs};
use osml_host::HostRoot;
use osml_sys::atomic::TempBeside;
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};

use crate::plan::{shown, Action, Format, PersistFile, Plan, Setting};
use crate::TuneError;

pub const JOURNAL: &str = "/var/lib/osml/tune/journal.json";
/// The directory [`Lock`] locks: the journal's.
pub const JOURNAL_DIR: &str = "/var/lib/osml/tune";
/// The journal format this build writes and reads.
pub const JOURNAL_SCHEMA: u32 = 1;
/// A journal lists a few dozen settings and three small files; anything larger is not one.
pub const JOURNAL_MAX_BYTES: u64 = 16 << 20;

/// One journaled change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Entry {
    /// A kernel value (procfs or sysfs file).
    Value {
        path: String,
        format: String,
        /// The file's bytes before (what a directory root gets back).
        previous_text: String,
        /// The value before (what the live kernel gets back).
        previous: String,
        new: String,
    },
    /// The size of `/dev/shm`, changed by a remount.
    ShmSize { previous: String, new: String },
    /// A whole file osml wrote.
    File {
        path: String,
        previous: Option<String>,
    },
    /// A directory osml created.
    Dir { path: String },
}

impl Entry {
    fn path(&self) -> &str {
        match self {
            Self::Value { path, .. } | Self::File { path, .. } | Self::Dir { path } => path,
            Self::ShmSize { .. } => "/dev/shm",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Applying,
    Applied,
    RolledBack,
}

/// What `--apply` changed, for `--revert`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub schema_version: u32,
    pub profile: String,
    pub state: State,
    /// In the order applied; reverted in reverse.
    pub entries: Vec<Entry>,
    /// Why the last apply was rolled back.
    pub error: Option<String>,
}

/// Where things are written: the live host, or a directory standing in for it.
pub struct Target<'a> {
    pub root: &'a HostRoot,
}

fn io_err(what: String) -> impl Fn(std::io::Error) -> TuneError {
    move |error| TuneError::Io {
        what: what.clone(),
        error,
    }
}

/// What a [`Lock`] is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockFor {
    /// An apply: exclusive; creates the journal's directory if needed.
    Apply,
    /// A revert: exclusive; no directory, no journal, nothing to lock.
    Revert,
    /// A verify: shared with other verifies, refused while an apply or revert runs.
    Verify,
}

/// An `flock(2)` on the journal's directory, held until dropped; see the module documentation.
/// Directories it created and nobody journaled are removed when it is dropped.
#[derive(Debug)]
pub struct Lock {
    /// The journal's directory, locked; closing it releases the lock.
    dir: OwnedFd,
    /// Host paths of the directories made for the journal, outermost first, not yet journaled.
    made: Vec<String>,
    /// Where `made` lives on disk.
    disk: Vec<PathBuf>,
}

impl Lock {
    /// The directories made for the journal, handed to the journal (which removes them on
    /// revert); the lock no longer removes them.
    fn take_made(&mut self) -> Vec<String> {
        self.disk.clear();
        std::mem::take(&mut self.made)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Nothing was journaled (nothing to change): leave the tree as it was. Deepest first;
        // a directory something else has since put files into stays.
        for d in self.disk.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// `open(2)` of a directory, read-only, for `flock(2)`.
fn open_dir(path: &Path) -> std::io::Result<OwnedFd> {
    rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)
}

/// `flock(2)` without waiting: `Ok(false)` when another holder has it.
fn try_flock(fd: &OwnedFd, exclusive: bool) -> std::io::Result<bool> {
    let op = if exclusive {
        FlockOperation::NonBlockingLockExclusive
    } else {
        FlockOperation::NonBlockingLockShared
    };
    match rustix::fs::flock(fd, op) {
        Ok(()) => Ok(true),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether `fd` is still the directory at `path` (a revert may have removed it in between).
fn same_dir(fd: &OwnedFd, path: &Path) -> bool {
    match (rustix::fs::fstat(fd), rustix::fs::stat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

impl Target<'_> {
    /// The path on disk for a host path, following links without leaving the root.
    fn on_disk(&self, path: &str) -> Result<PathBuf, TuneError> {
        let real = self
            .root
            .canonicalize(path)
            .map_err(|e| TuneError::Host(e.to_string()))?;
        Ok(if self.root.is_live() {
            PathBuf::from(real)
        } else {
            self.root.base().join(real.trim_start_matches('/'))
        })
    }

    fn live(&self) -> bool {
        self.root.is_live()
    }

    fn read(&self, path: &str) -> Option<String> {
        self.root.read(path).ok()
    }

    /// Writes a kernel value: the bare value live, the file as the kernel would show it under
    /// a directory root.
    fn write_value(&self, path: &str, format: Format, value: &str) -> Result<(), TuneError> {
        let disk = self.on_disk(path)?;
        let text = if self.live() {
            value.to_owned()
        } else {
            match format {
                Format::Plain => format!("{value}\n"),
                Format::Selector => {
                    let old = self.read(path).unwrap_or_default();
                    let words: Vec<String> = sysfs::choices(&old)
                        .into_iter()
                        .map(|c| if c == value { format!("[{c}]") } else { c })
                        .collect();
                    words.join(" ") + "\n"
                }
            }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&disk)
            .map_err(io_err(format!("writing {path}")))?;
        f.write_all(text.as_bytes())
            .map_err(io_err(format!("writing {path}")))?;
        Ok(())
    }

    /// Puts back the bytes (directory root) or the value (live) a file had.
    fn restore_value(
        &self,
        path: &str,
        format: Format,
        previous_text: &str,
        previous: &str,
    ) -> Result<(), TuneError> {
        if self.live() {
            return self.write_value(path, format, previous);
        }
        let disk = self.on_disk(path)?;
        std::fs::write(&disk, previous_text).map_err(io_err(format!("restoring {path}")))
    }

    /// Creates the missing directories above `path`, returning those it made (outermost first).
    fn make_parents(&self, path: &str) -> Result<Vec<String>, TuneError> {
        let mut made = Vec::new();
        let mut cur = String::new();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            cur.push('/');
            cur.push_str(part);
            let disk = self.on_disk(&cur)?;
            if !disk.exists() {
                match std::fs::create_dir(&disk) {
                    Ok(()) => made.push(cur.clone()),
                    // Made by someone else in between: theirs to journal.
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(io_err(format!("creating {cur}"))(e)),
                }
            }
        }
        Ok(made)
    }

    /// Writes a whole file atomically ([`TempBeside`]: a temporary file beside it, fsync,
    /// rename, fsync of the directory), with the mode of the file it replaces (`/etc/fstab`
    /// 0644); a new configuration file gets 0644, as `/etc` files have.
    pub fn write_file(&self, path: &str, content: &str) -> Result<(), TuneError> {
        let disk = self.on_disk(path)?;
        let mode = std::fs::metadata(&disk).map_or(0o644, |m| {
            std::os::unix::fs::PermissionsExt::mode(&m.permissions())
        });
        Self::write_new(path, &disk, content, Some(mode))
    }

    /// Writes `content` to `disk` through [`TempBeside`]; `mode` overrides the umask's.
    fn write_new(
        path: &str,
        disk: &Path,
        content: &str,
        mode: Option<u32>,
    ) -> Result<(), TuneError> {
        let mut tmp = TempBeside::new(disk, ".osml-tune-")
            .map_err(io_err(format!("creating a temporary file beside {path}")))?;
        tmp.write_all(content.as_bytes())
            .map_err(io_err(format!("writing {path}")))?;
        if let Some(mode) = mode {
            std::fs::set_permissions(
                tmp.path(),
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            )
            .map_err(io_err(format!("setting the mode of {path}")))?;
        }
        tmp.persist(disk)
            .map_err(io_err(format!("renaming into {path}")))?;
        Ok(())
    }

    /// Takes the tune lock of this root; see [`Lock`]. `Ok(None)`: there is no journal
    /// directory, so nothing to revert or verify against and nothing to lock.
    pub fn lock(&self, what: LockFor) -> Result<Option<Lock>, TuneError> {
        let root_disk = if self.live() {
            PathBuf::from("/")
        } else {
            self.root.base().to_path_buf()
        };
        let locked = || TuneError::Locked {
            root: root_disk.display().to_string(),
        };
        // The root directory is locked too, for the moment it takes to make the journal's
        // directory and lock it: so only one process makes (and journals) those directories,
        // and nobody else can lock a directory another one just made. Exclusive for an apply,
        // shared otherwise.
        let root_fd =
            open_dir(&root_disk).map_err(io_err(format!("opening {}", root_disk.display())))?;
        if !try_flock(&root_fd, what == LockFor::Apply)
            .map_err(io_err(format!("locking {}", root_disk.display())))?
        {
            return Err(locked());
        }
        // A revert that finishes between our open and our flock removes the directory: the
        // lock we got is then on a dead inode, so look again (a few times, not forever).
        for _ in 0..8 {
            let dir = self.on_disk(JOURNAL_DIR)?;
            let mut made = Vec::new();
            if !dir.is_dir() {
                if what != LockFor::Apply {
                    return Ok(None);
                }
                made = self.make_parents(JOURNAL)?;
            }
            let fd = match open_dir(&dir) {
                Ok(fd) => fd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(format!("opening {JOURNAL_DIR}"))(e)),
            };
            let disk = made
                .iter()
                .map(|m| self.on_disk(m))
                .collect::<Result<Vec<_>, _>>()?;
            // Built before the flock so that a failure below still removes what was made.
            let lock = Lock {
                dir: fd,
                made,
                disk,
            };
            if !try_flock(&lock.dir, what != LockFor::Verify)
                .map_err(io_err(format!("locking {JOURNAL_DIR}")))?
            {
                return Err(locked());
            }
            if same_dir(&lock.dir, &dir) {
                return Ok(Some(lock));
            }
        }
        Err(locked())
    }
    fn remove_file(&self, path: &str) -> Result<(), TuneError> {
        let disk = self.on_disk(path)?;
        match std::fs::remove_file(&disk) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(format!("removing {path}"))(e)),
        }
    }

    fn remove_dir(&self, path: &str) -> Result<(), TuneError> {
        let disk = self.on_disk(path)?;
        // Gone already, or something else now lives there: either way, leave it.
        let _ = std::fs::remove_dir(&disk);
        Ok(())
    }

    fn remount_shm(&self, size: &str) -> Result<(), TuneError> {
        if !self.live() {
            return Err(TuneError::Host(
                "a /dev/shm remount needs the live host".to_owned(),
            ));
        }
        // A remount resets the flags it is not given: pass the ones /dev/shm has.
        let table = self
            .read("/proc/self/mounts")
            .and_then(|t| mounts::parse(&t).ok())
            .unwrap_or_default();
        let opts = table
            .iter()
            .rev()
            .find(|m| m.target == "/dev/shm")
            .map(|m| m.options.clone())
            .unwrap_or_default();
        let mut flags = rustix::mount::MountFlags::empty();
        for o in &opts {
            flags |= match o.as_str() {
                "ro" => rustix::mount::MountFlags::RDONLY,
                "nosuid" => rustix::mount::MountFlags::NOSUID,
                "nodev" => rustix::mount::MountFlags::NODEV,
                "noexec" => rustix::mount::MountFlags::NOEXEC,
                "noatime" => rustix::mount::MountFlags::NOATIME,
                "nodiratime" => rustix::mount::MountFlags::NODIRATIME,
                "relatime" => rustix::mount::MountFlags::RELATIME,
                _ => rustix::mount::MountFlags::empty(),
            };
        }
        rustix::mount::mount_remount("/dev/shm", flags, format!("size={size}").as_str())
            .map_err(|e| io_err("remounting /dev/shm".to_owned())(e.into()))
    }

    #[allow(clippy::items_after_statements)]
    /// The journal, if there is one. Read as a regular file with a cap (a FIFO or a device put
    /// there is refused, not waited on); a `schema_version` other than [`JOURNAL_SCHEMA`] is
    /// refused.
    pub fn read_journal(&self) -> Result<Option<Journal>, TuneError> {
        let disk = self.on_disk(JOURNAL)?;
        let bytes = match osml_sys::file::read_bounded(&disk, JOURNAL_MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(format!("reading {JOURNAL}"))(e)),
        };
        #[derive(Deserialize)]
        struct Versioned {
            schema_version: u32,
        }
        let version = serde_json::from_slice::<Versioned>(&bytes)
            .map_err(|e| TuneError::Journal(format!("{JOURNAL}: {e}")))?
            .schema_version;
        if version != JOURNAL_SCHEMA {
            return Err(TuneError::JournalVersion {
                path: JOURNAL.to_owned(),
                found: version,
                supported: JOURNAL_SCHEMA,
            });
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| TuneError::Journal(format!("{JOURNAL}: {e}")))
    }

    fn write_journal(&self, j: &Journal) -> Result<(), TuneError> {
        let text =
            serde_json::to_string_pretty(j).map_err(|e| TuneError::Journal(e.to_string()))?;
        let disk = self.on_disk(JOURNAL)?;
        Self::write_new(JOURNAL, &disk, &(text + "\n"), None)
    }
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The settings and files changed (each re-read and found as written).
    pub changed: Vec<String>,
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Plain => "plain",
        Format::Selector => "selector",
    }
}

fn format_of(name: &str) -> Format {
    if name == "selector" {
        Format::Selector
    } else {
        Format::Plain
    }
}

/// Applies `plan`: journal first, then every value and file; on any failure, undoes what it
/// did (in reverse), records the error in the journal, and returns it.
pub fn apply(target: &Target<'_>, plan: &Plan, lock: &mut Lock) -> Result<Applied, TuneError> {
    // An applied journal is extended; of a rolled-back one only the directories it made remain
    // to clean up.
    let entries = match target.read_journal()? {
        Some(j) if j.state == State::Applied => j.entries,
        Some(j) => j
            .entries
            .into_iter()
            .filter(|e| matches!(e, Entry::Dir { .. }))
            .collect(),
        None => Vec::new(),
    };
    let mut journal = Journal {
        schema_version: JOURNAL_SCHEMA,
        profile: plan.profile.to_owned(),
        state: State::Applying,
        entries,
        error: None,
    };
    let known = |j: &Journal, p: &str| j.entries.iter().any(|e| e.path() == p);
    // Directories for the journal itself, then everything planned, journaled before any change.
    let mut fresh: Vec<Entry> = lock
        .take_made()
        .into_iter()
        .chain(target.make_parents(JOURNAL)?)
        .map(|path| Entry::Dir { path })
        .collect();
    let sets: Vec<&Setting> = plan
        .settings
        .iter()
        .filter(|s| s.action == Action::Set)
        .collect();
    let files: Vec<&PersistFile> = plan.files.iter().filter(|f| f.changes()).collect();
    fresh.extend(planned_entries(target, &sets, &files));
    // A second apply keeps the first previous values: those are what --revert restores.
    let new_entries: Vec<Entry> = fresh
        .into_iter()
        .filter(|e| !known(&journal, e.path()))
        .collect();
    // What the journal must say if this run is rolled back: the earlier entries, and the
    // directories made for the journal itself.
    let mut after_rollback = journal.entries.clone();
    after_rollback.extend(
        new_entries
            .iter()
            .filter(|e| matches!(e, Entry::Dir { .. }))
            .cloned(),
    );
    journal.entries.extend(new_entries);
    journal.state = State::Applying;
    journal.error = None;
    target.write_journal(&journal)?;

    let mut done: Vec<Entry> = Vec::new();
    let result = run_changes(target, &sets, &files, &mut journal, &mut done);
    match result {
        Ok(()) => {
            journal.state = State::Applied;
            target.write_journal(&journal)?;
            Ok(Applied {
                changed: sets
                    .iter()
                    .map(|s| s.name.clone())
                    .chain(files.iter().map(|f| f.path.clone()))
                    .collect(),
            })
        }
        Err(e) => {
            let undo = undo(target, &done);
            // Only what this run added is undone; entries of an earlier apply stay.
            journal.entries = after_rollback;
            let msg = match &undo {
                Ok(()) => format!("{e}; every change of this run was rolled back"),
                Err(u) => format!("{e}; rolling back also failed: {u}"),
            };
            journal.state = if journal
                .entries
                .iter()
                .all(|x| matches!(x, Entry::Dir { .. }))
            {
                State::RolledBack
            } else {
                State::Applied
            };
            journal.error = Some(msg.clone());
            target.write_journal(&journal)?;
            Err(TuneError::RolledBack(msg))
        }
    }
}

/// The journal entries for what will change: each value's previous bytes and value, each
/// file's previous content.
fn planned_entries(target: &Target<'_>, sets: &[&Setting], files: &[&PersistFile]) -> Vec<Entry> {
    let mut out = Vec::new();
    for s in sets {
        if s.path == "/dev/shm" {
            out.push(Entry::ShmSize {
                previous: s.current.clone().unwrap_or_default(),
                new: s.target.clone(),
            });
        } else {
            let text = target.read(&s.path).unwrap_or_default();
            out.push(Entry::Value {
                path: s.path.clone(),
                format: format_name(s.format).to_owned(),
                previous: shown(&text, s.format).unwrap_or_default(),
                previous_text: text,
                new: s.target.clone(),
            });
        }
    }
    for f in files {
        out.push(Entry::File {
            path: f.path.clone(),
            previous: f.current.clone(),
        });
    }
    out
}

/// Makes every change, recording in `done` what to undo; then re-reads every value.
fn run_changes(
    target: &Target<'_>,
    sets: &[&Setting],
    files: &[&PersistFile],
    journal: &mut Journal,
    done: &mut Vec<Entry>,
) -> Result<(), TuneError> {
    for s in sets {
        let entry = journal
            .entries
            .iter()
            .find(|e| e.path() == s.path)
            .cloned()
            .ok_or_else(|| TuneError::Journal(format!("{} is not journaled", s.path)))?;
        if s.path == "/dev/shm" {
            target.remount_shm(&s.target)?;
        } else {
            target.write_value(&s.path, s.format, &s.target)?;
        }
        done.push(entry);
    }
    for f in files {
        let made = target.make_parents(&f.path)?;
        for d in made {
            journal.entries.push(Entry::Dir { path: d.clone() });
            done.push(Entry::Dir { path: d });
        }
        target.write_file(&f.path, &f.content)?;
        done.push(Entry::File {
            path: f.path.clone(),
            previous: f.current.clone(),
        });
    }
    // Re-read every value.
    let wrong: Vec<String> = sets
        .iter()
        .filter(|s| s.path != "/dev/shm")
        .filter(|s| {
            target
                .read(&s.path)
                .and_then(|t| shown(&t, s.format))
                .as_deref()
                != Some(s.target.as_str())
        })
        .map(|s| s.name.clone())
        .collect();
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(TuneError::Verify(wrong.join(", ")))
    }
}

/// Undoes entries, last first.
fn undo(target: &Target<'_>, entries: &[Entry]) -> Result<(), TuneError> {
    let mut first_error = None;
    for e in entries.iter().rev() {
        let r = match e {
            Entry::Value {
                path,
                format,
                previous_text,
                previous,
                ..
            } => target.restore_value(path, format_of(format), previous_text, previous),
            Entry::ShmSize { previous, .. } => target.remount_shm(previous),
            Entry::File { path, previous } => match previous {
                Some(content) => target.write_file(path, content),
                None => target.remove_file(path),
            },
            Entry::Dir { path } => target.remove_dir(path),
        };
        if let Err(err) = r {
            first_error.get_or_insert(err);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Restores everything the journal records, removes the journal and the directories osml
/// created. Returns the paths restored.
pub fn revert(target: &Target<'_>, _held: &Lock) -> Result<Vec<String>, TuneError> {
    let Some(journal) = target.read_journal()? else {
        return Err(TuneError::NoJournal(JOURNAL.to_owned()));
    };
    let (dirs, rest): (Vec<Entry>, Vec<Entry>) = journal
        .entries
        .into_iter()
        .partition(|e| matches!(e, Entry::Dir { .. }));
    undo(target, &rest)?;
    target.remove_file(JOURNAL)?;
    // Deepest first.
    let mut dirs: Vec<String> = dirs.into_iter().map(|e| e.path().to_owned()).collect();
    dirs.sort_by_key(|d| std::cmp::Reverse(d.matches('/').count()));
    for d in &dirs {
        target.remove_dir(d)?;
    }
    Ok(rest.iter().map(|e| e.path().to_owned()).collect())
}

/// The selected word or trimmed value of a file, for `verify`.
pub fn current_value(target: &Target<'_>, s: &Setting) -> Option<String> {
    target.read(&s.path).and_then(|t| match s.format {
        Format::Plain => Some(t.trim().to_owned()),
        Format::Selector => sysfs::selected(&t).ok(),
    })
}
