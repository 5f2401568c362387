//! `osml data inspect|verify|show` over sources of many shards: globs, directories, lists, llm.c
//! shards, the end-of-document split, and the exit codes of bad sources.

#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::Command;
use predicates::str::contains;
use serde_json::Value;

mod support;

/// An llm.c shard as `dev/data/data_common.py` writes one (uint16 tokens).
fn llmc(path: &Path, tokens: &[u16]) {
    let mut header = [0i32; 256];
    header[0] = 20_240_520;
    header[1] = 1;
    header[2] = i32::try_from(tokens.len()).unwrap();
    let mut b: Vec<u8> = header.iter().flat_map(|w| w.to_le_bytes()).collect();
    b.extend(tokens.iter().flat_map(|t| t.to_le_bytes()));
    std::fs::write(path, b).unwrap();
}

fn shards(dir: &Path) -> Vec<Vec<u16>> {
    (0..5u16)
        .map(|i| {
            let t: Vec<u16> = std::iter::once(50_256)
                .chain((0..10 + i).map(|j| i * 100 + j))
                .collect();
            llmc(&dir.join(format!("train_{i:06}.bin")), &t);
            t
        })
        .collect()
}

fn osml(dir: &Path) -> Command {
    let mut c = support::osml_in(dir);
    c.timeout(std::time::Duration::from_secs(60));
    c
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = osml(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn inspect_verify_and_show_read_a_glob_as_one_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let want = shards(d);
    let total: usize = want.iter().map(Vec::len).sum();
    let v = json(d, &["data", "inspect", "--json", "train_*.bin"]);
    assert_eq!(v["format"], "llmc");
    assert_eq!(v["tokens"], total);
    assert_eq!(v["shards"].as_array().unwrap().len(), 5);
    assert_eq!(v["shards"][2]["tokens"], want[2].len());
    assert_eq!(v["shards"][2]["first_token"], want[0].len() + want[1].len());
    assert_eq!(v["documents"], 5);
    // With the end-of-document token, llm.c's documents (each opened by it).
    let v = json(
        d,
        &["data", "inspect", "--json", "--eod-token", "50256", "."],
    );
    assert_eq!(v["documents"], 5);
    assert_eq!(v["eod_token"], 50256);
    assert_eq!(v["document_lengths"]["min"], 11);
    // show prints the documents of the whole stream.
    let out = osml(d)
        .args(["data", "show", "--eod-token", "50256", "train_*.bin"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lines: Vec<Vec<u16>> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, want);
    // verify checksums every shard; a list in another order is another stream.
    let v = json(d, &["data", "verify", "--json", "train_*.bin"]);
    assert_eq!(v["files"].as_array().unwrap().len(), 5);
    assert_eq!(v["shards"].as_array().unwrap().len(), 5);
    let h = osml(d)
        .args(["data", "inspect", "train_000001.bin", "train_000000.bin"])
        .output()
        .unwrap();
    assert!(h.status.success());
    let text = String::from_utf8(h.stdout).unwrap();
    assert!(text.contains("shards        2"), "{text}");
    let first = text.find("train_000001.bin  ").unwrap();
    assert!(first < text.find("train_000000.bin  ").unwrap(), "{text}");
}

#[test]
fn bad_sources_exit_1_naming_the_shard() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shards(d);
    osml(d)
        .args(["data", "inspect", "valid_*.bin"])
        .assert()
        .code(1)
        .stderr(contains("matches no file"));
    std::fs::write(d.join("x.npy"), b"\x93NUMPY").unwrap();
    osml(d)
        .args(["data", "inspect", "."])
        .assert()
        .code(1)
        .stderr(contains("x.npy"))
        .stderr(contains("share one format"));
    std::fs::remove_file(d.join("x.npy")).unwrap();
    // A shard whose count disagrees with its size.
    let mut b = std::fs::read(d.join("train_000003.bin")).unwrap();
    b.truncate(b.len() - 4);
    std::fs::write(d.join("train_000003.bin"), b).unwrap();
    osml(d)
        .args(["data", "verify", "train_*.bin"])
        .assert()
        .code(1)
        .stderr(contains("train_000003.bin"))
        .stderr(contains("llm.c shard"));
    osml(d)
        .args([
            "data",
            "inspect",
            "--eod-token",
            "1",
            "--format",
            "megatron",
            "train_000000.bin",
        ])
        .assert()
        .code(2);
    osml(d)
        .args(["data", "inspect", "missing.bin"])
        .assert()
        .code(3);
}

/// `inspect --tokens` of a mixture with a schedule: the count read exactly, the schedule
/// placed by `--global-batch` (which it needs), and a source too short for a window refused.
#[test]
fn a_planned_run_reads_its_count_exactly_and_needs_the_global_batch_of_a_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shards(d);
    // A schedule is in steps: placing it needs the global batch.
    std::fs::write(
        d.join("curriculum.toml"),
        "[[sources]]\npath = \"train_000000.bin\"\nweight = 1\nname = \"a\"\n\
         [[sources]]\npath = \"train_000001.bin\"\nweight = 1\nname = \"b\"\n\
         [[schedule]]\nstep = 10\nweights = { a = 1, b = 0 }\n",
    )
    .unwrap();
    let inspect = [
        "data",
        "inspect",
        "curriculum.toml",
        "--tokens",
        "4.1K",
        "--seq-len",
        "4",
    ];
    osml(d)
        .args(inspect)
        .assert()
        .code(2)
        .stderr(contains("give --global-batch"));
    let mut with_batch = inspect.to_vec();
    with_batch.extend(["--global-batch", "8", "--json"]);
    let v = json(d, &with_batch);
    // 4.1K tokens read exactly (not 4099): 1025 samples; from step 10 (sample 80) on, a alone.
    assert_eq!(v["run"]["tokens"], 4100);
    assert_eq!(v["run"]["samples"], 1025);
    assert_eq!(v["run"]["sources"][1]["samples"], 40);
    // A source shorter than one window is refused as a loader refuses it.
    osml(d)
        .args([
            "data",
            "inspect",
            "curriculum.toml",
            "--tokens",
            "1K",
            "--seq-len",
            "100000",
            "--global-batch",
            "8",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "source a: the dataset has 11 tokens; a window of sequence length 100000 needs 100001",
        ));
}

#[test]
fn mixtures_are_described_and_their_bad_inputs_have_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    shards(d);
    std::fs::write(
        d.join("mix.toml"),
        "[[sources]]\npath = \"train_000000.bin\"\nweight = 0.7\nname = \"a\"\n\
         [[sources]]\npath = \"train_00000[1-4].bin\"\nweight = 0.3\n",
    )
    .unwrap();
    let v = json(
        d,
        &[
            "data",
            "inspect",
            "mix.toml",
            "--tokens",
            "1K",
            "--seq-len",
            "4",
            "--json",
        ],
    );
    assert_eq!(v["sources"][0]["name"], "a");
    assert_eq!(v["sources"][1]["shards"], 4);
    assert_eq!(v["run"]["samples"], 250);
    let samples: u64 = v["run"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["samples"].as_u64().unwrap())
        .sum();
    assert_eq!(samples, 250);
    assert_eq!(v["exact_weights"], true);
    assert_eq!(v["largest_share_change"], 0.0);
    // Weights that need rounding say how far it moved a share: 1e-9 beside 1 keeps one
    // share of 2^18, about 3,815 times what was asked for.
    let tiny = "1 train_000000.bin 1e-9 train_000001.bin";
    let v = json(d, &["data", "inspect", tiny, "--json"]);
    assert_eq!(v["exact_weights"], false);
    let change = v["largest_share_change"].as_f64().unwrap();
    assert!(
        (change - (1.0 / (262_144.0 * 1e-9) - 1.0)).abs() < 1e-3,
        "{change}"
    );
    osml(d)
        .args(["data", "inspect", tiny])
        .assert()
        .success()
        .stdout(contains(
            "(weights rounded to shares of 2^18, moving a source's share by up to 381370%)",
        ));
    // A mixture file that does not parse: invalid input, exit 1, naming the file.
    std::fs::write(d.join("bad.json"), "{\"sources\": [").unwrap();
    osml(d)
        .args(["data", "inspect", "bad.json"])
        .assert()
        .code(1)
        .stderr(contains("bad.json: not a valid mixture"));
    // A negative weight or an empty subset: usage, exit 2, naming the source.
    osml(d)
        .args([
            "data",
            "inspect",
            "0.5 train_000000.bin -1 train_000001.bin",
        ])
        .assert()
        .code(2)
        .stderr(contains(
            "source train_000001.bin: weight \"-1\" is negative",
        ));
    osml(d)
        .args([
            "data",
            "inspect",
            "train_000000.bin",
            "--split",
            "100,0",
            "--subset",
            "valid",
        ])
        .assert()
        .code(2)
        .stderr(contains("holds none"));
    // A missing source: exit 3.
    osml(d)
        .args(["data", "inspect", "0.5 train_000000.bin 0.5 missing.bin"])
        .assert()
        .code(3);
}
