//! The admin API (axum), bound to 127.0.0.1 by default.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | the process is up |
//! | GET | `/readyz` | plugins are loaded and the consumer runs |
//! | GET | `/metrics` | Prometheus text format |
//! | GET | `/plugins`, `/plugins/{name}` | version, hash, loaded-at, subscriptions, counts, last error |
//! | PUT | `/plugins/{name}` | upload a new wasm (at most 32 MiB); it goes live only if it passes |
//! | POST | `/plugins/{name}/reload` | reload from its file |
//! | POST | `/plugins/{name}/rollback` | back to the previous version |
//! | POST | `/plugins/{name}/pause`, `/resume` | hold or release its records |
//! | GET | `/api/summary` | rates, errors, dead letters, lag, the partitions this instance owns, the state store and its commit time, and why the router waits (`waiting`, or `null`) |
//! | GET | `/api/map`, `/api/history`, `/api/lag`, `/api/dlq`... | the status page's data; see [`crate::status`] |
//! | POST | `/api/dlq/{topic}/replay` | replay one dead letter or all of a topic |
//! | GET | `/` | a status page for people, refreshed live |
//!
//! Every change needs `Authorization: Bearer <token>`, the token coming from
//! `[admin] token` in the config or `SWITCHYARD_ADMIN_TOKEN` (an empty one
//! counts as unset). Without one configured, changes are always refused:
//! 401, and nothing changes. The token is checked by a layer in front of
//! every route that is not a `GET`, before any request body is read, so an
//! unauthenticated 32 MiB upload costs nothing; it is compared through
//! SHA-256 digests in constant time, which says nothing about its length.

use crate::metrics::Metrics;
use crate::partition::Stats;
use crate::reload::Reloader;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The largest wasm upload accepted.
pub const MAX_UPLOAD: usize = 32 << 20;

/// What the admin API serves.
pub struct AdminState {
    /// Reloads, rollbacks and the registry.
    pub reloader: Arc<Reloader>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The router's counters.
    pub stats: Arc<Stats>,
    /// The bearer token changes need; `None` refuses every change.
    pub token: Option<String>,
    /// Set once the consumer runs.
    pub ready: AtomicBool,
    /// What flowed where, for the routing map and the charts.
    pub flows: Arc<crate::flows::Flows>,
    /// The Kafka client settings, for browsing and replaying dead letters
    /// (`None`: not available).
    pub kafka: Option<rdkafka::ClientConfig>,
    /// The last listing of the dead letters, and when it was made.
    pub dlq_cache: std::sync::Mutex<Option<(std::time::Instant, serde_json::Value)>>,
    /// The state store, as [`crate::state::StateStore::describe`] says.
    pub store: String,
    /// Why the router is waiting, while it is (brokers unreachable, state
    /// store failing); `/readyz` is false and says this.
    pub waiting: std::sync::Mutex<Option<String>>,
}

/// The admin routes.
pub fn routes(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/api/summary", get(summary))
        .route("/plugins", get(list))
        .route("/plugins/{name}", get(show).put(upload))
        .route("/plugins/{name}/reload", post(reload))
        .route("/plugins/{name}/rollback", post(rollback))
        .route("/plugins/{name}/pause", post(pause))
        .route("/plugins/{name}/resume", post(resume))
        .route("/api/map", get(crate::status::map))
        .route("/api/history", get(crate::status::history))
        .route("/api/lag", get(crate::status::lag))
        .route("/api/dlq", get(crate::status::letters))
        .route(
            "/api/dlq/{topic}/{partition}/{offset}",
            get(crate::status::letter),
        )
        .route("/api/dlq/{topic}/replay", post(crate::status::replay))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes(state))
        .with_graceful_shutdown(shutdown)
        .await
}

type Shared = State<Arc<AdminState>>;

/// A JSON error answer: `{"error": message}`.
pub(crate) fn problem(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// The 401 answer for a change without the right token, if it lacks it.
pub(crate) fn refusal(state: &AdminState, headers: &HeaderMap) -> Option<Response> {
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
async fn guard(
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
pub fn token(configured: Option<&str>) -> Option<String> {
    std::env::var("SWITCHYARD_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .or_else(|| configured.filter(|t| !t.is_empty()).map(str::to_string))
}

async fn ready(State(state): Shared) -> Response {
    let waiting = state.waiting.lock().expect("waiting lock").clone();
    match waiting {
        _ if !state.ready.load(Ordering::Relaxed) => {
            (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
        }
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("waiting: {why}\n")).into_response(),
        None => "ready\n".into_response(),
    }
}

async fn metrics(State(state): Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn summary(State(state): Shared) -> Json<serde_json::Value> {
    let (dead_letters, errors, lag) = state.metrics.totals();
    let s = &state.stats;
    let waiting = state.waiting.lock().expect("waiting lock").clone();
    let (commits, mean) = state.metrics.commits();
    Json(json!({
        "waiting": waiting,
        "partitions": state.metrics.partitions(),
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
    }))
}

async fn list(State(state): Shared) -> Json<Vec<crate::registry::PluginStatus>> {
    Json(
        state
            .reloader
            .registry()
            .plugins()
            .iter()
            .map(|p| p.status())
            .collect(),
    )
}

async fn show(State(state): Shared, Path(name): Path<String>) -> Response {
    match state.reloader.registry().get(&name) {
        Some(p) => Json(p.status()).into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("no plugin named `{name}`")),
    }
}

/// Checks the token, runs a change off the async runtime, and answers with
/// the plugin's status, or 422 with why the change was refused.
async fn change(
    state: Arc<AdminState>,
    headers: &HeaderMap,
    name: String,
    op: impl FnOnce(&Reloader, &str) -> Result<(), String> + Send + 'static,
) -> Response {
    if let Some(refused) = refusal(&state, headers) {
        return refused;
    }
    if state.reloader.registry().get(&name).is_none() {
        return problem(StatusCode::NOT_FOUND, format!("no plugin named `{name}`"));
    }
    let reloader = state.reloader.clone();
    let n = name.clone();
    match tokio::task::spawn_blocking(move || op(&reloader, &n)).await {
        Ok(Ok(())) => show(State(state), Path(name)).await,
        Ok(Err(why)) => problem(StatusCode::UNPROCESSABLE_ENTITY, why),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn upload(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(state, &headers, name, move |r, n| {
        r.reload(n, &body, "upload").map(|_| ())
    })
    .await
}

async fn reload(State(state): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    change(state, &headers, name, |r, n| r.reload_file(n).map(|_| ())).await
}

async fn rollback(State(state): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    change(state, &headers, name, |r, n| r.rollback(n).map(|_| ())).await
}

async fn pause(State(state): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    change(state, &headers, name, |r, n| r.pause(n, true)).await
}

async fn resume(State(state): Shared, Path(name): Path<String>, headers: HeaderMap) -> Response {
    change(state, &headers, name, |r, n| r.pause(n, false)).await
}

async fn page() -> Html<&'static str> {
    Html(include_str!("admin.html"))
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
