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
//! | GET | `/plugins/{name}/shadow`, `/api/shadows` | a shadow version's comparison with the live one: counts and the newest differing events |
//! | PUT | `/plugins/{name}/shadow` | attach an uploaded wasm as the plugin's shadow version |
//! | POST | `/plugins/{name}/shadow/promote` | make the shadow live (its fixtures must pass), and drop it |
//! | DELETE | `/plugins/{name}/shadow` | drop the shadow |
//! | GET | `/api/summary` | rates, errors, dead letters, lag, the partitions this instance owns, the state store and its commit time, the timers pending per plugin with the next due time, and why the router waits (`waiting`, or `null`) |
//! | GET | `/api/map`, `/api/history`, `/api/lag`, `/api/dlq`... | the status page's data; see [`status`] |
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

mod guard;
mod overview;
mod plugins;
mod shadow;
pub(crate) mod status;

use guard::guard;
pub(crate) use guard::{AdminState, token};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use std::future::Future;
use std::sync::Arc;

/// The largest wasm upload accepted.
pub(crate) const MAX_UPLOAD: usize = 32 << 20;
/// The admin routes.
pub(crate) fn routes(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/", get(overview::page))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(overview::ready))
        .route("/metrics", get(overview::metrics))
        .route("/api/summary", get(overview::summary))
        .route("/plugins", get(plugins::list))
        .route("/plugins/{name}", get(plugins::show).put(plugins::upload))
        .route("/plugins/{name}/reload", post(plugins::reload))
        .route("/plugins/{name}/rollback", post(plugins::rollback))
        .route("/plugins/{name}/pause", post(plugins::pause))
        .route("/plugins/{name}/resume", post(plugins::resume))
        .route(
            "/plugins/{name}/shadow",
            get(shadow::show).put(shadow::upload).delete(shadow::drop),
        )
        .route("/plugins/{name}/shadow/promote", post(shadow::promote))
        .route("/api/shadows", get(shadow::all))
        .route("/api/map", get(status::map))
        .route("/api/history", get(status::history))
        .route("/api/lag", get(status::lag))
        .route("/api/dlq", get(status::letters))
        .route("/api/dlq/{topic}/{partition}/{offset}", get(status::letter))
        .route("/api/dlq/{topic}/replay", post(status::replay))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Serves the admin API on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes(state))
        .with_graceful_shutdown(shutdown)
        .await
}
