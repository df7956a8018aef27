//! A partition's queue between the consumer loop and its worker, bounded
//! by records and bytes: a full queue pauses the partition in the
//! consumer, and the worker resumes it below half.

use super::{Offsets, Shared, Worker};
use crate::config::KafkaConfig;
use crate::event::Record;
use crate::kafka::source::{Lease, Partition};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
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
