//! Captures: writing what a recording [`HostRoot`](osml_host::HostRoot) read into a `.tar.gz`, and opening a
//! directory or an archive (`.tar`, `.tar.gz`, `.tar.bz2`, as hwloc-gather-topology writes)
//! as a root.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use osml_host::Recorded;

/// A root opened from a path; holds the temporary directory an archive was unpacked into.
pub struct OpenedRoot {
    /// The directory that stands for `/`.
    pub base: PathBuf,
    _unpacked: Option<tempfile::TempDir>,
}

/// Opens `path` as a host root: a directory as is, an archive unpacked into a temporary
/// directory. An archive whose only top-level entry is a directory (hwloc's dumps) is rooted
/// there.
pub fn open_root(path: &Path) -> Result<OpenedRoot> {
    let meta = std::fs::metadata(path).with_context(|| {
        format!(
            "--root {}: cannot open it (a directory or a .tar[.gz|.bz2] archive is expected)",
            path.display()
        )
    })?;
    if meta.is_dir() {
        return Ok(OpenedRoot {
            base: path.to_path_buf(),
            _unpacked: None,
        });
    }
    let dir = tempfile::Builder::new()
        .prefix("osml-root-")
        .tempdir()
        .context("creating a temporary directory to unpack the capture")?;
    let mut magic = [0u8; 3];
    let mut file = File::open(path).with_context(|| format!("--root {}", path.display()))?;
    let n = file
        .read(&mut magic)
        .with_context(|| format!("reading {}", path.display()))?;
    let file = File::open(path).with_context(|| format!("--root {}", path.display()))?;
    let reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(BufReader::new(file))),
        [b'B', b'Z', b'h'] => Box::new(bzip2::read::BzDecoder::new(BufReader::new(file))),
        _ => Box::new(BufReader::new(file)),
    };
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(false);
    archive.set_preserve_mtime(false);
    // `unpack` refuses entries that would land outside `dir` (`..`, absolute paths).
    archive.unpack(dir.path()).with_context(|| {
        format!(
            "--root {}: not a readable tar archive (plain, gzip or bzip2)",
            path.display()
        )
    })?;
    let base = single_top_dir(dir.path())?;
    Ok(OpenedRoot {
        base,
        _unpacked: Some(dir),
    })
}

fn single_top_dir(dir: &Path) -> Result<PathBuf> {
    let entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    let names: Vec<_> = entries.iter().map(std::fs::DirEntry::file_name).collect();
    if names.iter().any(|n| n == "proc" || n == "sys") {
        return Ok(dir.to_path_buf());
    }
    match entries.as_slice() {
        [one] if one.file_type()?.is_dir() => Ok(one.path()),
        [] => bail!("the archive is empty"),
        _ => Ok(dir.to_path_buf()),
    }
}

/// Writes what a root recorded into a gzip'd tar at `dest`, atomically: a temporary file in
/// the same directory, fsync, rename. Returns the number of entries.
pub fn write_capture(dest: &Path, recorded: &BTreeMap<String, Recorded>) -> Result<usize> {
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".osml-capture-")
        .tempfile_in(parent)
        .with_context(|| {
            format!(
                "--capture {}: cannot create a file in {}",
                dest.display(),
                parent.display()
            )
        })?;
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
                tar.append_data(&mut header, format!("{name}/"), std::io::empty())?;
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
    file.sync_all()?;
    tmp.persist(dest)
        .with_context(|| format!("--capture: renaming into {}", dest.display()))?;
    Ok(count)
}
