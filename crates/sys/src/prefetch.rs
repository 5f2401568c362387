//! [`prefetch`]: asks the CPU to bring memory into its caches ahead of use.
//!
//! The loader reads each row of a batch from a random place in a dataset far larger than
//! the caches, so a row's first lines miss all the way to memory. A load that misses holds
//! up everything after it once the reorder window fills, while a prefetch instruction
//! retires at once and the line arrives in the background (Intel's optimization manual,
//! "Software prefetching"); issued a few rows ahead, the misses of the next rows overlap
//! with the stores of this one.
//!
//! # Safety
//! `_mm_prefetch` is an intrinsic with `#[target_feature(enable = "sse")]`, so calling it is
//! `unsafe`; SSE is part of the x86-64 baseline, so the feature is always present there. A
//! prefetch never faults and never reads into the program: its address may be anything, and
//! only addresses inside the slice it is given are passed.
#![allow(unsafe_code)]

/// Prefetches the cache lines of `items` into all levels of the cache, at most `max_lines`
/// of them from the start (the hardware's stream prefetcher follows a sequential read on
/// its own once it has seen a few misses). Does nothing on other architectures.
#[inline]
pub fn prefetch<T>(items: &[T], max_lines: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let first = items.as_ptr().cast::<i8>();
        let lines = std::mem::size_of_val(items).div_ceil(64).min(max_lines);
        for k in 0..lines {
            // SAFETY: see the module documentation; SSE is in the x86-64 baseline and a
            // prefetch of any address is harmless (`wrapping_add`: no pointer arithmetic
            // promise is made either).
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    first.wrapping_add(k * 64),
                );
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (items, max_lines);
}
