//! Files that appear whole or not at all, with the permissions the user's umask asks for.
//!
//! [`TempBeside`] is a temporary file in the destination's own directory (so the final
//! `rename(2)` is atomic: same filesystem), registered with [`cleanup`] so a
//! terminating signal removes it, and created with mode `0666` before the umask. `tempfile`
//! creates files `0600`, which suits secrets, not datasets, captures and traces that other
//! users and container UIDs must read: under the usual umask 022 they come out `0644`.
//! [`TempBeside::persist`] fsyncs, renames over the destination and fsyncs the directory.
//! Dropping it before `persist` removes the file.

use std::fs::{File, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::cleanup::{self, Registered};

/// A temporary file beside its destination; see the module documentation.
#[derive(Debug)]
pub struct TempBeside {
    file: tempfile::NamedTempFile,
    _registered: Registered,
}

/// The directory `dest` will be created in (`.` for a bare file name).
pub fn parent_dir(dest: &Path) -> &Path {
    match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Refuses a destination that exists and is not a regular file (followed through symbolic
/// links): renaming over `/dev/full`, a FIFO or a socket would replace it with a file.
fn check_destination(dest: &Path) -> io::Result<()> {
    match std::fs::metadata(dest) {
        Ok(meta) if !meta.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            crate::file::NotRegular(
                crate::file::FileKind::of(meta.file_type()).unwrap_or(crate::file::FileKind::Other),
            ),
        )),
        _ => Ok(()),
    }
}

impl TempBeside {
    /// Creates `.{prefix}XXXXXX.tmp` in the directory of `dest`, mode `0666 & !umask`. A
    /// destination that exists and is not a regular file is refused ([`crate::file::NotRegular`]).
    pub fn new(dest: &Path, prefix: &str) -> io::Result<Self> {
        check_destination(dest)?;
        let (file, registered) = cleanup::create(
            false,
            || {
                tempfile::Builder::new()
                    .prefix(prefix)
                    .suffix(".tmp")
                    .permissions(Permissions::from_mode(0o666))
                    .tempfile_in(parent_dir(dest))
            },
            |f| f.path().to_path_buf(),
        )?;
        Ok(Self {
            file,
            _registered: registered,
        })
    }

    /// The open file.
    pub fn as_file(&self) -> &File {
        self.file.as_file()
    }

    /// The temporary path (for error messages).
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// Flushes to disk and renames over `dest`; on error the temporary file is removed.
    pub fn persist(self, dest: &Path) -> io::Result<PathBuf> {
        check_destination(dest)?;
        self.file.as_file().sync_all()?;
        self.file.persist(dest).map_err(|e| e.error)?;
        // Makes the rename durable; a failure here leaves a correct file, so it is ignored.
        // The directory was just written into: not a FIFO.
        #[allow(clippy::disallowed_methods)]
        if let Ok(d) = File::open(parent_dir(dest)) {
            let _ = d.sync_all();
        }
        Ok(dest.to_path_buf())
    }
}

impl Write for TempBeside {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Write for &TempBeside {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.as_file().flush()
    }
}

/// A temporary directory (mode `0700`: it holds an unpacked capture only this process reads),
/// removed on drop and on a terminating signal.
#[derive(Debug)]
pub struct TempDir {
    dir: tempfile::TempDir,
    _registered: Registered,
}

impl TempDir {
    /// Creates `{prefix}XXXXXX` in the system's temporary directory.
    pub fn new(prefix: &str) -> io::Result<Self> {
        let (dir, registered) = cleanup::create(
            true,
            || tempfile::Builder::new().prefix(prefix).tempdir(),
            |d| d.path().to_path_buf(),
        )?;
        Ok(Self {
            dir,
            _registered: registered,
        })
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests list their own temporary directories
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    #[test]
    fn persisted_files_follow_the_umask() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        // The umask cannot be read without setting it; a child shell inherits ours.
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg("umask")
            .output()
            .unwrap();
        let umask = u32::from_str_radix(String::from_utf8_lossy(&status.stdout).trim(), 8).unwrap();
        let mut t = TempBeside::new(&dest, ".osml-").unwrap();
        t.write_all(b"x").unwrap();
        let tmp = t.path().to_path_buf();
        t.persist(&dest).unwrap();
        assert!(!tmp.exists());
        let mode = std::fs::metadata(&dest).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o666 & !umask);
    }

    #[test]
    fn devices_fifos_and_directories_are_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        crate::file::tests::mkfifo(&fifo);
        let link = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &link).unwrap();
        for dest in [
            fifo.as_path(),
            Path::new("/dev/full"),
            dir.path(),
            link.as_path(),
        ] {
            let err = TempBeside::new(dest, ".osml-").unwrap_err();
            assert!(crate::file::rejection(&err).is_some(), "{dest:?}: {err}");
        }
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn a_dropped_temp_file_is_removed_and_unregistered() {
        let dir = tempfile::tempdir().unwrap();
        let t = TempBeside::new(&dir.path().join("out"), ".osml-").unwrap();
        let tmp = t.path().to_path_buf();
        assert!(tmp.exists());
        drop(t);
        assert!(!tmp.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
