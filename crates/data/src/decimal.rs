//! [`Decimal`]: a non-negative number read exactly as written (`0.7`, `3`, `1e-3`, `2.5E2`),
//! for mixture weights and token counts.
//!
//! `0.7` is 7/10 here, not the nearest double: a weight's share and a count such as `4.1T`
//! come out as written. Written here rather than taken from a crate: the decimal crates
//! parse into their own fixed-precision types with rounding, and what is wanted is the
//! exact `mantissa / 10^scale` or a refusal that says why.

use thiserror::Error;

/// Significant digits and decimal places kept: a `u128` mantissa holds 38 digits.
pub const MAX_DIGITS: u32 = 38;

/// `mantissa / 10^scale`, exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    pub mantissa: u128,
    /// At most [`MAX_DIGITS`].
    pub scale: u32,
}

/// Why a text is not a [`Decimal`]; each caller words it for what the number is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DecimalError {
    #[error("is negative")]
    Negative,
    #[error("is not a finite number")]
    NotFinite,
    #[error("has an exponent that is not an integer")]
    BadExponent,
    #[error("is not a number")]
    NotANumber,
    #[error("needs more than {MAX_DIGITS} significant digits")]
    TooManyDigits,
    #[error("has digits past the {MAX_DIGITS}th decimal place")]
    TooManyPlaces,
}

impl Decimal {
    pub const ZERO: Self = Self {
        mantissa: 0,
        scale: 0,
    };

    /// Reads `text` (surrounding spaces and a leading `+` allowed, an exponent after `e` or
    /// `E`).
    pub fn parse(text: &str) -> Result<Self, DecimalError> {
        let t = text.trim();
        if t.starts_with('-') {
            return Err(DecimalError::Negative);
        }
        let t = t.strip_prefix('+').unwrap_or(t).to_ascii_lowercase();
        if t.contains("nan") || t.contains("inf") {
            return Err(DecimalError::NotFinite);
        }
        let (num, exp) = match t.split_once('e') {
            Some((n, e)) => (n, e.parse::<i32>().map_err(|_| DecimalError::BadExponent)?),
            None => (t.as_str(), 0),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        if int.is_empty() && frac.is_empty()
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(DecimalError::NotANumber);
        }
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        if digits.is_empty() {
            // Zero, whatever its exponent.
            return Ok(Self::ZERO);
        }
        let mut mantissa: u128 = digits.parse().map_err(|_| DecimalError::TooManyDigits)?;
        let mut scale = i64::try_from(frac.len()).unwrap_or(i64::MAX) - i64::from(exp);
        while scale < 0 {
            mantissa = mantissa
                .checked_mul(10)
                .ok_or(DecimalError::TooManyDigits)?;
            scale += 1;
        }
        match u32::try_from(scale) {
            Ok(scale) if scale <= MAX_DIGITS => Ok(Self { mantissa, scale }),
            _ => Err(DecimalError::TooManyPlaces),
        }
    }

    /// `self · factor` as a whole number: `None` when it has a fractional part or passes
    /// `u128`.
    pub fn whole_times(self, factor: u128) -> Option<u128> {
        let v = self.mantissa.checked_mul(factor)?;
        let d = 10u128.checked_pow(self.scale)?;
        v.is_multiple_of(d).then(|| v / d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_written() {
        let d = |mantissa, scale| Ok(Decimal { mantissa, scale });
        assert_eq!(Decimal::parse("0.7"), d(7, 1));
        assert_eq!(Decimal::parse(" +3 "), d(3, 0));
        assert_eq!(Decimal::parse("1e-3"), d(1, 3));
        assert_eq!(Decimal::parse("2.5E2"), d(250, 0));
        assert_eq!(Decimal::parse(".5"), d(5, 1));
        assert_eq!(Decimal::parse("0.000e99"), Ok(Decimal::ZERO));
        assert_eq!(Decimal::parse("1e-38"), d(1, 38));
    }

    #[test]
    fn says_why_it_refuses() {
        for (text, why) in [
            ("-1", DecimalError::Negative),
            ("NaN", DecimalError::NotFinite),
            ("-inf", DecimalError::Negative),
            ("inf", DecimalError::NotFinite),
            ("1e1.5", DecimalError::BadExponent),
            ("1e", DecimalError::BadExponent),
            ("", DecimalError::NotANumber),
            (".", DecimalError::NotANumber),
            ("1,5", DecimalError::NotANumber),
            ("0x10", DecimalError::NotANumber),
            ("1e39", DecimalError::TooManyDigits),
            (
                "1234567890123456789012345678901234567890",
                DecimalError::TooManyDigits,
            ),
            ("1e-39", DecimalError::TooManyPlaces),
        ] {
            assert_eq!(Decimal::parse(text), Err(why), "{text:?}");
        }
    }

    #[test]
    fn whole_values_are_exact() {
        let p = |t| Decimal::parse(t).unwrap();
        assert_eq!(
            p("4.1").whole_times(1_000_000_000_000),
            Some(4_100_000_000_000)
        );
        assert_eq!(p("1.0001").whole_times(1_000), None);
        assert_eq!(p("1e-38").whole_times(1), None);
        assert_eq!(p("3e38").whole_times(2), None);
        assert_eq!(p("0").whole_times(7), Some(0));
    }
}
