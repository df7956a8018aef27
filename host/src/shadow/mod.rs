//! Shadow versions: a candidate version of a plugin that runs on the live
//! traffic beside the live version, with nothing it does produced or
//! committed, so that a team sees, before it goes live, where it would
//! behave differently on the events they really get.
//!
//! Each event the live version handles also runs on the shadow (in
//! `router`, on the same worker, right after the live call): the same event,
//! the same state as the live call saw, the same config and limits. "The
//! same state" is pinned ([`Pinned`]): a key the live call read reads the
//! same value for the shadow, even if another partition committed a new one
//! in between (the live call then runs again after its commit conflict, and
//! is not compared twice); other keys read the batch's view. Its emits, state writes, timer changes and
//! error are compared with the live version's ([`compare`]); its emits are
//! wrapped under the live version's label, so only real differences show.
//!
//! Cost: a shadow call costs the live path its own call and no more; it
//! never waits on anything else. Under load, when a batch holds more than
//! [`SAMPLE`] records, only [`SAMPLE`] of them, spread evenly, run on the
//! shadow; the others are counted as skipped. A record that runs again (a
//! retry or a commit conflict) is compared once.
//!
//! Results live here, per plugin: counts of compared, equal, differing and
//! skipped calls, and the newest [`KEEP_DIFFS`] differing events with their
//! differences. The admin API (`/plugins/{name}/shadow`), the status page
//! and `/metrics` (`switchyard_shadow_calls_total`) show them. Promotion
//! and storage are the reloader's (`reload`), so a shadow uploaded on one
//! instance sharing PostgreSQL runs on all of them.

pub(crate) mod compare;

use crate::engine::PluginVersion;
use crate::state::{Reads, StateRead};
use compare::Difference;
use serde::Serialize;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The most records of one batch that run on the shadow.
pub(crate) const SAMPLE: usize = 64;

/// How many differing events a shadow keeps, newest first.
pub(crate) const KEEP_DIFFS: usize = 20;

/// How many event ids a shadow remembers, so a rerun is compared once.
const REMEMBER: usize = 50_000;

/// A shadow version of a plugin and what it found.
pub struct Shadow {
    /// The candidate version.
    pub(crate) version: Arc<PluginVersion>,
    /// When it was attached (RFC 3339).
    since: String,
    compared: AtomicU64,
    differing: AtomicU64,
    skipped: AtomicU64,
    errors: AtomicU64,
    diffs: Mutex<VecDeque<ShadowDiff>>,
    seen: Mutex<HashSet<String>>,
}

/// One event on which the shadow differed from the live version.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShadowDiff {
    /// The event's id and type.
    pub(crate) event_id: String,
    /// Its type.
    pub(crate) event_type: String,
    /// Where it was: `topic[partition]@offset`.
    pub(crate) at: String,
    /// The live version's label.
    pub(crate) live: String,
    /// Each difference.
    pub(crate) differences: Vec<Difference>,
    /// The differences as text, one per line.
    pub(crate) text: String,
}

/// What the admin API shows of a shadow.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ShadowReport {
    /// The shadow's version label.
    pub(crate) version: String,
    /// Its full SHA-256.
    pub(crate) hash: String,
    /// When it was attached.
    pub(crate) since: String,
    /// Events run on both versions.
    pub(crate) compared: u64,
    /// Of those, the ones where both did the same.
    pub(crate) equal: u64,
    /// The ones where they differed (a shadow's error counts).
    pub(crate) differing: u64,
    /// Of the differing ones, those where the shadow failed.
    pub(crate) shadow_errors: u64,
    /// Events the shadow skipped under load.
    pub(crate) skipped: u64,
    /// The newest differing events, newest first.
    pub(crate) newest: Vec<ShadowDiff>,
}

impl Shadow {
    /// A shadow running `version`.
    pub(crate) fn new(version: Arc<PluginVersion>) -> Self {
        Shadow {
            version,
            since: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            compared: AtomicU64::new(0),
            differing: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            diffs: Mutex::new(VecDeque::new()),
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// Whether `event_id` is new to the shadow (a rerun is not).
    pub(crate) fn first_time(&self, event_id: &str) -> bool {
        let mut seen = self.seen.lock().expect("shadow lock");
        if seen.len() >= REMEMBER {
            seen.clear();
        }
        seen.insert(event_id.to_string())
    }

    /// Counts an event the shadow skipped under load.
    pub(crate) fn skip(&self) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
    }

    /// Records one comparison; `shadow_failed` when the shadow's call
    /// failed.
    pub(crate) fn record(&self, diff: Option<ShadowDiff>, shadow_failed: bool) {
        self.compared.fetch_add(1, Ordering::Relaxed);
        let Some(diff) = diff else { return };
        self.differing.fetch_add(1, Ordering::Relaxed);
        if shadow_failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let mut diffs = self.diffs.lock().expect("shadow lock");
        diffs.push_front(diff);
        diffs.truncate(KEEP_DIFFS);
    }

    /// Its counts and newest differences.
    pub(crate) fn report(&self) -> ShadowReport {
        let compared = self.compared.load(Ordering::Relaxed);
        let differing = self.differing.load(Ordering::Relaxed);
        ShadowReport {
            version: self.version.label().to_string(),
            hash: self.version.hash.clone(),
            since: self.since.clone(),
            compared,
            equal: compared - differing,
            differing,
            shadow_errors: self.errors.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            newest: self
                .diffs
                .lock()
                .expect("shadow lock")
                .iter()
                .cloned()
                .collect(),
        }
    }
}

/// The state a shadow call reads: what the live call read, for the keys it
/// read; the batch's view for the others.
pub(crate) struct Pinned {
    /// The plugin whose keys `reads` holds.
    pub(crate) plugin: String,
    /// What the live call read.
    pub(crate) reads: Reads,
    /// Everything else.
    pub(crate) under: Arc<dyn StateRead>,
}

impl StateRead for Pinned {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self.reads.get(key) {
            Some(value) if plugin == self.plugin => Ok(value.clone()),
            _ => self.under.get(plugin, key),
        }
    }
}

impl std::fmt::Debug for Shadow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shadow")
            .field("version", &self.version.label())
            .finish_non_exhaustive()
    }
}
