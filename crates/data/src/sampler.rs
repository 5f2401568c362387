//! The sampler: which token window is global sample `i`. Pure index arithmetic, O(1) time
//! and memory per sample, no index files.
//!
//! - [`Mode::Random`]: window `i` starts at a uniformly random offset drawn from a
//!   counter-based generator keyed by `(seed, i)` (nanoGPT's semantics, but any sample can
//!   be computed on its own, so resuming is exact).
//! - [`Mode::Epoch`]: the stream is cut into `M = (N - 1) / T` windows of `T + 1` tokens that
//!   overlap by one token (window `w` starts at `w * T`, as Megatron's `GPTDataset`); epoch `e`
//!   visits them in the order of a keyed bijection of `[0, M)` (a Feistel network with
//!   cycle-walking), optionally block-local: blocks of consecutive windows are visited in a
//!   permuted order, and the windows inside each block in a permuted order, so reads stay
//!   within a block at a time.
//!
//! Global samples run across epochs: sample `i` is in epoch `i / M`, position `i % M`.
//!
//! Written here rather than taken from a crate: the keyed bijection over an arbitrary range,
//! its inverse and the block-local layout are the point of the loader, and are a few dozen
//! lines.

use serde::{Deserialize, Serialize};

use crate::DataError;

/// How windows are chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode")]
pub enum Mode {
    /// Uniformly random offsets, with replacement.
    Random,
    /// Every window once per epoch, in a seeded order.
    Epoch {
        /// Visit blocks of this many consecutive windows together (`None`: a global order).
        block: Option<u64>,
    },
}

impl Mode {
    /// The mode called `name` (`random` or `epoch`); `block` applies to `epoch` only, and a
    /// block of 0 windows is refused. The CLI and the Python package both parse through here.
    pub fn parse(name: &str, block: Option<u64>) -> Result<Self, DataError> {
        match (name, block) {
            ("epoch", Some(0)) => Err(DataError::Usage(
                "a block must hold at least one window".into(),
            )),
            ("epoch", block) => Ok(Self::Epoch { block }),
            ("random", None) => Ok(Self::Random),
            ("random", Some(_)) => Err(DataError::Usage(
                "a block applies to the epoch mode only: random windows have no order to keep local"
                    .into(),
            )),
            (other, _) => Err(DataError::Usage(format!(
                "the sampling mode must be 'random' or 'epoch', not {other:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Random => "random",
            Self::Epoch { .. } => "epoch",
        }
    }
}

/// `SplitMix64`'s finaliser: a bijective mix of 64 bits.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A 64-bit value keyed by `(a, b)`.
fn hash2(a: u64, b: u64) -> u64 {
    mix(a ^ mix(b.wrapping_add(0x9e37_79b9_7f4a_7c15)))
}

/// The seed of one source of a mixture: distinct per source, and unlike any seed a loader
/// of one source uses for its epochs.
pub(crate) fn key(seed: u64, source: u64) -> u64 {
    hash2(hash2(seed, 0x6d69_7874_7572_6500), source)
}

/// A keyed pseudo-random permutation of `[0, n)`.
#[derive(Debug, Clone, Copy)]
struct Permutation {
    n: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl Permutation {
    fn new(n: u64, key: u64) -> Self {
        // The Feistel domain is 4^h >= n, so cycle-walking takes fewer than 4 steps on average.
        let bits = 64 - n.saturating_sub(1).leading_zeros();
        let half_bits = bits.div_ceil(2).max(1);
        let keys = [0, 1, 2, 3].map(|r| hash2(key, r));
        Self { n, half_bits, keys }
    }

    fn feistel(&self, x: u64, forward: bool) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut l, mut r) = (x >> self.half_bits, x & mask);
        if forward {
            for k in self.keys {
                (l, r) = (r, l ^ (hash2(k, r) & mask));
            }
        } else {
            for k in self.keys.iter().rev() {
                (l, r) = (r ^ (hash2(*k, l) & mask), l);
            }
        }
        (l << self.half_bits) | r
    }

    fn apply(&self, x: u64) -> u64 {
        self.walk(x, true)
    }

    fn invert(&self, y: u64) -> u64 {
        self.walk(y, false)
    }

    /// Cycle-walking: the Feistel network permutes `[0, 4^h)`; stepping until the value falls
    /// back into `[0, n)` permutes `[0, n)`.
    fn walk(&self, mut x: u64, forward: bool) -> u64 {
        if self.n <= 1 {
            return 0;
        }
        loop {
            x = self.feistel(x, forward);
            if x < self.n {
                return x;
            }
        }
    }
}

/// Maps global sample indices to token offsets.
#[derive(Debug, Clone, Copy)]
pub struct Sampler {
    mode: Mode,
    seed: u64,
    seq_len: u64,
    tokens: u64,
    /// Random: possible starts (`N - T`); epoch: windows per epoch (`(N - 1) / T`).
    count: u64,
}

impl Sampler {
    /// A sampler of windows of `seq_len + 1` tokens over a stream of `tokens` tokens.
    pub fn new(mode: Mode, seed: u64, seq_len: u64, tokens: u64) -> Result<Self, DataError> {
        if seq_len == 0 {
            return Err(DataError::Usage(
                "the sequence length must be at least 1".into(),
            ));
        }
        if tokens <= seq_len {
            return Err(DataError::Usage(format!(
                "the dataset has {tokens} tokens; a window of sequence length {seq_len} needs {} (inputs plus the next-token targets)",
                u128::from(seq_len) + 1
            )));
        }
        if matches!(mode, Mode::Epoch { block: Some(0) }) {
            return Err(DataError::Usage(
                "the block size must be at least 1 window".into(),
            ));
        }
        let count = match mode {
            Mode::Random => tokens - seq_len,
            Mode::Epoch { .. } => (tokens - 1) / seq_len,
        };
        Ok(Self {
            mode,
            seed,
            seq_len,
            tokens,
            count,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    pub fn seq_len(&self) -> u64 {
        self.seq_len
    }

    pub fn tokens(&self) -> u64 {
        self.tokens
    }

    /// Windows per epoch (epoch mode), or `None` (random mode has no epochs).
    pub fn samples_per_epoch(&self) -> Option<u64> {
        matches!(self.mode, Mode::Epoch { .. }).then_some(self.count)
    }

    /// The epoch global sample `i` belongs to (0 in random mode).
    pub fn epoch_of(&self, i: u64) -> u64 {
        self.samples_per_epoch().map_or(0, |m| i / m)
    }

    /// The first token of global sample `i`'s window (`seq_len + 1` tokens long).
    pub fn window_start(&self, i: u64) -> u64 {
        match self.mode {
            Mode::Random => {
                // Lemire's multiply-shift: uniform in [0, count) without a modulo's bias
                // beyond 2^-64.
                let r = hash2(self.seed, i);
                ((u128::from(r) * u128::from(self.count)) >> 64) as u64
            }
            Mode::Epoch { block } => {
                let (epoch, pos) = (i / self.count, i % self.count);
                let key = hash2(self.seed, epoch);
                let window = match block {
                    None | Some(1) => Permutation::new(self.count, key).apply(pos),
                    Some(l) => self.block_local(key, pos, l),
                };
                window * self.seq_len
            }
        }
    }

    /// Position `pos` of an epoch in block-local order with blocks of `l` windows (the last
    /// block may be shorter).
    fn block_local(&self, key: u64, pos: u64, l: u64) -> u64 {
        let m = self.count;
        let nb = m.div_ceil(l);
        let short = m - (nb - 1) * l; // size of the last block, 1..=l
        let blocks = Permutation::new(nb, hash2(key, u64::MAX));
        // Where the short block falls in the visiting order.
        let js = blocks.invert(nb - 1);
        let (j, offset, size) = if pos < js * l {
            (pos / l, pos % l, l)
        } else if pos < js * l + short {
            (js, pos - js * l, short)
        } else {
            let q = pos - js * l - short;
            (js + 1 + q / l, q % l, l)
        };
        let b = blocks.apply(j);
        b * l + Permutation::new(size, hash2(key, b)).apply(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn permutations_are_bijections_with_inverses() {
        for n in [1u64, 2, 3, 5, 16, 17, 1000, 4097] {
            let p = Permutation::new(n, 42);
            let mut seen = vec![false; usize::try_from(n).unwrap()];
            for x in 0..n {
                let y = p.apply(x);
                assert!(y < n);
                assert!(
                    !std::mem::replace(&mut seen[usize::try_from(y).unwrap()], true),
                    "n={n}: {y} twice"
                );
                assert_eq!(p.invert(y), x);
            }
        }
    }

    #[test]
    fn different_seeds_and_epochs_give_different_orders() {
        let a = Sampler::new(Mode::Epoch { block: None }, 1, 4, 4001).unwrap();
        let b = Sampler::new(Mode::Epoch { block: None }, 2, 4, 4001).unwrap();
        let first = |s: &Sampler, e: u64| {
            (0..20)
                .map(|i| s.window_start(e * 1000 + i))
                .collect::<Vec<_>>()
        };
        assert_ne!(first(&a, 0), first(&b, 0));
        assert_ne!(first(&a, 0), first(&a, 1));
        assert_eq!(first(&a, 1), first(&a, 1));
    }

    fn epoch_starts(s: &Sampler, epoch: u64) -> Vec<u64> {
        let m = s.samples_per_epoch().unwrap();
        (epoch * m..(epoch + 1) * m)
            .map(|i| s.window_start(i))
            .collect()
    }

    proptest! {
        #[test]
        fn every_window_once_per_epoch(tokens in 2u64..3000, t in 1u64..50, seed: u64, block in proptest::option::of(1u64..40)) {
            prop_assume!(tokens > t);
            let s = Sampler::new(Mode::Epoch { block }, seed, t, tokens).unwrap();
            let m = s.samples_per_epoch().unwrap();
            prop_assert_eq!(m, (tokens - 1) / t);
            for epoch in 0..2 {
                let mut starts = epoch_starts(&s, epoch);
                starts.sort_unstable();
                let want: Vec<u64> = (0..m).map(|w| w * t).collect();
                prop_assert_eq!(&starts, &want);
                // Every window fits: T + 1 tokens from its start.
                prop_assert!(starts.iter().all(|&st| st + t < tokens));
            }
        }

        #[test]
        fn random_windows_fit_and_repeat_exactly(tokens in 2u64..100_000, t in 1u64..1000, seed: u64, i: u64) {
            prop_assume!(tokens > t);
            let s = Sampler::new(Mode::Random, seed, t, tokens).unwrap();
            let st = s.window_start(i);
            prop_assert!(st + t < tokens);
            prop_assert_eq!(st, s.window_start(i));
        }
    }

    #[test]
    fn block_local_order_stays_within_blocks() {
        let s = Sampler::new(Mode::Epoch { block: Some(8) }, 7, 2, 2 * 100 + 1).unwrap();
        let starts = epoch_starts(&s, 0);
        // 100 windows in blocks of 8: each run of 8 visits lies in one block (the short block
        // of 4 shifts the runs after it).
        let blocks: Vec<u64> = starts.iter().map(|st| st / 2 / 8).collect();
        let mut changes = 0;
        for w in blocks.windows(2) {
            changes += u64::from(w[0] != w[1]);
        }
        assert_eq!(changes, 12, "13 blocks visited one after another");
    }

    #[test]
    fn random_starts_are_roughly_uniform() {
        let s = Sampler::new(Mode::Random, 3, 1, 11).unwrap(); // 10 possible starts
        let mut counts = [0u32; 10];
        for i in 0..100_000 {
            counts[usize::try_from(s.window_start(i)).unwrap()] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_000..11_000).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(Sampler::new(Mode::Random, 0, 0, 100).is_err());
        let e = Sampler::new(Mode::Random, 0, 100, 100)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs 101"), "{e}");
        assert!(Sampler::new(Mode::Epoch { block: Some(0) }, 0, 1, 100).is_err());
    }
}
