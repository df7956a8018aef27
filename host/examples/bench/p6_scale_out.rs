//! P6: records/s with 1, 2 and 3 router instances in one group sharing a
//! PostgreSQL state store, against 1 instance on redb, with the mean
//! commit wait, re-runs after conflicts and aborted transactions.

use crate::load::{INPUT, payment_config, produce_inputs, start_broker};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use switchyard::RunOptions;
use switchyard::Stats;
use switchyard_testkit::postgres::Postgres;
use switchyard_testkit::root;

/// One P6 configuration's result.
pub struct P6 {
    /// What ran.
    pub label: String,
    /// Steady-state records/s, summed over instances.
    pub rate: f64,
    /// Batch commits to the state store.
    pub commits: u64,
    /// Their mean wait in milliseconds.
    pub commit_ms: f64,
    /// Records run again after a conflict.
    pub reruns: u64,
    /// Transactions PostgreSQL rolled back.
    pub aborted: i64,
}

/// Runs `instances` routers in one group on `n` records (6 partitions),
/// on redb (`url` `None`) or the PostgreSQL database at `url`, until every
/// record is acknowledged.
async fn p6_run(n: usize, instances: usize, url: Option<String>) -> (f64, Vec<Arc<Stats>>) {
    let broker = start_broker(false, 6, &[INPUT, "payment.payment.succeeded"]);
    produce_inputs(&broker.bootstrap(), n).await;
    let dir = tempfile::tempdir().unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let stats: Vec<Arc<Stats>> = (0..instances).map(|_| Arc::default()).collect();
    let routers = stats.iter().enumerate().map(|(i, stats)| {
        let dir = dir.path().join(format!("i{i}"));
        std::fs::create_dir_all(&dir).unwrap();
        let config = payment_config(&dir, "");
        let options = RunOptions {
            brokers: broker.bootstrap(),
            group: "p6".into(),
            instance_id: None,
            state_dir: dir.join("state"),
            state_url: url.clone(),
            cache_dir: Some(root().join("target/bench-cache")),
            summary_every: None,
            create_topics: false,
            admin: None,
            watch: false,
            rebuild: false,
            workers: None,
            stats: Some(stats.clone()),
            shadows: Vec::new(),
        };
        let mut stopped = stopped.clone();
        async move {
            let shutdown = async move {
                let _ = stopped.wait_for(|s| *s).await;
            };
            switchyard::run(config, options, shutdown)
                .await
                .expect("router");
        }
    });
    let watch = {
        let stats = stats.clone();
        async move {
            let sum = |f: fn(&Stats) -> u64| stats.iter().map(|s| f(s)).sum::<u64>();
            let mut first = None;
            while sum(|s| s.acked.load(Ordering::Relaxed)) < n as u64 {
                if first.is_none() && sum(|s| s.records.load(Ordering::Relaxed)) > 0 {
                    first = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            let took = first.map_or(Duration::from_millis(1), |f| f.elapsed());
            let _ = stop.send(true);
            n as f64 / took.as_secs_f64()
        }
    };
    let (rate, _) = futures::join!(watch, futures::future::join_all(routers));
    (rate, stats)
}

/// Every configuration, each said on stderr.
pub fn run(runtime: &tokio::runtime::Runtime) -> Vec<P6> {
    // The mock cluster keeps about 5 MB per partition; stay under it.
    let n = 6 * 3000;
    let mut rows = Vec::new();
    let summarise = |label: String, rate: f64, stats: &[Arc<Stats>], aborted: i64| {
        let commits: u64 = stats
            .iter()
            .map(|s| s.commits.load(Ordering::Relaxed))
            .sum();
        let micros: u64 = stats
            .iter()
            .map(|s| s.commit_micros.load(Ordering::Relaxed))
            .sum();
        P6 {
            label,
            rate,
            commits,
            commit_ms: micros as f64 / 1000.0 / commits.max(1) as f64,
            reruns: stats.iter().map(|s| s.reruns.load(Ordering::Relaxed)).sum(),
            aborted,
        }
    };
    let (rate, stats) = runtime.block_on(p6_run(n, 1, None));
    rows.push(summarise(
        "1 instance, redb (baseline)".into(),
        rate,
        &stats,
        0,
    ));
    let pg = Postgres::start();
    for instances in 1..=3 {
        let db = format!("p6_{instances}");
        pg.sql(&format!("CREATE DATABASE {db}"));
        let aborted = |pg: &Postgres| -> i64 {
            pg.sql(&format!(
                "SELECT xact_rollback FROM pg_stat_database WHERE datname = '{db}'"
            ))
            .parse()
            .unwrap_or(0)
        };
        let before = aborted(&pg);
        let (rate, stats) = runtime.block_on(p6_run(n, instances, Some(pg.url_of(&db))));
        let after = aborted(&pg);
        rows.push(summarise(
            format!("{instances} instance(s), PostgreSQL"),
            rate,
            &stats,
            after - before,
        ));
        eprintln!("P6 {instances}: {rate:.0}/s");
    }
    rows
}
