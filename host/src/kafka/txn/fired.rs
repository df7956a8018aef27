//! Which timer firings a partition's committed transactions carried, so
//! that a firing is never produced twice under exactly-once.
//!
//! A firing's state commits first; its outputs then go into the open Kafka
//! transaction, and its timer is removed from the store once that
//! transaction has committed. A crash between the transaction's commit and
//! the removal leaves the timer due, and the state store cannot say whether
//! its outputs reached Kafka. Kafka can: every transaction that carries a
//! partition's offsets also writes, in the committed offset's metadata, the
//! firings of that partition whose outputs a committed transaction holds
//! and whose removal is not yet confirmed ([`METADATA`] then one short key
//! per firing, see [`key`]). The offset and its metadata commit atomically
//! with the outputs.
//!
//! A worker that takes a partition reads that metadata first
//! ([`super::Transactions::load_fired`]); a due timer listed there is only
//! removed, not fired again. A listed firing stays listed (in every later
//! transaction that carries the partition) until its removal commits, or
//! until a look at every due timer shows it gone. A transaction with
//! nothing but firings for a partition carries the partition's last
//! committed offset again, so firings need a committed offset: a partition
//! that has none yet fires once its first record's transaction commits.

use crate::kafka::source::{Lease, Partition};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The prefix of the offset metadata that lists firings.
pub(crate) const METADATA: &str = "switchyard-fired:";

/// Most firings listed for one partition: at 13 bytes each, well inside
/// Kafka's default `offset.metadata.max.bytes` of 4096. A worker does not
/// fire more until removals catch up.
pub(crate) const MAX_LISTED: usize = 250;

/// A firing's short key: the first 48 bits of its event id (a UUID v5 of
/// plugin, timer name and due time), in hex.
pub(crate) fn key(event_id: &str) -> String {
    event_id.chars().filter(|c| *c != '-').take(12).collect()
}

/// The firings listed for every partition this instance carries.
#[derive(Default)]
pub(super) struct Fired(Mutex<HashMap<Partition, Listed>>);

#[derive(Default)]
struct Listed {
    /// The worker that read the partition's committed offset.
    lease: Option<Lease>,
    /// The partition's committed next offset, as this instance knows it.
    offset: Option<i64>,
    /// Firings in a committed transaction, not yet removed.
    committed: HashSet<String>,
    /// Firings in the open transaction.
    open: HashSet<String>,
}

/// What one transaction sends for a partition: its offset and metadata.
pub(super) type Sent = HashMap<Partition, (i64, String)>;

impl Fired {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Partition, Listed>) -> T) -> T {
        f(&mut self.0.lock().expect("fired lock"))
    }

    /// Starts `partition` afresh for the worker holding `lease`, from what
    /// Kafka committed for it.
    pub(super) fn load(
        &self,
        partition: &Partition,
        lease: &Lease,
        offset: Option<i64>,
        metadata: &str,
    ) {
        let listed: HashSet<String> = metadata
            .strip_prefix(METADATA)
            .map(|keys| {
                keys.split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        self.with(|all| {
            let entry = all.entry(partition.clone()).or_default();
            entry.lease = Some(lease.clone());
            entry.offset = offset;
            entry.committed.extend(listed);
            entry.open.clear();
        });
    }

    /// Adds a firing whose outputs the open transaction carries.
    pub(super) fn add(&self, partition: &Partition, key: String) {
        self.with(|all| all.entry(partition.clone()).or_default().open.insert(key));
    }

    /// Whether `partition`'s worker may fire more timers now: its offset is
    /// known and fewer than [`MAX_LISTED`] firings are listed; if so, how
    /// many more.
    pub(super) fn room(&self, partition: &Partition) -> usize {
        self.with(|all| match all.get(partition) {
            Some(l) if l.offset.is_some() => {
                MAX_LISTED.saturating_sub(l.committed.len() + l.open.len())
            }
            _ => 0,
        })
    }

    /// The firings of `partition` a committed transaction holds.
    pub(super) fn committed(&self, partition: &Partition) -> HashSet<String> {
        self.with(|all| {
            all.get(partition)
                .map(|l| l.committed.clone())
                .unwrap_or_default()
        })
    }

    /// Stops listing `keys` (their timers are removed, or gone).
    pub(super) fn forget<'k>(
        &self,
        partition: &Partition,
        keys: impl IntoIterator<Item = &'k String>,
    ) {
        self.with(|all| {
            if let Some(l) = all.get_mut(partition) {
                for k in keys {
                    l.committed.remove(k);
                }
            }
        });
    }

    /// The offsets and metadata a transaction sends, given the offsets its
    /// records reached: every partition with records, and every one with
    /// firings listed. Err names a partition whose firings are in the open
    /// transaction but which was revoked (the transaction must abort).
    /// Listings of revoked partitions with nothing open are dropped: their
    /// new owner read them.
    pub(super) fn to_send(
        &self,
        offsets: &HashMap<Partition, (Lease, i64)>,
    ) -> Result<Sent, String> {
        self.with(|all| {
            let mut sent = Sent::new();
            all.retain(|p, l| {
                let live = l.lease.as_ref().is_some_and(Lease::live);
                live || !l.open.is_empty() || offsets.contains_key(p)
            });
            for (p, l) in all.iter() {
                let live = l.lease.as_ref().is_some_and(Lease::live);
                if !l.open.is_empty() && !live {
                    return Err(format!("{}[{}] was revoked", p.0, p.1));
                }
                let offset = match offsets.get(p) {
                    Some((_, o)) => Some(*o),
                    None if l.committed.is_empty() && l.open.is_empty() => None,
                    None => l.offset,
                };
                if let Some(offset) = offset {
                    let mut keys: Vec<&String> = l.committed.union(&l.open).collect();
                    keys.sort();
                    let metadata = if keys.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "{METADATA}{}",
                            keys.into_iter().cloned().collect::<Vec<_>>().join(",")
                        )
                    };
                    sent.insert(p.clone(), (offset, metadata));
                }
            }
            for (p, (_, o)) in offsets {
                sent.entry(p.clone()).or_insert((*o, String::new()));
            }
            Ok(sent)
        })
    }

    /// The transaction that sent `sent` committed.
    pub(super) fn committed_now(&self, sent: &Sent) {
        self.with(|all| {
            for (p, (offset, _)) in sent {
                let l = all.entry(p.clone()).or_default();
                l.offset = Some(*offset);
                let open = std::mem::take(&mut l.open);
                l.committed.extend(open);
            }
        });
    }

    /// The open transaction aborted: its firings fire again.
    pub(super) fn aborted(&self) {
        self.with(|all| all.values_mut().for_each(|l| l.open.clear()));
    }
}
