//! Captures: what a recording [`HostRoot`] read, written as a `.tar.gz` ([`write()`]), and a
//! directory or an archive (`.tar`, `.tar.gz`, `.tar.bz2`, as `hwloc-gather-topology` writes)
//! opened as a root ([`open`]).
//!
//! An archive is untrusted input, so unpacking is bounded and narrow:
//! - the archive is opened with `osml_sys::file::open_regular` (a FIFO is refused, not waited
//!   on);
//! - one member may hold at most [`MAX_MEMBER_BYTES`], the whole archive at most
//!   [`MAX_UNPACKED_BYTES`] once decompressed, and decompression may expand it at most
//!   [`MAX_RATIO`] times (beyond the first [`RATIO_FLOOR`]), so a gzip bomb stops early;
//! - only regular files, directories and symbolic links are unpacked; a device, a FIFO or a
//!   hard link refuses the archive, as does a member that would land outside it;
//! - it is unpacked into an `osml_sys::atomic::TempDir`, removed when the [`OpenedRoot`] is
//!   dropped and on SIGINT, SIGTERM or SIGHUP.
//!
//! ```no_run
//! let opened = osml_host::capture::open(std::path::Path::new("host.tar.gz"))?;
//! let host = osml_host::HostSnapshot::gather(&opened.root());
//! # Ok::<(), osml_host::HostError>(())
//! ```

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use osml_sys::atomic::{TempBeside, TempDir};

use crate::{HostError, HostRoot, Recorded};

/// The most bytes one archive member may hold: 16 MiB. A root's reader takes at most
/// [`MAX_FILE_BYTES`](crate::MAX_FILE_BYTES) of a file; the largest file of the hwloc dumps
/// osml tests with is under 1 MiB.
pub const MAX_MEMBER_BYTES: u64 = 16 << 20;
/// The most bytes an archive may decompress to (tar headers included): 256 MiB.
pub const MAX_UNPACKED_BYTES: u64 = 256 << 20;
/// How many times larger than the compressed bytes read so far the decompressed ones may be:
/// 500. Sysfs dumps are mostly tar headers of tiny files and compress well (hwloc's
/// `64fake-4n2s2ca2c2t.tar.bz2` in `tests/fixtures/hwloc`, 257 times); a gzip bomb of zeros
/// expands about 1000 times, a bzip2 one far more.
pub const MAX_RATIO: u64 = 500;
/// Decompressed bytes below which the ratio is not enforced (16 MiB, beyond the largest
/// fixture dump, 15 MiB): small archives of near-empty files are not bombs, and the ratio of
/// a short prefix says little.
pub const RATIO_FLOOR: u64 = 16 << 20;

/// Which unpacking limit an archive reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Limit {
    /// One member is larger than [`MAX_MEMBER_BYTES`].
    Member { member: String, limit: u64 },
    /// The archive decompresses past [`MAX_UNPACKED_BYTES`].
    Unpacked { limit: u64 },
    /// Decompression expands past [`MAX_RATIO`].
    Ratio { limit: u64 },
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Member { member, limit } => write!(
                f,
                "member {member} is larger than the {} MiB osml unpacks from one member",
                limit >> 20
            ),
            Self::Unpacked { limit } => write!(
                f,
                "unpacks to more than the {} MiB osml unpacks from one archive",
                limit >> 20
            ),
            Self::Ratio { limit } => write!(
                f,
                "decompresses more than {limit} times its compressed size (a compression bomb?)"
            ),
        }
    }
}

/// A root opened from a path: a directory as is, or an archive unpacked into a temporary
/// directory, which lives as long as this value.
#[derive(Debug)]
pub struct OpenedRoot {
    base: PathBuf,
    _unpacked: Option<TempDir>,
}

impl OpenedRoot {
    /// The directory that stands for `/`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// A [`HostRoot`] reading this directory.
    pub fn root(&self) -> HostRoot {
        HostRoot::at(&self.base)
    }
}

/// Opens `path` as a host root: a directory as is, an archive unpacked (see the module
/// documentation for the limits). An archive whose only top-level entry is a directory
/// (hwloc's dumps) is rooted there.
pub fn open(path: &Path) -> Result<OpenedRoot, HostError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| HostError::io(&shown, &e))?;
    if meta.is_dir() {
        return Ok(OpenedRoot {
            base: path.to_path_buf(),
            _unpacked: None,
        });
    }
    let mut file = osml_sys::file::open_regular(path).map_err(|e| HostError::io(&shown, &e))?;
    let format = sniff(&mut file).map_err(|e| HostError::io(&shown, &e))?;
    let not_a_capture = |reason: String| HostError::NotACapture {
        path: shown.clone(),
        reason,
    };
    let Some(format) = format else {
        return Err(not_a_capture(
            "neither a directory nor a .tar, .tar.gz or .tar.bz2 archive".to_owned(),
        ));
    };
    let dir = TempDir::new("osml-root-").map_err(|e| HostError::Io {
        path: std::env::temp_dir().display().to_string(),
        message: format!("cannot create a directory to unpack into: {e}"),
    })?;
    let read_in = Rc::new(Cell::new(0));
    let tripped = Rc::new(Cell::new(None));
    let input = Counting {
        inner: BufReader::new(file),
        count: Rc::clone(&read_in),
    };
    let decompressed: Box<dyn Read> = match format {
        Format::Gzip => Box::new(flate2::read::GzDecoder::new(input)),
        Format::Bzip2 => Box::new(bzip2::read::BzDecoder::new(input)),
        Format::Tar => Box::new(input),
    };
    let guarded = Bounded {
        inner: decompressed,
        out: 0,
        read_in,
        tripped: Rc::clone(&tripped),
    };
    let limit_or = |e: String| match tripped.take() {
        Some(limit) => HostError::ArchiveLimit {
            path: shown.clone(),
            limit,
        },
        None => not_a_capture(format!(
            "not a readable tar archive (plain, gzip or bzip2): {e}"
        )),
    };
    unpack(guarded, dir.path()).map_err(|e| match e {
        Unpack::Io(e) => limit_or(e.to_string()),
        Unpack::Limit(limit) => HostError::ArchiveLimit {
            path: shown.clone(),
            limit,
        },
        Unpack::Refused(reason) => not_a_capture(reason),
    })?;
    let base = single_top_dir(dir.path()).map_err(|e| match e {
        Some(e) => HostError::io(&shown, &e),
        None => not_a_capture("the archive is empty".to_owned()),
    })?;
    Ok(OpenedRoot {
        base,
        _unpacked: Some(dir),
    })
}

#[derive(Debug, Clone, Copy)]
enum Format {
    Gzip,
    Bzip2,
    Tar,
}

/// The archive's format from its first bytes, and the file rewound; `None` for anything else.
fn sniff(file: &mut std::fs::File) -> io::Result<Option<Format>> {
    let mut head = Vec::with_capacity(512);
    Read::by_ref(file).take(512).read_to_end(&mut head)?;
    file.rewind()?;
    Ok(match head.as_slice() {
        [0x1f, 0x8b, ..] => Some(Format::Gzip),
        [b'B', b'Z', b'h', ..] => Some(Format::Bzip2),
        // POSIX "ustar\0" and GNU "ustar " both start with these bytes at offset 257.
        h if h.get(257..262) == Some(b"ustar") => Some(Format::Tar),
        _ => None,
    })
}

enum Unpack {
    Io(io::Error),
    Limit(Limit),
    Refused(String),
}

impl From<io::Error> for Unpack {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

fn unpack(reader: impl Read, dir: &Path) -> Result<(), Unpack> {
    use tar::EntryType as T;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(false);
    archive.set_unpack_xattrs(false);
    for entry in archive.entries()? {
        // Each member is created inside a step, so a terminating signal's cleanup removes the
        // directory only between members, and unpacking stops after it.
        let _step = osml_sys::cleanup::step();
        let mut entry = entry?;
        let member = entry.path()?.display().to_string();
        let kind = entry.header().entry_type();
        match kind {
            T::Regular | T::Continuous => {
                let size = entry.size();
                if size > MAX_MEMBER_BYTES {
                    return Err(Unpack::Limit(Limit::Member {
                        member,
                        limit: MAX_MEMBER_BYTES,
                    }));
                }
            }
            T::Directory | T::Symlink => {}
            // Metadata for the members that follow; nothing to unpack.
            T::XGlobalHeader => continue,
            other => {
                return Err(Unpack::Refused(format!(
                    "member {member} is {}: a capture holds only files, directories and \
                     symbolic links",
                    describe(other)
                )))
            }
        }
        // `unpack_in` refuses (false) a member that would land outside `dir`: `..`, an
        // absolute path, or a path through a symbolic link unpacked before it.
        if !entry.unpack_in(dir)? {
            return Err(Unpack::Refused(format!(
                "member {member} would land outside the archive"
            )));
        }
    }
    Ok(())
}

fn describe(kind: tar::EntryType) -> &'static str {
    use tar::EntryType as T;
    match kind {
        T::Link => "a hard link",
        T::Char => "a character device",
        T::Block => "a block device",
        T::Fifo => "a FIFO",
        _ => "of an unknown type",
    }
}

/// The root of an unpacked archive; `Err(None)` when it is empty.
fn single_top_dir(dir: &Path) -> Result<PathBuf, Option<io::Error>> {
    #[allow(clippy::disallowed_methods)] // an archive osml unpacked, not a host fact
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(Some)?
        .collect::<Result<_, _>>()
        .map_err(Some)?;
    let names: Vec<_> = entries.iter().map(std::fs::DirEntry::file_name).collect();
    if names.iter().any(|n| n == "proc" || n == "sys") {
        return Ok(dir.to_path_buf());
    }
    match entries.as_slice() {
        [one] if one.file_type().map_err(Some)?.is_dir() => Ok(one.path()),
        [] => Err(None),
        _ => Ok(dir.to_path_buf()),
    }
}

/// Counts the compressed bytes read.
struct Counting<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Stops decompression at [`MAX_UNPACKED_BYTES`] or [`MAX_RATIO`], noting which in `tripped`
/// (the tar reader wraps I/O errors, so the limit is not carried inside the error).
struct Bounded<R> {
    inner: R,
    out: u64,
    read_in: Rc<Cell<u64>>,
    tripped: Rc<Cell<Option<Limit>>>,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out += n as u64;
        let limit = if self.out > MAX_UNPACKED_BYTES {
            Some(Limit::Unpacked {
                limit: MAX_UNPACKED_BYTES,
            })
        } else if self.out > RATIO_FLOOR && self.out / self.read_in.get().max(1) > MAX_RATIO {
            Some(Limit::Ratio { limit: MAX_RATIO })
        } else {
            None
        };
        if let Some(limit) = limit {
            let text = limit.to_string();
            self.tripped.set(Some(limit));
            return Err(io::Error::other(text));
        }
        Ok(n)
    }
}

/// Writes what a root recorded into a gzip'd tar at `dest`, atomically (an
/// `osml_sys::atomic::TempBeside`: mode `0666` less the umask, removed on a terminating
/// signal, fsync and rename). Returns the number of entries.
pub fn write(dest: &Path, recorded: &BTreeMap<String, Recorded>) -> io::Result<usize> {
    let tmp = TempBeside::new(dest, ".osml-capture-")?;
    let gz = flate2::write::GzEncoder::new(tmp.as_file(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut count = 0;
    for (path, what) in recorded {
        let name = path.trim_start_matches('/');
        if name.is_empty() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_mtime(0);
        match what {
            Recorded::Dir => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, format!("{name}/"), io::empty())?;
            }
            Recorded::File(bytes) => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(bytes.len() as u64);
                tar.append_data(&mut header, name, bytes.as_slice())?;
            }
            Recorded::Symlink(target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, name, target)?;
            }
        }
        count += 1;
    }
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    tmp.persist(dest)?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(members: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, data) in members {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn a_capture_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("c.tar.gz");
        let mut rec = BTreeMap::new();
        rec.insert("/proc".to_owned(), Recorded::Dir);
        rec.insert(
            "/proc/meminfo".to_owned(),
            Recorded::File(b"MemTotal: 1 kB\n".to_vec()),
        );
        assert_eq!(write(&dest, &rec).unwrap(), 2);
        let opened = open(&dest).unwrap();
        assert_eq!(
            opened.root().read("/proc/meminfo").unwrap(),
            "MemTotal: 1 kB\n"
        );
        let unpacked = opened.base().to_path_buf();
        drop(opened);
        assert!(
            !unpacked.exists(),
            "the unpacked root outlived its OpenedRoot"
        );
    }

    #[test]
    fn devices_fifos_and_hard_links_are_refused() {
        for kind in [
            tar::EntryType::Fifo,
            tar::EntryType::Char,
            tar::EntryType::Link,
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("a.tar");
            std::fs::write(&p, tar_of(&[("proc/meminfo", kind, b"")])).unwrap();
            let err = open(&p).unwrap_err();
            assert!(
                matches!(err, HostError::NotACapture { .. }),
                "{kind:?}: {err}"
            );
            assert!(err.to_string().contains("proc/meminfo"), "{err}");
        }
    }

    #[test]
    fn a_large_member_is_refused_by_name_and_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        let big = vec![b'x'; usize::try_from(MAX_MEMBER_BYTES).unwrap() + 1];
        std::fs::write(
            &p,
            tar_of(&[("proc/meminfo", tar::EntryType::Regular, &big)]),
        )
        .unwrap();
        let err = open(&p).unwrap_err();
        assert!(
            matches!(&err, HostError::ArchiveLimit { limit: Limit::Member { member, .. }, .. } if member == "proc/meminfo"),
            "{err}"
        );
        assert!(err.to_string().contains("16 MiB"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_an_archive_is_not_a_capture() {
        let err = open(Path::new("/etc/passwd")).unwrap_err();
        assert!(matches!(err, HostError::NotACapture { .. }), "{err}");
        let err = open(Path::new("/nonexistent/osml")).unwrap_err();
        assert!(matches!(err, HostError::NotFound { .. }), "{err}");
        let err = open(Path::new("/dev/null")).unwrap_err();
        assert!(matches!(err, HostError::NotRegular { .. }), "{err}");
    }
}
