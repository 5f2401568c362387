//! Mixtures: several sources read by weight, each in its own epochs, with Megatron's splits.
//!
//! - [`Weights`]: relative weights as the user wrote them, kept exact. A weight is parsed as
//!   the decimal it was written as (`0.7` is 7/10, not the nearest double), so
//!   `{web: 0.7, code: 0.2, books: 0.1}` has shares 7 : 2 : 1 and a period of 10 samples.
//!   Weights whose exact shares would need a period above [`MAX_PERIOD`] samples are rounded
//!   to shares of [`MAX_PERIOD`] (each source that has a weight keeps at least one share);
//!   [`Weights::exact`] says which happened.
//! - [`Schedule`]: which source global sample `n` comes from. Within one period of `P`
//!   samples the sources take turns by Balinski and Young's quota method (the next sample
//!   goes to the source with the largest `share / (taken + 1)` among those that would not
//!   pass their upper quota), which keeps every prefix within quota: among the first `n`
//!   samples, source `i` has `floor(wᵢ·n)` or `ceil(wᵢ·n)` of them, never a sample more or
//!   less. At the end of a period every source has exactly its shares, so the next period
//!   repeats the first: sample `n` is slot `n mod P`, and a source's own index is
//!   `(n div P)·shareᵢ` plus the slot's rank. One table of `P` slots, built in one pass on
//!   open; O(1) per sample after that, no index files.
//! - [`Split`]: `"969,30,1"` with a [`Subset`], by document, as megatron-core's
//!   `BlendedMegatronDatasetBuilder` cuts a dataset: the ratios normalised, their running
//!   sums multiplied by the document count and rounded half to even (Python's `round`).
//!   Each subset is a contiguous run of documents, so of tokens.
//! - [`Mixture`]: the parts (a dataset, the token range of its subset, its name) and the
//!   weights, with changes at global samples (a curriculum). A change starts a new schedule
//!   at that sample; each source continues from the samples it had taken.
//!
//! Written here rather than taken from a crate: the schedule is the sampler's arithmetic,
//! which is what this crate exists for; no crate offers a house-monotone quota apportionment.

// Shares, slots and ranks are bounded by `MAX_PERIOD` (2^18) and sources by `MAX_SOURCES`
// (< 2^16); the rounding casts of `quantize` and `Split::documents` are of non-negative values
// below the document count or the period.
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]

use std::collections::BinaryHeap;
use std::ops::Range;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::decimal::{Decimal, DecimalError, MAX_DIGITS};
use crate::{DataError, TokenDataset, TokenSource};

/// Most sources one mixture may hold.
pub const MAX_SOURCES: usize = 4096;
/// The longest period of a schedule, in samples: the table costs 6 bytes per slot (1.5 MiB at
/// most) and is built in one pass when the loader starts.
pub const MAX_PERIOD: u64 = 1 << 18;

/// The refusal of weight `text`, worded for a weight.
fn weight_error(text: &str, e: DecimalError) -> String {
    let why = match e {
        DecimalError::Negative => "is negative: weights are relative shares, 0 or more".into(),
        DecimalError::NotFinite | DecimalError::BadExponent | DecimalError::NotANumber => {
            e.to_string()
        }
        DecimalError::TooManyDigits => {
            format!("needs more than the {MAX_DIGITS} digits osml keeps of a weight")
        }
        DecimalError::TooManyPlaces => {
            format!("has digits past the {MAX_DIGITS}th decimal place, which osml does not keep")
        }
    };
    format!("weight {text:?} {why}")
}

/// Why a weight change at `step` cannot follow the last one so far (at `previous`), if it
/// cannot: changes come at increasing steps from 1 on (the first weights hold from step 0).
/// Mixture files check it as they are read, [`Mixture::change_at_step`] as changes are added
/// (so also for the Python package, whose `Mixture` checks the same first, in the same words).
pub(crate) fn schedule_step_error(previous: Option<u64>, step: u64) -> Option<String> {
    if step == 0 {
        return Some(
            "the schedule's steps start after 0 (the sources' weights hold from step 0)".into(),
        );
    }
    previous.filter(|&before| before >= step).map(|before| {
        format!("the schedule's steps must increase: step {step} follows step {before}")
    })
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Relative weights of a mixture's sources, as integer shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weights {
    shares: Vec<u64>,
    exact: bool,
    /// The most that rounding moved a source's share, relative to the share it was given,
    /// in billionths (rounded up; 0 when exact): an integer, so that weights compare exactly.
    change_ppb: u64,
}

impl Weights {
    /// Weights from their written forms (`"0.7"`, `"3"`, `"1e-3"`), one per source. Refused:
    /// a negative, non-finite or unparsable weight, naming the source it belongs to; no
    /// weights, or weights that are all zero.
    pub fn parse(names: &[String], texts: &[String]) -> Result<Self, DataError> {
        if texts.is_empty() {
            return Err(DataError::Usage(
                "a mixture needs at least one source".into(),
            ));
        }
        if texts.len() > MAX_SOURCES {
            return Err(DataError::Usage(format!(
                "a mixture holds at most {MAX_SOURCES} sources, not {}",
                texts.len()
            )));
        }
        let mut decimals = Vec::with_capacity(texts.len());
        for (i, t) in texts.iter().enumerate() {
            let name = names.get(i).map_or_else(|| format!("#{i}"), Clone::clone);
            decimals.push(
                Decimal::parse(t).map_err(|e| {
                    DataError::Usage(format!("source {name}: {}", weight_error(t, e)))
                })?,
            );
        }
        if decimals.iter().all(|d| d.mantissa == 0) {
            return Err(DataError::Usage(format!(
                "the weights of the mixture ({}) are all zero: at least one source needs a positive weight",
                texts.join(", ")
            )));
        }
        Ok(Self::from_decimals(&decimals))
    }

    /// Weights from integer shares (a state's record); all zero is refused.
    #[allow(clippy::needless_pass_by_value)] // callers build the vector for it
    pub fn from_shares(shares: Vec<u64>) -> Result<Self, DataError> {
        if shares.is_empty() || shares.iter().all(|&s| s == 0) {
            return Err(DataError::Usage(
                "a mixture's shares must include a positive one".into(),
            ));
        }
        let decimals: Vec<Decimal> = shares
            .iter()
            .map(|&s| Decimal {
                mantissa: u128::from(s),
                scale: 0,
            })
            .collect();
        Ok(Self::from_decimals(&decimals))
    }

    fn from_decimals(decimals: &[Decimal]) -> Self {
        let scale = decimals.iter().map(|d| d.scale).max().unwrap_or(0);
        let scaled: Option<Vec<u128>> = decimals
            .iter()
            .map(|d| {
                10u128
                    .checked_pow(scale - d.scale)
                    .and_then(|f| d.mantissa.checked_mul(f))
            })
            .collect();
        if let Some(mut ints) = scaled {
            let g = ints.iter().fold(0, |g, &v| gcd(g, v));
            for v in &mut ints {
                *v /= g;
            }
            let total = ints.iter().try_fold(0u128, |t, &v| t.checked_add(v));
            if total.is_some_and(|t| t <= u128::from(MAX_PERIOD)) {
                return Self {
                    // Each is at most MAX_PERIOD.
                    shares: ints.iter().map(|&v| v as u64).collect(),
                    exact: true,
                    change_ppb: 0,
                };
            }
        }
        let values: Vec<f64> = decimals
            .iter()
            .map(|d| d.mantissa as f64 / 10f64.powi(i32::try_from(d.scale).unwrap_or(38)))
            .collect();
        let shares = quantize(&values, MAX_PERIOD);
        let given: f64 = values.iter().sum();
        // |rounded share / given share - 1| of each source that has a weight.
        let change = shares
            .iter()
            .zip(&values)
            .filter(|&(_, &v)| v > 0.0)
            .map(|(&s, &v)| (s as f64 * given / (MAX_PERIOD as f64 * v) - 1.0).abs())
            .fold(0.0, f64::max);
        Self {
            shares,
            exact: false,
            change_ppb: (change * 1e9).ceil() as u64,
        }
    }

    /// The integer shares (their sum is the schedule's period).
    pub fn shares(&self) -> &[u64] {
        &self.shares
    }

    /// Whether the shares are the weights exactly (else rounded to a period of
    /// [`MAX_PERIOD`]).
    pub fn exact(&self) -> bool {
        self.exact
    }

    /// How far rounding moved the shares: the largest `|rounded / given - 1|` of a source's
    /// share (0 when exact). Weights like `1/3` as a double move by about 10^-5, a weight of
    /// `1e-9` beside `1` (kept at one share of 2^18) by thousands.
    pub fn largest_change(&self) -> f64 {
        self.change_ppb as f64 / 1e9
    }

    /// The normalised weights the schedule follows.
    pub fn normalized(&self) -> Vec<f64> {
        let total: u64 = self.shares.iter().sum();
        self.shares
            .iter()
            .map(|&s| s as f64 / total as f64)
            .collect()
    }
}

/// Largest-remainder shares of `total` in proportion to `values` (not all zero), each
/// positive value keeping at least one share.
fn quantize(values: &[f64], total: u64) -> Vec<u64> {
    let sum: f64 = values.iter().sum();
    let ideal: Vec<f64> = values.iter().map(|v| v / sum * total as f64).collect();
    let mut shares: Vec<u64> = ideal
        .iter()
        .zip(values)
        .map(|(&x, &v)| {
            let f = x.floor() as u64;
            if v > 0.0 {
                f.max(1)
            } else {
                0
            }
        })
        .collect();
    let mut have: u64 = shares.iter().sum();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        let (ra, rb) = (ideal[a] - ideal[a].floor(), ideal[b] - ideal[b].floor());
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle().take(values.len() * 2) {
        if have >= total {
            break;
        }
        if values[i] > 0.0 {
            shares[i] += 1;
            have += 1;
        }
    }
    // Minimums of one share may overshoot: take back from the largest.
    while have > total {
        let i = (0..shares.len()).max_by_key(|&i| shares[i]).unwrap_or(0);
        shares[i] -= 1;
        have -= 1;
    }
    shares
}

/// A source's place in the quota method's priority order: `share / (taken + 1)`, larger
/// first, then the lower index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Turn {
    share: u64,
    taken: u64,
    source: usize,
}

impl Ord for Turn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let a = u128::from(self.share) * u128::from(other.taken + 1);
        let b = u128::from(other.share) * u128::from(self.taken + 1);
        a.cmp(&b).then(other.source.cmp(&self.source))
    }
}

impl PartialOrd for Turn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// Which source each global sample comes from, for one set of weights.
#[derive(Debug, Clone)]
pub struct Schedule {
    shares: Vec<u64>,
    period: u64,
    /// Per slot of the period: the source, and how many samples of it come before the slot.
    source: Vec<u16>,
    rank: Vec<u32>,
}

impl Schedule {
    /// The schedule of `weights`: one period of the quota method.
    pub fn new(weights: &Weights) -> Self {
        let shares = weights.shares.clone();
        let period: u64 = shares.iter().sum();
        let p = usize::try_from(period).unwrap_or(0);
        let mut source = Vec::with_capacity(p);
        let mut rank = Vec::with_capacity(p);
        let mut heap: BinaryHeap<Turn> = shares
            .iter()
            .enumerate()
            .filter(|(_, &s)| s > 0)
            .map(|(i, &share)| Turn {
                share,
                taken: 0,
                source: i,
            })
            .collect();
        let mut blocked = Vec::new();
        for h in 0..period {
            // Eligible: one more sample keeps the source within its upper quota at h + 1,
            // taken + 1 <= ceil(share·(h+1)/P), that is taken·P < share·(h+1).
            let eligible = |t: &Turn| {
                u128::from(t.taken) * u128::from(period) < u128::from(t.share) * u128::from(h + 1)
            };
            let turn = loop {
                match heap.pop() {
                    Some(t) if eligible(&t) => break Some(t),
                    Some(t) => blocked.push(t),
                    None => break None,
                }
            };
            // Balinski and Young prove an eligible source always exists; should arithmetic
            // ever say otherwise, the most deserving blocked one takes the slot rather than
            // the period coming out short.
            let mut t = if let Some(t) = turn {
                t
            } else {
                blocked.sort();
                let Some(t) = blocked.pop() else { break };
                t
            };
            // Sources are at most MAX_SOURCES (< 2^16); a rank is below the period (< 2^32).
            source.push(t.source as u16);
            rank.push(t.taken as u32);
            t.taken += 1;
            if t.taken < t.share {
                heap.push(t);
            }
            heap.extend(blocked.drain(..));
        }
        Self {
            shares,
            period,
            source,
            rank,
        }
    }

    pub fn period(&self) -> u64 {
        self.period
    }

    /// Sample `n` of this schedule: its source, and its index among that source's samples.
    pub fn assign(&self, n: u64) -> (usize, u64) {
        let (cycle, slot) = (n / self.period, (n % self.period) as usize);
        let s = usize::from(self.source[slot]);
        (s, cycle * self.shares[s] + u64::from(self.rank[slot]))
    }

    /// How many of the first `n` samples each source has.
    pub fn counts(&self, n: u64) -> Vec<u64> {
        let (cycle, slot) = (n / self.period, (n % self.period) as usize);
        let mut out: Vec<u64> = self.shares.iter().map(|&s| cycle * s).collect();
        for &s in &self.source[..slot] {
            out[usize::from(s)] += 1;
        }
        out
    }
}

/// A change of weights at a global sample, as a loader state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeightChange {
    /// The first global sample drawn with these weights (a step boundary).
    pub start: u64,
    /// The integer shares, one per source.
    pub shares: Vec<u64>,
}

/// One stretch of samples under one set of weights.
#[derive(Debug, Clone)]
struct Segment {
    start: u64,
    schedule: Schedule,
    /// Samples each source had taken before `start`.
    base: Vec<u64>,
}

/// The weights over a run: the initial ones, then each change.
#[derive(Debug, Clone)]
pub struct Blend {
    segments: Vec<Segment>,
}

impl Blend {
    /// The blend of `changes` (the first starts at sample 0; starts increase), for `sources`
    /// sources.
    pub fn new(changes: &[WeightChange], sources: usize) -> Result<Self, DataError> {
        let mut segments: Vec<Segment> = Vec::with_capacity(changes.len());
        for c in changes {
            if c.shares.len() != sources {
                return Err(DataError::Usage(format!(
                    "the weights starting at sample {} are for {} sources, but the mixture has {sources}",
                    c.start,
                    c.shares.len()
                )));
            }
            let base = match segments.last() {
                None if c.start != 0 => {
                    return Err(DataError::Usage(
                        "the first weights of a mixture start at sample 0".into(),
                    ))
                }
                None => vec![0; sources],
                Some(prev) if c.start <= prev.start => {
                    return Err(DataError::Usage(format!(
                        "weight changes must come in order: sample {} after sample {}",
                        c.start, prev.start
                    )))
                }
                Some(prev) => prev
                    .schedule
                    .counts(c.start - prev.start)
                    .iter()
                    .zip(&prev.base)
                    .map(|(a, b)| a + b)
                    .collect(),
            };
            let weights = Weights::from_shares(c.shares.clone())?;
            segments.push(Segment {
                start: c.start,
                schedule: Schedule::new(&weights),
                base,
            });
        }
        if segments.is_empty() {
            return Err(DataError::Usage("a mixture needs weights".into()));
        }
        Ok(Self { segments })
    }

    fn segment(&self, n: u64) -> &Segment {
        let i = self.segments.partition_point(|s| s.start <= n);
        &self.segments[i.saturating_sub(1)]
    }

    /// Global sample `n`: its source and that source's own sample index.
    pub fn assign(&self, n: u64) -> (usize, u64) {
        let seg = self.segment(n);
        let (s, j) = seg.schedule.assign(n - seg.start);
        (s, seg.base[s] + j)
    }

    /// Samples each source has among the first `n`.
    pub fn counts(&self, n: u64) -> Vec<u64> {
        let seg = self.segment(n);
        seg.schedule
            .counts(n - seg.start)
            .iter()
            .zip(&seg.base)
            .map(|(a, b)| a + b)
            .collect()
    }

    /// The changes this blend was made of.
    pub fn changes(&self) -> Vec<WeightChange> {
        self.segments
            .iter()
            .map(|s| WeightChange {
                start: s.start,
                shares: s.schedule.shares.clone(),
            })
            .collect()
    }

    /// The shares in force at sample `n`.
    pub fn shares_at(&self, n: u64) -> &[u64] {
        &self.segment(n).schedule.shares
    }
}

/// Which split of a dataset a loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    Train,
    Valid,
    Test,
}

impl Subset {
    pub fn parse(name: &str) -> Result<Self, DataError> {
        match name {
            "train" => Ok(Self::Train),
            "valid" | "validation" => Ok(Self::Valid),
            "test" => Ok(Self::Test),
            other => Err(DataError::Usage(format!(
                "the subset must be 'train', 'valid' or 'test', not {other:?}"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
            Self::Test => "test",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Train => 0,
            Self::Valid => 1,
            Self::Test => 2,
        }
    }
}

/// Train / valid / test ratios, Megatron's `--split`.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    text: String,
    /// The normalised ratios.
    ratios: [f64; 3],
}

impl Split {
    /// `"969,30,1"`, `"99,1"` (missing ratios are 0), `"0.9, 0.1"`: up to three non-negative
    /// numbers, not all zero.
    pub fn parse(text: &str) -> Result<Self, DataError> {
        let bad = |why: &str| {
            Err(DataError::Usage(format!(
                "split {text:?} {why}: write up to three ratios, train,valid,test, such as 969,30,1"
            )))
        };
        let parts: Vec<&str> = text
            .split([',', '/', ' '])
            .filter(|p| !p.is_empty())
            .collect();
        if parts.is_empty() || parts.len() > 3 {
            return bad("does not hold one to three ratios");
        }
        let mut ratios = [0.0f64; 3];
        for (r, p) in ratios.iter_mut().zip(&parts) {
            match p.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => *r = v,
                _ => return bad(&format!("has {p:?}, not a non-negative number")),
            }
        }
        // As numpy sums three values: in order.
        let sum = ratios[0] + ratios[1] + ratios[2];
        if sum <= 0.0 {
            return bad("is all zero");
        }
        for r in &mut ratios {
            *r /= sum;
        }
        Ok(Self {
            text: text.to_owned(),
            ratios,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// The documents `[first, last)` of `subset` among `documents`, or `None` when that
    /// subset is empty. megatron-core: the book-ends are running sums of the ratios, and a
    /// subset is `round(lo·D)..round(hi·D)`, rounding half to even.
    pub fn documents(&self, subset: Subset, documents: usize) -> Option<Range<usize>> {
        let ends = [
            0.0,
            self.ratios[0],
            self.ratios[0] + self.ratios[1],
            self.ratios[0] + self.ratios[1] + self.ratios[2],
        ];
        let i = subset.index();
        let (lo, hi) = (ends[i], ends[i + 1]);
        if hi <= lo {
            return None;
        }
        let n = documents as f64;
        let at = |x: f64| ((x * n).round_ties_even() as usize).min(documents);
        let r = at(lo)..at(hi);
        (!r.is_empty()).then_some(r)
    }
}

/// One source of a mixture: a dataset and the part of it read.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub dataset: Arc<TokenDataset>,
    /// Tokens of the dataset read (all of them, or a split's documents).
    pub tokens: Range<u64>,
    /// Documents of the dataset read.
    pub documents: Range<usize>,
}

impl Part {
    /// All of `dataset`.
    pub fn whole(name: impl Into<String>, dataset: Arc<TokenDataset>) -> Self {
        let tokens = 0..dataset.num_tokens();
        let documents = 0..dataset.num_documents();
        Self {
            name: name.into(),
            dataset,
            tokens,
            documents,
        }
    }

    /// The documents of `subset` under `split`. Refused when the subset is empty.
    pub fn split(
        name: impl Into<String>,
        dataset: Arc<TokenDataset>,
        split: &Split,
        subset: Subset,
    ) -> Result<Self, DataError> {
        let name = name.into();
        let n = dataset.num_documents();
        let docs = split.documents(subset, n).ok_or_else(|| {
            DataError::Usage(format!(
                "source {name}: the {} subset of split {:?} holds none of its {n} document{}{}",
                subset.name(),
                split.text(),
                if n == 1 { "" } else { "s" },
                if n == 1 {
                    " (a flat file is one document unless an end-of-document token splits it: give one, --eod-token or eod_token=)"
                } else {
                    ""
                }
            ))
        })?;
        let start = dataset.document_range(docs.start).map_or(0, |(s, _)| s);
        let end = dataset
            .document_range(docs.end - 1)
            .map_or(dataset.num_tokens(), |(_, e)| e);
        Ok(Self {
            name,
            dataset,
            tokens: start..end,
            documents: docs,
        })
    }

    pub fn num_tokens(&self) -> u64 {
        self.tokens.end - self.tokens.start
    }
}

/// How much of one source a run reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceUse {
    /// The name it was given (its path for one source), empty if none.
    pub name: String,
    /// Tokens and documents read from it (its subset's, under a split).
    pub tokens: u64,
    pub documents: u64,
    /// Windows of `T + 1` tokens in it: one epoch of the epoch mode.
    pub windows: u64,
    /// Its weight at the point described (normalised).
    pub weight: f64,
    /// Samples drawn from it, and the epochs they make (samples / windows: above 1, the
    /// source repeats).
    pub samples: u64,
    pub epochs: f64,
}

/// What a loader reads: one part, or several with weights.
#[derive(Debug, Clone)]
pub struct Mixture {
    parts: Vec<Part>,
    weights: Weights,
    /// Weight changes at global steps, from a mixture file's schedule.
    schedule: Vec<(u64, Weights)>,
}

impl Mixture {
    /// One source read whole: the loader's sequence is exactly the single-source one.
    pub fn single(dataset: Arc<TokenDataset>) -> Self {
        Self::one(Part::whole("", dataset))
    }

    /// One part (all of a source, or a split of it).
    pub fn one(part: Part) -> Self {
        Self {
            parts: vec![part],
            weights: Weights {
                shares: vec![1],
                exact: true,
                change_ppb: 0,
            },
            schedule: Vec::new(),
        }
    }

    /// Parts with weights (one each).
    pub fn new(parts: Vec<Part>, weights: Weights) -> Result<Self, DataError> {
        if parts.is_empty() {
            return Err(DataError::Usage(
                "a mixture needs at least one source".into(),
            ));
        }
        if parts.len() != weights.shares.len() {
            return Err(DataError::Usage(format!(
                "{} sources but {} weights",
                parts.len(),
                weights.shares.len()
            )));
        }
        if parts.len() > MAX_SOURCES {
            return Err(DataError::Usage(format!(
                "a mixture holds at most {MAX_SOURCES} sources, not {}",
                parts.len()
            )));
        }
        // Names are how schedules, `set_weights` and `stats` refer to sources.
        let mut seen = std::collections::HashSet::new();
        if let Some(p) = parts.iter().find(|p| !seen.insert(p.name.as_str())) {
            return Err(DataError::Usage(format!(
                "source {:?} is given twice: give each source once (with the sum of its weights)",
                p.name
            )));
        }
        Ok(Self {
            parts,
            weights,
            schedule: Vec::new(),
        })
    }

    /// Adds a change of weights at global step `step` (steps increase).
    pub fn change_at_step(&mut self, step: u64, weights: Weights) -> Result<(), DataError> {
        if weights.shares.len() != self.parts.len() {
            return Err(DataError::Usage(format!(
                "the weights at step {step} are for {} sources, but the mixture has {}",
                weights.shares.len(),
                self.parts.len()
            )));
        }
        if let Some(why) = schedule_step_error(self.schedule.last().map(|(s, _)| *s), step) {
            return Err(DataError::Usage(why));
        }
        self.schedule.push((step, weights));
        Ok(())
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    pub fn weights(&self) -> &Weights {
        &self.weights
    }

    /// The scheduled changes: (global step, weights).
    pub fn scheduled(&self) -> &[(u64, Weights)] {
        &self.schedule
    }

    /// How far rounding moved a share in any of the mixture's weights, the first ones or a
    /// scheduled change ([`Weights::largest_change`]); `None` when all of them are exact.
    pub fn rounding(&self) -> Option<f64> {
        std::iter::once(&self.weights)
            .chain(self.schedule.iter().map(|(_, w)| w))
            .filter(|w| !w.exact())
            .map(Weights::largest_change)
            .reduce(f64::max)
    }

    /// Whether this is one source read whole (its state is the single-source state).
    pub fn is_single(&self) -> bool {
        self.parts.len() == 1 && self.schedule.is_empty()
    }

    /// What the first `samples` global samples of windows of `seq_len` tokens read of each
    /// source, with the weights and scheduled changes for steps of `global_batch` samples
    /// (`osml data inspect --tokens`, and a loader's stats).
    pub fn plan(
        &self,
        seq_len: u64,
        samples: u64,
        global_batch: u64,
    ) -> Result<Vec<SourceUse>, DataError> {
        // A source without one window is refused by the rule, and in the words, a loader's
        // sampler refuses it with.
        for p in &self.parts {
            crate::sampler::Sampler::new(crate::sampler::Mode::Random, 0, seq_len, p.num_tokens())
                .map_err(|e| DataError::Usage(format!("source {}: {e}", p.name)))?;
        }
        let blend = Blend::new(&self.changes(global_batch)?, self.parts.len())?;
        Ok(self.uses(&blend, seq_len, samples))
    }

    pub(crate) fn uses(&self, blend: &Blend, seq_len: u64, samples: u64) -> Vec<SourceUse> {
        let counts = blend.counts(samples);
        let weights = Weights::from_shares(blend.shares_at(samples).to_vec())
            .map(|w| w.normalized())
            .unwrap_or_default();
        self.parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let windows = p.num_tokens().saturating_sub(1) / seq_len.max(1);
                let taken = counts.get(i).copied().unwrap_or(0);
                SourceUse {
                    name: p.name.clone(),
                    tokens: p.num_tokens(),
                    documents: (p.documents.end - p.documents.start) as u64,
                    windows,
                    weight: weights.get(i).copied().unwrap_or(0.0),
                    samples: taken,
                    epochs: taken as f64 / windows.max(1) as f64,
                }
            })
            .collect()
    }

    /// The changes for a run with `global_batch` samples per step.
    pub fn changes(&self, global_batch: u64) -> Result<Vec<WeightChange>, DataError> {
        let mut out = vec![WeightChange {
            start: 0,
            shares: self.weights.shares.clone(),
        }];
        for (step, w) in &self.schedule {
            let start = step.checked_mul(global_batch).ok_or_else(|| {
                DataError::Usage(format!("step {step} × {global_batch} samples passes 2^64"))
            })?;
            out.push(WeightChange {
                start,
                shares: w.shares.clone(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn w(texts: &[&str]) -> Weights {
        let names: Vec<String> = (0..texts.len()).map(|i| format!("s{i}")).collect();
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        Weights::parse(&names, &texts).unwrap()
    }

    #[test]
    fn weights_are_read_as_written() {
        assert_eq!(w(&["0.7", "0.2", "0.1"]).shares(), [7, 2, 1]);
        assert_eq!(w(&["1", "1", "2"]).shares(), [1, 1, 2]);
        assert_eq!(w(&["1e-3", "0.002"]).shares(), [1, 2]);
        assert_eq!(w(&["2.5E1", "5"]).shares(), [5, 1]);
        assert_eq!(w(&["0", "3"]).shares(), [0, 1]);
        assert!(w(&["0.7", "0.3"]).exact());
        // Python's repr of 0.1 + 0.2.
        let odd = w(&["0.30000000000000004", "0.7"]);
        assert!(!odd.exact());
        assert_eq!(odd.shares().iter().sum::<u64>(), MAX_PERIOD);
        assert!(odd.largest_change() < 1e-5, "{}", odd.largest_change());
        assert_eq!(
            w(&["0.7", "0.3"]).largest_change().to_bits(),
            0.0f64.to_bits()
        );
    }

    #[test]
    fn rounding_says_how_far_it_moved_the_shares() {
        // 1/3, 1/6 and 1/2 as Python prints the doubles: 87,381, 43,691 and 131,072 of 2^18,
        // the 1/6 most moved, by 1/3 of a share in 43,690.67.
        let sixths = w(&["0.3333333333333333", "0.16666666666666666", "0.5"]);
        assert_eq!(sixths.shares(), [87_381, 43_691, 131_072]);
        let c = sixths.largest_change();
        assert!(
            (c - (1.0 / 3.0) / (MAX_PERIOD as f64 / 6.0)).abs() < 1e-8,
            "{c}"
        );
        // 1e-9 beside 1 keeps one share: 2^18·10^-9 of it was asked for.
        let tiny = w(&["1", "1e-9"]);
        assert_eq!(tiny.shares(), [MAX_PERIOD - 1, 1]);
        let c = tiny.largest_change();
        assert!(
            (c - (1.0 / (MAX_PERIOD as f64 * 1e-9) - 1.0)).abs() < 1.0,
            "{c}"
        );
    }

    #[test]
    fn bad_weights_name_their_source() {
        let names = vec!["web".to_owned(), "code".to_owned()];
        for (texts, want) in [
            (["-1", "1"], "source web: weight \"-1\" is negative"),
            (["NaN", "1"], "is not a finite number"),
            (
                ["1", "inf"],
                "source code: weight \"inf\" is not a finite number",
            ),
            (["x", "1"], "is not a number"),
            (["0", "0.0"], "are all zero"),
            // A zero with a huge exponent is zero at once (not 2^31 multiplications).
            (["0e2147483647", "0"], "are all zero"),
            (
                ["1e-40", "1"],
                "source web: weight \"1e-40\" has digits past the 38th decimal place",
            ),
            (
                ["1234567890123456789012345678901234567890", "1"],
                "more than the 38 digits",
            ),
        ] {
            let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
            let e = Weights::parse(&names, &texts).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
    }

    /// Every prefix of the schedule within quota: `|count - w·n| < 1`, in exact arithmetic.
    fn check_quota(shares: &[u64], samples: u64) -> Result<(), String> {
        let weights = Weights::from_shares(shares.to_vec()).unwrap();
        let s = Schedule::new(&weights);
        let p = u128::from(s.period());
        let mut counts = vec![0u128; shares.len()];
        let mut next = vec![0u64; shares.len()];
        for n in 0..samples {
            let (src, j) = s.assign(n);
            if j != next[src] {
                return Err(format!(
                    "sample {n}: source {src} index {j}, expected {}",
                    next[src]
                ));
            }
            next[src] += 1;
            counts[src] += 1;
            let m = u128::from(n + 1);
            for (i, &c) in counts.iter().enumerate() {
                let ideal = u128::from(weights.shares()[i]) * m; // w·m scaled by p
                if c * p + p <= ideal || ideal + p <= c * p {
                    return Err(format!(
                        "after {m} samples source {i} has {c}, ideal {:.3}",
                        ideal as f64 / p as f64
                    ));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn quota_holds_at_every_prefix_for_odd_weights() {
        check_quota(&[7, 2, 1], 1000).unwrap();
        check_quota(&[1, 1, 1, 1, 97], 10_000).unwrap();
        check_quota(&[1000, 1, 1, 1, 1, 1], 10_000).unwrap();
        let primes = [2u64, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47];
        check_quota(&primes, 100_000).unwrap();
        let many: Vec<u64> = (1..=100).map(|i| (i * i * 7919) % 997 + 1).collect();
        check_quota(&many, 100_000).unwrap();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn quota_holds_for_random_weights(shares in proptest::collection::vec(0u64..500, 2..100)) {
            prop_assume!(shares.iter().any(|&s| s > 0));
            let weights = Weights::from_shares(shares.clone()).unwrap();
            let n = (3 * weights.shares().iter().sum::<u64>()).min(100_000);
            prop_assert_eq!(check_quota(weights.shares(), n), Ok(()));
        }
    }

    #[test]
    fn a_weight_change_continues_each_source() {
        let changes = [
            WeightChange {
                start: 0,
                shares: vec![1, 1],
            },
            WeightChange {
                start: 10,
                shares: vec![0, 1],
            },
        ];
        let b = Blend::new(&changes, 2).unwrap();
        let first: Vec<_> = (0..10).map(|n| b.assign(n)).collect();
        assert_eq!(first.iter().filter(|(s, _)| *s == 0).count(), 5);
        // After the change, only source 1, continuing at its 6th sample.
        assert_eq!(b.assign(10), (1, 5));
        assert_eq!(b.assign(11), (1, 6));
        assert_eq!(b.counts(12), [5, 7]);
        assert_eq!(b.changes(), changes);
        let late = [changes[1].clone(), changes[0].clone()];
        assert!(Blend::new(&late, 2).is_err());
    }

    #[test]
    fn splits_follow_megatron() {
        let s = Split::parse("969,30,1").unwrap();
        // round(0.969·1000) = 969, round(0.999·1000) = 999.
        assert_eq!(s.documents(Subset::Train, 1000), Some(0..969));
        assert_eq!(s.documents(Subset::Valid, 1000), Some(969..999));
        assert_eq!(s.documents(Subset::Test, 1000), Some(999..1000));
        // Half to even: 0.5·5 = 2.5 rounds to 2.
        let half = Split::parse("1,1").unwrap();
        assert_eq!(half.documents(Subset::Train, 5), Some(0..2));
        assert_eq!(half.documents(Subset::Valid, 5), Some(2..5));
        assert_eq!(half.documents(Subset::Test, 5), None);
        assert!(Split::parse("1,2,3,4").is_err());
        assert!(Split::parse("0,0").is_err());
        assert!(Split::parse("a,1").is_err());
        assert!(Subset::parse("dev").is_err());
    }

    proptest! {
        #[test]
        fn splits_are_disjoint_and_cover(a in 0u32..1000, b in 0u32..1000, c in 0u32..1000, docs in 1usize..5000) {
            prop_assume!(a + b + c > 0);
            let s = Split::parse(&format!("{a},{b},{c}")).unwrap();
            let mut next = 0;
            for sub in [Subset::Train, Subset::Valid, Subset::Test] {
                if let Some(r) = s.documents(sub, docs) {
                    prop_assert_eq!(r.start, next);
                    next = r.end;
                }
            }
            prop_assert_eq!(next, docs);
        }
    }
}
