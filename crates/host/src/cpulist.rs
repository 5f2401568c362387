//! [`CpuList`]: the kernel's list format (`0-3,8,10-11`), as in `cpulist_parse()` of
//! `lib/bitmap.c` and `Documentation/admin-guide/cputopology.rst`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// The largest CPU (or node) number accepted, to keep a hostile `0-4294967295` from allocating
/// gigabytes. Linux's `NR_CPUS` tops out at 8192 today.
pub const MAX_CPU_ID: usize = 1 << 16;

/// A sorted set of CPU (or NUMA node) numbers. Serialises as the kernel's list text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CpuList(Vec<usize>);

impl CpuList {
    /// Parses `0-3,8,10-11` (also `0-15:2` strides, blanks and a trailing newline).
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut ids = Vec::new();
        let text = text.trim();
        if text.is_empty() {
            return Ok(Self(ids));
        }
        for part in text.split(',') {
            let part = part.trim();
            let (range, stride) = match part.split_once(':') {
                Some((r, s)) => (r, parse_id(s.split('/').next().unwrap_or(s))?),
                None => (part, 1),
            };
            let (lo, hi) = if let Some((a, b)) = range.split_once('-') {
                (parse_id(a)?, parse_id(b)?)
            } else {
                let v = parse_id(range)?;
                (v, v)
            };
            if lo > hi || stride == 0 {
                return Err(ParseError::new("cpu list", part, "range runs backwards"));
            }
            ids.extend((lo..=hi).step_by(stride));
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(Self(ids))
    }

    /// Parses the hexadecimal mask format (`00000000,0000000f`) of `cpus` / `Cpus_allowed`.
    pub fn parse_mask(text: &str) -> Result<Self, ParseError> {
        let mut ids = Vec::new();
        let words: Vec<&str> = text.trim().split(',').collect();
        for (i, word) in words.iter().rev().enumerate() {
            let bits = u32::from_str_radix(word.trim(), 16)
                .map_err(|_| ParseError::new("cpu mask", word, "not a hexadecimal word"))?;
            for b in 0..32 {
                if bits & (1 << b) != 0 {
                    let id = i * 32 + b;
                    if id > MAX_CPU_ID {
                        return Err(ParseError::new("cpu mask", text, "mask too long"));
                    }
                    ids.push(id);
                }
            }
        }
        ids.sort_unstable();
        Ok(Self(ids))
    }

    /// The numbers, ascending.
    pub fn ids(&self) -> &[usize] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, id: usize) -> bool {
        self.0.binary_search(&id).is_ok()
    }

    /// The numbers present in both lists.
    #[must_use]
    pub fn intersection(&self, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .copied()
                .filter(|&c| other.contains(c))
                .collect(),
        )
    }

    /// The numbers of `self` missing from `other`.
    #[must_use]
    pub fn difference(&self, other: &Self) -> Self {
        Self(
            self.0
                .iter()
                .copied()
                .filter(|&c| !other.contains(c))
                .collect(),
        )
    }
}

impl FromIterator<usize> for CpuList {
    fn from_iter<I: IntoIterator<Item = usize>>(iter: I) -> Self {
        let mut v: Vec<usize> = iter.into_iter().collect();
        v.sort_unstable();
        v.dedup();
        Self(v)
    }
}

fn parse_id(s: &str) -> Result<usize, ParseError> {
    let v: usize = s
        .trim()
        .parse()
        .map_err(|_| ParseError::new("cpu list", s, "not a number"))?;
    if v > MAX_CPU_ID {
        return Err(ParseError::new("cpu list", s, "number too large"));
    }
    Ok(v)
}

impl fmt::Display for CpuList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        Ok(())
    }
}

impl Serialize for CpuList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CpuList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_kernel_lists() {
        let table = [
            ("0-3", vec![0, 1, 2, 3]),
            ("0-1,8,10-11\n", vec![0, 1, 8, 10, 11]),
            ("", vec![]),
            ("\n", vec![]),
            ("5", vec![5]),
            ("0-7:2", vec![0, 2, 4, 6]),
        ];
        for (text, want) in table {
            assert_eq!(
                CpuList::parse(text).unwrap().ids(),
                want.as_slice(),
                "{text:?}"
            );
        }
    }

    #[test]
    fn rejects_garbage_and_huge_ranges() {
        for bad in ["a", "3-1", "0-4294967295", "1,,2", "-"] {
            assert!(CpuList::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parses_masks() {
        assert_eq!(
            CpuList::parse_mask("0000000f").unwrap().ids(),
            &[0, 1, 2, 3]
        );
        assert_eq!(
            CpuList::parse_mask("00000001,00000003\n").unwrap().ids(),
            &[0, 1, 32]
        );
    }

    #[test]
    fn formats_ranges() {
        let l: CpuList = [0, 1, 2, 3, 8, 10, 11].into_iter().collect();
        assert_eq!(l.to_string(), "0-3,8,10-11");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC*") {
            let _ = CpuList::parse(&s);
            let _ = CpuList::parse_mask(&s);
        }

        #[test]
        fn round_trips(ids in proptest::collection::btree_set(0usize..512, 0..64)) {
            let l: CpuList = ids.iter().copied().collect();
            prop_assert_eq!(CpuList::parse(&l.to_string()).unwrap(), l);
        }
    }
}
