//! Statistics of repeated measurements: median, MAD spread, outliers, reliability.

use serde::Serialize;

/// A summary of samples (each one figure, e.g. ns per call).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    pub median: f64,
    /// Median absolute deviation, scaled by 1.4826 to estimate a standard deviation.
    pub spread: f64,
    pub min: f64,
    pub max: f64,
    pub samples: usize,
    /// Samples whose modified z-score exceeds 3.5 (Iglewicz and Hoaglin).
    pub outliers: usize,
}

fn median_of(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        f64::midpoint(sorted[n / 2 - 1], sorted[n / 2])
    }
}

impl Summary {
    /// Summarises samples; `None` for no samples.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut s = samples.to_vec();
        s.sort_by(f64::total_cmp);
        let median = median_of(&s);
        let mut dev: Vec<f64> = s.iter().map(|x| (x - median).abs()).collect();
        dev.sort_by(f64::total_cmp);
        let mad = median_of(&dev);
        let outliers = if mad > 0.0 {
            s.iter()
                .filter(|x| 0.6745 * (*x - median).abs() / mad > 3.5)
                .count()
        } else {
            0
        };
        Some(Self {
            median,
            spread: 1.4826 * mad,
            min: s[0],
            max: s[s.len() - 1],
            samples: s.len(),
            outliers,
        })
    }

    /// Why the figure should not be trusted, if it should not.
    pub fn unreliable(&self) -> Option<String> {
        if self.samples < 3 {
            return Some(format!("only {} sample(s)", self.samples));
        }
        if self.median > 0.0 && self.spread / self.median > 0.15 {
            return Some(format!(
                "spread is {:.0}% of the median: the machine was busy or the figure is unstable",
                100.0 * self.spread / self.median
            ));
        }
        if self.outliers * 5 > self.samples {
            return Some(format!(
                "{} of {} samples are outliers",
                self.outliers, self.samples
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_mad_and_outliers() {
        let s = Summary::of(&[10.0, 11.0, 9.0, 10.0, 10.5, 9.5, 100.0]).unwrap();
        assert!((s.median - 10.0).abs() < 1e-9);
        assert!((s.spread - 1.4826 * 0.5).abs() < 1e-9);
        assert_eq!(s.outliers, 1);
        assert_eq!((s.min, s.max, s.samples), (9.0, 100.0, 7));
        assert!(s.unreliable().is_none());
    }

    #[test]
    fn unreliable_when_noisy_or_few() {
        assert!(Summary::of(&[1.0, 2.0, 3.0, 4.0])
            .unwrap()
            .unreliable()
            .unwrap()
            .contains("spread"));
        assert!(Summary::of(&[5.0])
            .unwrap()
            .unreliable()
            .unwrap()
            .contains("sample"));
        assert!(Summary::of(&[]).is_none());
        let even = Summary::of(&[1.0, 3.0]).unwrap();
        assert!((even.median - 2.0).abs() < 1e-12);
    }
}
