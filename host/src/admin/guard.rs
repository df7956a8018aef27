//! What every admin route shares: the state it serves, JSON error answers,
//! and the token check in front of every change.

use super::MAX_UPLOAD;
use crate::kafka::source::{Partition, SourceState};
use crate::metrics::Metrics;
use crate::partition::Stats;
use crate::reload::Reloader;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use serde_json::json;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

/// What the admin API serves.
pub(crate) struct AdminState {
    /// Reloads, rollbacks and the registry.
    pub(crate) reloader: Arc<Reloader>,
    /// The metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The router's counters.
    pub(crate) stats: Arc<Stats>,
    /// The bearer token changes need; `None` refuses every change.
    pub(crate) token: Option<String>,
    /// Set once the consumer runs.
    pub(crate) ready: AtomicBool,
    /// What flowed where, for the routing map and the charts.
    pub(crate) flows: Arc<crate::flows::Flows>,
    /// The Kafka client settings, for browsing and replaying dead letters
    /// (`None`: not available).
    pub(crate) kafka: Option<rdkafka::ClientConfig>,
    /// The last listing of the dead letters, and when it was made.
    pub(crate) dlq_cache: std::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>,
    /// The state store, as [`crate::state::StateStore::describe`] says.
    pub(crate) store: String,
    /// Why the router is waiting, while it is (brokers unreachable, state
    /// store failing); `/readyz` is false and says this.
    pub(crate) waiting: std::sync::Mutex<Option<String>>,
    /// The consumer's shared state, set once the consumer exists: the
    /// partitions this instance owns come from there.
    pub(crate) source: OnceLock<Arc<SourceState>>,
}

impl AdminState {
    /// The partitions this instance owns, sorted by topic, then partition
    /// (none before the consumer exists).
    pub(crate) fn partitions(&self) -> Vec<Partition> {
        self.source.get().map(|s| s.owned()).unwrap_or_default()
    }
}
/// The axum state every admin handler takes.
pub(super) type Shared = State<Arc<AdminState>>;

/// A JSON error answer: `{"error": message}`.
pub(super) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The 401 answer for a change without the right token, if it lacks it.
pub(super) fn refusal(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&state.token, given) {
        (Some(token), Some(given)) if constant_time_eq(token.as_bytes(), given.as_bytes()) => None,
        (None, _) => Some(problem(
            StatusCode::UNAUTHORIZED,
            "changes are disabled: set [admin] token in the config or SWITCHYARD_ADMIN_TOKEN",
        )),
        _ => Some(problem(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token",
        )),
    }
}

/// Refuses every request that may change something (anything but `GET`
/// and `HEAD`) without the token, and any body announced larger than
/// [`MAX_UPLOAD`], before the body is read.
pub(super) async fn guard(
    State(state): Shared,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method();
    if method != axum::http::Method::GET
        && method != axum::http::Method::HEAD
        && let Some(refused) = refusal(&state, request.headers())
    {
        return refused;
    }
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > MAX_UPLOAD as u64) {
        return problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("at most {} MiB", MAX_UPLOAD >> 20),
        );
    }
    next.run(request).await
}

/// Whether `a` and `b` are equal, in time independent of their contents and
/// lengths: their SHA-256 digests are compared byte by byte, all of them.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// The admin token: `SWITCHYARD_ADMIN_TOKEN`, else `configured`; an empty
/// one is no token.
pub(crate) fn token(configured: Option<&str>) -> Option<String> {
    std::env::var("SWITCHYARD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| configured.filter(|t| !t.is_empty()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn tokens_compare_by_content_only() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"s3cret", b"s3cret-and-more"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
