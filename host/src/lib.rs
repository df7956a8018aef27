//! Switchyard: a Kafka event router that dispatches every event to sandboxed
//! WebAssembly handler plugins, and a local harness that runs the same
//! plugins on fixture files with no broker.
//!
//! Plugins are components targeting the `switchyard:plugin/handler@0.2.0`
//! world in `wit/`. A plugin is a deterministic function of (event, its
//! state, its config): the host fills in every emitted envelope itself, with
//! ids derived from the cause, so replaying an event yields identical bytes.
//!
//! # Layout
//!
//! One module per arrow of the data flow; a module with more than one job
//! is a folder with a file per job. No module depends on one that depends
//! back on it.
//!
//! Records in, through the per-record path, state and out:
//!
//! - `kafka`: Kafka I/O, no wasm: the consumer (`source/`: loop,
//!   rebalance callbacks, leases and assignment in `state.rs`), the
//!   producer and topic admin (`sink.rs`), exactly-once transactions
//!   (`txn.rs`), dead letters (`dlq/`: the letter, `replay.rs`,
//!   `browse.rs`) and the embedded broker (`broker.rs`).
//! - `service`: the router as a service, in three steps: `build.rs`
//!   wires everything, `consume.rs` runs the consumer loop, `drain.rs`
//!   drains and closes; `tasks.rs` has the background tasks.
//! - `partition`: a partition worker: batch and run (`mod.rs`), the
//!   byte-bounded queue (`queue.rs`), count, emit, ack in order (a file
//!   each), firing its partition's due timers between batches
//!   (`timers.rs`), and the two traits it talks to Kafka through
//!   (`ports.rs`).
//! - `pool`: the fixed plugin worker pool and each worker's warm
//!   instances.
//! - `router`: the per-record path (no I/O): decode, match subscribers,
//!   run (`mod.rs`); check and wrap emits (`emit.rs`); failures and the
//!   retry policy (`failure.rs`); timers' changes and firings (`timer.rs`).
//! - `engine`: wasmtime: compile cache, instances, call context, the
//!   determinism shims (clocks, randomness, virtual sleeps), the host
//!   imports, per-call output, typed faults.
//! - `bindings`: the generated WIT bindings (private; the only `bindgen!`).
//! - `state`: per-plugin transactional key-value state and timers:
//!   memory, redb and PostgreSQL stores, one commit check (`check.rs`), the
//!   batch view.
//! - `committer`: group commit of every ready partition's batch.
//!
//! The data they share, and the plugins:
//!
//! - `event`: the host's record, event and emit types, and the outbox
//!   codec.
//! - `envelope`: decoding every catalog envelope style; encoding emits.
//! - `config`: the `router.toml` format, parsed strictly and resolved.
//! - `registry`: the configured plugins and their live versions.
//! - `schemas`: the JSON Schemas a plugin's emits must match.
//! - `reload`: hot reload from files and uploads, checked before going
//!   live; versions kept in the state store (`shared.rs`); file watching.
//! - `rebuild`: builds a plugin from its sources when stale, and on every
//!   save in dev.
//! - `fixtures`: the fixture runner, through `router`'s batch code.
//!
//! Operating it:
//!
//! - `admin`: the admin API (axum): plugins, readiness, metrics, and the
//!   status page's data (`status.rs`).
//! - `metrics`: Prometheus metrics with the catalog's names, with
//!   bounded topic labels.
//! - `flows`: what flowed along each edge of the routing map, and charts.
//! - `harness`: `switchyard test`, fixtures with diffs.
//! - `scaffold`: `switchyard new`, a working plugin in Rust, Python or JS.
//! - `cli`: the `switchyard` command line.
//!
//! # Example
//!
//! Decoding a record in the booking catalog's snake_case envelope:
//!
//! ```
//! use switchyard::{Record, decode};
//!
//! let record = Record {
//!     topic: "booking.booking.created".into(),
//!     value: Some(br#"{"event_id":"e-1","event_type":"booking.booking.created","data":{}}"#.to_vec()),
//!     ..Record::default()
//! };
//! let event = decode(&record).unwrap();
//! assert_eq!(event.ty, "booking.booking.created");
//! assert_eq!(event.id, "e-1");
//! ```

#![deny(missing_docs)]

mod admin;
mod bindings;
mod cli;
mod committer;
mod config;
mod engine;
mod envelope;
mod event;
mod fixtures;
mod flows;
mod harness;
mod kafka;
mod metrics;
mod partition;
mod pool;
mod rebuild;
mod registry;
mod reload;
mod replay;
mod router;
mod scaffold;
mod schemas;
mod service;
mod shadow;
mod state;

// The crate's surface: what the binary, the integration tests and the
// benchmark use. Everything else is crate-private.

/// The binary's entry point: parses the command line and runs it.
pub use cli::main;
/// Running the router as a service.
pub use service::{RunOptions, run};

/// Config, events and envelopes.
pub use config::{ConfigError, KafkaConfig, Limits, RouterConfig};
pub use envelope::decode;
pub use event::{Event, Header, OutRecord, Record};

pub use config::PluginSpec;
/// The engine and the plugins.
pub use engine::{CallInput, Engine, EngineOptions, Fault, LoadError, Origin, RECYCLE_AFTER};
pub use harness::fixture_files;
pub use rebuild::build_stale;
pub use registry::PluginRegistry;
pub use reload::Reloader;

/// State.
pub use state::{
    DiskStore, DueTimer, Effect, LiveVersion, MemoryStore, PgStore, StateError, StateRead,
    StateStore, Timer, TimerChange, TimerChanges, VersionStore, contract,
};

/// A partition worker and its parts, to run one in-process.
pub use committer::Committer;
pub use kafka::broker::EmbeddedBroker;
pub use kafka::sink::{Delivery, ProduceError};
pub use kafka::source::{Lease, Partition};
pub use kafka::txn::delivered;
pub use metrics::Metrics;
pub use partition::{Offsets, Outputs, PartitionQueue, Shared, Stats};
pub use pool::{Instances, PoolError, WorkerPool};
pub use router::Router;
