//! The status page's data, as JSON, so that scripts see what people see.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/api/map` | the routing map: input topics → plugins → output topics, from the config and from what flowed, with counts and rates; each plugin's version, state and error rate |
//! | GET | `/api/history` | per plugin, calls, errors and dead letters per 5 s over the last 5 minutes |
//! | GET | `/api/lag` | the lag of each partition this instance owns, and the alert threshold |
//! | GET | `/api/dlq` | the newest dead letters (20) of every `*.dlq` topic |
//! | GET | `/api/dlq/{topic}/{partition}/{offset}` | one dead letter with its record |
//! | POST | `/api/dlq/{topic}/replay` | replay one letter (`{"partition":p,"offset":o}`) or, with no body, the whole topic, as `switchyard dlq replay` does; needs the token |
//!
//! A plugin's state is `paused`, `reloading` (a new version is being
//! checked), `failing` (at least half of its calls failed over the last
//! minute) or `running`.

use super::guard::{AdminState, Shared, problem, refusal};
use crate::flows::Edge;
use crate::kafka::dlq;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

/// The catalog's alert threshold for consumer lag.
pub(crate) const LAG_ALERT: i64 = 1000;

/// How many dead letters per topic the page lists.
const LETTERS_PER_TOPIC: i64 = 20;

/// How long a listing of the dead letters is reused.
const DLQ_CACHE: Duration = Duration::from_secs(2);

fn is_literal(pattern: &str) -> bool {
    !pattern.contains(['*', '?', '[', '{'])
}

/// `GET /api/map`.
pub(crate) async fn map(State(state): Shared) -> Json<Value> {
    let registry = state.reloader.registry();
    let mut edges: Vec<Edge> = state.flows.edges();
    let seen: HashSet<(String, String)> = edges
        .iter()
        .map(|e| (e.from.clone(), e.to.clone()))
        .collect();
    let mut configured: BTreeSet<(String, String)> = BTreeSet::new();
    for plugin in registry.plugins() {
        let spec = &plugin.spec;
        let node = format!("plugin:{}", spec.name);
        for input in spec.topics.patterns().iter().chain(spec.types.patterns()) {
            if is_literal(input) {
                configured.insert((format!("topic:{input}"), node.clone()));
            }
        }
        for ty in spec.emits.patterns().iter().filter(|t| is_literal(t)) {
            let topic = spec.topic_map.get(ty).unwrap_or(ty);
            configured.insert((node.clone(), format!("topic:{topic}")));
        }
    }
    for (from, to) in &configured {
        if !seen.contains(&(from.clone(), to.clone())) {
            edges.push(Edge {
                from: from.clone(),
                to: to.clone(),
                count: 0,
                rate: 0.0,
            });
        }
    }
    let history = state.flows.history();
    let totals = state.flows.totals();
    let plugins: Vec<Value> = registry
        .plugins()
        .iter()
        .map(|p| {
            let status = p.status();
            let recent = history.get(&status.name).map_or((0, 0), |points| {
                points
                    .iter()
                    .rev()
                    .take(12)
                    .fold((0, 0), |(c, e), point| (c + point.calls, e + point.errors))
            });
            let counts = totals.get(&status.name).copied().unwrap_or_default();
            let state = if p.is_paused() {
                "paused"
            } else if p.is_reloading() {
                "reloading"
            } else if recent.1 > 0 && recent.1 * 2 >= recent.0 {
                "failing"
            } else {
                "running"
            };
            json!({
                "name": status.name,
                "version": status.version,
                "origin": status.origin,
                "state": state,
                "calls": counts.calls,
                "errors": counts.errors,
                "dead_letters": counts.dead_letters,
                "error_rate": if recent.0 == 0 { 0.0 } else { recent.1 as f64 / recent.0 as f64 },
                "last_error": status.last_error,
            })
        })
        .collect();
    let configured: Vec<Value> = edges
        .iter()
        .map(|e| json!(configured.contains(&(e.from.clone(), e.to.clone()))))
        .collect();
    let edges: Vec<Value> = edges
        .into_iter()
        .zip(configured)
        .map(|(e, configured)| {
            json!({"from": e.from, "to": e.to, "count": e.count, "rate": e.rate, "configured": configured})
        })
        .collect();
    Json(json!({ "plugins": plugins, "edges": edges }))
}

/// `GET /api/history`.
pub(crate) async fn history(State(state): Shared) -> Json<Value> {
    Json(json!({
        "every_secs": crate::flows::SAMPLE_EVERY.as_secs(),
        "plugins": state.flows.history(),
    }))
}

/// `GET /api/lag`.
pub(crate) async fn lag(State(state): Shared) -> Json<Value> {
    let partitions: Vec<Value> = state
        .metrics
        .partition_lags(&state.partitions())
        .into_iter()
        .map(|(topic, partition, lag)| {
            json!({"topic": topic, "partition": partition, "lag": lag, "alert": lag > LAG_ALERT})
        })
        .collect();
    Json(json!({ "threshold": LAG_ALERT, "partitions": partitions }))
}

fn kafka(state: &AdminState) -> Result<rdkafka::ClientConfig, Box<Response>> {
    state.kafka.clone().ok_or_else(|| {
        Box::new(problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "no Kafka client configured for dead letters",
        ))
    })
}

/// `GET /api/dlq`: newest first, at most 20 per topic.
pub(crate) async fn letters(State(state): Shared) -> Response {
    if let Some((at, cached)) = state.dlq_cache.lock().expect("dlq cache").clone()
        && at.elapsed() < DLQ_CACHE
    {
        return Json(cached).into_response();
    }
    let config = match kafka(&state) {
        Ok(config) => config,
        Err(refused) => return *refused,
    };
    let listed = tokio::task::spawn_blocking(move || {
        dlq::recent(&config, LETTERS_PER_TOPIC, Duration::from_secs(3))
    })
    .await;
    match listed {
        Ok(Ok(letters)) => {
            let value = json!({ "letters": letters });
            *state.dlq_cache.lock().expect("dlq cache") = Some((Instant::now(), value.clone()));
            Json(value).into_response()
        }
        Ok(Err(e)) => problem(StatusCode::BAD_GATEWAY, format!("{e:#}")),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `GET /api/dlq/{topic}/{partition}/{offset}`.
pub(crate) async fn letter(
    State(state): Shared,
    Path((topic, partition, offset)): Path<(String, i32, i64)>,
) -> Response {
    let config = match kafka(&state) {
        Ok(config) => config,
        Err(refused) => return *refused,
    };
    let read = tokio::task::spawn_blocking(move || {
        dlq::letter(&config, &topic, partition, offset, Duration::from_secs(5))
    })
    .await;
    match read {
        Ok(Ok(letter)) => Json(letter).into_response(),
        Ok(Err(e)) => problem(StatusCode::NOT_FOUND, format!("{e:#}")),
        Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /api/dlq/{topic}/replay`.
pub(crate) async fn replay(
    State(state): Shared,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refused) = refusal(&state, &headers) {
        return refused;
    }
    if !topic.ends_with(".dlq") {
        return problem(
            StatusCode::BAD_REQUEST,
            format!("{topic}: not a dead-letter topic"),
        );
    }
    let config = match kafka(&state) {
        Ok(config) => config,
        Err(refused) => return *refused,
    };
    let one: Option<(i32, i64)> = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let parsed: Result<Value, _> = serde_json::from_slice(&body);
        match parsed.ok().and_then(|v| {
            Some((
                v.get("partition")?.as_i64()? as i32,
                v.get("offset")?.as_i64()?,
            ))
        }) {
            Some(one) => Some(one),
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    r#"send {"partition": P, "offset": O} for one letter, or no body for all"#,
                );
            }
        }
    };
    // The replay makes blocking client calls (metadata with 10 s timeouts,
    // synchronous commits, a flush): it runs on a blocking thread of its
    // own, never on the runtime that runs the consumer and the partitions.
    let runtime = tokio::runtime::Handle::current();
    let dlq_topic = topic.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        runtime.block_on(async move {
            match one {
                Some((partition, offset)) => {
                    dlq::replay_one(&config, &dlq_topic, partition, offset)
                        .await
                        .map(|()| 1)
                }
                None => dlq::replay(&config, &dlq_topic, Duration::from_secs(5)).await,
            }
        })
    })
    .await
    .unwrap_or_else(|e| Err(anyhow::anyhow!("the replay task failed: {e}")));
    *state.dlq_cache.lock().expect("dlq cache") = None;
    match outcome {
        Ok(n) => {
            tracing::info!(%topic, replayed = n, "dead letters replayed from the admin API");
            Json(json!({ "replayed": n })).into_response()
        }
        Err(e) => problem(StatusCode::UNPROCESSABLE_ENTITY, format!("{e:#}")),
    }
}
