//! A partition's queue between the consumer loop and its worker, bounded
//! by records and bytes: a full queue pauses the partition in the
//! consumer, and the worker takes batches from it and resumes it below
//! half.

use super::{Offsets, Shared, Worker};
use crate::config::KafkaConfig;
use crate::event::Record;
use crate::kafka::source::{Lease, Partition};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The handle the consumer loop keeps for one partition's worker.
pub struct PartitionQueue {
    records: mpsc::UnboundedSender<Record>,
    queued: Arc<Backlog>,
    paused: Paused,
    lease: Lease,
}

/// Whether a partition is paused in the consumer. The flag and the call to
/// the consumer change together under one lock: were they apart, a resume
/// could overtake the pause it answers, and leave the partition paused with
/// nothing queued to resume it.
pub(super) type Paused = Arc<std::sync::Mutex<bool>>;

impl PartitionQueue {
    /// Starts a worker for `partition` under `lease`, as a task in `tasks`;
    /// returns its queue and the task's id.
    pub fn start(
        shared: Arc<Shared>,
        partition: Partition,
        lease: Lease,
        tasks: &mut tokio::task::JoinSet<()>,
    ) -> (Self, tokio::task::Id) {
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = PartitionQueue {
            records: tx,
            queued: Arc::default(),
            paused: Paused::default(),
            lease: lease.clone(),
        };
        let worker = Worker {
            shared,
            firing: Default::default(),
            partition,
            lease,
            queued: queue.queued.clone(),
            paused: queue.paused.clone(),
        };
        let task = tasks.spawn(worker.run(rx));
        (queue, task.id())
    }

    /// Whether the worker still holds the partition.
    pub(crate) fn live(&self) -> bool {
        self.lease.live() && !self.records.is_closed()
    }

    /// Queues `record`; pauses the partition in the consumer when its queue
    /// holds `kafka.queue_records` records or `kafka.queue_bytes` bytes.
    /// Never waits.
    pub fn push(&self, record: Record, source: &dyn Offsets, kafka: &KafkaConfig) {
        let size = held_bytes(&record);
        let (records, bytes) = self.queued.add(1, size);
        // The partition's name is copied only when it is to be paused.
        let full = over(kafka, records, bytes).then(|| (record.topic.clone(), record.partition));
        if self.records.send(record).is_err() {
            self.queued.take(1, size);
            return;
        }
        if let Some(partition) = full {
            let mut paused = self.paused.lock().expect("pause lock");
            // Counted again under the lock: had the worker taken the queue
            // below half since, and found nothing paused to resume, a pause
            // now would never be lifted.
            let (records, bytes) = self.queued.now();
            if over(kafka, records, bytes) && !*paused {
                source.pause(&partition);
                *paused = true;
            }
        }
    }
}

/// Whether a queue of `records` records and `bytes` bytes is full.
fn over(kafka: &KafkaConfig, records: usize, bytes: usize) -> bool {
    records >= kafka.queue_records || bytes >= kafka.queue_bytes
}

/// The bytes a queued record holds: key, value and headers.
pub(super) fn held_bytes(record: &Record) -> usize {
    let headers: usize = record
        .headers
        .iter()
        .map(|h| h.key.len() + h.bytes().len())
        .sum();
    record.key.as_ref().map_or(0, Vec::len) + record.value.as_ref().map_or(0, Vec::len) + headers
}

/// What a partition has queued and not yet taken into a batch: records and
/// their bytes (a queue bounded by count alone could hold gigabytes of
/// large records).
#[derive(Debug, Default)]
pub(super) struct Backlog {
    records: AtomicUsize,
    bytes: AtomicUsize,
}

impl Backlog {
    /// Adds `records` records of `bytes` bytes; returns the new totals.
    pub(super) fn add(&self, records: usize, bytes: usize) -> (usize, usize) {
        (
            self.records.fetch_add(records, Ordering::AcqRel) + records,
            self.bytes.fetch_add(bytes, Ordering::AcqRel) + bytes,
        )
    }

    /// What is queued now: records and bytes.
    pub(super) fn now(&self) -> (usize, usize) {
        (
            self.records.load(Ordering::Acquire),
            self.bytes.load(Ordering::Acquire),
        )
    }

    /// Takes `records` records of `bytes` bytes out; returns what is left.
    pub(super) fn take(&self, records: usize, bytes: usize) -> (usize, usize) {
        (
            self.records.fetch_sub(records, Ordering::AcqRel) - records,
            self.bytes.fetch_sub(bytes, Ordering::AcqRel) - bytes,
        )
    }
}

impl Worker {
    /// Collects a batch starting with `first`: what is queued, and what
    /// arrives within `kafka.linger_ms`, up to the batch's limits.
    pub(super) async fn collect(
        &self,
        first: Record,
        rx: &mut mpsc::UnboundedReceiver<Record>,
    ) -> Vec<Record> {
        let linger_ms = self.shared.kafka.linger_ms;
        let linger = (linger_ms > 0).then(|| Instant::now() + Duration::from_millis(linger_ms));
        self.take(first, rx, linger).await
    }

    /// Collects a batch of what is queued now, without waiting; `None` when
    /// nothing is.
    pub(super) async fn collect_ready(
        &self,
        rx: &mut mpsc::UnboundedReceiver<Record>,
    ) -> Option<Vec<Record>> {
        let first = rx.try_recv().ok()?;
        Some(self.take(first, rx, None).await)
    }

    /// Takes `first`, then what is queued and what arrives before `linger`,
    /// into a batch of at most `kafka.batch_records` records or
    /// `kafka.batch_bytes` bytes; resumes the partition once its queue is
    /// below half.
    async fn take(
        &self,
        first: Record,
        rx: &mut mpsc::UnboundedReceiver<Record>,
        linger: Option<Instant>,
    ) -> Vec<Record> {
        let kafka = &self.shared.kafka;
        let mut bytes = first.value.as_ref().map_or(0, Vec::len);
        let mut batch = vec![first];
        while batch.len() < kafka.batch_records && bytes < kafka.batch_bytes {
            let next = match (rx.try_recv(), linger) {
                (Ok(record), _) => Some(record),
                (Err(_), Some(at)) => tokio::time::timeout_at(at.into(), rx.recv())
                    .await
                    .ok()
                    .flatten(),
                (Err(_), None) => None,
            };
            let Some(record) = next else { break };
            bytes += record.value.as_ref().map_or(0, Vec::len);
            batch.push(record);
        }
        let size = batch.iter().map(held_bytes).sum();
        let (left, left_bytes) = self.queued.take(batch.len(), size);
        if left <= kafka.queue_records / 2 && left_bytes <= kafka.queue_bytes / 2 {
            let mut paused = self.paused.lock().expect("pause lock");
            if *paused {
                self.shared.source.resume(&self.partition);
                *paused = false;
            }
        }
        batch
    }
}
