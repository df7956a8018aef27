//! The router's durable state: one redb file (ACID, copy-on-write B-trees,
//! fsync on every commit).
//!
//! Tables:
//! - `state`: `<plugin>\0<key>` -> value;
//! - `processed`: `<plugin>\0<event id>` -> the outputs it produced;
//! - `processed_order`: (`plugin`, sequence) -> event id, oldest first, so
//!   the memory of processed ids stays bounded (`keep` per plugin).

use super::{Commit, Reads, StateStore, Writes};
use anyhow::Context;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::Path;

const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const PROCESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("processed");
const ORDER: TableDefinition<(&str, u64), &str> = TableDefinition::new("processed_order");

/// Plugin state in a redb file.
pub struct DiskStore {
    db: Database,
    keep: u64,
}

fn join(plugin: &str, key: &str) -> String {
    format!("{plugin}\0{key}")
}

impl DiskStore {
    /// Opens (or creates) the store at `path`, remembering the last `keep`
    /// processed event ids of each plugin.
    pub fn open(path: &Path, keep: u64) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "{}: cannot create the state folder; pass a writable --state-dir",
                    dir.display()
                )
            })?;
        }
        let db = Database::create(path).with_context(|| {
            format!(
                "{}: cannot open the state store (is another router using it?)",
                path.display()
            )
        })?;
        let txn = db.begin_write()?;
        txn.open_table(STATE)?;
        txn.open_table(PROCESSED)?;
        txn.open_table(ORDER)?;
        txn.commit()?;
        Ok(DiskStore {
            db,
            keep: keep.max(1),
        })
    }
}

impl StateStore for DiskStore {
    fn get(&self, plugin: &str, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        Ok(table
            .get(join(plugin, key).as_str())?
            .map(|v| v.value().to_vec()))
    }

    fn commit(
        &self,
        plugin: &str,
        event_id: &str,
        reads: &Reads,
        writes: &Writes,
        outputs: &[u8],
    ) -> anyhow::Result<Commit> {
        let txn = self.db.begin_write()?;
        {
            let mut state = txn.open_table(STATE)?;
            for (key, seen) in reads {
                let now = state
                    .get(join(plugin, key).as_str())?
                    .map(|v| v.value().to_vec());
                if now != *seen {
                    return Ok(Commit::Conflict);
                }
            }
            for (key, value) in writes {
                let key = join(plugin, key);
                match value {
                    Some(v) => state.insert(key.as_str(), v.as_slice())?,
                    None => state.remove(key.as_str())?,
                };
            }
            let mut processed = txn.open_table(PROCESSED)?;
            processed.insert(join(plugin, event_id).as_str(), outputs)?;
            let mut order = txn.open_table(ORDER)?;
            let next = order
                .range((plugin, 0)..=(plugin, u64::MAX))?
                .next_back()
                .transpose()?
                .map(|(k, _)| k.value().1 + 1)
                .unwrap_or(0);
            order.insert((plugin, next), event_id)?;
            if next >= self.keep {
                let cutoff = next - self.keep;
                let old: Vec<(u64, String)> = order
                    .range((plugin, 0)..=(plugin, cutoff))?
                    .map(|e| e.map(|(k, v)| (k.value().1, v.value().to_string())))
                    .collect::<Result<_, _>>()?;
                for (seq, id) in old {
                    order.remove((plugin, seq))?;
                    processed.remove(join(plugin, &id).as_str())?;
                }
            }
        }
        txn.commit()?;
        Ok(Commit::Done)
    }

    fn processed(&self, plugin: &str, event_id: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PROCESSED)?;
        Ok(table
            .get(join(plugin, event_id).as_str())?
            .map(|v| v.value().to_vec()))
    }

    fn snapshot(&self, plugin: &str) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(STATE)?;
        let (from, to) = (format!("{plugin}\0"), format!("{plugin}\u{1}"));
        let mut out = BTreeMap::new();
        for entry in table.range(from.as_str()..to.as_str())? {
            let (k, v) = entry?;
            out.insert(k.value()[from.len()..].to_string(), v.value().to_vec());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_store_keeps_the_contract_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        super::super::tests::check_store(&DiskStore::open(&path, 100).unwrap());
        let store = DiskStore::open(&path, 100).unwrap();
        assert_eq!(store.get("p", "a").unwrap(), Some(b"x".to_vec()));
        assert_eq!(store.processed("p", "e1").unwrap(), Some(b"out".to_vec()));
    }

    #[test]
    fn processed_ids_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let store = DiskStore::open(&dir.path().join("s.redb"), 2).unwrap();
        for id in ["e1", "e2", "e3"] {
            store
                .commit("p", id, &Reads::new(), &Writes::new(), id.as_bytes())
                .unwrap();
        }
        assert_eq!(store.processed("p", "e1").unwrap(), None);
        assert_eq!(store.processed("p", "e2").unwrap(), Some(b"e2".to_vec()));
        assert_eq!(store.processed("p", "e3").unwrap(), Some(b"e3".to_vec()));
    }
}
