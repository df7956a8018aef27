//! P7: latency of one hop at light load, against the passthrough.

use crate::load::{INPUT, booking, client, send_input, start_broker};
use crate::runs::{passthrough, percentile, router_run};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::FutureProducer;
use std::time::{Duration, Instant};

/// One hop at light load: produce one input, wait for its output.
async fn hop_latencies(bootstrap: &str, out: &str, samples: usize) -> Vec<f64> {
    let producer: FutureProducer = client(bootstrap).set("linger.ms", "0").create().unwrap();
    let consumer: StreamConsumer = client(bootstrap)
        .set("group.id", format!("watch-{out}"))
        .set("auto.offset.reset", "latest")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    consumer.subscribe(&[out]).unwrap();
    // Let the watcher join before measuring.
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await;
    let mut latencies = Vec::new();
    for i in 0..samples {
        let value = booking(500_000 + i).to_string();
        let started = Instant::now();
        send_input(&producer, &value).await;
        tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("an output within 10 s")
            .expect("output");
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    latencies
}

/// p50 and p99 milliseconds of each path.
pub struct P7 {
    /// The router with the payment plugin.
    pub router: (f64, f64),
    /// The passthrough.
    pub passthrough: (f64, f64),
}

/// Measures, and says so on stderr.
pub async fn run() -> P7 {
    const SAMPLES: usize = 200;
    let pct = |mut v: Vec<f64>| (percentile(&mut v, 0.5), percentile(&mut v, 0.99));
    // The passthrough, running for as long as the samples take.
    let broker = start_broker(false, 3, &[INPUT, "passthrough.out"]);
    let bootstrap = broker.bootstrap();
    let runner = {
        let b = bootstrap.clone();
        tokio::spawn(async move {
            passthrough(&b, SAMPLES + 1000, "pt-latency", "passthrough.out").await;
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let passthrough = pct(hop_latencies(&bootstrap, "passthrough.out", SAMPLES).await);
    runner.abort();

    let broker = start_broker(false, 3, &[INPUT, "payment.payment.succeeded"]);
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let runner = {
        let b = bootstrap.clone();
        let d = dir.path().to_path_buf();
        tokio::spawn(async move {
            router_run(&b, u64::MAX, &d, false, false).await;
        })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    let router = pct(hop_latencies(&bootstrap, "payment.payment.succeeded", SAMPLES).await);
    runner.abort();
    eprintln!("P7: router {router:?} passthrough {passthrough:?}");
    P7 {
        router,
        passthrough,
    }
}
