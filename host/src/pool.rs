//! The plugin worker pool: a fixed set of OS threads, sized to the cores
//! (one more than there are), that run every plugin call.
//!
//! Each worker keeps its own warm [`Instances`], so a plugin version has at
//! most one live instance per worker, and the engine's pooling allocator is
//! sized to `workers` times the plugins plus room for reload checks: calls
//! never exceed the instance pool, and when every worker is busy a job
//! waits in the queue (back-pressure, not a fault). Async callers submit a
//! closure with [`WorkerPool::run`] and await its result; nothing blocking
//! runs on the async runtime.
//!
//! A job that panics (a host bug: plugin faults are values, not panics)
//! does not take its thread down: the panic is caught, the worker's warm
//! instances are dropped (a call may have stopped half-way), and the caller
//! gets [`PoolError::Panicked`] with the message, to run the job again.

use crate::config::{Isolation, PluginSpec};
use crate::engine::{CallInput, CallOutput, Engine, Fault, Instance, PluginVersion};
use crate::event::{Event, TimerCall};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// A job; returns whether it panicked.
type Job = Box<dyn FnOnce(&mut Instances) -> bool + Send>;

/// Why a job did not run to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool is stopped (shutdown).
    #[error("the worker pool is stopped")]
    Stopped,
    /// The job panicked: a bug in the host, with the panic's message.
    #[error("a plugin worker panicked: {0}")]
    Panicked(String),
}

/// A fixed pool of plugin worker threads.
pub struct WorkerPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    size: usize,
    /// Batches that may be run ahead of their turn at once, one per worker
    /// (see [`WorkerPool::ahead`]).
    ahead: Arc<tokio::sync::Semaphore>,
}

impl WorkerPool {
    /// Starts `size` workers (at least one) over `engine`.
    pub fn new(engine: Arc<Engine>, size: usize) -> std::io::Result<Self> {
        let size = size.max(1);
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..size {
            let rx = rx.clone();
            let engine = engine.clone();
            std::thread::Builder::new()
                .name(format!("switchyard-worker-{i}"))
                .spawn(move || {
                    let mut instances = Instances::new(engine.clone());
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => {
                                if job(&mut instances) {
                                    instances = Instances::new(engine.clone());
                                }
                            }
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(WorkerPool {
            jobs: Mutex::new(Some(tx)),
            size,
            ahead: Arc::new(tokio::sync::Semaphore::new(size)),
        })
    }

    /// The number of workers by default: one per core, and one more.
    ///
    /// The plugin calls are the router's slowest stage, and their threads
    /// share the cores with the Kafka client's, the async runtime's, the
    /// group commit's and often the broker's. One worker more than there
    /// are cores gives that stage a larger share of them when every thread
    /// is busy. Measured on 2 cores with Apache Kafka on the same machine
    /// (BENCHMARKS.md, hot path item 25), side by side with one worker a
    /// core: 2–8% more records a second at-least-once at 3 partitions,
    /// 11–21% at 12. It costs one more warm instance of each plugin.
    pub(crate) fn default_size() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
    }

    /// How many workers it has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// A permit to run a batch ahead of its turn, while the batch before it
    /// commits; `None` when as many batches as there are workers hold one.
    ///
    /// A batch run ahead keeps its outcomes and its view until the batch
    /// before it is committed. With a batch ahead on every partition at
    /// once, a router at 12 partitions held about 10 MB more at its peak
    /// (BENCHMARKS.md, P5 and hot path item 28); one a worker keeps every
    /// worker busy, which is all running ahead is for.
    pub(crate) fn ahead(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.ahead.clone().try_acquire_owned().ok()
    }

    /// Runs `job` on a worker with that worker's instances.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Instances) -> T + Send + 'static,
    ) -> Result<T, PoolError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |instances| {
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(instances)))
                .map_err(|panic| PoolError::Panicked(panic_message(&*panic)));
            let panicked = result.is_err();
            let _ = tx.send(result);
            panicked
        });
        self.jobs
            .lock()
            .expect("pool lock")
            .as_ref()
            .ok_or(PoolError::Stopped)?
            .send(job)
            .map_err(|_| PoolError::Stopped)?;
        rx.await.map_err(|_| PoolError::Stopped)?
    }

    /// Lets the workers exit once the queued jobs are done.
    pub(crate) fn stop(&self) {
        self.jobs.lock().expect("pool lock").take();
    }
}

/// A panic's message, when it carried one.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// One worker's warm instances, one per plugin.
pub struct Instances {
    engine: Arc<Engine>,
    warm: HashMap<String, Instance>,
}

impl Instances {
    /// No warm instances yet.
    pub(crate) fn new(engine: Arc<Engine>) -> Self {
        Instances {
            engine,
            warm: HashMap::new(),
        }
    }

    /// Calls `version` of `plugin`: on its warm instance (made, or replaced
    /// when the version changed or it is worn out), or on a fresh one for
    /// `isolation = "per-event"`. With `timer`, it runs that timer's
    /// `on-timer` instead, `event` standing for the firing. A faulted
    /// instance is dropped.
    ///
    /// The warm instance is kept under `slot`: the plugin's name, or
    /// `<name>#shadow` for its shadow version.
    pub(crate) fn call(
        &mut self,
        slot: &str,
        spec: &PluginSpec,
        version: &PluginVersion,
        event: &Event,
        timer: Option<&TimerCall>,
        input: CallInput<'_>,
    ) -> Result<CallOutput, Fault> {
        let run = |instance: &mut Instance| match timer {
            Some(timer) => instance.call_timer(timer, &event.id, input),
            None => instance.call(event, input),
        };
        if spec.isolation == Isolation::PerEvent {
            return run(&mut self.engine.instantiate(version)?);
        }
        let stale = self
            .warm
            .get(slot)
            .is_none_or(|i| i.hash() != version.hash || i.worn_out());
        if stale {
            // Free the old slot before taking a new one.
            self.warm.remove(slot);
            let instance = self.engine.instantiate(version)?;
            self.warm.insert(slot.to_string(), instance);
        }
        let instance = self.warm.get_mut(slot).expect("just inserted");
        let result = run(instance);
        if result.is_err() {
            self.warm.remove(slot);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_job_is_reported_and_the_worker_goes_on() {
        let engine = Arc::new(Engine::new(crate::engine::EngineOptions::default()).unwrap());
        let pool = WorkerPool::new(engine, 1).unwrap();
        let failed = pool.run(|_| -> u32 { panic!("a host bug") }).await;
        assert_eq!(failed, Err(PoolError::Panicked("a host bug".into())));
        assert_eq!(
            pool.run(|_| 7).await,
            Ok(7),
            "the one worker still runs jobs"
        );
    }

    #[test]
    fn as_many_batches_run_ahead_at_once_as_there_are_workers() {
        let engine = Arc::new(Engine::new(crate::engine::EngineOptions::default()).unwrap());
        let pool = WorkerPool::new(engine, 2).unwrap();
        let (first, second) = (pool.ahead(), pool.ahead());
        assert!(first.is_some() && second.is_some());
        assert!(pool.ahead().is_none(), "a third waits its turn");
        drop(first);
        assert!(pool.ahead().is_some(), "a permit given back is taken again");
    }
}
