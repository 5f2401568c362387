//! Removing temporary files and directories when the process is stopped by a signal.
//!
//! A temporary file is removed by its destructor on every normal path, an error included. A
//! signal whose default action terminates the process (SIGINT from Ctrl-C, SIGTERM from a
//! scheduler, SIGHUP from a closed terminal) runs no destructor, so an interrupted `osml data
//! pack` would leave a hidden `.osml-*.tmp` of hundreds of MB beside its output. Code that
//! creates such a path registers it here; once a program has called [`enable`], the first
//! registration installs handlers for those three signals.
//!
//! The handlers follow the self-pipe pattern through `signal-hook`: the signal handler itself
//! only writes to a pipe, and a dedicated thread, outside signal context and so free to take
//! locks and allocate, removes every registered path and then re-raises the signal with its
//! default action, so the process ends as the signal would have ended it (a shell reports 130
//! for SIGINT, 143 for SIGTERM, 129 for SIGHUP). The registry's lock is held from the removal
//! to the end, so no new path can be registered and left behind in between.
//!
//! Removing a file someone is writing to is safe (the writer keeps its descriptor), but a
//! directory being filled is not: its filler may create the directory again after it is
//! removed. Code that fills a registered directory takes a [`step`] around each entry it
//! creates; the cleanup thread first marks the process as terminating, then waits for the
//! step in progress, so nothing is created after the removal; a later `step` never returns.
//! Likewise [`before_exit`], which the program's `main` calls: work that failed because its
//! files vanished cannot end the process with its own status before the signal does.
//!
//! A library embedded in another program (the Python package) never calls [`enable`]: the
//! host program owns its signals, and registration is then only bookkeeping.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, Once, PoisonError, RwLock, RwLockReadGuard};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static ENABLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());
static TERMINATING: AtomicBool = AtomicBool::new(false);
static STEPS: RwLock<()> = RwLock::new(());

/// One step of filling a registered directory, in progress; see the module documentation.
#[derive(Debug)]
#[must_use = "the step lasts as long as the guard"]
pub struct Step(#[allow(dead_code)] RwLockReadGuard<'static, ()>);

/// Begins a step that creates something inside a registered directory. Once a terminating
/// signal has arrived it does not return: the cleanup thread is removing the directory and
/// then ends the process with the signal, and a filler that went on (or gave up and exited
/// with an error of its own) would race it.
pub fn step() -> Step {
    if TERMINATING.load(Ordering::SeqCst) {
        wait_for_the_end();
    }
    let guard = STEPS.read().unwrap_or_else(PoisonError::into_inner);
    // The flag may have been set while this waited for the cleanup to finish.
    if TERMINATING.load(Ordering::SeqCst) {
        drop(guard);
        wait_for_the_end();
    }
    Step(guard)
}

/// Called by a program's `main` before it returns its exit status: while a terminating
/// signal's cleanup is under way it does not return, so the process ends by the signal (and
/// after the cleanup), not with whatever status the interrupted work came to.
pub fn before_exit() {
    if TERMINATING.load(Ordering::SeqCst) {
        wait_for_the_end();
    }
}

fn wait_for_the_end() -> ! {
    loop {
        std::thread::park();
    }
}

struct Entry {
    id: u64,
    path: PathBuf,
    dir: bool,
}

/// Lets registrations install the signal handlers. Called once by the `osml` binary.
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

/// A registered path; dropping it unregisters the path (it does not remove it: the owner's own
/// destructor or rename does that).
#[derive(Debug)]
#[must_use = "dropping the guard unregisters the path at once"]
pub struct Registered {
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
        reg.retain(|e| e.id != self.id);
    }
}

/// Registers a temporary file to be removed if a terminating signal arrives.
pub fn register_file(path: &Path) -> Registered {
    register(path, false)
}

/// Registers a temporary directory to be removed, with its contents, if a terminating signal
/// arrives.
pub fn register_dir(path: &Path) -> Registered {
    register(path, true)
}

fn register(path: &Path, dir: bool) -> Registered {
    match create(
        dir,
        || Ok::<_, std::convert::Infallible>(path.to_path_buf()),
        PathBuf::clone,
    ) {
        Ok((_, registered)) => registered,
        Err(never) => match never {},
    }
}

/// Makes a path and registers it in one step: the registry stays locked from before `make`
/// runs until the path is recorded, so a signal's cleanup (which takes the same lock) finds
/// either nothing made yet or the path registered, never a file it does not know of.
pub fn create<T, E>(
    dir: bool,
    make: impl FnOnce() -> Result<T, E>,
    path_of: impl FnOnce(&T) -> PathBuf,
) -> Result<(T, Registered), E> {
    if ENABLED.load(Ordering::SeqCst) {
        INSTALL.call_once(install);
    }
    let mut reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
    let value = make()?;
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    reg.push(Entry {
        id,
        path: path_of(&value),
        dir,
    });
    Ok((value, Registered { id }))
}

/// How many paths are registered now (for tests).
pub fn registered() -> usize {
    REGISTRY
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len()
}

fn install() {
    // If the handlers cannot be installed (a seccomp filter on rt_sigaction), the process
    // keeps the default actions: temporary files may then be left, as before.
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("osml-cleanup".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                TERMINATING.store(true, Ordering::SeqCst);
                // Waits for a step in progress; no new one starts.
                let _steps = STEPS.write().unwrap_or_else(PoisonError::into_inner);
                let reg = REGISTRY.lock().unwrap_or_else(PoisonError::into_inner);
                for e in reg.iter() {
                    let _ = if e.dir {
                        std::fs::remove_dir_all(&e.path)
                    } else {
                        std::fs::remove_file(&e.path)
                    };
                }
                let _ = signal_hook::low_level::emulate_default_handler(sig);
                // A signal whose default is to terminate never returns here.
                std::process::exit(128 + sig);
            }
        });
    drop(spawned);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_unregister_on_drop() {
        let before = registered();
        let a = register_file(Path::new("/nonexistent/a"));
        let b = register_dir(Path::new("/nonexistent/b"));
        assert!(registered() >= before + 2);
        drop(a);
        drop(b);
        // Other tests may register concurrently; ours are gone.
        let reg = REGISTRY.lock().unwrap();
        assert!(reg.iter().all(|e| !e.path.starts_with("/nonexistent")));
    }
}
