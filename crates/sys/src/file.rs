//! Opening files that must be regular files, and reading them with a size cap.
//!
//! Every file osml reads by name (datasets, reports, journals, archives, `/proc` and `/sys`
//! files under a directory root) goes through [`open_regular`]. It opens with `O_NONBLOCK`, so
//! a FIFO put where a file belongs cannot block the open (`open(2)`: a FIFO opened for reading
//! without a writer blocks unless `O_NONBLOCK` is given), then `fstat(2)`s the descriptor and
//! refuses anything that is not a regular file: a FIFO, a socket, a character device such as
//! `/dev/zero` (which would be read forever) or a directory. Checking the descriptor rather
//! than the path leaves no window for the file to be swapped between the check and the read.
//!
//! [`read_bounded`] then reads at most a cap. The refusals are typed: [`NotRegular`] and
//! [`TooLarge`] ride inside the returned [`io::Error`] (kinds `InvalidInput` and
//! `FileTooLarge`), and [`rejection`] gives them back, so callers decide on the kind rather
//! than on a message's wording.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// What a path held instead of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    pub(crate) fn of(ft: std::fs::FileType) -> Option<Self> {
        if ft.is_file() {
            None
        } else if ft.is_dir() {
            Some(Self::Directory)
        } else if ft.is_fifo() {
            Some(Self::Fifo)
        } else if ft.is_socket() {
            Some(Self::Socket)
        } else if ft.is_char_device() {
            Some(Self::CharDevice)
        } else if ft.is_block_device() {
            Some(Self::BlockDevice)
        } else {
            Some(Self::Other)
        }
    }

    /// The kind in words, as `ls -l` users think of it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Directory => "a directory",
            Self::Fifo => "a FIFO (named pipe)",
            Self::Socket => "a socket",
            Self::CharDevice => "a character device",
            Self::BlockDevice => "a block device",
            Self::Other => "not a regular file",
        }
    }
}

/// A path that is not a regular file where one is expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} where a regular file is expected", .0.describe())]
pub struct NotRegular(pub FileKind);

/// A file longer than the cap its reader allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("larger than the {} MiB osml reads from such a file", .limit >> 20)]
pub struct TooLarge {
    /// The cap in bytes.
    pub limit: u64,
}

/// Why [`open_regular`] or [`read_bounded`] refused a file, if it did (as opposed to an OS
/// error such as `ENOENT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    NotRegular(FileKind),
    TooLarge { limit: u64 },
}

/// The refusal inside `err`, if `err` came from one.
pub fn rejection(err: &io::Error) -> Option<Rejection> {
    let inner = err.get_ref()?;
    if let Some(NotRegular(kind)) = inner.downcast_ref::<NotRegular>() {
        return Some(Rejection::NotRegular(*kind));
    }
    inner
        .downcast_ref::<TooLarge>()
        .map(|t| Rejection::TooLarge { limit: t.limit })
}

/// Opens `path` read-only (`O_NONBLOCK | O_NOCTTY | O_CLOEXEC`) and refuses it unless the
/// descriptor is a regular file (`fstat(2)`). `O_NONBLOCK` has no effect on a regular file's
/// reads, so the returned file reads as usual.
///
/// See <https://man7.org/linux/man-pages/man2/open.2.html> (`O_NONBLOCK` on FIFOs).
pub fn open_regular(path: &Path) -> io::Result<File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    match FileKind::of(meta.file_type()) {
        None => Ok(file),
        Some(kind) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            NotRegular(kind),
        )),
    }
}

/// Reads a whole regular file of at most `limit` bytes ([`open_regular`], then reads to the end
/// or to one byte past the cap, whichever comes first). `/proc` files report a size of 0, so
/// the cap is enforced on what is read, not on `st_size`.
pub fn read_bounded(path: &Path, limit: u64) -> io::Result<Vec<u8>> {
    let file = open_regular(path)?;
    read_to_end_bounded(file, limit)
}

/// Reads `reader` to its end, refusing more than `limit` bytes with [`TooLarge`].
pub fn read_to_end_bounded(reader: impl Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(io::Error::new(
            io::ErrorKind::FileTooLarge,
            TooLarge { limit },
        ));
    }
    Ok(bytes)
}

/// Reads every record of a record device such as `/dev/kmsg`, which returns one record per
/// `read(2)` and `EAGAIN` at the end when opened with `O_NONBLOCK` (so the read never waits
/// for new records), up to `limit` bytes; `EPIPE` (records overwritten while reading) is
/// skipped over and counted. Returns the bytes and that count.
pub fn read_records(path: &Path, limit: u64) -> io::Result<(Vec<u8>, u64)> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )?;
    let mut out = Vec::new();
    let mut gaps = 0;
    // A record is at most about 8 KiB (the kernel's CONSOLE_EXT_LOG_MAX).
    let mut buf = vec![0u8; 16 << 10];
    while (out.len() as u64) < limit {
        match rustix::io::read(&fd, &mut buf) {
            Ok(0) | Err(rustix::io::Errno::AGAIN) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(rustix::io::Errno::PIPE) => gaps += 1,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok((out, gaps))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn mkfifo(path: &Path) {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("f");
        mkfifo(&fifo);
        let err = open_regular(&fifo).unwrap_err();
        assert_eq!(rejection(&err), Some(Rejection::NotRegular(FileKind::Fifo)));
        assert!(err.to_string().contains("FIFO"), "{err}");
    }

    #[test]
    fn devices_and_directories_are_refused() {
        let err = read_bounded(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert_eq!(
            rejection(&err),
            Some(Rejection::NotRegular(FileKind::CharDevice))
        );
        let err = open_regular(Path::new("/")).unwrap_err();
        assert_eq!(
            rejection(&err),
            Some(Rejection::NotRegular(FileKind::Directory))
        );
    }

    #[test]
    fn the_cap_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, [7u8; 100]).unwrap();
        assert_eq!(read_bounded(&p, 100).unwrap().len(), 100);
        let err = read_bounded(&p, 99).unwrap_err();
        assert_eq!(rejection(&err), Some(Rejection::TooLarge { limit: 99 }));
        assert_eq!(err.kind(), io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn proc_files_read_although_their_size_is_zero() {
        let bytes = read_bounded(Path::new("/proc/self/status"), 1 << 20).unwrap();
        assert!(bytes.starts_with(b"Name:"));
        assert!(rejection(&open_regular(Path::new("/nonexistent/osml")).unwrap_err()).is_none());
    }
}
