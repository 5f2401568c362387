//! Read-only file mappings: [`MappedFile`], with access advice and page-cache residency.
//!
//! # Safety
//!
//! Mapping a file hands out a `&[u8]` whose bytes the kernel may change under us: another
//! process can write the file, and truncating it turns reads past the new end into `SIGBUS`.
//! osml maps datasets that are written once (by `osml data pack` or another tool, then
//! renamed into place) and read many times; the contract, stated again on
//! [`MappedFile::open`], is that nobody truncates or rewrites a dataset file while it is in
//! use. Every other `unsafe` here calls into libc on memory this type owns.
#![allow(unsafe_code)]

use std::path::{Path, PathBuf};

use crate::SysError;

/// How a mapping will be read, for `madvise(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Front to back: aggressive read-ahead (`MADV_SEQUENTIAL`).
    Sequential,
    /// Scattered: no read-ahead (`MADV_RANDOM`).
    Random,
    /// About to be read: start I/O now (`MADV_WILLNEED`).
    WillNeed,
    /// Done for now: the kernel may drop these pages first (`MADV_DONTNEED` on a shared file
    /// mapping only drops this process's page-table entries; the page cache stays).
    DontNeed,
    /// Fill the page tables now (`MADV_POPULATE_READ`, Linux 5.14+), reading from disk what is
    /// not cached, so later reads take no page faults.
    Populate,
}

/// A whole file mapped read-only (`mmap(2)` with `PROT_READ`, `MAP_SHARED`). An empty file
/// is not mapped (Linux refuses zero-length mappings) and reads as an empty slice.
#[derive(Debug)]
pub struct MappedFile {
    map: Option<memmap2::Mmap>,
    path: PathBuf,
    /// Our slot in the SIGBUS guard's table, released on drop.
    guard: Option<crate::sigbus::Registration>,
}

fn call_err(call: &'static str, path: &Path, error: std::io::Error) -> SysError {
    SysError::Call {
        call,
        path: Some(path.to_path_buf()),
        error,
    }
}

impl MappedFile {
    /// Opens and maps `path`, which must be a regular file ([`crate::file::open_regular`]: a
    /// FIFO, device or directory is refused without blocking).
    ///
    /// # Safety
    ///
    /// The bytes of the mapping are the file's: if another process truncates the file while
    /// it is mapped, reading past the new end raises `SIGBUS` (reported by osml's guard, which
    /// ends the process with status 74), and if it rewrites the file in place, the bytes
    /// change under any `&[u8]` this type has handed out. The caller promises that the file
    /// is neither truncated nor modified in place while mapped (datasets are written once and
    /// renamed into place).
    pub unsafe fn open(path: &Path) -> Result<Self, SysError> {
        let file = crate::file::open_regular(path).map_err(|e| call_err("open", path, e))?;
        let meta = file.metadata().map_err(|e| call_err("fstat", path, e))?;
        let map = if meta.len() == 0 {
            None
        } else {
            // SAFETY: read-only shared mapping of a file we just opened; the bytes stay valid
            // for the life of `Mmap` as long as the file is not truncated (the caller's
            // promise, see `# Safety`).
            let map =
                unsafe { memmap2::Mmap::map(&file) }.map_err(|e| call_err("mmap", path, e))?;
            Some(map)
        };
        let guard = map
            .as_ref()
            .map(|m| crate::sigbus::register(m.as_ptr() as usize, m.len(), path));
        Ok(Self {
            map,
            path: path.to_path_buf(),
            guard,
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `madvise(2)` over the whole mapping.
    pub fn advise(&self, access: Access) -> Result<(), SysError> {
        self.advise_range(access, 0, self.len())
    }

    /// `madvise(2)` over `[offset, offset + len)`, widened to whole pages.
    pub fn advise_range(&self, access: Access, offset: usize, len: usize) -> Result<(), SysError> {
        let Some(map) = &self.map else { return Ok(()) };
        let end = offset.saturating_add(len).min(map.len());
        if offset >= end {
            return Ok(());
        }
        let page = page_size();
        let start = offset / page * page;
        let advice = match access {
            Access::Sequential => memmap2::Advice::Sequential,
            Access::Random => memmap2::Advice::Random,
            Access::WillNeed => memmap2::Advice::WillNeed,
            Access::Populate => memmap2::Advice::PopulateRead,
            Access::DontNeed => {
                // SAFETY: DontNeed on a read-only shared file mapping only drops our page
                // table entries; later reads fault the (unchanged) file pages back in.
                return unsafe {
                    map.unchecked_advise_range(
                        memmap2::UncheckedAdvice::DontNeed,
                        start,
                        end - start,
                    )
                }
                .map_err(|e| call_err("madvise", &self.path, e));
            }
        };
        map.advise_range(advice, start, end - start)
            .map_err(|e| call_err("madvise", &self.path, e))
    }

    /// How many bytes of the file are in the page cache right now (`mincore(2)`).
    ///
    /// See <https://man7.org/linux/man-pages/man2/mincore.2.html>.
    pub fn resident_bytes(&self) -> Result<u64, SysError> {
        // One status byte per page; walk in slices so a 1 TB file needs 1 MiB, not 256 MiB.
        const CHUNK_PAGES: usize = 1 << 20;
        let Some(map) = &self.map else { return Ok(0) };
        let page = page_size();
        let mut status = vec![0u8; CHUNK_PAGES.min(map.len().div_ceil(page))];
        let mut resident = 0u64;
        let mut offset = 0;
        while offset < map.len() {
            let len = (map.len() - offset).min(CHUNK_PAGES * page);
            let pages = len.div_ceil(page);
            // SAFETY: `[ptr + offset, + len)` lies inside the live mapping (offset is a multiple
            // of the page size, as mincore requires) and `status` holds at least `pages` bytes.
            let rc = unsafe {
                libc::mincore(
                    map.as_ptr().add(offset).cast_mut().cast(),
                    len,
                    status.as_mut_ptr(),
                )
            };
            if rc != 0 {
                return Err(call_err(
                    "mincore",
                    &self.path,
                    std::io::Error::last_os_error(),
                ));
            }
            let full = status[..pages].iter().filter(|&&s| s & 1 == 1).count() as u64;
            resident += full * page as u64;
            offset += len;
        }
        // The last page may be partial.
        Ok(resident.min(map.len() as u64))
    }
}

/// Which blocks of a mapped file were wholly in the page cache when scanned: one bit per
/// block, so a 1 TB file scanned at 64 KiB blocks needs 2 MiB, not a byte per page (256 MiB).
#[derive(Debug, Clone)]
pub struct BlockResidency {
    block: usize,
    bits: Vec<u64>,
    resident_pages: u64,
    pages: u64,
}

impl BlockResidency {
    /// Whether every block that `[offset, offset + len)` touches was resident.
    pub fn is_resident(&self, offset: usize, len: usize) -> bool {
        if len == 0 {
            return true;
        }
        let first = offset / self.block;
        let last = offset.saturating_add(len - 1) / self.block;
        (first..=last).all(|b| {
            self.bits
                .get(b / 64)
                .is_some_and(|w| w >> (b % 64) & 1 == 1)
        })
    }

    /// The fraction of the file's pages that were resident (1 for an empty file).
    pub fn fraction(&self) -> f64 {
        if self.pages == 0 {
            1.0
        } else {
            self.resident_pages as f64 / self.pages as f64
        }
    }
}

impl MappedFile {
    /// The page-cache residency of the file by blocks of `block` bytes (rounded up to whole
    /// pages): `mincore(2)` over 16 MiB slices into a fixed buffer. mincore holds the
    /// process's mmap lock while it walks a range; slicing lets other threads map memory
    /// (thread stacks, malloc arenas) in between.
    pub fn residency_blocks(&self, block: usize) -> Result<BlockResidency, SysError> {
        const SLICE: usize = 16 << 20;
        let page = page_size();
        let block = block.max(1).next_multiple_of(page);
        let len = self.len();
        let blocks = len.div_ceil(block);
        let mut out = BlockResidency {
            block,
            bits: vec![0; blocks.div_ceil(64)],
            resident_pages: 0,
            pages: len.div_ceil(page) as u64,
        };
        let Some(map) = &self.map else {
            return Ok(out);
        };
        // Slices are whole blocks so that no block straddles two calls.
        let slice = SLICE.next_multiple_of(block);
        let mut status = vec![0u8; slice / page];
        let mut offset = 0;
        while offset < len {
            let n = slice.min(len - offset);
            let pages = n.div_ceil(page);
            // SAFETY: a page-aligned range inside the live mapping (offset is a multiple of the
            // slice, itself a multiple of the page size), and room for one byte per page.
            let rc = unsafe {
                libc::mincore(
                    map.as_ptr().add(offset).cast_mut().cast(),
                    n,
                    status.as_mut_ptr(),
                )
            };
            if rc != 0 {
                return Err(call_err(
                    "mincore",
                    &self.path,
                    std::io::Error::last_os_error(),
                ));
            }
            let per_block = block / page;
            for (k, chunk) in status[..pages].chunks(per_block).enumerate() {
                let resident = chunk.iter().filter(|&&s| s & 1 == 1).count();
                out.resident_pages += resident as u64;
                if resident == chunk.len() {
                    let b = offset / block + k;
                    out.bits[b / 64] |= 1 << (b % 64);
                }
            }
            offset += n;
        }
        Ok(out)
    }
}

impl Drop for MappedFile {
    fn drop(&mut self) {
        if let Some(slot) = self.guard.take() {
            crate::sigbus::unregister(&slot);
        }
    }
}

/// Drops a file's pages from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`), so the
/// next read comes from the disk. Dirty pages are written back first by the kernel only if
/// already under writeback; call after the file is synced.
pub fn evict_from_page_cache(path: &Path) -> Result<(), SysError> {
    let f = crate::file::open_regular(path).map_err(|e| call_err("open", path, e))?;
    rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed)
        .map_err(|e| call_err("posix_fadvise", path, e.into()))
}

/// The size of a memory page.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Maps a test's own temporary file, which nothing else writes.
    fn map(path: &Path) -> Result<MappedFile, SysError> {
        // SAFETY: the file belongs to this test; the one test that truncates it does so on
        // purpose, to see the SIGBUS guard at work.
        unsafe { MappedFile::open(path) }
    }

    #[test]
    fn maps_reads_and_measures_residency() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..3 * page_size() + 100)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        f.write_all(&data).unwrap();
        f.flush().unwrap();
        let m = map(f.path()).unwrap();
        assert_eq!(m.bytes(), data.as_slice());
        // Just written, so cached; touching it makes sure.
        let sum: u64 = m.bytes().iter().map(|&b| u64::from(b)).sum();
        assert!(sum > 0);
        assert_eq!(m.resident_bytes().unwrap(), data.len() as u64);
        let blocks = m.residency_blocks(2 * page_size()).unwrap();
        assert!((blocks.fraction() - 1.0).abs() < f64::EPSILON);
        assert!(blocks.is_resident(0, m.len()));
        f.as_file().sync_all().unwrap(); // clean, unmapped pages can be evicted
        m.advise(Access::DontNeed).unwrap();
        evict_from_page_cache(f.path()).unwrap();
        let cold = m.residency_blocks(2 * page_size()).unwrap();
        assert!(cold.fraction() < 1.0, "evicted pages are not resident");
        assert!(!cold.is_resident(0, m.len()));
        m.advise(Access::Populate).unwrap();
        assert!(m
            .residency_blocks(2 * page_size())
            .unwrap()
            .is_resident(0, m.len()));
        m.advise(Access::Sequential).unwrap();
        m.advise_range(Access::WillNeed, 10, 5000).unwrap();
        m.advise_range(Access::DontNeed, 0, m.len()).unwrap();
        assert_eq!(
            m.bytes()[5],
            data[5],
            "DontNeed keeps the file's bytes readable"
        );
    }

    /// A mapped file truncated under us: the process ends with a message naming the file and
    /// exit status 74, not a bare "Bus error". Runs in a child process (this test binary again).
    #[test]
    fn truncation_under_a_mapping_is_reported() {
        if let Some(path) = std::env::var_os("OSML_SIGBUS_CHILD") {
            let path = std::path::PathBuf::from(path);
            let m = map(&path).unwrap();
            truncate(&path);
            let byte = std::hint::black_box(m.bytes())[2 * page_size() + 5];
            panic!("read {byte} from a truncated mapping without SIGBUS");
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; 3 * page_size()]).unwrap();
        f.flush().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "mmap::tests::truncation_under_a_mapping_is_reported",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("OSML_SIGBUS_CHILD", f.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(crate::EXIT_FILE_CHANGED),
            "{stderr}"
        );
        assert!(stderr.contains(&f.path().display().to_string()), "{stderr}");
        assert!(
            stderr.contains(&format!("reading byte {}", 2 * page_size() + 5)),
            "{stderr}"
        );
        assert!(stderr.contains("truncated or rewritten"), "{stderr}");
    }

    #[test]
    fn empty_files_and_directories() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let m = map(f.path()).unwrap();
        assert!(m.is_empty());
        assert_eq!(m.resident_bytes().unwrap(), 0);
        let dir = tempfile::tempdir().unwrap();
        let err = map(dir.path()).unwrap_err();
        let SysError::Call { error, .. } = err;
        assert_eq!(
            crate::file::rejection(&error),
            Some(crate::file::Rejection::NotRegular(
                crate::file::FileKind::Directory
            ))
        );
        assert!(map(Path::new("/nonexistent/x")).is_err());
    }

    fn truncate(path: &Path) {
        std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(0)
            .unwrap();
    }

    static STRAY: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    extern "C" fn count_stray(_: libc::c_int) {
        STRAY.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Runs this test binary again as a child on `test`, with `OSML_SIGBUS_CHILD` set.
    fn child(test: &str, path: &Path) -> (Option<i32>, String) {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", test, "--nocapture", "--test-threads=1"])
            .env("OSML_SIGBUS_CHILD", path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A program's own SIGBUS handler, installed before osml's, still gets the SIGBUS that
    /// are not about a dataset (twice: the guard stays armed), and a truncated dataset
    /// afterwards still gets the guard's message.
    #[test]
    fn stray_sigbus_goes_to_the_previous_handler_and_the_guard_stays() {
        if let Some(path) = std::env::var_os("OSML_SIGBUS_CHILD") {
            // SAFETY: installing a plain handler that increments an atomic.
            unsafe { libc::signal(libc::SIGBUS, count_stray as *const () as usize) };
            let path = std::path::PathBuf::from(path);
            let m = map(&path).unwrap();
            for _ in 0..2 {
                // SAFETY: raise(3) on this thread.
                unsafe { libc::raise(libc::SIGBUS) };
            }
            eprintln!("strays={}", STRAY.load(std::sync::atomic::Ordering::SeqCst));
            truncate(&path);
            let byte = std::hint::black_box(m.bytes())[page_size() + 1];
            panic!("read {byte} from a truncated mapping without SIGBUS");
        }
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![7u8; 3 * page_size()]).unwrap();
        f.flush().unwrap();
        let (code, stderr) = child(
            "mmap::tests::stray_sigbus_goes_to_the_previous_handler_and_the_guard_stays",
            f.path(),
        );
        assert!(stderr.contains("strays=2"), "{stderr}");
        assert_eq!(code, Some(crate::EXIT_FILE_CHANGED), "{stderr}");
        assert!(
            stderr.contains(&format!("reading byte {}", page_size() + 1)),
            "{stderr}"
        );
    }

    /// The guard's table grows: the 300th of 300 mapped files is still named.
    #[test]
    fn hundreds_of_mappings_are_all_guarded() {
        if let Some(dir) = std::env::var_os("OSML_SIGBUS_CHILD") {
            let dir = std::path::PathBuf::from(dir);
            let maps: Vec<MappedFile> = (0..300)
                .map(|i| map(&dir.join(format!("f{i}"))).unwrap())
                .collect();
            let last = dir.join("f299");
            truncate(&last);
            let byte = std::hint::black_box(maps[299].bytes())[5];
            panic!("read {byte} from a truncated mapping without SIGBUS");
        }
        let dir = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::write(dir.path().join(format!("f{i}")), vec![1u8; page_size()]).unwrap();
        }
        let (code, stderr) = child(
            "mmap::tests::hundreds_of_mappings_are_all_guarded",
            dir.path(),
        );
        assert_eq!(code, Some(crate::EXIT_FILE_CHANGED), "{stderr}");
        assert!(stderr.contains("f299 changed while mapped"), "{stderr}");
    }
}
