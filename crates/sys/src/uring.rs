//! Reads at a chosen queue depth through `io_uring`.
//!
//! The io-uring crate gives the ring; what is unsafe about it is that the kernel writes into
//! a buffer after `push` returns. [`UringReader`] owns its buffers and never lets them go while
//! a read is in flight: every call waits for all its reads, including when one of them fails.

#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

use io_uring::{opcode, types, IoUring};

use crate::{HugeBuffer, SysError};

/// A ring of `depth` entries and `depth` buffers of `block` bytes each (2 MiB-aligned memory,
/// so reads may use a file opened with `O_DIRECT`).
pub struct UringReader {
    ring: IoUring,
    buf: HugeBuffer,
    depth: usize,
    block: usize,
}

fn call(call: &'static str) -> impl Fn(std::io::Error) -> SysError {
    move |error| SysError::Call {
        call,
        path: None,
        error,
    }
}

impl UringReader {
    /// `io_uring_setup(2)` with `depth` entries, and the buffers.
    pub fn new(depth: usize, block: usize) -> Result<Self, SysError> {
        let depth = depth.max(1);
        let entries = u32::try_from(depth.next_power_of_two()).unwrap_or(4096);
        let ring = IoUring::new(entries).map_err(call("io_uring_setup"))?;
        let (buf, _) = HugeBuffer::with_pages(depth * block, false, false)?;
        Ok(Self {
            ring,
            buf,
            depth,
            block,
        })
    }

    /// Reads `block` bytes at each offset of `offsets`, keeping up to `depth` reads in flight;
    /// returns the bytes read. A short read or a failed one ends the call with an error, after
    /// the reads still in flight have completed.
    pub fn read_at_offsets(&mut self, file: &File, offsets: &[u64]) -> Result<u64, SysError> {
        let fd = types::Fd(file.as_raw_fd());
        let block_u32 = u32::try_from(self.block).unwrap_or(u32::MAX);
        let base = self.buf.as_mut_slice().as_mut_ptr();
        let mut next = 0usize;
        let mut in_flight = 0usize;
        let mut free: Vec<usize> = (0..self.depth).rev().collect();
        let mut total = 0u64;
        let mut first_error: Option<SysError> = None;
        loop {
            // Fill free slots while there is work and no error has been seen.
            while first_error.is_none() && next < offsets.len() {
                let Some(slot) = free.pop() else { break };
                // SAFETY: slot < depth, so the pointer stays inside `self.buf`, which has
                // depth * block bytes.
                let ptr = unsafe { base.add(slot * self.block) };
                let entry = opcode::Read::new(fd, ptr, block_u32)
                    .offset(offsets[next])
                    .build()
                    .user_data(slot as u64);
                // SAFETY: the buffer (`self.buf`) outlives the read: this function does not
                // return before every submitted read has completed, and `&mut self` keeps
                // anyone else from touching the buffer meanwhile. `file` is borrowed for the
                // whole call, so the descriptor stays open.
                if unsafe { self.ring.submission().push(&entry) }.is_err() {
                    free.push(slot);
                    break;
                }
                next += 1;
                in_flight += 1;
            }
            if in_flight == 0 {
                break;
            }
            if let Err(e) = self.ring.submit_and_wait(1) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                // Nothing more can be learnt from the ring; the kernel still owns the slots,
                // so the buffer is leaked rather than freed under a read.
                let dead = std::mem::replace(&mut self.buf, HugeBuffer::new(self.block, false)?.0);
                std::mem::forget(dead);
                return Err(call("io_uring_enter")(e));
            }
            for cqe in self.ring.completion() {
                in_flight -= 1;
                #[allow(clippy::cast_possible_truncation)] // user_data is a slot index we set
                free.push(cqe.user_data() as usize);
                let r = cqe.result();
                if r < 0 {
                    first_error.get_or_insert_with(|| {
                        call("io_uring read")(std::io::Error::from_raw_os_error(-r))
                    });
                } else if r.unsigned_abs() as usize != self.block {
                    first_error.get_or_insert_with(|| {
                        call("io_uring read")(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("short read: {r} of {} bytes", self.block),
                        ))
                    });
                } else {
                    total += u64::from(r.unsigned_abs());
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// The bytes of the last read in slot `slot` (for checking contents).
    pub fn slot(&self, slot: usize) -> &[u8] {
        let start = slot.min(self.depth - 1) * self.block;
        &self.buf.as_slice()[start..start + self.block]
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)]
mod tests {
    use std::io::Write;

    use super::*;
    use crate::test_skip::skip;

    #[test]
    fn reads_what_pread_reads_at_depth_one_and_many() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..64u8).flat_map(|b| [b; 4096]).collect();
        f.write_all(&data).unwrap();
        let file = File::open(f.path()).unwrap();
        if crate::probe_io_uring().is_err() {
            return skip(
                "uring::tests::reads_what_pread_reads_at_depth_one_and_many",
                "io_uring_setup refused here",
            );
        }
        for depth in [1, 8, 32] {
            let mut r = UringReader::new(depth, 4096).unwrap();
            let offsets: Vec<u64> = (0..64u64).rev().map(|i| i * 4096).collect();
            assert_eq!(r.read_at_offsets(&file, &offsets).unwrap(), 64 * 4096);
            // Depth one: the only slot holds the last read, block 0.
            if depth == 1 {
                assert!(r.slot(0).iter().all(|&b| b == 0));
            }
            let one = [7 * 4096u64];
            r.read_at_offsets(&file, &one).unwrap();
            assert!(r.slot(0).iter().all(|&b| b == 7));
        }
    }

    #[test]
    fn a_read_past_the_end_is_an_error_after_the_others_complete() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[1u8; 8192]).unwrap();
        let file = File::open(f.path()).unwrap();
        if crate::probe_io_uring().is_err() {
            return skip(
                "uring::tests::a_read_past_the_end_is_an_error_after_the_others_complete",
                "io_uring_setup refused here",
            );
        }
        let mut r = UringReader::new(4, 4096).unwrap();
        let e = r
            .read_at_offsets(&file, &[0, 4096, 1 << 20, 0])
            .unwrap_err()
            .to_string();
        assert!(e.contains("short read"), "{e}");
        // The ring is still usable.
        assert_eq!(r.read_at_offsets(&file, &[4096]).unwrap(), 4096);
    }
}
