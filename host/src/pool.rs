//! The plugin worker pool: a fixed set of OS threads, sized to the cores,
//! that run every plugin call.
//!
//! Each worker keeps its own warm [`Instances`], so a plugin version has at
//! most one live instance per worker, and the engine's pooling allocator is
//! sized to `workers` times the plugins plus room for reload checks: calls
//! never exceed the instance pool, and when every worker is busy a job
//! waits in the queue (back-pressure, not a fault). Async callers submit a
//! closure with [`WorkerPool::run`] and await its result; nothing blocking
//! runs on the async runtime.

use crate::engine::Engine;
use crate::router::Instances;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

type Job = Box<dyn FnOnce(&mut Instances) + Send>;

/// A fixed pool of plugin worker threads.
pub struct WorkerPool {
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    size: usize,
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
                    let mut instances = Instances::new(engine);
                    loop {
                        let job = match rx.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        match job {
                            Ok(job) => job(&mut instances),
                            Err(_) => return,
                        }
                    }
                })?;
        }
        Ok(WorkerPool {
            jobs: Mutex::new(Some(tx)),
            size,
        })
    }

    /// The number of workers: one per core by default.
    pub fn default_size() -> usize {
        std::thread::available_parallelism().map_or(2, |n| n.get())
    }

    /// How many workers it has.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Runs `job` on a worker with that worker's instances.
    pub async fn run<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Instances) -> T + Send + 'static,
    ) -> anyhow::Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |instances| {
            let _ = tx.send(job(instances));
        });
        self.jobs
            .lock()
            .expect("pool lock")
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("the worker pool is stopped"))?
            .send(job)
            .map_err(|_| anyhow::anyhow!("the worker pool is stopped"))?;
        rx.await
            .map_err(|_| anyhow::anyhow!("a plugin worker stopped mid-call"))
    }

    /// Lets the workers exit once the queued jobs are done.
    pub fn stop(&self) {
        self.jobs.lock().expect("pool lock").take();
    }
}
