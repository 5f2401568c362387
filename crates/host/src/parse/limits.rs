//! `/proc/<pid>/limits`: the resource limits table (proc(5), getrlimit(2)).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::ParseError;

/// One limit value: a number or `unlimited`. Serialises as a number or the string "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitValue {
    Value(u64),
    Unlimited,
}

impl LimitValue {
    fn parse(s: &str) -> Option<Self> {
        if s == "unlimited" {
            Some(Self::Unlimited)
        } else {
            s.parse().ok().map(Self::Value)
        }
    }

    /// Whether the limit allows at least `n`.
    pub fn at_least(self, n: u64) -> bool {
        match self {
            Self::Unlimited => true,
            Self::Value(v) => v >= n,
        }
    }
}

impl std::fmt::Display for LimitValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(v) => write!(f, "{v}"),
            Self::Unlimited => f.write_str("unlimited"),
        }
    }
}

impl Serialize for LimitValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Value(v) => s.serialize_u64(*v),
            Self::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

impl<'de> Deserialize<'de> for LimitValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::N(n) => Ok(Self::Value(n)),
            Raw::S(s) => Self::parse(&s).ok_or_else(|| serde::de::Error::custom("bad limit")),
        }
    }
}

/// A soft and a hard limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limit {
    pub soft: LimitValue,
    pub hard: LimitValue,
}

/// The limits osml judges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `RLIMIT_NOFILE`: open files.
    pub nofile: Limit,
    /// `RLIMIT_MEMLOCK`: bytes that may be locked in RAM (mlock, RDMA registration).
    pub memlock: Limit,
}

/// Parses the table. Row names contain spaces, so each row is split from the right: the last
/// column is the unit (absent for some rows), and the two before it the soft and hard values.
pub fn parse(text: &str) -> Result<Limits, ParseError> {
    let find = |name: &str| -> Result<Limit, ParseError> {
        let line = text
            .lines()
            .find(|l| l.starts_with(name))
            .ok_or_else(|| ParseError::new("limits", text, "row missing"))?;
        let rest: Vec<&str> = line[name.len()..].split_whitespace().collect();
        let [soft, hard, ..] = rest.as_slice() else {
            return Err(ParseError::new(
                "limits",
                line,
                "row has no soft/hard values",
            ));
        };
        Ok(Limit {
            soft: LimitValue::parse(soft)
                .ok_or_else(|| ParseError::new("limits", line, "soft value is not a number"))?,
            hard: LimitValue::parse(hard)
                .ok_or_else(|| ParseError::new("limits", line, "hard value is not a number"))?,
        })
    };
    Ok(Limits {
        nofile: find("Max open files")?,
        memlock: find("Max locked memory")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const REAL: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max open files            1024                 1048576              files     
Max locked memory         8388608              8388608              bytes     
Max realtime timeout      unlimited            unlimited            us        
";

    #[test]
    fn real_contents() {
        let l = parse(REAL).unwrap();
        assert_eq!(l.nofile.soft, LimitValue::Value(1024));
        assert_eq!(l.nofile.hard, LimitValue::Value(1_048_576));
        assert_eq!(l.memlock.soft, LimitValue::Value(8_388_608));
    }

    #[test]
    fn unlimited_round_trips_through_json() {
        let v = serde_json::to_string(&LimitValue::Unlimited).unwrap();
        assert_eq!(v, "\"unlimited\"");
        assert_eq!(
            serde_json::from_str::<LimitValue>(&v).unwrap(),
            LimitValue::Unlimited
        );
    }

    #[test]
    fn missing_row_is_an_error() {
        assert!(parse("Limit Soft Hard Units\n").is_err());
    }
}
