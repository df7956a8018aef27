//! The service's background tasks: `/readyz` health, the summary line and
//! flow sampling; and the shutdown signals.

use crate::admin::AdminState;
use crate::kafka::source::Source;
use crate::partition::{Shared, Stats};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Keeps `/readyz` in step with the brokers and the state store.
pub(super) fn health_task(
    admin: Arc<AdminState>,
    shared: Arc<Shared>,
    source: Arc<Source>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        let mut ping: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
        let mut unhealthy: Option<String> = None;
        loop {
            tick.tick().await;
            // Ask the store whether it answers, one question at a time.
            if ping.as_ref().is_none_or(|p| p.is_finished()) {
                if let Some(done) = ping.take() {
                    unhealthy = match done.await {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{e:#}")),
                        Err(e) => Some(e.to_string()),
                    };
                }
                let store = shared.store.clone();
                ping = Some(tokio::task::spawn_blocking(move || store.health()));
            }
            let store = shared
                .store_failing
                .lock()
                .expect("store lock")
                .clone()
                .or(unhealthy.clone());
            let why = if source.state().broker_down() {
                Some("the Kafka brokers are unreachable".to_string())
            } else {
                store.map(|e| format!("the state store fails: {e}"))
            };
            *admin.waiting.lock().expect("waiting lock") = why;
        }
    })
}

/// Logs the one-line summary every `every`, if set.
pub(super) fn summary_task(
    stats: Arc<Stats>,
    every: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let Some(every) = every else { return };
        let mut last = 0;
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let records = stats.records.load(Ordering::Relaxed);
            tracing::info!(
                target: "switchyard::summary",
                "{records} records ({:.1}/s), {} emitted, {} errors, {} dead letters",
                (records - last) as f64 / every.as_secs_f64(),
                stats.emitted.load(Ordering::Relaxed),
                stats.errors.load(Ordering::Relaxed),
                stats.dead_letters.load(Ordering::Relaxed),
            );
            last = records;
        }
    })
}

/// Samples the pending timers per plugin from the state store into the
/// metrics (and the summary), every 5 s: a count the store keeps, never a
/// scan of the timers on the record path.
pub(super) fn timers_task(shared: Arc<Shared>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let store = shared.store.clone();
            match tokio::task::spawn_blocking(move || store.pending_timers()).await {
                Ok(Ok(pending)) => shared.metrics.timers_pending(&pending),
                Ok(Err(e)) => tracing::debug!("counting pending timers: {e:#}"),
                Err(e) => tracing::debug!("counting pending timers: {e}"),
            }
        }
    })
}

/// Samples what flowed along each edge, for the status page's charts.
pub(super) fn sampler_task(flows: Arc<crate::flows::Flows>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::flows::SAMPLE_EVERY);
        loop {
            tick.tick().await;
            flows.sample();
        }
    })
}

/// Resolves on SIGINT or SIGTERM.
pub(crate) async fn signals() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}
