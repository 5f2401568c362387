//! The fleet view: several `osml doctor --json` reports side by side.
//!
//! Reports are untrusted files: [`HostFindings::read`] opens them with
//! `osml_sys::file::open_regular` (a FIFO is refused, not waited on) and reads at most
//! [`MAX_REPORT_BYTES`]; a report of a `schema_version` other than [`SCHEMA_VERSION`] is refused
//! rather than misread. [`compare`] is O(n log n) in the number of findings.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::{DoctorError, SCHEMA_VERSION};

/// The most bytes read from one report: 64 MiB (a report of 28 checks is about 20 KiB).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// One report, reduced to what comparison needs.
#[derive(Debug, Clone)]
pub struct HostFindings {
    /// The host's name as the report gives it, or the file's stem when it gives none.
    pub host: String,
    /// The file the report was read from, as given: two reports of one host differ here.
    pub file: String,
    /// Check id to `(status, observed)`.
    pub findings: BTreeMap<String, (String, String)>,
}

/// A host as `compare --json` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct HostLabel {
    pub hostname: String,
    pub file: String,
}

impl HostFindings {
    /// Reads the report at `path` (a regular file of at most [`MAX_REPORT_BYTES`]).
    pub fn read(path: &Path) -> Result<Self, DoctorError> {
        let file = path.display().to_string();
        let bytes = osml_sys::file::read_bounded(path, MAX_REPORT_BYTES).map_err(|error| {
            DoctorError::Read {
                path: file.clone(),
                error,
            }
        })?;
        Self::from_json(&file, &String::from_utf8_lossy(&bytes))
    }

    /// Reads a report's JSON. `file` names it, and stands for the host when the report has no
    /// hostname.
    pub fn from_json(file: &str, text: &str) -> Result<Self, DoctorError> {
        let bad = |reason: &str| DoctorError::NotAReport {
            path: file.to_owned(),
            reason: reason.to_owned(),
        };
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
        let Some(version) = v.get("schema_version").and_then(Value::as_u64) else {
            return Err(bad("no schema_version"));
        };
        if version != u64::from(SCHEMA_VERSION) {
            return Err(DoctorError::UnsupportedSchema {
                path: file.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        let findings = v
            .get("findings")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no findings array"))?;
        let host = v
            .pointer("/host/hostname")
            .and_then(Value::as_str)
            .map_or_else(|| stem(file), str::to_owned);
        let findings = findings
            .iter()
            .filter_map(|f| {
                let s = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_owned);
                Some((s("id")?, (s("status")?, s("observed").unwrap_or_default())))
            })
            .collect();
        Ok(Self {
            host,
            file: file.to_owned(),
            findings,
        })
    }

    /// How `compare --json` names this host.
    pub fn label(&self) -> HostLabel {
        HostLabel {
            hostname: self.host.clone(),
            file: self.file.clone(),
        }
    }
}

fn stem(file: &str) -> String {
    Path::new(file)
        .file_stem()
        .map_or_else(|| file.to_owned(), |s| s.to_string_lossy().into_owned())
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
    /// The report's hostname.
    pub host: String,
    /// The report's file.
    pub file: String,
    pub status: String,
    pub observed: String,
    /// Holds a value that fewer hosts share than the most common one.
    pub odd: bool,
}

/// Checks whose observed value differs between hosts, in check order (ids osml does not know
/// last, by name). Hosts are given in the order of `reports`.
pub fn compare(reports: &[HostFindings]) -> Vec<Drift> {
    let order: HashMap<&str, usize> = crate::CHECKS
        .iter()
        .enumerate()
        .map(|(i, c)| (c.info.id, i))
        .collect();
    // Every id of every report, once: a sorted merge, n log n in the findings.
    let mut ids: Vec<&String> = reports.iter().flat_map(|r| r.findings.keys()).collect();
    ids.sort_unstable_by(|a, b| {
        let rank = |id: &str| order.get(id).copied().unwrap_or(usize::MAX);
        (rank(a), *a).cmp(&(rank(b), *b))
    });
    ids.dedup();
    let absent = ("absent".to_owned(), "(not checked)".to_owned());
    let mut out = Vec::new();
    for id in ids {
        let values: Vec<&(String, String)> = reports
            .iter()
            .map(|r| r.findings.get(id).unwrap_or(&absent))
            .collect();
        let mut counts: HashMap<&str, usize> = HashMap::new();
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
                    file: r.file.clone(),
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
    fn refuses_schema_versions_it_cannot_read() {
        for v in [0, 2, 999] {
            let text = serde_json::json!({"schema_version": v, "findings": []}).to_string();
            let err = HostFindings::from_json("r.json", &text).unwrap_err();
            assert!(
                matches!(err, DoctorError::UnsupportedSchema { found, .. } if found == v),
                "{err}"
            );
        }
    }

    #[test]
    fn hosts_of_one_name_keep_their_files() {
        let mut a = report("a", "madvise", "x");
        let mut b = report("a", "always", "x");
        a.file = "monday.json".into();
        b.file = "tuesday.json".into();
        let d = compare(&[a, b]);
        let files: Vec<&str> = d[0].hosts.iter().map(|h| h.file.as_str()).collect();
        assert_eq!(files, ["monday.json", "tuesday.json"]);
    }

    #[test]
    fn rejects_other_json() {
        assert!(HostFindings::from_json("f", "{\"a\": 1}").is_err());
        assert!(HostFindings::from_json("f", "not json").is_err());
    }
}
