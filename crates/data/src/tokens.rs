//! [`Tokens`]: a borrowed run of tokens in a file's own dtype and byte order.
//!
//! Megatron's index arrays and many token files are not aligned for their element type (the
//! `.idx` header is 34 bytes), so every read here goes through `from_le_bytes` on byte chunks:
//! unaligned-safe, and the compiler turns it into plain loads.

use crate::DType;

/// A run of little-endian tokens, borrowed from a mapping.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    dtype: DType,
    bytes: &'a [u8],
}

macro_rules! widen {
    ($bytes:expr, $out:expr, $n:literal, $from:ty, $to:ty) => {
        for (o, c) in $out.iter_mut().zip($bytes.chunks_exact($n)) {
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_possible_wrap,
                clippy::cast_sign_loss
            )]
            {
                *o = <$from>::from_le_bytes(a) as $to;
            }
        }
    };
}

/// Calls `$f` with the index of each `$n`-byte little-endian element of `$bytes` equal to
/// `$want` (a `$t`), in order: the matches of a block of 64 counted (vector compares), and
/// only a block with any compared again, one element at a time, for their indices.
macro_rules! each_equal {
    ($bytes:expr, $want:expr, $f:expr, $n:literal, $t:ty) => {{
        const LANES: usize = 64;
        let want: $t = $want;
        let equal = |c: &[u8]| {
            let mut a = [0u8; $n];
            a.copy_from_slice(c);
            <$t>::from_le_bytes(a) == want
        };
        let mut blocks = $bytes.chunks_exact(LANES * $n);
        let mut base = 0usize;
        for block in &mut blocks {
            // A count of the block's matches, which vectorises; most blocks have none.
            let hits: u32 = block.chunks_exact($n).map(|c| u32::from(equal(c))).sum();
            if hits > 0 {
                for (k, c) in block.chunks_exact($n).enumerate() {
                    if equal(c) {
                        $f(base + k);
                    }
                }
            }
            base += LANES;
        }
        for (k, c) in blocks.remainder().chunks_exact($n).enumerate() {
            if equal(c) {
                $f(base + k);
            }
        }
    }};
}

impl<'a> Tokens<'a> {
    /// Wraps bytes; a trailing partial element is ignored.
    pub fn new(dtype: DType, bytes: &'a [u8]) -> Self {
        let whole = bytes.len() / dtype.size() * dtype.size();
        Self {
            dtype,
            bytes: &bytes[..whole],
        }
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.bytes.len() / self.dtype.size()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Token `i` as an `i64` (floats are truncated toward zero), or `None` past the end.
    pub fn get(&self, i: usize) -> Option<i64> {
        let n = self.dtype.size();
        let c = self.bytes.get(i * n..(i + 1) * n)?;
        let mut out = [0i64];
        Tokens::new(self.dtype, c).write_i64(&mut out);
        Some(out[0])
    }

    /// Widens into `out` (which must hold [`Tokens::len`] values; extra slots are untouched).
    pub fn write_i64(&self, out: &mut [i64]) {
        let b = self.bytes;
        match self.dtype {
            DType::U8 => widen!(b, out, 1, u8, i64),
            DType::I8 => widen!(b, out, 1, i8, i64),
            DType::U16 => widen!(b, out, 2, u16, i64),
            DType::I16 => widen!(b, out, 2, i16, i64),
            DType::U32 => widen!(b, out, 4, u32, i64),
            DType::I32 => widen!(b, out, 4, i32, i64),
            DType::U64 => widen!(b, out, 8, u64, i64),
            DType::I64 => widen!(b, out, 8, i64, i64),
            DType::F32 => widen!(b, out, 4, f32, i64),
            DType::F64 => widen!(b, out, 8, f64, i64),
        }
    }

    /// Narrows or widens into `i32` (ids past `i32::MAX` wrap: vocabularies are far smaller).
    pub fn write_i32(&self, out: &mut [i32]) {
        let b = self.bytes;
        match self.dtype {
            DType::U8 => widen!(b, out, 1, u8, i32),
            DType::I8 => widen!(b, out, 1, i8, i32),
            DType::U16 => widen!(b, out, 2, u16, i32),
            DType::I16 => widen!(b, out, 2, i16, i32),
            DType::U32 => widen!(b, out, 4, u32, i32),
            DType::I32 => widen!(b, out, 4, i32, i32),
            DType::U64 => widen!(b, out, 8, u64, i32),
            DType::I64 => widen!(b, out, 8, i64, i32),
            DType::F32 => widen!(b, out, 4, f32, i32),
            DType::F64 => widen!(b, out, 8, f64, i32),
        }
    }

    /// Whether some value of this dtype is not a token id in `0..=max`: a negative value of a
    /// signed or float type, or one past `max`. When `false`, [`Tokens::first_unfit`] is
    /// always `None` and need not be called.
    pub fn may_not_fit(dtype: DType, max: u64) -> bool {
        !matches!(dtype, DType::U8 | DType::U16 | DType::U32 | DType::U64)
            || dtype.max_value() > max
    }

    /// The first token that is not an id in `0..=max` (negative, or too large for the type it
    /// is delivered in), as its index here and its value; `None` when all fit.
    pub fn first_unfit(&self, max: u64) -> Option<(usize, i128)> {
        macro_rules! scan {
            ($n:literal, $t:ty) => {
                self.bytes.chunks_exact($n).enumerate().find_map(|(i, c)| {
                    let mut a = [0u8; $n];
                    a.copy_from_slice(c);
                    let v = <$t>::from_le_bytes(a);
                    #[allow(clippy::cast_possible_truncation, clippy::cast_lossless)]
                    let wide = v as i128;
                    (wide < 0 || wide > i128::from(max)).then_some((i, wide))
                })
            };
        }
        match self.dtype {
            DType::U8 => scan!(1, u8),
            DType::I8 => scan!(1, i8),
            DType::U16 => scan!(2, u16),
            DType::I16 => scan!(2, i16),
            DType::U32 => scan!(4, u32),
            DType::I32 => scan!(4, i32),
            DType::U64 => scan!(8, u64),
            DType::I64 => scan!(8, i64),
            // Floats are truncated toward zero on the way out; NaN becomes 0 there and here.
            DType::F32 => scan!(4, f32),
            DType::F64 => scan!(8, f64),
        }
    }

    /// Calls `f` with the index of each token equal to `token`, in order (an integer dtype's
    /// value; floats match none). The matches among 64 tokens at a time are counted, which
    /// the compiler makes vector compares of, and only a block with any is compared again for
    /// their indices: the scan for an end-of-document token that `documents=True` makes of a
    /// raw stream before its first batch then costs about a read of the stream, not a branch
    /// per token.
    pub fn each_position_of(&self, token: u64, mut f: impl FnMut(usize)) {
        if self.dtype.is_float() || token > self.dtype.max_value() {
            return;
        }
        // `token` fits the dtype (checked above), so its low bytes are the element's bytes:
        // a signed dtype's non-negative values have the same bits as the unsigned type's.
        #[allow(clippy::cast_possible_truncation)]
        match self.dtype.size() {
            1 => each_equal!(self.bytes, token as u8, f, 1, u8),
            2 => each_equal!(self.bytes, token as u16, f, 2, u16),
            4 => each_equal!(self.bytes, token as u32, f, 4, u32),
            _ => each_equal!(self.bytes, token, f, 8, u64),
        }
    }

    /// All tokens as `i64`.
    pub fn to_vec(&self) -> Vec<i64> {
        let mut v = vec![0; self.len()];
        self.write_i64(&mut v);
        v
    }
}

/// `len` tokens from a source's stream: one run of a mapping, or, where the window crosses
/// from one shard (or Arrow record batch) into the next, several runs in order.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    first: Tokens<'a>,
    /// The runs after the first (empty for a window inside one run: no allocation).
    rest: Vec<Tokens<'a>>,
}

impl<'a> Window<'a> {
    pub(crate) fn new(first: Tokens<'a>, rest: Vec<Tokens<'a>>) -> Self {
        Self { first, rest }
    }

    pub fn dtype(&self) -> DType {
        self.first.dtype
    }

    /// The runs of the window, in order (one unless it crosses a shard boundary).
    pub fn pieces(&self) -> impl Iterator<Item = &Tokens<'a>> {
        std::iter::once(&self.first).chain(&self.rest)
    }

    /// Whether the window lies in one run, whose bytes [`Window::contiguous`] lends.
    pub fn contiguous(&self) -> Option<Tokens<'a>> {
        self.rest.is_empty().then_some(self.first)
    }

    pub fn len(&self) -> usize {
        self.pieces().map(Tokens::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.pieces().all(Tokens::is_empty)
    }

    /// Token `i` as an `i64`, or `None` past the end.
    pub fn get(&self, mut i: usize) -> Option<i64> {
        for p in self.pieces() {
            if i < p.len() {
                return p.get(i);
            }
            i -= p.len();
        }
        None
    }

    /// Widens into `out`, which holds [`Window::len`] values.
    pub fn write_i64(&self, out: &mut [i64]) {
        let mut at = 0;
        for p in self.pieces() {
            p.write_i64(&mut out[at..]);
            at += p.len();
        }
    }

    /// Narrows or widens into `out` (see [`Tokens::write_i32`]).
    pub fn write_i32(&self, out: &mut [i32]) {
        let mut at = 0;
        for p in self.pieces() {
            p.write_i32(&mut out[at..]);
            at += p.len();
        }
    }

    /// Copies the little-endian bytes into `out`, which holds them all.
    pub fn copy_bytes(&self, out: &mut [u8]) {
        let mut at = 0;
        for p in self.pieces() {
            out[at..at + p.bytes.len()].copy_from_slice(p.bytes);
            at += p.bytes.len();
        }
    }

    /// The first token that is not an id in `0..=max`, as its index in the window and its
    /// value (see [`Tokens::first_unfit`]).
    pub fn first_unfit(&self, max: u64) -> Option<(usize, i128)> {
        let mut at = 0;
        for p in self.pieces() {
            if let Some((i, v)) = p.first_unfit(max) {
                return Some((at + i, v));
            }
            at += p.len();
        }
        None
    }

    pub fn to_vec(&self) -> Vec<i64> {
        let mut v = vec![0; self.len()];
        self.write_i64(&mut v);
        v
    }
}

/// Reads little-endian integers at any alignment from an index array.
pub(crate) fn le_u64(bytes: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&bytes[i * 8..i * 8 + 8]);
    u64::from_le_bytes(a)
}

pub(crate) fn le_i32(bytes: &[u8], i: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&bytes[i * 4..i * 4 + 4]);
    i32::from_le_bytes(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_reads_unaligned_little_endian() {
        // Start at an odd offset to be sure alignment does not matter.
        let mut buf = vec![0xAAu8];
        for v in [1u16, 50_256, 65_535] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        let t = Tokens::new(DType::U16, &buf[1..]);
        assert_eq!(t.len(), 3);
        assert_eq!(t.to_vec(), [1, 50_256, 65_535]);
        let mut o = [0i32; 3];
        t.write_i32(&mut o);
        assert_eq!(o, [1, 50_256, 65_535]);
        assert_eq!(t.get(2), Some(65_535));
        assert_eq!(t.get(3), None);
    }

    #[test]
    fn ids_that_do_not_fit_are_found_first() {
        let b: Vec<u8> = [5u64, 1 << 63, u64::MAX]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let t = Tokens::new(DType::U64, &b);
        assert!(Tokens::may_not_fit(DType::U64, i64::MAX.unsigned_abs()));
        assert_eq!(
            t.first_unfit(i64::MAX.unsigned_abs()),
            Some((1, 1i128 << 63))
        );
        let b: Vec<u8> = [7i64, -1].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Tokens::new(DType::I64, &b).first_unfit(u64::MAX),
            Some((1, -1))
        );
        let b: Vec<u8> = [1u32 << 31].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            Tokens::new(DType::U32, &b).first_unfit(i32::MAX.unsigned_abs().into()),
            Some((0, 1i128 << 31))
        );
        assert!(!Tokens::may_not_fit(
            DType::U16,
            i32::MAX.unsigned_abs().into()
        ));
        assert!(!Tokens::may_not_fit(DType::U32, i64::MAX.unsigned_abs()));
    }

    proptest::proptest! {
        /// Against comparing every token, for each width, runs of any length (whole blocks
        /// of 64 and a remainder), any offset (unaligned), and tokens that are common, rare,
        /// absent or too large for the dtype.
        #[test]
        fn positions_are_every_equal_token(
            values in proptest::collection::vec(0u64..6, 0..300),
            offset in 0usize..8,
            token in proptest::prop_oneof![0u64..6, proptest::strategy::Just(u64::MAX)],
            width in proptest::sample::select(vec![DType::U8, DType::I16, DType::U16, DType::U32, DType::I32, DType::U64]),
        ) {
            let n = width.size();
            let mut bytes = vec![0xEEu8; offset];
            for &v in &values {
                bytes.extend_from_slice(&v.to_le_bytes()[..n]);
            }
            let t = Tokens::new(width, &bytes[offset..]);
            let mut found = Vec::new();
            t.each_position_of(token, |i| found.push(i));
            let want: Vec<usize> = (0..values.len()).filter(|&i| values[i] == token).collect();
            proptest::prop_assert_eq!(found, want);
        }
    }

    #[test]
    fn floats_and_ids_past_the_dtype_match_nothing() {
        let f: Vec<u8> = [1.0f32, 0.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut found = Vec::new();
        Tokens::new(DType::F32, &f).each_position_of(0, |i| found.push(i));
        // 65,536 + 1 would be 1 in a u16 if it were truncated.
        let b: Vec<u8> = [1u16, 1].iter().flat_map(|v| v.to_le_bytes()).collect();
        Tokens::new(DType::U16, &b).each_position_of(65_537, |i| found.push(i));
        // i16's 65,535 is -1, not a token id.
        let b: Vec<u8> = [-1i16].iter().flat_map(|v| v.to_le_bytes()).collect();
        Tokens::new(DType::I16, &b).each_position_of(65_535, |i| found.push(i));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn signed_and_float_types() {
        let b: Vec<u8> = [-5i32, 7].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(Tokens::new(DType::I32, &b).to_vec(), [-5, 7]);
        let f: Vec<u8> = [2.9f32, -1.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(Tokens::new(DType::F32, &f).to_vec(), [2, -1]);
        assert_eq!(
            Tokens::new(DType::U16, &[1, 2, 3]).len(),
            1,
            "partial element ignored"
        );
    }
}
