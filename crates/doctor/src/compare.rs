//! The fleet view: several `osml doctor --json` reports side by side.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::DoctorError;

/// One report, reduced to what comparison needs.
#[derive(Debug, Clone)]
pub struct HostFindings {
    /// The host's name, or the file's when the report has none.
    pub host: String,
    /// Check id to `(status, observed)`.
    pub findings: BTreeMap<String, (String, String)>,
}

impl HostFindings {
    /// Reads a report's JSON. `label` names it when the report has no hostname.
    pub fn from_json(label: &str, text: &str) -> Result<Self, DoctorError> {
        let bad = |reason: &str| DoctorError::NotAReport {
            path: label.to_owned(),
            reason: reason.to_owned(),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        if v.get("schema_version").and_then(Value::as_u64).is_none() {
            return Err(bad("no schema_version"));
        }
        let findings = v
            .get("findings")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no findings array"))?;
        let host = v
            .pointer("/host/hostname")
            .and_then(Value::as_str)
            .map_or_else(|| label.to_owned(), str::to_owned);
        let findings = findings
            .iter()
            .filter_map(|f| {
                let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
                Some((s("id")?, (s("status")?, s("observed").unwrap_or_default())))
            })
            .collect();
        Ok(Self { host, findings })
    }
}

/// A check whose observed value is not the same everywhere.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub id: String,
    /// Per host: status, observed value and whether it is an odd one out.
    pub hosts: Vec<HostValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostValue {
    pub host: String,
    pub status: String,
    pub observed: String,
    /// Holds a value that fewer hosts share than the most common one.
    pub odd: bool,
}

/// Checks whose observed value differs between hosts, in check order. Hosts whose label
/// repeats are told apart by position.
pub fn compare(reports: &[HostFindings]) -> Vec<Drift> {
    let mut ids: Vec<&String> = Vec::new();
    for r in reports {
        for id in r.findings.keys() {
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let order = |id: &str| {
        crate::CHECKS
            .iter()
            .position(|c| c.info.id == id)
            .unwrap_or(usize::MAX)
    };
    ids.sort_by_key(|id| (order(id), (*id).clone()));
    let mut out = Vec::new();
    for id in ids {
        let values: Vec<(String, String)> = reports
            .iter()
            .map(|r| {
                r.findings
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| ("absent".into(), "(not checked)".into()))
            })
            .collect();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, obs) in &values {
            *counts.entry(obs.as_str()).or_default() += 1;
        }
        if counts.len() <= 1 {
            continue;
        }
        let top = counts.values().copied().max().unwrap_or(0);
        // With a tie for most common there is no majority: mark nobody.
        let tied = counts.values().filter(|&&c| c == top).count() > 1;
        out.push(Drift {
            id: id.clone(),
            hosts: reports
                .iter()
                .zip(&values)
                .map(|(r, (status, observed))| HostValue {
                    host: r.host.clone(),
                    status: status.clone(),
                    observed: observed.clone(),
                    odd: !tied && counts[observed.as_str()] < top,
                })
                .collect(),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, thp: &str, swap: &str) -> HostFindings {
        let text = serde_json::json!({
            "schema_version": 1,
            "host": {"hostname": host},
            "findings": [
                {"id": "mem.thp", "status": "pass", "observed": thp},
                {"id": "mem.swap", "status": "pass", "observed": swap},
            ]
        })
        .to_string();
        HostFindings::from_json("x.json", &text).unwrap()
    }

    #[test]
    fn marks_the_odd_one_out() {
        let r = [
            report("a", "madvise", "no swap"),
            report("b", "madvise", "no swap"),
            report("c", "always", "no swap"),
        ];
        let d = compare(&r);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].id, "mem.thp");
        let odd: Vec<&str> = d[0]
            .hosts
            .iter()
            .filter(|h| h.odd)
            .map(|h| h.host.as_str())
            .collect();
        assert_eq!(odd, ["c"]);
    }

    #[test]
    fn no_majority_marks_nobody() {
        let d = compare(&[report("a", "madvise", "x"), report("b", "always", "x")]);
        assert!(d[0].hosts.iter().all(|h| !h.odd));
    }

    #[test]
    fn rejects_other_json() {
        assert!(HostFindings::from_json("f", "{\"a\": 1}").is_err());
        assert!(HostFindings::from_json("f", "not json").is_err());
    }
}
