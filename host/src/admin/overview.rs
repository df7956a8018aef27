//! The process's own routes: readiness, metrics, the summary and the page.

use super::guard::Shared;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde_json::json;
use std::sync::atomic::Ordering;

pub(super) async fn ready(State(state): Shared) -> Response {
    let waiting = state.waiting.lock().expect("waiting lock").clone();
    match waiting {
        _ if !state.ready.load(Ordering::Relaxed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
        }
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("waiting: {why}\n")).into_response(),
        None => "ready\n".into_response(),
    }
}

pub(super) async fn metrics(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render() + &super::shadow::metrics(state.reloader.registry()),
    )
        .into_response()
}

pub(super) async fn summary(State(state): Shared) -> Json<serde_json::Value> {
    let (dead_letters, errors, lag) = state.metrics.totals();
    let s = &state.stats;
    let waiting = state.waiting.lock().expect("waiting lock").clone();
    let (commits, mean) = state.metrics.commits();
    // Per plugin: timers pending and the next due time (RFC 3339).
    let timers: serde_json::Map<String, serde_json::Value> = state
        .metrics
        .pending_timers()
        .into_iter()
        .map(|(plugin, (pending, next))| {
            let next = next
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
            (plugin, json!({ "pending": pending, "next_due": next }))
        })
        .collect();
    Json(json!({
        "waiting": waiting,
        "partitions": partition_names(&state.partitions()),
        "store": {
            "backend": state.store,
            "commits": commits,
            "commit_ms_mean": (mean * 1000.0 * 100.0).round() / 100.0,
        },
        "records": s.records.load(Ordering::Relaxed),
        "emitted": s.emitted.load(Ordering::Relaxed),
        "errors": errors,
        "dead_letters": dead_letters,
        "lag": lag,
        "timers": timers,
    }))
}

/// `partitions` as `topic[partition]`, in their order.
fn partition_names(partitions: &[(String, i32)]) -> Vec<String> {
    partitions
        .iter()
        .map(|(t, p)| format!("{t}[{p}]"))
        .collect()
}

pub(super) async fn page() -> Html<&'static str> {
    Html(include_str!("../admin.html"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn partitions_read_as_topic_and_partition_in_brackets() {
        let owned = [("a.b".to_string(), 2), ("a.b".to_string(), 10)];
        assert_eq!(super::partition_names(&owned), ["a.b[2]", "a.b[10]"]);
    }
}
