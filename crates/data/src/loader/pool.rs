//! [`Pool`]: a loader's batch buffers and the protocol by which they move between threads.
//!
//! Every buffer is in exactly one place at any time:
//!
//! ```text
//!  free ──claim──▶ in flight (a worker fills step s) ──publish──▶ ready[s] ──take(s)──▶ held
//!   ▲                  │ fail (the buffer comes back, the stream ends at s)            │
//!   └──────────────────┴────────────────────────── release ◀──────────────────────────┘
//! ```
//!
//! - Workers claim steps in order 0, 1, 2, …; the consumer takes them in the same order. So
//!   when the consumer waits for step `s` and `s` is not claimed yet, nothing is in flight and
//!   every buffer that is not free is held by the consumer's side (batches it has not dropped).
//!   If then no buffer is free, waiting would never end: [`Pool::take`] returns
//!   [`Take::Starved`] instead, and the caller adds buffers ([`Pool::add`]) or gives up at its
//!   limit. Holding batches therefore never hangs.
//! - After a fill fails at step `f`, no further step is claimed; the steps before `f` (claimed
//!   earlier) still arrive, and `take(f)` returns the error, once.
//! - Wake-ups are sent only to sleepers, and in batches: a sleeping consumer waiting for step
//!   `s` is woken once `s` is ready and either `s + consumer_wake_at - 1` is published or the
//!   workers can do no more (no free buffer), or on a failure or `stop`; a sleeping worker is
//!   woken when `wake_at` buffers are free, or when the consumer goes to sleep while buffers
//!   are free. A step that is ready when asked for costs no system call, and a consumer
//!   faster or slower than the workers costs two futex calls per `wake_at` batches, not per
//!   batch. A sleeping consumer also looks again every millisecond, so a ready step never
//!   waits longer than that for a slow worker's later step.
//!
//! The protocol is model-checked with loom (`--cfg loom`, see the tests below): every
//! interleaving of a worker, a consumer and a thread dropping batches, including a consumer
//! that holds every buffer and a failing fill.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::sync::{AtomicU64, Condvar, Mutex, MutexGuard};
use crate::DataError;

/// What [`Pool::take`] found.
#[derive(Debug)]
pub(crate) enum Take<T> {
    /// The step's buffer, now held by the caller.
    Ready(T),
    /// The fill of this step failed.
    Failed(DataError),
    /// Nobody can produce this step: every buffer is held (`held` of `total`).
    Starved { held: usize, total: usize },
    /// The deadline passed first.
    TimedOut,
    /// The pool was stopped, or its failure was already reported.
    Stopped,
}

struct State<T> {
    free: Vec<T>,
    ready: BTreeMap<u64, T>,
    next_claim: u64,
    in_flight: usize,
    total: usize,
    /// The step whose fill failed, and its error until reported.
    failure: Option<(u64, Option<DataError>)>,
    stopped: bool,
    consumer_waits_for: Option<u64>,
    /// The sleeping consumer is woken once this step is ready (its own step plus
    /// `wake_at - 1`), or earlier when workers can do no more.
    consumer_wake_step: u64,
    /// When the step the consumer sleeps for was published (it may sleep on, for more).
    awaited_published: Option<Instant>,
    consumer_notified: bool,
    workers_sleeping: usize,
}

/// How many buffers are where (for statistics and error messages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub total: usize,
    pub free: usize,
    pub ready: usize,
    pub in_flight: usize,
}

impl Counts {
    /// Buffers lent out and not yet released.
    pub fn held(self) -> usize {
        self.total - self.free - self.ready - self.in_flight
    }
}

/// The buffers of one loader; see the module documentation for the protocol.
pub(crate) struct Pool<T> {
    state: Mutex<State<T>>,
    consumer: Condvar,
    workers: Condvar,
    /// `published[s % len] == s` once step `s` is ready: the consumer polls it without the
    /// lock. Two steps can share a slot; a slot only ever holds a published step, so seeing
    /// `s` there proves `s` is ready, and not seeing it just means "ask under the lock".
    published: Vec<AtomicU64>,
    wake_at: usize,
    consumer_wake_at: usize,
    worker_wait_ns: std::sync::atomic::AtomicU64,
}

/// The longest a consumer sleeps before it looks again: a step that is ready waits at most
/// this long for the later steps it would be woken with.
const BATCHED_WAIT: Duration = Duration::from_millis(1);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding this lock (fills run outside it), so a poisoned lock still
    // guards consistent data.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g)
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

impl<T> Pool<T> {
    /// A pool of `buffers`; sleeping workers are woken once `wake_at` (at least 1) are free,
    /// and a sleeping consumer once `consumer_wake_at` steps from its own are ready (or no
    /// more can be produced).
    pub fn new(buffers: Vec<T>, wake_at: usize, consumer_wake_at: usize) -> Self {
        let total = buffers.len();
        Self {
            state: Mutex::new(State {
                free: buffers,
                ready: BTreeMap::new(),
                next_claim: 0,
                in_flight: 0,
                total,
                failure: None,
                stopped: false,
                consumer_waits_for: None,
                consumer_wake_step: 0,
                awaited_published: None,
                consumer_notified: false,
                workers_sleeping: 0,
            }),
            consumer: Condvar::new(),
            workers: Condvar::new(),
            published: (0..total.max(1))
                .map(|_| AtomicU64::new(u64::MAX))
                .collect(),
            wake_at: wake_at.max(1),
            consumer_wake_at: consumer_wake_at.max(1),
            worker_wait_ns: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// A worker's next step and a free buffer to fill it in; sleeps while none is free.
    /// `None` once the pool is stopped or a fill has failed: the worker should exit.
    pub fn claim(&self) -> Option<(u64, T)> {
        let mut g = lock(&self.state);
        loop {
            if g.stopped || g.failure.is_some() {
                return None;
            }
            if let Some(buffer) = g.free.pop() {
                let step = g.next_claim;
                g.next_claim += 1;
                g.in_flight += 1;
                // Pass the wake-up on: more work is waiting than this worker can take.
                let chain = g.workers_sleeping > 0 && g.free.len() >= self.wake_at;
                drop(g);
                if chain {
                    self.workers.notify_one();
                }
                return Some((step, buffer));
            }
            // No free buffer: this worker can do no more, so a consumer whose step is ready
            // must not wait for later ones.
            let wake_consumer = g
                .consumer_waits_for
                .is_some_and(|s| g.ready.contains_key(&s))
                && !g.consumer_notified;
            if wake_consumer {
                g.consumer_notified = true;
                self.consumer.notify_one();
            }
            g.workers_sleeping += 1;
            let t = Instant::now();
            g = wait(&self.workers, g);
            g.workers_sleeping -= 1;
            self.worker_wait_ns
                .fetch_add(nanos(t.elapsed()), Ordering::Relaxed);
        }
    }

    /// Hands over the filled buffer of `step`.
    pub fn publish(&self, step: u64, buffer: T) {
        let mut g = lock(&self.state);
        g.in_flight -= 1;
        g.ready.insert(step, buffer);
        if g.consumer_waits_for == Some(step) {
            g.awaited_published = Some(Instant::now());
        }
        let slot = usize::try_from(step % self.published.len() as u64).unwrap_or(0);
        self.published[slot].store(step, Ordering::Release);
        // After a failure no more steps are claimed: a ready step must not wait for them.
        let wake = g.consumer_waits_for.is_some_and(|s| {
            g.ready.contains_key(&s)
                && (step >= g.consumer_wake_step || g.free.is_empty() || g.failure.is_some())
        }) && !g.consumer_notified;
        if wake {
            g.consumer_notified = true;
        }
        drop(g);
        if wake {
            self.consumer.notify_one();
        }
    }

    /// The fill of `step` failed: its buffer comes back, no further step is claimed, and
    /// `take(step)` will return `error`.
    pub fn fail(&self, step: u64, buffer: T, error: DataError) {
        let mut g = lock(&self.state);
        g.in_flight -= 1;
        g.free.push(buffer);
        // Keep the earliest failure: the consumer meets it first.
        if g.failure.as_ref().is_none_or(|(f, _)| step < *f) {
            g.failure = Some((step, Some(error)));
        }
        // Whatever step the consumer waits for, it must look again: either this failure is
        // its answer, or its step is ready and no more will come.
        let wake = g.consumer_waits_for.is_some();
        drop(g);
        if wake {
            self.consumer.notify_one();
        }
        self.workers.notify_all();
    }

    /// Whether `step` is ready, without taking the lock (a hint: `false` may be stale).
    pub fn is_published(&self, step: u64) -> bool {
        let slot = usize::try_from(step % self.published.len() as u64).unwrap_or(0);
        self.published[slot].load(Ordering::Acquire) == step
    }

    /// The buffer of `step`, waiting until it is ready, the deadline passes, or nobody can
    /// produce it. Steps must be taken in order.
    pub fn take(&self, step: u64, deadline: Option<Instant>) -> Take<T> {
        let mut g = lock(&self.state);
        loop {
            if let Some(buffer) = g.ready.remove(&step) {
                return Take::Ready(buffer);
            }
            if let Some((failed, error)) = &mut g.failure {
                if *failed <= step {
                    return error.take().map_or(Take::Stopped, Take::Failed);
                }
            }
            if g.stopped {
                return Take::Stopped;
            }
            if g.next_claim <= step && g.free.is_empty() {
                let counts = Self::counts_of(&g);
                return Take::Starved {
                    held: counts.held(),
                    total: counts.total,
                };
            }
            // Sleeping workers with buffers to fill are woken: the consumer is about to
            // wait for what they would produce.
            if g.workers_sleeping > 0 && !g.free.is_empty() {
                self.workers.notify_one();
            }
            g.consumer_waits_for = Some(step);
            g.consumer_wake_step = step.saturating_add(self.consumer_wake_at as u64 - 1);
            g.awaited_published = None;
            g.consumer_notified = false;
            // Sleep in slices of at most BATCHED_WAIT: a step that became ready while a slow
            // worker holds up the rest of the batch waits no longer than that.
            let slice = match deadline {
                None => BATCHED_WAIT,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        g.consumer_waits_for = None;
                        return Take::TimedOut;
                    }
                    left.min(BATCHED_WAIT)
                }
            };
            g = self
                .consumer
                .wait_timeout(g, slice)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
            g.consumer_waits_for = None;
        }
    }

    /// When the step the consumer last slept for was published, if it was published while the
    /// consumer slept (the consumer may sleep on past it, to be woken for several steps).
    pub fn awaited_published(&self) -> Option<Instant> {
        lock(&self.state).awaited_published
    }

    /// A buffer comes back from the consumer's side.
    pub fn release(&self, buffer: T) {
        let mut g = lock(&self.state);
        g.free.push(buffer);
        let wake = g.workers_sleeping > 0
            && (g.free.len() >= self.wake_at || g.consumer_waits_for.is_some());
        drop(g);
        if wake {
            self.workers.notify_one();
        }
    }

    /// Adds buffers (the pool grows when the consumer holds every one).
    pub fn add(&self, buffers: Vec<T>) {
        let mut g = lock(&self.state);
        g.total += buffers.len();
        g.free.extend(buffers);
        let wake = g.workers_sleeping > 0;
        drop(g);
        if wake {
            self.workers.notify_all();
        }
    }

    /// Stops the pool: workers' claims and the consumer's takes return at once.
    pub fn stop(&self) {
        lock(&self.state).stopped = true;
        self.workers.notify_all();
        self.consumer.notify_all();
    }

    /// Steps claimed so far (the read-ahead thread stays ahead of this).
    pub fn claimed(&self) -> u64 {
        lock(&self.state).next_claim
    }

    pub fn counts(&self) -> Counts {
        Self::counts_of(&lock(&self.state))
    }

    fn counts_of(g: &State<T>) -> Counts {
        Counts {
            total: g.total,
            free: g.free.len(),
            ready: g.ready.len(),
            in_flight: g.in_flight,
        }
    }

    /// Time workers spent asleep waiting for a free buffer.
    pub fn worker_wait(&self) -> Duration {
        Duration::from_nanos(self.worker_wait_ns.load(Ordering::Relaxed))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_consumer_holding_every_buffer_is_told_not_left_waiting() {
        let pool = Pool::new(vec![0u32, 1], 1, 1);
        let (s0, b0) = pool.claim().unwrap();
        pool.publish(s0, b0);
        let (s1, b1) = pool.claim().unwrap();
        pool.publish(s1, b1);
        let held: Vec<u32> = (0..2)
            .map(|s| match pool.take(s, None) {
                Take::Ready(b) => b,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(matches!(
            pool.take(2, None),
            Take::Starved { held: 2, total: 2 }
        ));
        pool.add(vec![7]);
        let (s2, b2) = pool.claim().unwrap();
        assert_eq!((s2, b2), (2, 7));
        pool.publish(s2, b2);
        assert!(matches!(pool.take(2, None), Take::Ready(7)));
        for b in held {
            pool.release(b);
        }
        assert_eq!(pool.counts().free, 2);
    }

    #[test]
    fn a_failure_ends_the_stream_at_its_step_once() {
        let pool = Pool::new(vec![0u32, 1, 2], 1, 1);
        let (a, ba) = pool.claim().unwrap();
        let (b, bb) = pool.claim().unwrap();
        pool.fail(b, bb, DataError::Usage("boom".into()));
        assert!(pool.claim().is_none(), "no claims after a failure");
        pool.publish(a, ba);
        assert!(matches!(pool.take(0, None), Take::Ready(_)));
        assert!(matches!(pool.take(1, None), Take::Failed(_)));
        assert!(matches!(pool.take(1, None), Take::Stopped));
    }

    #[test]
    fn a_deadline_ends_the_wait() {
        let pool = Pool::new(vec![0u32], 1, 1);
        let (s, _b) = pool.claim().unwrap();
        let t = Instant::now();
        let got = pool.take(s, Some(t + Duration::from_millis(20)));
        assert!(matches!(got, Take::TimedOut));
        assert!(t.elapsed() >= Duration::from_millis(20));
    }
}

/// The protocol under every interleaving loom finds (`RUSTFLAGS="--cfg loom" cargo test -p
/// osml-data --lib --release loom`; `make test-loom`).
#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;
    use loom::sync::Arc;
    use loom::thread;

    fn ready(t: Take<u32>) -> u32 {
        match t {
            Take::Ready(b) => b,
            other => panic!("{other:?}"),
        }
    }

    /// Every interleaving with up to three preemptions (loom's advice: most bugs need few).
    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    fn spawn_worker(pool: &Arc<Pool<u32>>, fail_at: Option<u64>) -> thread::JoinHandle<()> {
        let pool = Arc::clone(pool);
        thread::spawn(move || {
            while let Some((step, buffer)) = pool.claim() {
                if Some(step) == fail_at {
                    pool.fail(step, buffer, DataError::Usage("injected".into()));
                } else {
                    pool.publish(step, buffer);
                }
            }
        })
    }

    #[test]
    fn steps_arrive_in_order_with_buffers_recycled() {
        model(|| {
            let pool = Arc::new(Pool::new(vec![10, 11], 1, 1));
            let worker = spawn_worker(&pool, None);
            for step in 0..3 {
                match pool.take(step, None) {
                    Take::Ready(b) => pool.release(b),
                    other => panic!("step {step}: {other:?}"),
                }
            }
            pool.stop();
            worker.join().unwrap();
        });
    }

    #[test]
    fn holding_every_buffer_starves_instead_of_hanging_and_growth_recovers() {
        model(|| {
            let pool = Arc::new(Pool::new(vec![10], 1, 1));
            let worker = spawn_worker(&pool, None);
            let held = ready(pool.take(0, None));
            match pool.take(1, None) {
                Take::Starved { held: 1, total: 1 } => pool.add(vec![20]),
                other => panic!("{other:?}"),
            }
            assert!(matches!(pool.take(1, None), Take::Ready(20)));
            pool.release(held);
            pool.stop();
            worker.join().unwrap();
        });
    }

    #[test]
    fn batches_dropped_on_another_thread_keep_the_stream_going() {
        model(|| {
            let pool = Arc::new(Pool::new(vec![10, 11], 2, 2));
            let worker = spawn_worker(&pool, None);
            let first = ready(pool.take(0, None));
            let dropper = {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.release(first))
            };
            // Step 1 may need the buffer the other thread is releasing: either it arrives or
            // the pool says it is starved; it never hangs.
            match pool.take(1, None) {
                Take::Ready(b) => pool.release(b),
                Take::Starved { .. } => {}
                other => panic!("{other:?}"),
            }
            dropper.join().unwrap();
            pool.stop();
            worker.join().unwrap();
        });
    }

    #[test]
    fn a_waiting_consumer_wakes_workers_below_their_wake_threshold() {
        model(|| {
            // Workers sleep until two buffers are free; the consumer frees one and waits.
            let pool = Arc::new(Pool::new(vec![10, 11, 12], 2, 1));
            let worker = spawn_worker(&pool, None);
            let mut held = Vec::new();
            for step in 0..3 {
                held.push(ready(pool.take(step, None)));
            }
            pool.release(held.pop().unwrap());
            pool.release(ready(pool.take(3, None)));
            pool.stop();
            worker.join().unwrap();
        });
    }

    #[test]
    fn a_failure_past_the_wake_step_still_wakes_a_consumer_whose_step_is_ready() {
        model(|| {
            // The consumer sleeps until three steps are ready; step 1 fails.
            let pool = Arc::new(Pool::new(vec![10, 11, 12], 1, 3));
            let worker = spawn_worker(&pool, Some(1));
            pool.release(ready(pool.take(0, None)));
            assert!(matches!(pool.take(1, None), Take::Failed(_)));
            worker.join().unwrap();
        });
    }

    #[test]
    fn a_failed_fill_is_reported_at_its_step_after_the_earlier_ones() {
        model(|| {
            let pool = Arc::new(Pool::new(vec![10, 11], 1, 1));
            let worker = spawn_worker(&pool, Some(1));
            pool.release(ready(pool.take(0, None)));
            assert!(matches!(pool.take(1, None), Take::Failed(_)));
            worker.join().unwrap();
        });
    }
}
