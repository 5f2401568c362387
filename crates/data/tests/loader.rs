//! The loader against a naive reference: every row equals the window read straight from the
//! file's bytes, for every format, mode and output type; epochs cover every window once
//! across ranks; the global sequence does not depend on world size or worker count; resuming
//! continues exactly; many tiny batches under random consumer delays stay in order.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::cast_possible_truncation
)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use osml_data::loader::{Loader, LoaderConfig, LoaderState, Output};
use osml_data::sampler::{Mode, Sampler};
use osml_data::write::{write_npy, MegatronWriter, RawWriter};
use osml_data::{DType, OpenOptions, TokenDataset};

/// Token `i` of the stream has value `i % 50_000`: windows are recognisable by their first token.
fn stream(n: u32) -> Vec<u32> {
    (0..n).map(|i| i % 50_000).collect()
}

/// The same stream in three formats (Megatron with uneven documents).
fn datasets(dir: &Path, n: u32) -> Vec<PathBuf> {
    let tokens = stream(n);
    let meg = dir.join("m");
    let mut w = MegatronWriter::create(&meg, DType::U16).unwrap();
    let mut at = 0usize;
    let mut len = 1usize;
    while at < tokens.len() {
        let end = (at + len).min(tokens.len());
        w.add_document(&tokens[at..end]).unwrap();
        at = end;
        len = len * 7 % 97 + 1;
    }
    w.finish().unwrap();
    let bin = dir.join("r.bin");
    let mut r = RawWriter::create(&bin, DType::U16).unwrap();
    r.add_document(&tokens).unwrap();
    r.finish().unwrap();
    let npy = dir.join("n.npy");
    write_npy(&npy, DType::U16, &tokens).unwrap();
    vec![meg, bin, npy]
}

fn open(p: &Path) -> Arc<TokenDataset> {
    Arc::new(TokenDataset::open(p, OpenOptions::default()).unwrap())
}

/// The window at `start` read from the raw file bytes, with no osml code involved.
fn reference(raw: &[u8], start: u64, len: usize) -> Vec<i64> {
    (0..len)
        .map(|k| {
            let at = (start as usize + k) * 2;
            i64::from(u16::from_le_bytes([raw[at], raw[at + 1]]))
        })
        .collect()
}

fn cfg(b: usize, t: usize, mode: Mode) -> LoaderConfig {
    LoaderConfig {
        batch_size: b,
        seq_len: t,
        mode,
        seed: 9,
        workers: 2,
        prefetch: 3,
        ..LoaderConfig::default()
    }
}

#[test]
fn rows_equal_the_reference_for_every_format_mode_and_output() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_011;
    for path in datasets(dir.path(), n) {
        let raw = std::fs::read(dir.path().join("r.bin")).unwrap();
        let ds = open(&path);
        for mode in [
            Mode::Random,
            Mode::Epoch { block: None },
            Mode::Epoch { block: Some(5) },
        ] {
            // T = 150 is longer than most of the Megatron documents.
            for output in [Output::I64, Output::I32, Output::Source] {
                let c = LoaderConfig {
                    output,
                    ..cfg(5, 150, mode)
                };
                let sampler = Sampler::new(mode, c.seed, 150, u64::from(n)).unwrap();
                let mut loader = Loader::new(Arc::clone(&ds), &c, None).unwrap();
                for step in 0..30 {
                    let b = loader.next_batch().unwrap();
                    assert_eq!(b.step(), step);
                    assert_eq!((b.rows(), b.row_len()), (5, 151));
                    for i in 0..5 {
                        let sample = step * 5 + i as u64;
                        assert_eq!(b.sample_index(i), Some(sample));
                        let want = reference(&raw, sampler.window_start(sample), 151);
                        assert_eq!(
                            b.row_i64(i),
                            want,
                            "{} {mode:?} {output:?} step {step} row {i}",
                            path.display()
                        );
                    }
                    match output {
                        Output::I64 => {
                            assert_eq!(b.as_i64().unwrap().len(), 5 * 151);
                            let row = b.row_i64(3);
                            assert_eq!(b.x_i64(3).unwrap(), &row[..150]);
                            assert_eq!(b.y_i64(3).unwrap(), &row[1..]);
                        }
                        Output::I32 => assert_eq!(b.as_i32().unwrap().len(), 5 * 151),
                        Output::Source => assert_eq!(b.bytes().len(), 5 * 151 * 2),
                    }
                }
            }
        }
    }
}

/// Rows of `steps` global batches, gathered rank by rank, as first tokens (window ids).
fn global_sequence(
    ds: &Arc<TokenDataset>,
    world: usize,
    workers: usize,
    global: usize,
    steps: u64,
    mode: Mode,
) -> Vec<i64> {
    let mut loaders: Vec<Loader> = (0..world)
        .map(|rank| {
            let c = LoaderConfig {
                rank,
                world_size: world,
                workers,
                ..cfg(global / world, 4, mode)
            };
            Loader::new(Arc::clone(ds), &c, None).unwrap()
        })
        .collect();
    let mut seq = Vec::new();
    for _ in 0..steps {
        for l in &mut loaders {
            let b = l.next_batch().unwrap();
            seq.extend((0..b.rows()).map(|i| b.row_i64(i)[0]));
        }
    }
    seq
}

#[test]
fn epochs_cover_every_window_once_whatever_the_world_size_and_workers() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(&datasets(dir.path(), 4 * 1000 + 1)[0]); // M = 1000 windows of 5 tokens
    for mode in [Mode::Epoch { block: None }, Mode::Epoch { block: Some(16) }] {
        let reference = global_sequence(&ds, 1, 1, 8, 250, mode);
        for world in [1, 2, 4, 8] {
            for workers in 1..=4 {
                assert_eq!(
                    global_sequence(&ds, world, workers, 8, 250, mode),
                    reference,
                    "W={world} K={workers}"
                );
            }
        }
        let mut first_epoch = reference[..1000].to_vec();
        first_epoch.sort_unstable();
        let all: Vec<i64> = (0..1000).map(|w| w * 4).collect();
        assert_eq!(
            first_epoch, all,
            "{mode:?}: every window exactly once in epoch 0"
        );
    }
}

#[test]
fn resuming_continues_exactly_even_with_another_world_size() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(&datasets(dir.path(), 30_001)[0]);
    for mode in [Mode::Random, Mode::Epoch { block: Some(3) }] {
        let whole = global_sequence(&ds, 1, 2, 8, 40, mode);
        for stop in [0u64, 1, 17, 39] {
            // Stop a 2-rank run after `stop` steps, then continue on 4 ranks with 3 workers.
            let mut ranks: Vec<Loader> = (0..2)
                .map(|rank| {
                    Loader::new(
                        Arc::clone(&ds),
                        &LoaderConfig {
                            rank,
                            world_size: 2,
                            ..cfg(4, 4, mode)
                        },
                        None,
                    )
                    .unwrap()
                })
                .collect();
            let mut seq = Vec::new();
            for _ in 0..stop {
                for l in &mut ranks {
                    let b = l.next_batch().unwrap();
                    seq.extend((0..b.rows()).map(|i| b.row_i64(i)[0]));
                }
            }
            let state: LoaderState =
                serde_json::from_str(&serde_json::to_string(&ranks[0].state()).unwrap()).unwrap();
            assert_eq!(
                state,
                ranks[1].state(),
                "every rank reports the same global state"
            );
            assert_eq!(state.cursor, stop * 8);
            drop(ranks);
            let mut resumed: Vec<Loader> = (0..4)
                .map(|rank| {
                    let c = LoaderConfig {
                        rank,
                        world_size: 4,
                        workers: 3,
                        ..cfg(2, 4, mode)
                    };
                    Loader::restore(Arc::clone(&ds), &c, &state).unwrap()
                })
                .collect();
            for _ in stop..40 {
                for l in &mut resumed {
                    let b = l.next_batch().unwrap();
                    seq.extend((0..b.rows()).map(|i| b.row_i64(i)[0]));
                }
            }
            assert_eq!(seq, whole, "{mode:?} stopped at {stop}");
        }
    }
}

#[test]
fn restoring_onto_another_configuration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let paths = datasets(dir.path(), 10_001);
    let ds = open(&paths[0]);
    let l = Loader::new(Arc::clone(&ds), &cfg(2, 8, Mode::Random), None).unwrap();
    let state = l.state();
    for (c, what) in [
        (cfg(2, 9, Mode::Random), "sequence length"),
        (cfg(2, 8, Mode::Epoch { block: None }), "mode or seed"),
        (
            LoaderConfig {
                seed: 1,
                ..cfg(2, 8, Mode::Random)
            },
            "mode or seed",
        ),
    ] {
        let e = Loader::new(Arc::clone(&ds), &c, Some(&state))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(what), "{e}");
    }
    let other = open(&datasets(tempfile::tempdir().unwrap().path(), 10_002)[0]);
    assert!(Loader::new(other, &cfg(2, 8, Mode::Random), Some(&state))
        .err()
        .unwrap()
        .to_string()
        .contains("dataset"));
}

#[test]
fn bad_configurations_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ds = open(&datasets(dir.path(), 1_001)[0]);
    let err = |c: LoaderConfig| {
        Loader::new(Arc::clone(&ds), &c, None)
            .err()
            .unwrap()
            .to_string()
    };
    assert!(err(cfg(0, 8, Mode::Random)).contains("batch size"));
    assert!(err(cfg(2, 0, Mode::Random)).contains("sequence length"));
    assert!(err(cfg(2, 1001, Mode::Random)).contains("needs 1002"));
    assert!(err(LoaderConfig {
        rank: 2,
        world_size: 2,
        ..cfg(2, 8, Mode::Random)
    })
    .contains("rank 2"));
    assert!(err(cfg(200, 8, Mode::Epoch { block: None })).contains("fewer than one global batch"));
}

#[test]
fn many_tiny_batches_with_random_consumer_delays() {
    let dir = tempfile::tempdir().unwrap();
    let path = &datasets(dir.path(), 5_001)[1];
    let raw = std::fs::read(path).unwrap();
    let ds = open(path);
    let c = LoaderConfig {
        workers: 4,
        prefetch: 2,
        ..cfg(1, 1, Mode::Random)
    };
    let sampler = Sampler::new(Mode::Random, c.seed, 1, 5_001).unwrap();
    let mut loader = Loader::new(ds, &c, None).unwrap();
    let mut held = Vec::new();
    let mut x = 12345u64;
    let mut slept = std::time::Duration::ZERO;
    for step in 0..20_000u64 {
        let b = loader.next_batch().unwrap();
        assert_eq!(b.step(), step);
        assert_eq!(b.row_i64(0), reference(&raw, sampler.window_start(step), 2));
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 100 {
            0 => {
                let t = std::time::Instant::now();
                std::thread::sleep(std::time::Duration::from_micros(200));
                slept += t.elapsed();
            }
            1..=5 => held.push(b), // hold a few batches for a while
            _ => {}
        }
        if held.len() > 2 {
            held.clear();
        }
    }
    let s = loader.stats();
    assert_eq!(s.batches, 20_000);
    // The loader's clock covers the consumer's own time, and its waits are part of it.
    assert!(s.elapsed_s >= slept.as_secs_f64(), "{s:?} slept {slept:?}");
    assert!(s.consumer_wait_s <= s.elapsed_s, "{s:?}");
}
