//! The loader under misuse: batches held, absurd sizes, failing and stalling workers,
//! interleaved loaders, files that are not token arrays.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use osml_data::loader::{
    Fault, Interleave, Loader, LoaderConfig, LoaderError, LoaderState, Output,
};
use osml_data::sampler::Mode;
use osml_data::write::{write_npy, MegatronWriter, RawWriter};
use osml_data::{DType, DataError, Format, OpenOptions, TokenDataset, TokenSource};

/// A raw uint16 file whose token `i` is `i % 60_000`.
fn dataset(dir: &Path, n: u32) -> Arc<TokenDataset> {
    let path = dir.join("t.bin");
    let mut w = RawWriter::create(&path, DType::U16).unwrap();
    w.add_document(&(0..n).map(|i| i % 60_000).collect::<Vec<_>>())
        .unwrap();
    w.finish().unwrap();
    Arc::new(TokenDataset::open(&path, OpenOptions::default()).unwrap())
}

fn cfg() -> LoaderConfig {
    LoaderConfig {
        batch_size: 4,
        seq_len: 16,
        mode: Mode::Epoch { block: None },
        seed: 3,
        workers: 2,
        prefetch: 2,
        ..LoaderConfig::default()
    }
}

/// The first `n` batches' rows from a loader that drops each batch at once.
fn rows_dropping(ds: &Arc<TokenDataset>, c: &LoaderConfig, n: usize) -> Vec<Vec<i64>> {
    let mut l = Loader::new(Arc::clone(ds), c, None).unwrap();
    (0..n)
        .flat_map(|_| {
            let b = l.next_batch().unwrap();
            (0..b.rows()).map(|i| b.row_i64(i)).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn holding_fifty_batches_grows_the_pool_and_keeps_every_row_intact() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = cfg();
    let mut l = Loader::new(Arc::clone(&ds), &c, None).unwrap();
    let held: Vec<_> = (0..50).map(|_| l.next_batch().unwrap()).collect();
    let stats = l.stats();
    assert!(stats.pool_grows > 0, "{stats:?}");
    assert!(stats.held >= 50, "{stats:?}");
    // Held buffers were never rewritten: they equal a loader whose batches were dropped.
    let got: Vec<Vec<i64>> = held
        .iter()
        .flat_map(|b| (0..b.rows()).map(|i| b.row_i64(i)))
        .collect();
    assert_eq!(got, rows_dropping(&ds, &c, 50));
    let steps: Vec<u64> = held.iter().map(osml_data::loader::Batch::step).collect();
    assert_eq!(steps, (0..50).collect::<Vec<_>>());
}

#[test]
fn past_the_limit_the_caller_is_told_how_many_it_holds_and_can_go_on_after_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = LoaderConfig {
        max_buffers: 12,
        ..cfg()
    };
    let mut l = Loader::new(Arc::clone(&ds), &c, None).unwrap();
    let mut held: Vec<_> = (0..12).map(|_| l.next_batch().unwrap()).collect();
    let err = l.next_batch().err().unwrap();
    assert!(
        matches!(
            err,
            DataError::Loader(LoaderError::PoolExhausted {
                held: 12,
                limit: 12
            })
        ),
        "{err}"
    );
    held.truncate(6);
    let next = l.next_batch().unwrap();
    assert_eq!(next.step(), 12, "no step skipped by the refusal");
}

#[test]
fn a_panicking_worker_ends_the_stream_at_its_step_with_that_error() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = LoaderConfig {
        fault: Some(Fault::Panic { step: 5 }),
        ..cfg()
    };
    let mut l = Loader::new(ds, &c, None).unwrap();
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    for item in l.by_ref().take(20) {
        match item {
            Ok(b) => steps.push(b.step()),
            Err(e) => errors.push(e),
        }
    }
    assert_eq!(steps, [0, 1, 2, 3, 4]);
    assert_eq!(errors.len(), 1, "one error, then the iterator ends");
    assert!(
        matches!(&errors[0], DataError::Loader(LoaderError::WorkerPanicked { step: 5, message }) if message.contains("injected")),
        "{}",
        errors[0]
    );
    assert!(matches!(
        l.next_batch(),
        Err(DataError::Loader(LoaderError::Ended))
    ));
}

#[test]
fn a_stalled_worker_is_a_wait_that_times_out_and_a_drop_that_returns() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = LoaderConfig {
        fault: Some(Fault::Stall { step: 0 }),
        ..cfg()
    };
    let mut l = Loader::new(ds, &c, None).unwrap();
    let t = Instant::now();
    assert!(l
        .next_batch_timeout(Duration::from_millis(50))
        .unwrap()
        .is_none());
    assert!(t.elapsed() >= Duration::from_millis(50));
    let t = Instant::now();
    drop(l);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "drop joined a stalled worker promptly"
    );
}

#[test]
fn absurd_sizes_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let random = |b: usize, t: usize| LoaderConfig {
        batch_size: b,
        seq_len: t,
        mode: Mode::Random,
        ..cfg()
    };
    let refused = |c: LoaderConfig, needle: &str| {
        let t = Instant::now();
        let e = Loader::new(Arc::clone(&ds), &c, None).err().unwrap();
        assert!(matches!(e, DataError::Usage(_)), "{e}");
        assert!(e.to_string().contains(needle), "{e} lacks {needle:?}");
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "refused without allocating"
        );
    };
    refused(random((1 << 60) - 1, 1), "too large");
    refused(random(1 << 40, 1), "would need");
    refused(random(4, usize::MAX), "needs");
    refused(
        LoaderConfig {
            world_size: usize::MAX,
            batch_size: 4,
            ..random(4, 16)
        },
        "64 bits",
    );
    refused(
        LoaderConfig {
            workers: 100_000,
            ..random(4, 16)
        },
        "workers must be between 1 and 256",
    );
    refused(
        LoaderConfig {
            prefetch: usize::MAX,
            ..random(4, 16)
        },
        "prefetch must be at most 1024",
    );
}

#[test]
fn a_cursor_near_the_end_of_the_range_is_refused_not_wrapped() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = cfg();
    let l = Loader::new(Arc::clone(&ds), &c, None).unwrap();
    let state = LoaderState {
        cursor: u64::MAX - 2,
        ..l.state()
    };
    let e = Loader::new(ds, &c, Some(&state)).err().unwrap();
    assert!(e.to_string().contains("2^64"), "{e}");
}

#[test]
fn a_float_dataset_cannot_be_delivered_as_its_own_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let mut writer = MegatronWriter::create(&path, DType::F32).unwrap();
    writer.add_document(&(0..1000).collect::<Vec<_>>()).unwrap();
    writer.finish().unwrap();
    let ds = Arc::new(TokenDataset::open(&path, OpenOptions::default()).unwrap());
    assert_eq!(ds.dtype(), DType::F32);
    let c = LoaderConfig {
        output: Output::Source,
        ..cfg()
    };
    let e = Loader::new(Arc::clone(&ds), &c, None).err().unwrap();
    assert!(e.to_string().contains("float32"), "{e}");
    // As int64 it loads, truncated toward zero.
    let mut l = Loader::new(ds, &cfg(), None).unwrap();
    let b = l.next_batch().unwrap();
    let row = b.row_i64(0);
    assert!(row.windows(2).all(|w| w[1] == w[0] + 1), "{row:?}");
}

#[test]
fn interleaved_loaders_together_deliver_every_step_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = cfg();
    let single = rows_dropping(&ds, &c, 12);
    let mut loaders: Vec<Loader> = (0..3)
        .map(|index| {
            let ci = LoaderConfig {
                interleave: Interleave { index, count: 3 },
                ..c.clone()
            };
            Loader::new(Arc::clone(&ds), &ci, None).unwrap()
        })
        .collect();
    let mut round_robin = Vec::new();
    for k in 0..12 {
        let b = loaders[k % 3].next_batch().unwrap();
        round_robin.extend((0..b.rows()).map(|i| b.row_i64(i)));
    }
    assert_eq!(round_robin, single);
    let bad = LoaderConfig {
        interleave: Interleave { index: 3, count: 3 },
        ..c
    };
    assert!(Loader::new(ds, &bad, None).is_err());
}

#[test]
fn files_that_are_not_token_arrays_are_refused_unless_named() {
    let dir = tempfile::tempdir().unwrap();
    let jsonl = dir.path().join("corpus.jsonl");
    std::fs::write(&jsonl, "{\"text\": \"hello\"}\n{\"text\": \"world\"}\n").unwrap();
    let e = TokenDataset::open(&jsonl, OpenOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Invalid { .. }), "{e}");
    assert!(e.to_string().contains(".jsonl is none of them"), "{e}");
    // Renamed to .bin, it reads as text and is refused with the way out.
    let bin = dir.path().join("corpus.bin");
    std::fs::copy(&jsonl, &bin).unwrap();
    let e = TokenDataset::open(&bin, OpenOptions::default()).unwrap_err();
    assert!(e.to_string().contains("osml data pack"), "{e}");
    // Named explicitly, any file is a token array (a byte-level corpus is one).
    let named = OpenOptions {
        format: Some(Format::Bin),
        dtype: Some(DType::U8),
        ..OpenOptions::default()
    };
    assert!(TokenDataset::open(&jsonl, named).is_ok());
    // A token array of small ids is full of NUL bytes, never text.
    let npy = dir.path().join("small.npy");
    write_npy(
        &npy,
        DType::U16,
        &(0..2000u32).map(|i| i % 100).collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(TokenDataset::open(&npy, OpenOptions::default()).is_ok());
    let raw = dir.path().join("small.bin");
    let mut w = RawWriter::create(&raw, DType::U16).unwrap();
    w.add_document(&(0..2000u32).map(|i| i % 100 + 10).collect::<Vec<_>>())
        .unwrap();
    w.finish().unwrap();
    assert!(TokenDataset::open(&raw, OpenOptions::default()).is_ok());
}

/// The loader threads of this process, by their names.
// osml-data does not depend on osml-host (the HostRoot door): this test reads only its own
// process's thread names.
#[allow(clippy::disallowed_methods)]
fn loader_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("osml-loader"))
        .count()
}

#[test]
fn a_constructor_that_fails_part_way_stops_the_threads_it_started() {
    // Counted in a child process (this test binary again), where no other test makes threads.
    if std::env::var_os("OSML_SPAWN_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "a_constructor_that_fails_part_way_stops_the_threads_it_started",
                "--test-threads=1",
            ])
            .env("OSML_SPAWN_CHILD", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ds = dataset(dir.path(), 50_000);
    let c = LoaderConfig {
        workers: 4,
        fault: Some(Fault::SpawnFails { worker: 3 }),
        ..cfg()
    };
    let e = Loader::new(ds, &c, None).err().unwrap();
    assert!(e.to_string().contains("cannot start loader threads"), "{e}");
    // The read-ahead thread and workers 0-2 were started, then stopped and joined.
    assert_eq!(loader_threads(), 0);
}
