//! The kernel log as `/dev/kmsg` gives it, and what in it costs training jobs.
//!
//! A record is `PRIORITY,SEQUENCE,MICROSECONDS,FLAGS[,…];MESSAGE`, then continuation lines that
//! start with a space (`KEY=VALUE`, the record's dictionary); `PRIORITY` is
//! `facility << 3 | level` (`Documentation/ABI/testing/dev-kmsg`). [`summarise`] classifies
//! the records that matter: OOM kills (which process, which cgroup, how much), NVIDIA Xid
//! errors (code, GPU), PCIe AER errors (severity, device), machine checks and hung tasks;
//! bursts are counted, not kept: memory stays bounded whatever the log's size.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Examples kept per class (the rest are only counted).
pub const MAX_EXAMPLES: usize = 3;
/// OOM kills kept in full (the rest are only counted).
pub const MAX_OOM_KILLS: usize = 20;
/// Groups of Xid or AER events kept (by code or severity and device).
pub const MAX_GROUPS: usize = 64;

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub level: u8,
    pub seq: u64,
    /// Microseconds since boot.
    pub usec: u64,
    pub text: &'a str,
    /// `KEY=VALUE` continuation lines (`SUBSYSTEM=pci`, `DEVICE=+pci:0000:3b:00.0`).
    pub dict: Vec<(&'a str, &'a str)>,
}

/// The records of `text`, and how many lines were not records (binary junk, a truncated
/// head).
pub fn records(text: &str) -> (Vec<Record<'_>>, u64) {
    let mut out = Vec::new();
    let malformed = each_record(text, |r| out.push(r));
    (out, malformed)
}

/// Calls `f` with each record of `text` in order, its dictionary lines attached, holding one
/// record at a time; returns how many lines were not records.
pub fn each_record<'a>(text: &'a str, mut f: impl FnMut(Record<'a>)) -> u64 {
    let mut malformed = 0;
    let mut current: Option<Record<'a>> = None;
    for line in text.split('\n') {
        if line.is_empty() {
            continue;
        }
        if let Some(kv) = line.strip_prefix(' ') {
            match (current.as_mut(), kv.split_once('=')) {
                (Some(r), Some(pair)) => r.dict.push(pair),
                _ => malformed += 1,
            }
            continue;
        }
        if let Some(done) = current.take() {
            f(done);
        }
        match parse_record(line) {
            Some(r) => current = Some(r),
            None => malformed += 1,
        }
    }
    if let Some(done) = current {
        f(done);
    }
    malformed
}

fn parse_record(line: &str) -> Option<Record<'_>> {
    let (head, text) = line.split_once(';')?;
    let mut f = head.split(',');
    let prio: u64 = f.next()?.parse().ok()?;
    let seq = f.next()?.parse().ok()?;
    let usec = f.next()?.parse().ok()?;
    Some(Record {
        level: u8::try_from(prio & 7).unwrap_or(7),
        seq,
        usec,
        text,
        dict: Vec::new(),
    })
}

/// Times and examples of one class of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub count: u64,
    /// Seconds since boot.
    pub first_s: f64,
    pub last_s: f64,
    pub examples: Vec<String>,
}

impl Seen {
    fn add(&mut self, t: f64, text: &str) {
        if self.count == 0 {
            self.first_s = t;
        }
        self.count += 1;
        self.last_s = t;
        if self.examples.len() < MAX_EXAMPLES {
            self.examples.push(text.chars().take(300).collect());
        }
    }
}

/// One OOM kill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OomKill {
    pub time_s: f64,
    pub pid: Option<u64>,
    pub command: Option<String>,
    /// The memory cgroup whose limit was hit (`oom_memcg=`), when not the whole host.
    pub cgroup: Option<String>,
    /// The victim's anonymous resident memory when killed.
    pub anon_rss_bytes: Option<u64>,
}

/// What the kernel log says, by class.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelLog {
    pub records: u64,
    pub malformed_lines: u64,
    /// Seconds since boot of the first and last record read.
    pub first_s: f64,
    pub last_s: f64,
    pub oom: Seen,
    /// The first [`MAX_OOM_KILLS`] kills in full.
    pub oom_kills: Vec<OomKill>,
    /// NVIDIA Xid errors by (code, PCI device).
    pub xid: Vec<(u32, String, Seen)>,
    /// PCIe AER errors by (severity: `corrected`, `nonfatal`, `fatal`, device).
    pub aer: Vec<(String, String, Seen)>,
    pub mce: Seen,
    pub hung_task: Seen,
    /// The highest sequence number read, from which `osml doctor --watch` reads on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seq: Option<u64>,
}

/// `key=value` out of a comma-separated `oom-kill:` line.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.split(',')
        .find_map(|kv| kv.trim().strip_prefix(key)?.strip_prefix('='))
}

/// The number after `word` up to the first non-digit: `anon-rss:1234kB` gives 1234.
fn number_after(text: &str, word: &str) -> Option<u64> {
    let rest = &text[text.find(word)? + word.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// `NVRM: Xid (PCI:0000:3b:00): 79, pid=…, GPU has fallen off the bus.`
fn xid(text: &str) -> Option<(u32, String)> {
    let rest = &text[text.find("NVRM: Xid (")? + "NVRM: Xid (".len()..];
    let (dev, rest) = rest.split_once(')')?;
    let code = rest.trim_start_matches(':').trim_start();
    let digits: String = code.chars().take_while(char::is_ascii_digit).collect();
    Some((
        digits.parse().ok()?,
        dev.trim_start_matches("PCI:").to_owned(),
    ))
}

/// `pcieport 0000:00:01.0: AER: Corrected error received: 0000:01:00.0`, or the older
/// `PCIe Bus Error: severity=Uncorrected (Fatal), …`.
fn aer(text: &str) -> Option<(&'static str, String)> {
    if !text.contains("AER:") && !text.contains("PCIe Bus Error") {
        return None;
    }
    let severity = if text.contains("Fatal)") || text.contains("(Fatal") {
        "fatal"
    } else if text.contains("Uncorrect") || text.contains("Non-Fatal") {
        "nonfatal"
    } else if text.contains("Correct") {
        "corrected"
    } else {
        return None;
    };
    // The device named after "received:" (the source), else the reporting port.
    let device = text
        .split_once("received: ")
        .map(|(_, d)| d.split_whitespace().next().unwrap_or(d).to_owned())
        .or_else(|| {
            text.split_whitespace()
                .nth(1)
                .map(|d| d.trim_end_matches(':').to_owned())
        })
        .unwrap_or_default();
    Some((severity, device))
}

/// Classifies every record of `text` (see the module docs).
pub fn summarise(text: &str) -> KernelLog {
    summarise_after(text, None)
}

/// Classifies the records of `text` whose sequence number is above `after` (all when
/// `None`): what was logged since an earlier read. `last_seq` is the highest number seen in
/// the whole text, new or not.
pub fn summarise_after(text: &str, after: Option<u64>) -> KernelLog {
    let mut log = KernelLog::default();
    let mut xids: BTreeMap<(u32, String), Seen> = BTreeMap::new();
    let mut aers: BTreeMap<(String, String), Seen> = BTreeMap::new();
    let mut pending_memcg: Option<String> = None;
    let mut last_seq = after;
    log.malformed_lines = each_record(text, |r| {
        last_seq = last_seq.max(Some(r.seq));
        if after.is_some_and(|a| r.seq <= a) {
            return;
        }
        let t = r.usec as f64 / 1e6;
        if log.records == 0 {
            log.first_s = t;
        }
        log.records += 1;
        log.last_s = t;
        let text = r.text;
        if let Some(rest) = text.strip_prefix("oom-kill:") {
            // Comes just before the "Killed process" line and names the cgroup.
            pending_memcg = field(rest, "oom_memcg")
                .filter(|c| !c.is_empty() && *c != "/")
                .map(str::to_owned);
        } else if text.contains("Killed process") {
            log.oom.add(t, text);
            if log.oom_kills.len() < MAX_OOM_KILLS {
                let after = &text[text.find("Killed process").unwrap_or(0)..];
                log.oom_kills.push(OomKill {
                    time_s: t,
                    pid: number_after(after, "Killed process "),
                    command: after
                        .split_once('(')
                        .and_then(|(_, r)| r.split_once(')'))
                        .map(|(c, _)| c.to_owned()),
                    cgroup: pending_memcg.take(),
                    anon_rss_bytes: number_after(after, "anon-rss:").map(|kb| kb * 1024),
                });
            }
        } else if let Some((code, dev)) = xid(text) {
            if xids.len() < MAX_GROUPS || xids.contains_key(&(code, dev.clone())) {
                xids.entry((code, dev)).or_default().add(t, text);
            }
        } else if let Some((sev, dev)) = aer(text) {
            let key = (sev.to_owned(), dev);
            if aers.len() < MAX_GROUPS || aers.contains_key(&key) {
                aers.entry(key).or_default().add(t, text);
            }
        } else if text.contains("[Hardware Error]") || text.contains("Machine check events logged")
        {
            log.mce.add(t, text);
        } else if text.contains("blocked for more than") && text.starts_with("INFO: task ") {
            log.hung_task.add(t, text);
        }
    });
    log.xid = xids.into_iter().map(|((c, d), s)| (c, d, s)).collect();
    log.aer = aers.into_iter().map(|((v, d), s)| (v, d, s)).collect();
    log.last_seq = last_seq;
    log
}

/// How NVIDIA's Xid catalog classes a code: whether the application or the hardware (or its
/// driver) is the likely cause. NVIDIA, "Xid Errors" (docs.nvidia.com/deploy/xid-errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum XidClass {
    /// A fault of the program (a bad kernel, an illegal address): fix the job, not the node.
    Application,
    /// The GPU, its memory, `NVLink` or its firmware: drain the node and look at the hardware.
    Hardware,
    /// Not in osml's table.
    Unknown,
}

/// The Xid codes osml knows, with NVIDIA's description.
pub fn xid_class(code: u32) -> (XidClass, &'static str) {
    match code {
        13 => (
            XidClass::Application,
            "graphics engine exception (often an out-of-bounds access in a kernel)",
        ),
        31 => (
            XidClass::Application,
            "GPU memory page fault (an illegal address in the application)",
        ),
        43 => (
            XidClass::Application,
            "GPU stopped processing (the application hit a fault)",
        ),
        45 => (
            XidClass::Application,
            "preemptive cleanup after an earlier error (a process was killed)",
        ),
        48 => (XidClass::Hardware, "double-bit ECC error"),
        61 | 62 => (
            XidClass::Hardware,
            "internal micro-controller breakpoint or halt",
        ),
        63 => (
            XidClass::Hardware,
            "ECC page retirement or row remapping recorded",
        ),
        64 => (
            XidClass::Hardware,
            "ECC page retirement or row remapping failed",
        ),
        74 => (XidClass::Hardware, "NVLink error"),
        79 => (XidClass::Hardware, "GPU has fallen off the bus"),
        92 => (XidClass::Hardware, "high single-bit ECC error rate"),
        94 => (XidClass::Hardware, "contained ECC error"),
        95 => (XidClass::Hardware, "uncontained ECC error"),
        119 => (XidClass::Hardware, "GSP RPC timeout"),
        120 => (XidClass::Hardware, "GSP error"),
        _ => (XidClass::Unknown, "not in osml's table"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "6,1,1000000,-;Linux version 6.1\n\
4,2,5000000,-;oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod42,task_memcg=/kubepods/pod42/c1,task=python,pid=4242,uid=0\n\
3,3,5000100,-;Memory cgroup out of memory: Killed process 4242 (python) total-vm:9000000kB, anon-rss:8000000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0\n\
3,4,7000000,-;Out of memory: Killed process 777 (pt_data_worker) total-vm:100kB, anon-rss:2048kB, file-rss:0kB\n\
4,5,8000000,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.\n\
\x20SUBSYSTEM=pci\n\
\x20DEVICE=+pci:0000:3b:00.0\n\
4,6,9000000,-;NVRM: Xid (PCI:0000:3b:00): 48, pid=1, An uncorrectable double bit error\n\
4,7,9000001,-;NVRM: Xid (PCI:0000:3b:00): 48, pid=1, An uncorrectable double bit error\n\
4,8,9500000,-;pcieport 0000:00:01.0: AER: Corrected error received: 0000:01:00.0\n\
3,9,9600000,-;pcieport 0000:00:01.0: AER: Uncorrected (Fatal) error received: 0000:01:00.0\n\
3,10,9700000,-;INFO: task python:99 blocked for more than 120 seconds.\n\
0,11,9800000,-;mce: [Hardware Error]: Machine check events logged\n\
\u{0}\u{1}garbage\n";

    #[test]
    fn records_after_a_sequence_number_only() {
        let text = "4,7,1000000,-;Out of memory: Killed process 1 (a) anon-rss:4kB\n\
                    4,8,2000000,-;NVRM: Xid (PCI:0000:3b:00): 79, pid=2, name=b, fallen off\n\
                    6,9,3000000,-;eth0: link up\n";
        let all = summarise(text);
        assert_eq!((all.records, all.oom.count, all.last_seq), (3, 1, Some(9)));
        let new = summarise_after(text, Some(7));
        assert_eq!((new.records, new.oom.count, new.xid.len()), (2, 0, 1));
        assert!((new.first_s - 2.0).abs() < 1e-9);
        let none = summarise_after(text, Some(9));
        assert_eq!((none.records, none.last_seq), (0, Some(9)));
        // A log that was cleared or wrapped below the mark gives no new record, and keeps it.
        assert_eq!(summarise_after("", Some(9)).last_seq, Some(9));
    }

    #[test]
    fn records_and_their_dictionaries() {
        let (r, bad) = records(LOG);
        assert_eq!(r.len(), 11);
        assert_eq!(bad, 1, "the junk line");
        assert_eq!(
            r[4].dict,
            vec![("SUBSYSTEM", "pci"), ("DEVICE", "+pci:0000:3b:00.0")]
        );
        assert_eq!((r[2].level, r[2].seq, r[2].usec), (3, 3, 5_000_100));
    }

    #[test]
    fn every_class_is_found_with_its_device_or_cgroup() {
        let log = summarise(LOG);
        assert_eq!(log.oom.count, 2);
        assert_eq!(log.oom_kills[0].cgroup.as_deref(), Some("/kubepods/pod42"));
        assert_eq!(log.oom_kills[0].pid, Some(4242));
        assert_eq!(log.oom_kills[0].command.as_deref(), Some("python"));
        assert_eq!(log.oom_kills[0].anon_rss_bytes, Some(8_000_000 * 1024));
        assert_eq!(
            log.oom_kills[1].cgroup, None,
            "a host-wide OOM names no cgroup"
        );
        let xid: Vec<(u32, &str, u64)> = log
            .xid
            .iter()
            .map(|(c, d, s)| (*c, d.as_str(), s.count))
            .collect();
        assert_eq!(xid, vec![(48, "0000:3b:00", 2), (79, "0000:3b:00", 1)]);
        let aer: Vec<(&str, &str)> = log
            .aer
            .iter()
            .map(|(v, d, _)| (v.as_str(), d.as_str()))
            .collect();
        assert_eq!(
            aer,
            vec![("corrected", "0000:01:00.0"), ("fatal", "0000:01:00.0")]
        );
        assert_eq!((log.hung_task.count, log.mce.count), (1, 1));
        assert_eq!(xid_class(79).0, XidClass::Hardware);
        assert_eq!(xid_class(13).0, XidClass::Application);
        assert_eq!(xid_class(9999).0, XidClass::Unknown);
    }

    #[test]
    fn a_burst_is_counted_not_kept() {
        use std::fmt::Write as _;
        let mut text = String::new();
        for i in 0..100_000 {
            let _ = writeln!(
                text,
                "4,{i},{i}000,-;NVRM: Xid (PCI:0000:3b:00): 48, pid=1, double bit"
            );
        }
        let log = summarise(&text);
        assert_eq!(log.xid.len(), 1);
        assert_eq!(log.xid[0].2.count, 100_000);
        assert_eq!(log.xid[0].2.examples.len(), MAX_EXAMPLES);
    }
}
