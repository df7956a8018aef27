//! `/plugins/{name}/shadow`: a candidate version running beside the live
//! one on real traffic (see [`crate::shadow`]): attach, read the
//! comparison, promote, drop; and the shadow counters for `/metrics`.

use super::guard::{Shared, problem};
use super::plugins::change;
use crate::registry::PluginRegistry;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use std::fmt::Write;

/// The comparison so far, or 404 when the plugin has no shadow.
pub(super) async fn show(State(state): Shared, Path(name): Path<String>) -> Response {
    match state.reloader.registry().get(&name) {
        None => problem(StatusCode::NOT_FOUND, format!("no plugin named `{name}`")),
        Some(p) => match p.shadow() {
            Some(shadow) => Json(shadow.report()).into_response(),
            None => problem(
                StatusCode::NOT_FOUND,
                format!("plugin `{name}` has no shadow version; PUT /plugins/{name}/shadow"),
            ),
        },
    }
}

/// Every plugin's shadow report, by plugin (for the status page).
pub(super) async fn all(State(state): Shared) -> Json<serde_json::Value> {
    let shadows: serde_json::Map<String, serde_json::Value> = state
        .reloader
        .registry()
        .plugins()
        .iter()
        .filter_map(|p| {
            let report = p.shadow()?.report();
            Some((
                p.spec.name.clone(),
                serde_json::to_value(report).expect("JSON serializes"),
            ))
        })
        .collect();
    Json(serde_json::Value::Object(shadows))
}

/// Attaches the uploaded wasm as the plugin's shadow.
pub(super) async fn upload(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    change(state, &headers, name, move |r, n| {
        r.shadow(n, &body, "upload").map(|_| ())
    })
    .await
}

/// Makes the shadow live through the checked swap, and drops it.
pub(super) async fn promote(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| {
        r.promote_shadow(n).map(|_| ())
    })
    .await
}

/// Drops the shadow.
pub(super) async fn drop(
    State(state): Shared,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    change(state, &headers, name, |r, n| r.drop_shadow(n)).await
}

/// `switchyard_shadow_calls_total{plugin,result}` for every shadow, in
/// Prometheus' text format (appended to `/metrics`).
pub(super) fn metrics(registry: &PluginRegistry) -> String {
    let mut out = String::new();
    let shadows: Vec<_> = registry
        .plugins()
        .iter()
        .filter_map(|p| Some((p.spec.name.clone(), p.shadow()?.report())))
        .collect();
    if shadows.is_empty() {
        return out;
    }
    out.push_str(
        "# HELP switchyard_shadow_calls_total Events run on a plugin's shadow version, by how they compared with the live version (skipped: not run, under load).\n# TYPE switchyard_shadow_calls_total counter\n",
    );
    for (plugin, r) in &shadows {
        for (result, n) in [
            ("equal", r.equal),
            ("differing", r.differing),
            ("skipped", r.skipped),
        ] {
            writeln!(
                out,
                "switchyard_shadow_calls_total{{plugin=\"{plugin}\",result=\"{result}\",version=\"{}\"}} {n}",
                r.version
            )
            .expect("writes to a string");
        }
    }
    out
}
