//! A partition worker in-process, with no broker: its producer and consumer
//! are in-memory implementations of the two ports it talks to Kafka through
//! (`Outputs` and `Offsets`), so its ordering, acknowledgement and
//! dead-letter rules are checked directly.

use switchyard_testkit as kit;

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard::Committer;
use switchyard::Metrics;
use switchyard::Router;
use switchyard::WorkerPool;
use switchyard::{Delivery, ProduceError};
use switchyard::{DueTimer, Effect, MemoryStore, StateError, StateRead, StateStore};
use switchyard::{KafkaConfig, RouterConfig};
use switchyard::{Lease, Partition};
use switchyard::{Offsets, Outputs, PartitionQueue, Shared, Stats};
use switchyard::{OutRecord, Record};

/// Keeps what is produced; refuses the topics in `refused` for good.
#[derive(Default)]
struct MemoryOutputs {
    produced: Mutex<Vec<OutRecord>>,
    refused: HashSet<String>,
}

#[async_trait::async_trait]
impl Outputs for MemoryOutputs {
    async fn enqueue(&self, record: &OutRecord) -> Result<Delivery, ProduceError> {
        if self.refused.contains(&record.topic) {
            return Err(ProduceError::Permanent("topic authorization failed".into()));
        }
        self.produced.lock().unwrap().push(record.clone());
        Ok(Delivery::ready(Ok(())))
    }

    async fn ensure_topics(&self, _: &[String], _: &KafkaConfig) -> Vec<String> {
        Vec::new()
    }
}

/// Keeps the offsets stored per partition, in the order they were stored,
/// and counts pauses.
#[derive(Default)]
struct MemoryOffsets {
    stored: Mutex<BTreeMap<Partition, Vec<i64>>>,
    pauses: Mutex<usize>,
}

impl Offsets for MemoryOffsets {
    fn pause(&self, _: &Partition) {
        *self.pauses.lock().unwrap() += 1;
    }
    fn resume(&self, _: &Partition) {}
    fn store(&self, lease: &Lease, partition: &Partition, offset: i64) {
        if lease.live() {
            let mut stored = self.stored.lock().unwrap();
            stored.entry(partition.clone()).or_default().push(offset);
        }
    }
}

/// A memory store whose commits take 20 ms, as a synced one does under
/// load: long enough that the next batch runs while one commits.
struct SlowStore(MemoryStore);

impl StateRead for SlowStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.0.get(plugin, key)
    }
}

impl StateStore for SlowStore {
    fn commit(&self, batches: &[&[Vec<Effect>]]) -> Result<Vec<usize>, StateError> {
        std::thread::sleep(Duration::from_millis(20));
        self.0.commit(batches)
    }
    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.0.processed(plugin, event_id)
    }
    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        self.0.snapshot(plugin)
    }
    fn due_timers(&self, p: &(String, i32), now: i64, n: usize) -> anyhow::Result<Vec<DueTimer>> {
        self.0.due_timers(p, now, n)
    }
    fn next_due(&self, partition: &(String, i32)) -> anyhow::Result<Option<i64>> {
        self.0.next_due(partition)
    }
    fn pending_timers(&self) -> anyhow::Result<BTreeMap<String, (u64, Option<i64>)>> {
        self.0.pending_timers()
    }
}

fn record(offset: i64, ty: &str) -> Record {
    let value = json!({
        "event_id": format!("e-{offset}"),
        "event_type": ty,
        "timestamp": "2025-11-24T10:30:00Z",
        "data": {"order_id": format!("o-{offset}")}
    });
    Record {
        topic: "orders".into(),
        partition: 0,
        offset,
        value: Some(value.to_string().into_bytes()),
        ..Record::default()
    }
}

/// What a run produced, the offsets it stored in order, and how many times
/// it paused the partition.
type Run = (Vec<OutRecord>, Vec<i64>, usize);

/// Runs `records` through one partition worker of the `echo` guest (which
/// counts its calls in state) until every offset is stored, with the topics
/// in `refused` refused by the producer and `[kafka]` as `kafka` sets it.
async fn run(records: Vec<Record>, refused: &[&str], kafka: impl FnOnce(&mut KafkaConfig)) -> Run {
    let store = Arc::new(MemoryStore::new());
    run_counted(records, refused, kafka, store, Arc::default()).await
}

/// [`run`] on `store`, counting into `stats`.
async fn run_counted(
    records: Vec<Record>,
    refused: &[&str],
    kafka: impl FnOnce(&mut KafkaConfig),
    store: Arc<dyn StateStore>,
    stats: Arc<Stats>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = kit::echo_config(dir.path(), "subscribe.types = [\"order.*\"]");
    let mut config = RouterConfig::load(&path).unwrap();
    kafka(&mut config.kafka);
    let (engine, registry) = kit::load_plugins(&config, &dir.path().join("cache"));
    let metrics = Arc::new(Metrics::new("in-process"));
    let outputs = Arc::new(MemoryOutputs {
        refused: refused.iter().map(|t| t.to_string()).collect(),
        ..MemoryOutputs::default()
    });
    let offsets = Arc::new(MemoryOffsets::default());
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let kafka = config.kafka.clone();
    let shared = Arc::new(Shared {
        router: Arc::new(Router::new(
            registry,
            config.exclude.clone(),
            config.max_hops,
            config.kafka.max_record_bytes,
        )),
        pool: Arc::new(WorkerPool::new(engine, 1).unwrap()),
        store: store.clone(),
        committer: Arc::new(Committer::new(store, metrics.clone()).unwrap()),
        sink: outputs.clone(),
        source: offsets.clone(),
        txn: None,
        kafka: config.kafka.clone(),
        stats,
        metrics,
        flows: Default::default(),
        store_failing: Default::default(),
        shutdown,
    });
    let partition: Partition = ("orders".into(), 0);
    let mut workers = tokio::task::JoinSet::new();
    let (queue, _) =
        PartitionQueue::start(shared, partition.clone(), Lease::detached(), &mut workers);
    let last = records.last().map(|r| r.offset).unwrap();
    for r in records {
        queue.push(r, offsets.as_ref(), &kafka);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = offsets.stored.lock().unwrap().get(&partition).cloned();
        if let Some(stored) = &stored
            && stored.last() == Some(&last)
        {
            let stored = stored.clone();
            let produced = outputs.produced.lock().unwrap().clone();
            return (produced, stored, *offsets.pauses.lock().unwrap());
        }
        assert!(Instant::now() < deadline, "offsets stored: {stored:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn data(record: &OutRecord) -> Value {
    serde_json::from_slice::<Value>(&record.value).unwrap()["data"].clone()
}

/// The `count` of each output: the echo guest's calls so far.
fn counts(produced: &[OutRecord]) -> Vec<u64> {
    produced
        .iter()
        .map(|r| data(r)["count"].as_u64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_run_in_order_and_offsets_only_grow() {
    let records = (0..200).map(|i| record(i, "order.created")).collect();
    let (produced, stored, _) = run(records, &[], |_| {}).await;
    assert_eq!(
        counts(&produced),
        (1..=200).collect::<Vec<_>>(),
        "one call each, in order"
    );
    let orders: Vec<String> = produced
        .iter()
        .map(|r| data(r)["data"]["order_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        orders,
        (0..200).map(|i| format!("o-{i}")).collect::<Vec<_>>()
    );
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]),
        "offsets go forward only: {stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_while_the_one_before_commits_reads_its_writes() {
    // Batches of 10 and slow commits: each batch runs while the one before
    // it commits, and reads the counter that batch left as committed.
    let records = (0..200).map(|i| record(i, "order.created")).collect();
    let stats = Arc::new(Stats::default());
    let store = Arc::new(SlowStore(MemoryStore::new()));
    let (produced, stored, _) =
        run_counted(records, &[], |k| k.batch_records = 10, store, stats.clone()).await;
    assert_eq!(
        counts(&produced),
        (1..=200).collect::<Vec<_>>(),
        "one call each, in order"
    );
    assert_eq!(stored.last(), Some(&199));
    assert!(stats.commits.load(Ordering::Relaxed) >= 20);
    // A batch that read the counter from the store, not from the batch
    // before it, would conflict at its commit and run again.
    assert_eq!(
        stats.reruns.load(Ordering::Relaxed),
        0,
        "no batch ran on stale state"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_output_the_broker_refuses_dead_letters_its_input_and_the_partition_moves_on() {
    let records = vec![
        record(0, "order.created"),
        record(1, "order.flagged"),
        record(2, "order.created"),
    ];
    let (produced, stored, _) = run(records, &["echo.order.flagged"], |_| {}).await;
    let mut topics: Vec<&str> = produced.iter().map(|r| r.topic.as_str()).collect();
    // Kafka orders records within a topic partition, not across topics: the
    // dead letter may be produced after the next record's output.
    topics.sort();
    assert_eq!(
        topics,
        ["echo.order.created", "echo.order.created", "orders.dlq"]
    );
    let letter = produced.iter().find(|r| r.topic == "orders.dlq").unwrap();
    let header = |name: &str| {
        letter
            .headers
            .iter()
            .find(|h| h.key == format!("switchyard-dlq-{name}"))
            .map(|h| h.value.clone())
    };
    assert_eq!(header("error-class").as_deref(), Some("produce"));
    assert_eq!(header("offset").as_deref(), Some("1"));
    assert!(
        header("error")
            .unwrap()
            .contains("topic authorization failed"),
        "{:?}",
        header("error")
    );
    assert!(
        stored.windows(2).all(|w| w[0] < w[1]) && stored.last() == Some(&2),
        "{stored:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_large_records_pauses_its_partition_by_bytes_not_only_by_count() {
    let big = |offset| {
        let mut r = record(offset, "order.created");
        let mut value: Value = serde_json::from_slice(r.value.as_ref().unwrap()).unwrap();
        value["data"]["note"] = json!("n".repeat(64 << 10));
        r.value = Some(value.to_string().into_bytes());
        r
    };
    let records = (0..4).map(big).collect();
    let (produced, _, pauses) = run(records, &[], |kafka| {
        kafka.queue_records = 1000;
        kafka.queue_bytes = 32 << 10;
    })
    .await;
    assert_eq!(produced.len(), 4);
    assert!(
        pauses >= 1,
        "4 records of 64 KiB against a 32 KiB queue never paused"
    );
}
