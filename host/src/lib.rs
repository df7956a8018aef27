//! Switchyard: a Kafka event router that dispatches every event to sandboxed
//! WebAssembly handler plugins, and a local harness that runs the same
//! plugins on fixture files with no broker.
//!
//! Plugins are components targeting the `switchyard:plugin/handler@0.1.0`
//! world in `wit/`. A plugin is a deterministic function of (event, its
//! state, its config): the host fills in every emitted envelope itself, with
//! ids derived from the cause, so replaying an event yields identical bytes.
//!
//! # Layout
//!
//! - [`config`]: the `router.toml` format, parsed strictly and resolved.
//! - [`event`]: the host's record, event and emit types.
//! - [`envelope`]: decoding every catalog envelope style; encoding emits.
//! - `bindings`: the generated WIT bindings (private; the only `bindgen!`).
//! - [`engine`]: wasmtime: compile cache, sandbox, limits, typed faults.
//! - [`registry`]: the configured plugins and their live versions.
//! - [`router`]: the per-record path (no I/O): decode, match subscribers,
//!   run on a warm instance, check and wrap emits; batches and the retry policy.
//! - [`schemas`]: the JSON Schemas a plugin's emits must match.
//! - [`pool`]: the fixed plugin worker pool, one warm instance per worker.
//! - [`state`]: per-plugin transactional key-value state (memory; redb on disk).
//! - [`committer`]: group commit of every ready partition's batch.
//! - [`kafka`]: consumer, producer, exactly-once transactions, dead letters,
//!   embedded broker (no wasm).
//! - [`partition`]: a partition worker: batch and run (`mod.rs`), count, emit,
//!   ack in order (one file each).
//! - [`service`]: the router as a service: consumer loop, drain, shutdown.
//! - [`reload`]: hot reload from files and uploads, checked before going live.
//! - [`admin`]: the admin API and status page (axum).
//! - [`metrics`]: Prometheus metrics with the catalog's names.
//! - [`flows`]: what flowed along each edge of the routing map, and charts.
//! - [`admin::status`]: the status page's data: map, charts, lag, dead letters.
//! - [`harness`]: `switchyard test`, fixtures with diffs.
//! - [`scaffold`]: `switchyard new`, a working plugin in Rust, Python or JS.
//! - [`rebuild`]: builds a plugin from its sources when stale, and on every save in dev.
//! - [`cli`]: the `switchyard` command line.
//!
//! # Example
//!
//! Decoding a record in the booking catalog's snake_case envelope:
//!
//! ```
//! use switchyard::{envelope, event::Record};
//!
//! let record = Record {
//!     topic: "booking.booking.created".into(),
//!     value: Some(br#"{"event_id":"e-1","event_type":"booking.booking.created","data":{}}"#.to_vec()),
//!     ..Record::default()
//! };
//! let event = envelope::decode(&record).unwrap();
//! assert_eq!(event.ty, "booking.booking.created");
//! assert_eq!(event.id, "e-1");
//! ```

#![deny(missing_docs)]

pub mod admin;
mod bindings;
pub mod cli;
pub mod committer;
pub mod config;
pub mod engine;
pub mod envelope;
pub mod event;
pub mod fixtures;
pub mod flows;
pub mod harness;
pub mod kafka;
pub mod metrics;
pub mod partition;
pub mod pool;
pub mod rebuild;
pub mod registry;
pub mod reload;
pub mod router;
pub mod scaffold;
pub mod schemas;
pub mod service;
pub mod state;
