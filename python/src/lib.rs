//! `osml._osml`: the Python face of osml's loader and doctor. Glue only: every decision lives
//! in the Rust crates; this file converts arguments, releases the GIL around waiting, and
//! hands batch buffers to numpy without copying.
//!
//! The one `unsafe` block outside `osml-sys` is here, in [`Batch::array`]: numpy is told to
//! view a batch buffer owned by a Python object, which stays alive as the array's base.

mod errors;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use numpy::ndarray::{ArrayView1, ArrayView2};
use numpy::{Element, PyArray1, PyArray2};
use osml_data::loader::{
    Fault, Interleave, Loader as RustLoader, LoaderConfig, LoaderError, LoaderState, Output,
};
use osml_data::mixture::{Mixture, Part, Split, Subset, Weights};
use osml_data::sampler::Mode;
use osml_data::{DType, DataError, Format, MixtureSpec, OpenOptions, SourceSpec, TokenDataset};
use pyo3::prelude::*;

use crate::errors::{data_err, InvalidDatasetError, OsmlError};

/// One batch buffer, kept alive as the base object of the numpy array that views it; when
/// the last view goes, the buffer returns to the loader's pool.
#[pyclass(module = "osml._osml", frozen)]
struct Batch {
    batch: osml_data::loader::Batch,
}

impl Batch {
    fn view<'py, T: Element + bytemuck::Pod>(
        this: &Bound<'py, Self>,
        rows: usize,
        cols: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        // The buffer is 2 MiB aligned and a whole number of elements long.
        let data: &[T] = bytemuck::cast_slice(this.get().batch.bytes());
        Self::view_of(this, data, rows, cols)
    }

    /// A `[rows, cols]` array viewing `data`, a slice of this batch's buffer.
    fn view_of<'py, T: Element>(
        this: &Bound<'py, Self>,
        data: &[T],
        rows: usize,
        cols: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let view = ArrayView2::from_shape((rows, cols), data)
            .map_err(|e| OsmlError::new_err(format!("batch shape: {e}")))?;
        // SAFETY: `view` borrows the batch buffer owned by `this`, which becomes the array's
        // base object, so the memory outlives the array; the buffer is never reallocated
        // (a fixed mmap) and returns to the pool only when `this` is dropped.
        let array = unsafe { PyArray2::borrow_from_array(&view, this.clone().into_any()) };
        Ok(array.into_any())
    }
}

impl Batch {
    /// A `[len]` array viewing `data`, a slice of this batch's buffer.
    fn view1<'py, T: Element>(this: &Bound<'py, Self>, data: &[T]) -> Bound<'py, PyAny> {
        let view = ArrayView1::from(data);
        // SAFETY: as in `view_of`: the slice lies in the buffer `this` owns, which becomes
        // the array's base object and outlives it.
        let array = unsafe { PyArray1::borrow_from_array(&view, this.clone().into_any()) };
        array.into_any()
    }
}

/// The arrays of a batch with document fields: tokens `[B, T+1]`, `position_ids` `[B, T]`,
/// `cu_seqlens` `[B, T+1]`, `sources` `[B]`, `offsets` `[B]`, all viewing one buffer.
fn documents(
    py: Python<'_>,
    batch: osml_data::loader::Batch,
) -> PyResult<Bound<'_, pyo3::types::PyTuple>> {
    let (rows, cols) = (batch.rows(), batch.row_len());
    let this = Bound::new(py, Batch { batch })?;
    let tokens = tokens(&this)?;
    let d = this
        .get()
        .batch
        .documents()
        .ok_or_else(|| OsmlError::new_err("the loader was made without documents=True"))?;
    let positions = match d.positions {
        Some(p) => Batch::view_of(&this, p, rows, cols - 1)?,
        None => py.None().into_bound(py),
    };
    let cu = Batch::view_of(&this, d.cu_seqlens, rows, cols)?;
    let sources = Batch::view1(&this, d.sources);
    let offsets = Batch::view1(&this, d.offsets);
    pyo3::types::PyTuple::new(py, [tokens, positions, cu, sources, offsets])
}

#[pymethods]
impl Batch {
    /// The step of this batch.
    #[getter]
    fn step(&self) -> u64 {
        self.batch.step()
    }
}

fn array(py: Python<'_>, batch: osml_data::loader::Batch) -> PyResult<Bound<'_, PyAny>> {
    tokens(&Bound::new(py, Batch { batch })?)
}

/// The `[B, T+1]` tokens of a batch, viewing its buffer.
fn tokens<'py>(this: &Bound<'py, Batch>) -> PyResult<Bound<'py, PyAny>> {
    let batch = &this.get().batch;
    let (rows, cols, dtype) = (batch.rows(), batch.row_len(), batch.dtype());
    match dtype {
        DType::I64 => Batch::view::<i64>(this, rows, cols),
        DType::I32 => Batch::view::<i32>(this, rows, cols),
        DType::U16 => Batch::view::<u16>(this, rows, cols),
        DType::I16 => Batch::view::<i16>(this, rows, cols),
        DType::U8 => Batch::view::<u8>(this, rows, cols),
        DType::I8 => Batch::view::<i8>(this, rows, cols),
        DType::U32 => Batch::view::<u32>(this, rows, cols),
        DType::U64 => Batch::view::<u64>(this, rows, cols),
        DType::F32 | DType::F64 => Err(InvalidDatasetError::new_err(
            "a float dataset cannot be loaded as tokens in its own dtype: use dtype='int64'",
        )),
    }
}

/// The loader: see `osml.TokenLoader` for the documented interface. Calls from several
/// Python threads are serialised: each waits its turn, in slices of [`WAIT_SLICE`].
#[pyclass(module = "osml._osml", frozen)]
struct Loader {
    loader: Mutex<RustLoader>,
    /// How far rounding to a period of `MAX_PERIOD` samples moved the shares of the weights
    /// given (configured and scheduled, or `set_weights`'): `Mixture::rounding`, the largest
    /// change of a share; `None` when all are exact.
    rounding: Option<f64>,
}

/// How long one wait for a batch lasts before signals are checked again: Ctrl-C raises
/// `KeyboardInterrupt` within about this long.
const WAIT_SLICE: Duration = Duration::from_millis(50);

impl Loader {
    /// The next batch: the GIL released while waiting, in slices of [`WAIT_SLICE`] with a
    /// check for signals between them; after the error that ended the stream,
    /// `StopIteration`.
    fn wait(&self, py: Python<'_>) -> PyResult<osml_data::loader::Batch> {
        loop {
            let got = py.detach(|| self.lock().next_batch_timeout(WAIT_SLICE));
            match got {
                Ok(Some(batch)) => return Ok(batch),
                Ok(None) => py.check_signals()?,
                Err(osml_data::DataError::Loader(LoaderError::Ended)) => {
                    return Err(pyo3::exceptions::PyStopIteration::new_err(()))
                }
                Err(e) => return Err(data_err(e)),
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RustLoader> {
        self.loader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Runs `open` on a thread of its own while this one waits for it in slices of
/// [`WAIT_SLICE`], checking for signals between them: a Ctrl-C while a loader opens (the
/// end-of-document scan of a raw stream read from disk takes as long as reading it) raises
/// `KeyboardInterrupt` within a slice. The interrupted open goes on to its end on its own
/// thread and is dropped there; a panic in it is passed on.
fn interruptible<T: Send + 'static>(
    py: Python<'_>,
    open: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    use std::sync::mpsc::RecvTimeoutError;
    let (tx, mut rx) = std::sync::mpsc::sync_channel(1);
    let handle = std::thread::Builder::new()
        .name("osml-open".into())
        .spawn(move || {
            // The receiver is gone when the caller was interrupted: the result is dropped.
            let _ = tx.send(open());
        })
        .map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!(
                "cannot start a thread to open the loader: {e}"
            ))
        })?;
    loop {
        let got;
        (rx, got) = py.detach(move || {
            let got = rx.recv_timeout(WAIT_SLICE);
            (rx, got)
        });
        match got {
            Ok(value) => {
                // It has sent its result: it ends now.
                let _ = handle.join();
                return Ok(value);
            }
            Err(RecvTimeoutError::Timeout) => py.check_signals()?,
            Err(RecvTimeoutError::Disconnected) => {
                return match handle.join() {
                    Err(panic) => std::panic::resume_unwind(panic),
                    Ok(()) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                        "the thread opening the loader ended without a result",
                    )),
                }
            }
        }
    }
}

fn parse_output(dtype: &str) -> PyResult<Output> {
    match dtype {
        "int64" | "i64" | "long" => Ok(Output::I64),
        "int32" | "i32" | "int" => Ok(Output::I32),
        "source" | "native" => Ok(Output::Source),
        other => Err(pyo3::exceptions::PyValueError::new_err(format!(
            "dtype must be 'int64', 'int32' or 'source', not {other:?}"
        ))),
    }
}

fn parse_format(format: Option<&str>) -> PyResult<Option<Format>> {
    format
        .map(|f| {
            Format::from_name(f).ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err(format!(
                    "format must be 'megatron', 'bin', 'npy', 'llmc' or 'arrow', not {f:?}"
                ))
            })
        })
        .transpose()
}

/// The mixture a loader reads: the Python package's list of sources, a mixture file or blend
/// string named as the one source entry, or one source (whole, or a split of it).
fn open_mixture(
    paths: &[PathBuf],
    sources: Option<Vec<(String, Vec<PathBuf>, String)>>,
    schedule: Vec<(u64, Vec<String>)>,
    open: &OpenOptions,
    split: Option<&str>,
    subset: Option<Subset>,
) -> Result<Mixture, DataError> {
    let spec = match sources {
        Some(sources) => Some(MixtureSpec {
            sources: sources
                .into_iter()
                .map(|(name, paths, weight)| SourceSpec {
                    name,
                    paths,
                    weight,
                })
                .collect(),
            schedule,
            split: None,
        }),
        None => MixtureSpec::detect(paths)?,
    };
    if let Some(spec) = spec {
        return spec.open(open, split, subset);
    }
    let ds = Arc::new(TokenDataset::open_source(paths, open)?);
    match split {
        None if subset.is_some_and(|s| s != Subset::Train) => Err(DataError::Usage(
            "a subset other than train needs a split (such as split=\"969,30,1\")".into(),
        )),
        None => Ok(Mixture::single(ds)),
        Some(split) => {
            let name = paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" ");
            let split = Split::parse(split)?;
            Ok(Mixture::one(Part::split(
                name,
                ds,
                &split,
                subset.unwrap_or(Subset::Train),
            )?))
        }
    }
}

#[pymethods]
impl Loader {
    #[new]
    #[pyo3(signature = (paths, batch_size, seq_len, *, mode, seed, rank, world_size, workers, prefetch, dtype, cpus, format, raw_dtype, column, eod_token, block, state_json, max_buffers, interleave, sources = None, schedule = Vec::new(), split = None, subset = None, documents = false, positions = true, reweight = None, fault = None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        paths: Vec<PathBuf>,
        batch_size: usize,
        seq_len: usize,
        mode: &str,
        seed: u64,
        rank: usize,
        world_size: usize,
        workers: usize,
        prefetch: usize,
        dtype: &str,
        cpus: Vec<usize>,
        format: Option<&str>,
        raw_dtype: &str,
        column: Option<String>,
        eod_token: Option<u64>,
        block: Option<u64>,
        state_json: Option<&str>,
        max_buffers: usize,
        interleave: (u64, u64),
        sources: Option<Vec<(String, Vec<PathBuf>, String)>>,
        schedule: Vec<(u64, Vec<String>)>,
        split: Option<String>,
        subset: Option<&str>,
        documents: bool,
        positions: bool,
        reweight: Option<Vec<String>>,
        fault: Option<(String, u64)>,
    ) -> PyResult<Self> {
        let mode = Mode::parse(mode, block).map_err(data_err)?;
        let subset = subset.map(Subset::parse).transpose().map_err(data_err)?;
        // `stall_open`: the open waits that many seconds first (for the test of Ctrl-C then).
        let mut open_stall = None;
        let fault = match fault.as_ref().map(|(k, s)| (k.as_str(), *s)) {
            None => None,
            Some(("panic", step)) => Some(Fault::Panic { step }),
            Some(("stall", step)) => Some(Fault::Stall { step }),
            Some(("stall_open", secs)) => {
                open_stall = Some(Duration::from_secs(secs));
                None
            }
            Some((other, _)) => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "unknown fault {other:?}"
                )))
            }
        };
        let raw = DType::from_name(raw_dtype).ok_or_else(|| {
            pyo3::exceptions::PyValueError::new_err(format!("unknown raw dtype {raw_dtype:?}"))
        })?;
        let open = OpenOptions {
            format: parse_format(format)?,
            dtype: Some(raw),
            column,
            eod_token,
        };
        let cfg = LoaderConfig {
            batch_size,
            seq_len,
            mode,
            seed,
            rank,
            world_size,
            // 0 means "choose": one per CPU this process may use, less one.
            workers: if workers == 0 {
                osml_data::loader::default_workers()
            } else {
                workers
            },
            prefetch,
            output: parse_output(dtype)?,
            cpus,
            max_buffers,
            interleave: Interleave {
                index: interleave.0,
                count: interleave.1,
            },
            documents,
            positions,
            fault,
            ..LoaderConfig::default()
        };
        let state: Option<LoaderState> =
            state_json
                .map(serde_json::from_str)
                .transpose()
                .map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!(
                        "not an osml loader state: {e}"
                    ))
                })?;
        let loader = interruptible(py, move || {
            if let Some(d) = open_stall {
                std::thread::sleep(d);
            }
            let mixture = open_mixture(&paths, sources, schedule, &open, split.as_deref(), subset)?;
            let mut rounding = mixture.rounding();
            let state = match (state, reweight) {
                (Some(st), Some(texts)) => {
                    let names: Vec<String> =
                        mixture.parts().iter().map(|p| p.name.clone()).collect();
                    let weights = Weights::parse(&names, &texts)?;
                    rounding = (!weights.exact()).then(|| weights.largest_change());
                    Some(st.reweighted(&weights)?)
                }
                (state, _) => state,
            };
            RustLoader::with_mixture(mixture, &cfg, state.as_ref()).map(|l| (l, rounding))
        })?
        .map_err(data_err)?;
        Ok(Self {
            loader: Mutex::new(loader.0),
            rounding: loader.1,
        })
    }

    /// The next batch as a `[B, T+1]` numpy array viewing a pool buffer (no copy). The GIL
    /// is released while waiting, in slices of [`WAIT_SLICE`] with a check for signals
    /// between them. After the error that ended the stream, `StopIteration`.
    fn next_batch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        array(py, self.wait(py)?)
    }

    /// The next batch with its document fields: `(tokens, position_ids, cu_seqlens, sources,
    /// offsets)`, numpy arrays viewing one pool buffer (`position_ids` `None` when the loader
    /// was made with `positions=False`).
    fn next_documents<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        documents(py, self.wait(py)?)
    }

    /// How far rounding moved the shares of the weights given to this loader (`set_weights`:
    /// the new weights only), as the largest `|rounded / given - 1|` of a source's share;
    /// `None` when their exact shares fit a schedule period of `MAX_PERIOD` samples.
    fn weights_rounding(&self) -> Option<f64> {
        self.rounding
    }

    /// What the first `samples` global samples read of each source, as JSON.
    fn plan_json(&self, py: Python<'_>, samples: u64) -> PyResult<String> {
        let plan = py.detach(|| self.lock().plan(samples));
        serde_json::to_string(&plan).map_err(|e| OsmlError::new_err(e.to_string()))
    }

    /// When the restored state records other weights at its cursor than the configuration
    /// gives (the record's are followed): `{cursor, configured, restored}` as JSON.
    fn weights_restored_json(&self, py: Python<'_>) -> PyResult<Option<String>> {
        let restored = py.detach(|| self.lock().weights_restored().cloned());
        restored
            .map(|r| serde_json::to_string(&r).map_err(|e| OsmlError::new_err(e.to_string())))
            .transpose()
    }

    /// Samples per global step (B × W).
    fn global_batch(&self, py: Python<'_>) -> u64 {
        py.detach(|| self.lock().global_batch())
    }

    /// The names of the sources, in order.
    fn source_names(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| {
            self.lock()
                .mixture()
                .parts()
                .iter()
                .map(|p| p.name.clone())
                .collect()
        })
    }

    /// The state after the batches handed out so far, as JSON.
    fn state_json(&self, py: Python<'_>) -> PyResult<String> {
        let state = py.detach(|| self.lock().state());
        serde_json::to_string(&state).map_err(|e| OsmlError::new_err(e.to_string()))
    }

    /// The loader's counters, as JSON.
    fn stats_json(&self, py: Python<'_>) -> PyResult<String> {
        let stats = py.detach(|| self.lock().stats());
        serde_json::to_string(&stats).map_err(|e| OsmlError::new_err(e.to_string()))
    }

    /// `(address, length)` of every region of pool buffers: a region never moves, and the
    /// pool grows by adding regions.
    fn buffers(&self, py: Python<'_>) -> Vec<(usize, usize)> {
        py.detach(|| self.lock().buffer_regions().to_vec())
    }
}

/// `osml doctor --json` for this host, or for `root`: a captured directory or a capture
/// archive (`.tar`, `.tar.gz`, `.tar.bz2`), opened as the CLI's `--root` opens it, with the
/// same limits and the same refusals (see `errors::host_err`).
#[pyfunction]
#[pyo3(signature = (profile = "training", root = None))]
fn doctor_json(py: Python<'_>, profile: &str, root: Option<PathBuf>) -> PyResult<String> {
    enum Failure {
        Root(osml_host::HostError),
        Doctor(osml_doctor::DoctorError),
    }
    let profile = osml_doctor::Profile::by_name(profile).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "unknown profile {profile:?} (known: {})",
            osml_doctor::Profile::names().join(", ")
        ))
    })?;
    let report = py.detach(move || {
        let opened = root
            .as_deref()
            .map(osml_host::capture::open)
            .transpose()
            .map_err(Failure::Root)?;
        let host_root = opened.as_ref().map_or_else(
            osml_host::HostRoot::live,
            osml_host::capture::OpenedRoot::root,
        );
        let mut host = osml_host::HostSnapshot::gather(&host_root);
        if let Some(path) = &root {
            // The path the caller gave, not a temporary unpack directory.
            host.root = path.display().to_string();
        }
        osml_doctor::diagnose(host, profile, &[]).map_err(Failure::Doctor)
    });
    let report = report.map_err(|e| match e {
        Failure::Root(e) => errors::host_err(e),
        Failure::Doctor(e) => pyo3::exceptions::PyValueError::new_err(e.to_string()),
    })?;
    serde_json::to_string(&report).map_err(|e| OsmlError::new_err(e.to_string()))
}

/// Counts this process's system calls (perf tracepoint; threads and child processes started
/// afterwards are added when they exit). For benchmarks.
#[pyclass(module = "osml._osml")]
struct SyscallCounter {
    counter: osml_sys::SyscallCounter,
}

#[pymethods]
impl SyscallCounter {
    #[new]
    fn new() -> PyResult<Self> {
        let id =
            osml_host::syscall_tracepoint_id(&osml_host::HostRoot::live()).ok_or_else(|| {
                OsmlError::new_err(
                    "the raw_syscalls:sys_enter tracepoint is not visible (mount tracefs)",
                )
            })?;
        let counter =
            osml_sys::SyscallCounter::open(id).map_err(|e| OsmlError::new_err(e.to_string()))?;
        Ok(Self { counter })
    }

    fn read(&mut self) -> PyResult<u64> {
        self.counter
            .read()
            .map_err(|e| OsmlError::new_err(e.to_string()))
    }
}

#[pymodule]
fn _osml(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Loader>()?;
    m.add_class::<Batch>()?;
    m.add_class::<SyscallCounter>()?;
    m.add_function(wrap_pyfunction!(doctor_json, m)?)?;
    m.add("OsmlError", m.py().get_type::<OsmlError>())?;
    m.add(
        "InvalidDatasetError",
        m.py().get_type::<InvalidDatasetError>(),
    )?;
    m.add("LoaderError", m.py().get_type::<errors::LoaderError>())?;
    m.add(
        "PoolExhaustedError",
        m.py().get_type::<errors::PoolExhaustedError>(),
    )?;
    m.add(
        "ForkedLoaderError",
        m.py().get_type::<errors::ForkedLoaderError>(),
    )?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "DEFAULT_MAX_BUFFERS",
        osml_data::loader::DEFAULT_MAX_BUFFERS,
    )?;
    Ok(())
}
