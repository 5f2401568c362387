//! Mixtures through the loader: every row comes from the source the schedule names, at the
//! window that source's own epoch order gives; shares stay within one sample of the weights;
//! the global sequence does not depend on world size or worker count, with or without
//! document fields; resuming is exact across a weight change; `position_ids` and
//! `cu_seqlens` equal a reference computed from the files' own boundaries; splits are
//! disjoint and cover the documents.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::many_single_char_names
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use osml_data::loader::{Loader, LoaderConfig, LoaderState, WeightsRestored};
use osml_data::mixture::{Mixture, Part, Split, Subset, Weights};
use osml_data::sampler::Mode;
use osml_data::write::{MegatronWriter, RawWriter};
use osml_data::{DType, OpenOptions, TokenDataset, TokenSource};

/// A Megatron dataset whose token `i` is `tag * 1000 + i % 1000`, in documents of uneven
/// lengths (1 to 60 tokens); returns its prefix and the document starts.
fn megatron(dir: &Path, name: &str, tag: u32, tokens: u32) -> (PathBuf, Vec<u64>) {
    let prefix = dir.join(name);
    let mut w = MegatronWriter::create(&prefix, DType::U16).unwrap();
    let (mut at, mut len, mut starts) = (0u32, 5u32, Vec::new());
    while at < tokens {
        let end = (at + len).min(tokens);
        starts.push(u64::from(at));
        let doc: Vec<u32> = (at..end).map(|i| tag * 1000 + i % 1000).collect();
        w.add_document(&doc).unwrap();
        at = end;
        len = len * 13 % 59 + 1;
    }
    w.finish().unwrap();
    (prefix, starts)
}

fn open(p: &Path) -> Arc<TokenDataset> {
    Arc::new(TokenDataset::open(p, OpenOptions::default()).unwrap())
}

fn weights(texts: &[&str]) -> Weights {
    let names: Vec<String> = (0..texts.len()).map(|i| format!("s{i}")).collect();
    Weights::parse(
        &names,
        &texts.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
    )
    .unwrap()
}

/// Three sources of 4,000, 9,000 and 2,500 tokens, weighted 0.5 / 0.3 / 0.2.
fn three(dir: &Path) -> Mixture {
    let parts = [("a", 1, 4000), ("b", 2, 9000), ("c", 3, 2500)]
        .iter()
        .map(|&(n, tag, t)| Part::whole(n, open(&megatron(dir, n, tag, t).0)))
        .collect();
    Mixture::new(parts, weights(&["0.5", "0.3", "0.2"])).unwrap()
}

fn cfg(b: usize, t: usize, mode: Mode) -> LoaderConfig {
    LoaderConfig {
        batch_size: b,
        seq_len: t,
        mode,
        seed: 5,
        workers: 2,
        prefetch: 3,
        ..LoaderConfig::default()
    }
}

/// (source, offset) of every row of `steps` batches.
fn origins(loader: &mut Loader, steps: usize) -> Vec<(usize, u64)> {
    let mut out = Vec::new();
    for _ in 0..steps {
        let b = loader.next_batch().unwrap();
        for i in 0..b.rows() {
            out.push(b.origin(i).unwrap());
        }
    }
    out
}

#[test]
fn rows_hold_the_scheduled_source_and_each_source_walks_its_own_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let mix = three(dir.path());
    let t = 16usize;
    let mut loader =
        Loader::with_mixture(mix.clone(), &cfg(4, t, Mode::Epoch { block: None }), None).unwrap();
    let steps = 600;
    let mut per_source: HashMap<usize, Vec<u64>> = HashMap::new();
    let mut n = 0u64;
    for _ in 0..steps {
        let b = loader.next_batch().unwrap();
        for i in 0..b.rows() {
            let (s, off) = b.origin(i).unwrap();
            // The row's tokens are that source's window: the tag names the source.
            let row = b.row_i64(i);
            let part = &mix.parts()[s];
            let want = part.dataset.window(off, t + 1).unwrap().to_vec();
            assert_eq!(row, want, "row {i} of step {}", b.step());
            assert_eq!(row[0] / 1000, s as i64 + 1);
            per_source.entry(s).or_default().push(off);
            n += 1;
            // Within one sample of the weights after every sample.
            let counts = [0, 1, 2].map(|k| per_source.get(&k).map_or(0, Vec::len) as f64);
            for (k, w) in [0.5, 0.3, 0.2].iter().enumerate() {
                assert!(
                    (counts[k] - w * n as f64).abs() < 1.0,
                    "after {n} samples source {k} has {}",
                    counts[k]
                );
            }
        }
    }
    // Each source's epochs: every window once, epoch after epoch (the small source repeats).
    for (s, offs) in per_source {
        let m = (mix.parts()[s].num_tokens() - 1) / t as u64;
        for epoch in offs.chunks(m as usize).filter(|c| c.len() == m as usize) {
            let mut e = epoch.to_vec();
            e.sort_unstable();
            let want: Vec<u64> = (0..m).map(|w| w * t as u64).collect();
            assert_eq!(e, want, "source {s}");
        }
        assert!(offs.len() as u64 > m, "source {s} saw a whole epoch");
    }
}

#[test]
fn the_global_sequence_is_the_same_for_any_world_size_and_worker_count() {
    let dir = tempfile::tempdir().unwrap();
    let mix = three(dir.path());
    for documents in [false, true] {
        let global = 8usize;
        let mut reference: Option<Vec<(usize, u64)>> = None;
        for world in [1usize, 2, 4, 8] {
            for workers in [1usize, 2, 3, 4] {
                let mut seq = vec![Vec::new(); 20];
                for rank in 0..world {
                    let mut c = cfg(global / world, 16, Mode::Epoch { block: Some(4) });
                    c.rank = rank;
                    c.world_size = world;
                    c.workers = workers;
                    c.documents = documents;
                    let mut l = Loader::with_mixture(mix.clone(), &c, None).unwrap();
                    for step in &mut seq {
                        step.extend(origins(&mut l, 1));
                    }
                }
                let flat: Vec<_> = seq.concat();
                match &reference {
                    None => reference = Some(flat),
                    Some(r) => assert_eq!(
                        r, &flat,
                        "world {world}, workers {workers}, documents {documents}"
                    ),
                }
            }
        }
    }
}

#[test]
fn resuming_is_exact_across_a_weight_change() {
    let dir = tempfile::tempdir().unwrap();
    let mix = three(dir.path());
    let c = cfg(3, 16, Mode::Epoch { block: None });
    // Run A: 10 steps, change weights to 0/1/1, 10 more steps, stop, resume for 10 more.
    let mut a = Loader::with_mixture(mix.clone(), &c, None).unwrap();
    let mut run_a = origins(&mut a, 10);
    assert_eq!(a.weights_restored(), None);
    // A state under the configured weights restores without a word.
    let plain = Loader::with_mixture(mix.clone(), &c, Some(&a.state())).unwrap();
    assert_eq!(plain.weights_restored(), None);
    let changed = a.state().reweighted(&weights(&["0", "1", "1"])).unwrap();
    let mut a = Loader::with_mixture(mix.clone(), &c, Some(&changed)).unwrap();
    run_a.extend(origins(&mut a, 10));
    let state = a.state();
    // The state is small and says what happened.
    let json = serde_json::to_string(&state).unwrap();
    let back: LoaderState = serde_json::from_str(&json).unwrap();
    assert_eq!(back, state);
    let history = &state.mixture.as_ref().unwrap().weights;
    assert_eq!(history.len(), 2);
    assert_eq!(
        (history[1].start, history[1].shares.clone()),
        (30, vec![0, 1, 1])
    );
    let mut a = Loader::with_mixture(mix.clone(), &c, Some(&back)).unwrap();
    // The record's weights win over the configured ones, and the loader says so.
    assert_eq!(
        a.weights_restored(),
        Some(&WeightsRestored {
            cursor: 60,
            configured: vec![5, 3, 2],
            restored: vec![0, 1, 1],
        })
    );
    run_a.extend(origins(&mut a, 10));
    // After the change, source 0 is never drawn; the others alternate.
    assert!(run_a[30..].iter().all(|(s, _)| *s != 0));
    // Run B: the same record restored at step 5 with another worker count.
    let mut early = changed.clone();
    early.cursor = 15;
    let mut c2 = c.clone();
    c2.workers = 3;
    let mut b = Loader::with_mixture(mix.clone(), &c2, Some(&early)).unwrap();
    assert_eq!(origins(&mut b, 25), run_a[15..]);
    // A state refuses other sources.
    let other = Mixture::new(mix.parts()[..2].to_vec(), weights(&["1", "1"])).unwrap();
    let e = Loader::with_mixture(other, &c, Some(&state))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("cannot restore it here"), "{e}");
    let single = Mixture::single(Arc::clone(&mix.parts()[0].dataset));
    assert!(Loader::with_mixture(single, &c, Some(&state)).is_err());
}

#[test]
fn a_source_named_twice_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = megatron(dir.path(), "a", 1, 3000);
    let parts = vec![Part::whole("web", open(&p)), Part::whole("web", open(&p))];
    let e = Mixture::new(parts, weights(&["0.5", "0.5"]))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("source \"web\" is given twice"), "{e}");
}

/// Weight changes come at increasing steps from 1 on, the rule a mixture file's schedule
/// is read by too.
#[test]
fn weight_changes_come_at_increasing_steps_after_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut mix = three(dir.path());
    let e = mix
        .change_at_step(0, weights(&["1", "0", "0"]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("start after 0"), "{e}");
    mix.change_at_step(10, weights(&["1", "0", "0"])).unwrap();
    for step in [10, 9] {
        let e = mix
            .change_at_step(step, weights(&["0", "1", "0"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("step {step} follows step 10")), "{e}");
    }
    mix.change_at_step(11, weights(&["0", "1", "0"])).unwrap();
}

/// A mixture's rounding is the largest of its weights', the first ones and the schedule's.
#[test]
fn rounding_counts_the_scheduled_weights_too() {
    let dir = tempfile::tempdir().unwrap();
    let mut mix = three(dir.path());
    assert_eq!(mix.rounding(), None);
    // 1/3 as a double moves a share by about 10^-5.
    mix.change_at_step(5, weights(&["0.3333333333333333", "0.3", "0.2"]))
        .unwrap();
    let small = mix.rounding().unwrap();
    assert!(small > 0.0 && small < 1e-4, "{small}");
    // 1e-9 beside 1 and 1 keeps one share of 2^18: thousands of times more.
    mix.change_at_step(9, weights(&["1", "1e-9", "1"])).unwrap();
    let large = mix.rounding().unwrap();
    assert!(
        (large - (2.0 / (262_144.0 * 1e-9) - 1.0)).abs() < 1.0,
        "{large}"
    );
}

/// A mixture file's schedule resumed under another global batch: the record holds only
/// the weights up to the cursor, a stage it reached is not gone back to, and the later
/// steps start at step boundaries of the new global batch.
#[test]
fn a_schedule_resumed_with_another_global_batch_keeps_its_stages() {
    let dir = tempfile::tempdir().unwrap();
    let mut mix = three(dir.path());
    mix.change_at_step(10, weights(&["1", "0", "0"])).unwrap();
    mix.change_at_step(15, weights(&["0", "0", "1"])).unwrap();
    let c4 = cfg(4, 16, Mode::Random);
    let mut a = Loader::with_mixture(mix.clone(), &c4, None).unwrap();
    origins(&mut a, 12);
    let at_12 = a.state();
    // Cursor 48: the change at step 10 (sample 40) is past, the one at step 15 is not.
    let history: Vec<u64> = at_12
        .mixture
        .as_ref()
        .unwrap()
        .weights
        .iter()
        .map(|c| c.start)
        .collect();
    assert_eq!((at_12.cursor, history), (48, vec![0, 40]));
    origins(&mut a, 8);
    let at_20 = a.state();
    assert_eq!(at_20.cursor, 80);
    // Twice the global batch from step 20: the configured steps 10 and 15 would be samples
    // 80 and 120, but source 2 alone (step 15's weights) has been drawn since sample 60.
    let c8 = cfg(8, 16, Mode::Random);
    let mut b = Loader::with_mixture(mix.clone(), &c8, Some(&at_20)).unwrap();
    let rows = origins(&mut b, 10);
    assert!(rows.iter().all(|(s, _)| *s == 2), "{rows:?}");
    // A global batch of 10 from sample 48: step 15 would start at sample 150, inside the
    // batch [148, 158); it starts at 158, so no batch mixes the two stages.
    let c10 = cfg(10, 16, Mode::Random);
    let mut b = Loader::with_mixture(mix.clone(), &c10, Some(&at_12)).unwrap();
    for k in 0..20u64 {
        let batch = origins(&mut b, 1);
        let want = if 48 + 10 * k < 158 { 0 } else { 2 };
        assert!(
            batch.iter().all(|(s, _)| *s == want),
            "batch {k} from sample {}: {batch:?}",
            48 + 10 * k
        );
    }
}

/// `position_ids` and `cu_seqlens` of a window from document starts known independently.
fn reference_docs(starts: &[u64], off: u64, t: usize) -> (Vec<i64>, Vec<i32>) {
    let mut cu = vec![0i32];
    for &s in starts {
        if s > off && s < off + t as u64 {
            cu.push((s - off) as i32);
        }
    }
    cu.push(t as i32);
    let mut pos = Vec::with_capacity(t);
    for w in cu.windows(2) {
        pos.extend(0..i64::from(w[1] - w[0]));
    }
    cu.resize(t + 1, -1);
    (pos, cu)
}

/// Checks `steps` batches' fields against the reference; `positions`: whether the loader
/// was asked for `position_ids`.
fn check_documents(
    loader: &mut Loader,
    starts: &[Vec<u64>],
    t: usize,
    steps: usize,
    positions: bool,
) -> usize {
    let mut on_boundary = 0;
    for _ in 0..steps {
        let b = loader.next_batch().unwrap();
        let d = b.documents().unwrap();
        for i in 0..b.rows() {
            let (s, off) = b.origin(i).unwrap();
            assert_eq!((d.sources[i] as usize, d.offsets[i] as u64), (s, off));
            let (pos, cu) = reference_docs(&starts[s], off, t);
            match d.positions {
                Some(got) => {
                    assert!(positions, "positions delivered without being asked for");
                    let got: Vec<i64> = got[i * t..(i + 1) * t]
                        .iter()
                        .map(|&x| i64::from(x))
                        .collect();
                    assert_eq!(got, pos, "row {i}, offset {off}");
                }
                None => assert!(!positions, "positions asked for, none delivered"),
            }
            assert_eq!(&d.cu_seqlens[i * (t + 1)..(i + 1) * (t + 1)], &cu[..]);
            // No empty segment.
            let valid: Vec<i32> = cu.iter().copied().filter(|&x| x >= 0).collect();
            assert!(valid.windows(2).all(|w| w[1] > w[0]));
            if starts[s].contains(&off) || starts[s].contains(&(off + t as u64)) {
                on_boundary += 1;
            }
        }
    }
    on_boundary
}

#[test]
fn document_fields_equal_the_idx_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let (pa, sa) = megatron(dir.path(), "a", 1, 3000);
    let (pb, sb) = megatron(dir.path(), "b", 2, 5000);
    let parts = vec![Part::whole("a", open(&pa)), Part::whole("b", open(&pb))];
    let mix = Mixture::new(parts, weights(&["1", "2"])).unwrap();
    let t = 32;
    // Batches of more rows than the loader prepares ahead (17 > 4) as well as fewer, and
    // without positions.
    for (b, output, positions) in [
        (3, osml_data::loader::Output::I64, true),
        (5, osml_data::loader::Output::I64, true),
        (17, osml_data::loader::Output::I64, true),
        (17, osml_data::loader::Output::I32, true),
        (5, osml_data::loader::Output::I64, false),
        (17, osml_data::loader::Output::I32, false),
    ] {
        let mut c = cfg(b, t, Mode::Random);
        c.documents = true;
        c.positions = positions;
        c.output = output;
        let mut l = Loader::with_mixture(mix.clone(), &c, None).unwrap();
        let on_boundary = check_documents(&mut l, &[sa.clone(), sb.clone()], t, 300, positions);
        assert!(
            on_boundary > 0,
            "some windows start or end exactly on a boundary"
        );
    }
}

#[test]
fn document_fields_follow_the_eod_token_of_raw_files() {
    let dir = tempfile::tempdir().unwrap();
    // Documents of 1..40 tokens, each followed by token 0 (nanoGPT's convention).
    let (mut tokens, mut starts, mut len) = (Vec::new(), vec![0u64], 3usize);
    while tokens.len() < 6000 {
        tokens.extend((0..len).map(|k| 1 + (k as u32 % 500)));
        tokens.push(0);
        starts.push(tokens.len() as u64);
        len = len * 7 % 39 + 1;
    }
    starts.pop();
    let path = dir.path().join("r.bin");
    let mut w = RawWriter::create(&path, DType::U16).unwrap();
    w.add_document(&tokens).unwrap();
    w.finish().unwrap();
    let ds = Arc::new(
        TokenDataset::open(
            &path,
            OpenOptions {
                eod_token: Some(0),
                ..OpenOptions::default()
            },
        )
        .unwrap(),
    );
    let t = 24;
    let mut c = cfg(4, t, Mode::Epoch { block: None });
    c.documents = true;
    let mut l = Loader::new(ds, &c, None).unwrap();
    let on_boundary = check_documents(&mut l, &[starts], t, 60, true);
    assert!(on_boundary > 0);
}

#[test]
fn splits_are_disjoint_cover_and_read_only_their_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (p, starts) = megatron(dir.path(), "a", 1, 20_000);
    let ds = open(&p);
    let split = Split::parse("969,30,1").unwrap();
    let mut covered = Vec::new();
    for subset in [Subset::Train, Subset::Valid, Subset::Test] {
        let part = Part::split("a", Arc::clone(&ds), &split, subset).unwrap();
        covered.push(part.documents.clone());
        let again = Part::split("a", Arc::clone(&ds), &split, subset).unwrap();
        assert_eq!(
            (again.documents, again.tokens.clone()),
            (part.documents.clone(), part.tokens.clone())
        );
        // Token range = the documents' extent.
        assert_eq!(part.tokens.start, starts[part.documents.start]);
        let end = starts.get(part.documents.end).copied().unwrap_or(20_000);
        assert_eq!(part.tokens.end, end);
        if part.num_tokens() > 9 {
            let range = part.tokens.clone();
            let mut l =
                Loader::with_mixture(Mixture::one(part), &cfg(2, 8, Mode::Random), None).unwrap();
            for (_, off) in origins(&mut l, 50) {
                assert!(
                    range.contains(&off) && off + 9 <= range.end,
                    "{off} outside {range:?}"
                );
            }
        }
    }
    assert_eq!(covered[0].start, 0);
    assert_eq!(covered[0].end, covered[1].start);
    assert_eq!(covered[1].end, covered[2].start);
    assert_eq!(covered[2].end, starts.len());
    // An empty subset names the source and the split.
    let e = Part::split("web", ds, &Split::parse("100,0,0").unwrap(), Subset::Valid)
        .unwrap_err()
        .to_string();
    assert!(e.contains("source web") && e.contains("valid"), "{e}");
}

#[test]
fn a_source_too_small_for_a_window_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (big, _) = megatron(dir.path(), "big", 1, 5000);
    let (tiny, _) = megatron(dir.path(), "tiny", 2, 8);
    let mix = Mixture::new(
        vec![
            Part::whole("big", open(&big)),
            Part::whole("tiny", open(&tiny)),
        ],
        weights(&["1", "1"]),
    )
    .unwrap();
    let e = Loader::with_mixture(mix, &cfg(2, 16, Mode::Random), None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.starts_with("source tiny: the dataset has 8 tokens"),
        "{e}"
    );
}
