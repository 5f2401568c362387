//! `/proc/pressure/{cpu,memory,io}`: pressure stall information
//! (`Documentation/accounting/psi.rst`, kernel 4.20+).

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// Share of wall time (percent) that tasks stalled, averaged over 10, 60 and 300 seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PsiAverages {
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    /// Microseconds stalled since boot (`total=`): the difference of two reads is the stall
    /// over the time between them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_us: Option<u64>,
}

/// `some`: at least one task stalled; `full`: all non-idle tasks stalled at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Psi {
    pub some: PsiAverages,
    /// Absent for `cpu` before 5.13.
    pub full: Option<PsiAverages>,
}

pub fn parse(text: &str) -> Result<Psi, ParseError> {
    let mut some = None;
    let mut full = None;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let kind = words.next();
        let mut avg = [None; 3];
        let mut total_us = None;
        for w in words {
            if let Some((k, v)) = w.split_once('=') {
                if k == "total" {
                    total_us = v.parse().ok();
                    continue;
                }
                let i = match k {
                    "avg10" => 0,
                    "avg60" => 1,
                    "avg300" => 2,
                    _ => continue,
                };
                avg[i] = v.parse::<f64>().ok().filter(|x| x.is_finite());
            }
        }
        let parsed = match avg {
            [Some(avg10), Some(avg60), Some(avg300)] => Some(PsiAverages {
                avg10,
                avg60,
                avg300,
                total_us,
            }),
            _ => None,
        };
        match kind {
            Some("some") => some = parsed,
            Some("full") => full = parsed,
            _ => {}
        }
    }
    Ok(Psi {
        some: some.ok_or_else(|| ParseError::new("pressure", text, "no `some` line"))?,
        full,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn real_contents() {
        let p = super::parse(
            "some avg10=0.00 avg60=0.12 avg300=1.50 total=0\nfull avg10=3.25 avg60=0.00 avg300=0.00 total=0\n",
        )
        .unwrap();
        assert!((p.some.avg60 - 0.12).abs() < 1e-9);
        assert!((p.full.unwrap().avg10 - 3.25).abs() < 1e-9);
        assert_eq!(p.some.total_us, Some(0));
    }

    #[test]
    fn missing_some_is_an_error() {
        assert!(super::parse("full avg10=0 avg60=0 avg300=0 total=0").is_err());
    }
}
