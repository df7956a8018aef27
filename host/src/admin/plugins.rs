//! `/plugins`: each plugin's status, and the changes: upload, reload,
//! rollback, pause and resume.

use super::guard::{AdminState, Shared, problem, refusal};
use crate::reload::{ReloadError, Reloader};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use std::sync::Arc;

pub(super) async fn list(State(state): Shared) -> Json<Vec<crate::registry::PluginStatus>> {
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

pub(super) async fn show(State(state): Shared, Path(name): Path<String>) -> Response {
    match state.reloader.registry().get(&name) {
        Some(p) => Json(p.status()).into_response(),
        None => problem(StatusCode::NOT_FOUND, format!("no plugin named `{name}`")),
    }
}

/// Checks the token, runs a change off the async runtime, and answers with
/// the plugin's status, or 422 with why the change was refused.
pub(super) async fn change(
    state: Arc<AdminState>,
    headers: &HeaderMap,
    name: String,
    op: impl FnOnce(&Reloader, &str) -> Result<(), ReloadError> + Send + 'static,
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
        Ok(Err(why)) => problem(StatusCode::UNPROCESSABLE_ENTITY, why.to_string()),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

pub(super) async fn upload(
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

pub(super) async fn reload(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| r.reload_file(n).map(|_| ())).await
}

pub(super) async fn rollback(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| r.rollback(n).map(|_| ())).await
}

pub(super) async fn pause(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| r.pause(n, true)).await
}

pub(super) async fn resume(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| r.pause(n, false)).await
}
