//! Waking the fetcher of a resumed partition.
//!
//! librdkafka (2.12) handles a resume on its main thread and does not wake
//! the broker thread that fetches the partition. When every partition that
//! thread fetches is paused, it sleeps until its next I/O or for up to a
//! second, so a partition resumed under back-pressure waited that long for
//! its next fetch. A router whose partitions all fill (a backlog on the
//! topics it reads, and nothing else to fetch) then moved about 10,000
//! records a second, whatever its plugins cost (BENCHMARKS.md, item 27;
//! confluent-kafka-go issue 630 shows the same wait in librdkafka's debug
//! log).
//!
//! Any request to the partition's leader wakes that thread, which then sees
//! the partition fetchable again; its answer wakes it a second time, in
//! case the resume had not been handled yet. So each resume is followed by
//! a watermark query for the partition, on a thread of its own, whose
//! answer is dropped.

use super::{Partition, SourceContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::BTreeSet;
use std::sync::Weak;
use std::sync::mpsc;
use std::time::Duration;

/// Queues wake-ups for the waking thread.
pub(super) struct Waker(mpsc::Sender<Partition>);

impl Waker {
    /// Starts the waking thread for `consumer`; it ends with the consumer.
    pub(super) fn start(consumer: Weak<StreamConsumer<SourceContext>>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Partition>();
        std::thread::Builder::new()
            .name("switchyard-wake".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    // Resumes that came together are one wake-up each.
                    let mut due = BTreeSet::from([first]);
                    due.extend(rx.try_iter());
                    let Some(consumer) = consumer.upgrade() else {
                        return;
                    };
                    for (topic, partition) in &due {
                        let _ =
                            consumer.fetch_watermarks(topic, *partition, Duration::from_secs(1));
                    }
                }
            })?;
        Ok(Waker(tx))
    }

    /// Wakes the fetcher of `partition`, just resumed.
    pub(super) fn wake(&self, partition: &Partition) {
        let _ = self.0.send(partition.clone());
    }
}
