//! The NUMA memory policy of the calling thread: `set_mempolicy(2)` and `get_mempolicy(2)`.
//! Neither rustix nor nix wraps them, so this module calls them through `libc::syscall`.

#![allow(unsafe_code)]

use crate::SysError;

/// A memory policy, as `numactl --membind / --preferred / --interleave` sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemPolicy {
    Default,
    Preferred,
    Bind,
    Interleave,
}

impl MemPolicy {
    fn mode(self) -> libc::c_int {
        // include/uapi/linux/mempolicy.h
        match self {
            Self::Default => 0,
            Self::Preferred => 1,
            Self::Bind => 2,
            Self::Interleave => 3,
        }
    }

    fn from_mode(mode: libc::c_int) -> Option<Self> {
        // Mode flags (MPOL_F_STATIC_NODES…) sit in the high bits.
        match mode & 0xff {
            0 => Some(Self::Default),
            1 => Some(Self::Preferred),
            2 => Some(Self::Bind),
            3 => Some(Self::Interleave),
            _ => None,
        }
    }
}

/// Bits in the node masks passed to the kernel (Linux's `MAX_NUMNODES` is at most 1024).
const MASK_BITS: usize = 1024;
const WORD_BITS: usize = libc::c_ulong::BITS as usize;

fn call(call: &'static str) -> impl Fn(std::io::Error) -> SysError {
    move |error| SysError::Call {
        call,
        path: None,
        error,
    }
}

/// Sets the calling thread's memory policy over `nodes` (ignored for `Default`). The policy
/// is inherited across `fork` and kept across `execve`.
pub fn set_mempolicy(policy: MemPolicy, nodes: &[usize]) -> Result<(), SysError> {
    let mut mask = [0 as libc::c_ulong; MASK_BITS / WORD_BITS];
    for &n in nodes {
        if n >= MASK_BITS {
            return Err(call("set_mempolicy")(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("node {n} is beyond the {MASK_BITS} nodes Linux supports"),
            )));
        }
        mask[n / WORD_BITS] |= 1 << (n % WORD_BITS);
    }
    let (ptr, maxnode) = if policy == MemPolicy::Default {
        (std::ptr::null(), 0)
    } else {
        // The kernel reads maxnode - 1 bits.
        (mask.as_ptr(), MASK_BITS + 1)
    };
    // SAFETY: the mask outlives the call and holds MASK_BITS bits, as maxnode says; the
    // kernel only reads it.
    let r = unsafe {
        libc::syscall(
            libc::SYS_set_mempolicy,
            policy.mode(),
            ptr,
            maxnode as libc::c_ulong,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(call("set_mempolicy")(std::io::Error::last_os_error()))
    }
}

/// The calling thread's memory policy and its nodes.
pub fn get_mempolicy() -> Result<(Option<MemPolicy>, Vec<usize>), SysError> {
    let mut mode: libc::c_int = 0;
    let mut mask = [0 as libc::c_ulong; MASK_BITS / WORD_BITS];
    // SAFETY: both out-pointers are valid for writes of the sizes given (maxnode bits).
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            &raw mut mode,
            mask.as_mut_ptr(),
            MASK_BITS as libc::c_ulong,
            std::ptr::null::<libc::c_void>(),
            0 as libc::c_ulong,
        )
    };
    if r != 0 {
        return Err(call("get_mempolicy")(std::io::Error::last_os_error()));
    }
    let nodes = (0..MASK_BITS)
        .filter(|&n| mask[n / WORD_BITS] & (1 << (n % WORD_BITS)) != 0)
        .collect();
    Ok((MemPolicy::from_mode(mode), nodes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_skip::skip;

    #[test]
    fn bind_then_read_back_then_reset() {
        // A fresh thread, so the test thread's policy is left alone.
        std::thread::spawn(|| {
            if let Err(e) = set_mempolicy(MemPolicy::Bind, &[0]) {
                return skip(
                    "mempolicy::tests::bind_then_read_back_then_reset",
                    &format!("set_mempolicy refused here ({e}); a kernel without NUMA?"),
                );
            }
            let (mode, nodes) = get_mempolicy().unwrap();
            assert_eq!(mode, Some(MemPolicy::Bind));
            assert_eq!(nodes, [0]);
            set_mempolicy(MemPolicy::Default, &[]).unwrap();
            assert_eq!(get_mempolicy().unwrap().0, Some(MemPolicy::Default));
            let e = set_mempolicy(MemPolicy::Bind, &[5000])
                .unwrap_err()
                .to_string();
            assert!(e.contains("node 5000"), "{e}");
        })
        .join()
        .unwrap();
    }
}
