//! `osml tune`: the plan (dry run), `--apply`, `--revert`, `--verify`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use osml_doctor::Profile;
use osml_host::{HostRoot, HostSnapshot};
use osml_tune::apply::{apply, revert, Lock, LockFor, Target};
use osml_tune::plan::{build, Action, Plan};
use osml_tune::verify;
use serde::Serialize;
use serde_json::json;

/// The version of `osml tune --json` output (every mode).
const SCHEMA_VERSION: u32 = 1;

/// `--json` output: `schema_version` first, then the mode's own fields.
#[derive(Serialize)]
struct Versioned<'a, T: Serialize> {
    schema_version: u32,
    #[serde(flatten)]
    body: &'a T,
}

fn write_json(out: &mut impl Write, body: &impl Serialize) -> Result<()> {
    serde_json::to_writer_pretty(
        &mut *out,
        &Versioned {
            schema_version: SCHEMA_VERSION,
            body,
        },
    )?;
    writeln!(out)?;
    Ok(())
}

use crate::cli::TuneArgs;
use crate::exit::Usage;

pub fn run(a: &TuneArgs) -> Result<ExitCode> {
    let Some(profile) = Profile::by_name(&a.profile) else {
        return Err(Usage::new(format!(
            "unknown profile {} (known: {})",
            a.profile,
            Profile::names().join(", ")
        ))
        .into());
    };
    let root = match &a.root {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Usage::new(format!(
                    "--root {}: not a directory (tune writes into a directory standing in for /)",
                    dir.display()
                ))
                .into());
            }
            HostRoot::at(dir)
        }
        None => HostRoot::live(),
    };
    // Refuse before reading or touching anything that needs privileges.
    if root.is_live() && (a.apply || a.revert) && !osml_tune::running_as_root() {
        return Err(
            Usage::new("changing kernel settings needs root (nothing was changed)")
                .hint("run it with sudo")
                .into(),
        );
    }
    let target = Target { root: &root };
    // Held from before the host is read to after the journal's last write.
    let lock = if a.apply {
        target.lock(LockFor::Apply)?
    } else if a.revert {
        target.lock(LockFor::Revert)?
    } else if a.verify {
        target.lock(LockFor::Verify)?
    } else {
        None
    };
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    if a.revert {
        return do_revert(&target, lock.as_ref(), a.json);
    }
    let host = HostSnapshot::gather(&root);
    let plan = build(&root, &host, profile);
    if a.verify {
        return do_verify(&target, &plan, a.json);
    }
    let Some(mut lock) = lock.filter(|_| a.apply) else {
        if a.json {
            write_json(&mut out, &plan)?;
        } else {
            write_plan(&mut out, &plan, true)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    if !plan.changes() {
        if a.json {
            write_json(&mut out, &json!({ "changed": [] }))?;
        } else {
            writeln!(
                out,
                "nothing to change: the host already matches profile {}",
                plan.profile
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match apply(&target, &plan, &mut lock) {
        Ok(done) => {
            if a.json {
                write_json(&mut out, &done)?;
            } else {
                write_plan(&mut out, &plan, false)?;
                writeln!(
                    out,
                    "applied and verified {} change(s); journal in {} (osml tune --revert undoes them)",
                    done.changed.len(),
                    osml_tune::apply::JOURNAL
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

fn do_revert(target: &Target<'_>, lock: Option<&Lock>, json: bool) -> Result<ExitCode> {
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    // No journal directory: nothing was applied.
    let Some(lock) = lock else {
        return Err(osml_tune::TuneError::NoJournal(osml_tune::apply::JOURNAL.to_owned()).into());
    };
    match revert(target, lock) {
        Ok(paths) => {
            if json {
                write_json(&mut out, &json!({ "reverted": paths }))?;
            } else {
                writeln!(out, "reverted {} change(s):", paths.len())?;
                for p in paths {
                    writeln!(out, "  {p}")?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Err(e.into()),
    }
}

fn do_verify(target: &Target<'_>, plan: &Plan, json: bool) -> Result<ExitCode> {
    let mut out = crate::output::Sanitized::new(std::io::stdout().lock());
    let checks = verify(target, plan);
    let bad = checks.iter().filter(|c| !c.ok).count();
    if json {
        write_json(
            &mut out,
            &json!({ "profile": plan.profile, "checks": checks, "differences": bad }),
        )?;
    } else {
        for c in &checks {
            writeln!(
                out,
                "{} {:<28} {:<14} {}{}",
                if c.ok { "ok  " } else { "DIFF" },
                c.name,
                c.current.as_deref().unwrap_or("?"),
                if c.ok {
                    String::new()
                } else {
                    format!("want {}", c.target)
                },
                c.note
                    .as_deref()
                    .map_or_else(String::new, |n| format!("  ({n})"))
            )?;
        }
        writeln!(out, "{bad} difference(s) from profile {}", plan.profile)?;
    }
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn write_plan(out: &mut impl Write, plan: &Plan, dry: bool) -> std::io::Result<()> {
    writeln!(
        out,
        "osml tune: profile {} on {}{}",
        plan.profile,
        plan.root,
        if dry {
            " (dry run: nothing changed; --apply applies it)"
        } else {
            ""
        }
    )?;
    // Per-CPU governors are shown as one line per (action, current, target).
    let mut governors: Vec<(String, Vec<usize>)> = Vec::new();
    for s in &plan.settings {
        // /dev/shm sizes are bytes: show them as GiB.
        let gib = |v: &str| match (s.path.as_str(), v.parse::<u64>()) {
            ("/dev/shm", Ok(b)) => format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30)),
            _ => v.to_owned(),
        };
        let cur = gib(s.current.as_deref().unwrap_or("?"));
        let target = gib(&s.target);
        let (word, detail) = match &s.action {
            Action::Set => ("set ", format!("{cur} → {target}")),
            Action::Keep => ("keep", cur.clone()),
            Action::Skip { reason, .. } => ("skip", format!("{cur}: {reason}")),
        };
        if let Some(cpu) = s
            .name
            .strip_prefix("governor cpu")
            .and_then(|c| c.parse().ok())
        {
            let key = format!("{word}|{detail}");
            match governors.iter_mut().find(|(k, _)| *k == key) {
                Some((_, cpus)) => cpus.push(cpu),
                None => governors.push((key, vec![cpu])),
            }
            continue;
        }
        writeln!(out, "  {word} {:<26} {detail}   [{}]", s.name, s.check)?;
    }
    for (key, cpus) in governors {
        let (word, detail) = key.split_once('|').unwrap_or((&key, ""));
        let list: osml_host::CpuList = cpus.into_iter().collect();
        writeln!(
            out,
            "  {word} {:<26} {detail}   [cpu.governor]",
            format!("governor cpu{list}")
        )?;
    }
    for f in &plan.files {
        let what = match (&f.current, f.changes()) {
            (_, false) => "keep ",
            (None, true) => "write",
            (Some(_), true) => "edit ",
        };
        writeln!(out, "  {what} {}", f.path)?;
    }
    for n in &plan.notes {
        writeln!(out, "  note: {n}")?;
    }
    Ok(())
}
