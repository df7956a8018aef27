//! The processed marks of earlier layouts, moved on open into
//! `processed_ids` and `processed_output_chunks`.
//!
//! - The first layout kept the outputs in a table keyed by id
//!   (`processed`, `<plugin>\0<event id>` -> outputs, with
//!   `processed_order`, (`plugin`, sequence) -> event id): every insert and
//!   delete copied a page of outputs.
//! - The second kept only the sequence there (`processed_marks`) and the id
//!   and outputs in `outbox`, (`plugin`, sequence) -> (event id, outputs):
//!   its random ids still made a group commit rewrite most of that table.
//! - The third (a few hours on `main`) kept `outbox` alone, with the index
//!   in memory rebuilt from it, which read every output on open.
//! - The fourth kept `processed_ids` as now, and each entry's outputs in
//!   `processed_outputs`, one value a sequence: its outputs are gathered
//!   into chunks under the same sequences ([`super::chunk`]).
//!
//! Moved marks are numbered after any already in the new tables (a file
//! that an older router opened again after a newer one), so no entry is
//! overwritten, and an id in both is found at its newer entry. There is no
//! way back: an older router opening the file afterwards finds no processed
//! marks.

use super::OUTPUTS;
use super::chunk::Builder;
use super::outbox::{Append, write};
use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

/// The first layout: `<plugin>\0<event id>` -> outputs.
pub(super) const OLD_PROCESSED: TableDefinition<&str, &[u8]> = TableDefinition::new("processed");
/// The first layout's order: (`plugin`, sequence) -> event id.
pub(super) const OLD_ORDER: TableDefinition<(&str, u64), &str> =
    TableDefinition::new("processed_order");
/// The second layout's marks: `<plugin>\0<event id>` -> its sequence in
/// `outbox`.
pub(super) const OLD_MARKS: TableDefinition<&str, u64> = TableDefinition::new("processed_marks");
/// The second and third layouts' outbox: (`plugin`, sequence) -> (event id,
/// outputs).
pub(super) const OLD_OUTBOX: TableDefinition<(&str, u64), (&str, &[u8])> =
    TableDefinition::new("outbox");

/// The fourth layout's outputs: (`plugin`, sequence) -> that entry's
/// outputs.
pub(super) const OLD_OUTPUTS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("processed_outputs");

/// Moves every earlier layout's marks into the new tables, oldest first,
/// and drops the old tables; nothing to do in a file made since.
pub(super) fn migrate_marks(txn: &WriteTransaction) -> anyhow::Result<()> {
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
    let has = |table: &str| tables.iter().any(|t| t == table);
    if has(OLD_OUTPUTS.name()) {
        chunk_outputs(txn)?;
    }
    if has(OLD_MARKS.name()) {
        txn.delete_table(OLD_MARKS)?;
    }
    let (outbox, first) = (has(OLD_OUTBOX.name()), has(OLD_PROCESSED.name()));
    if !outbox && !first {
        return Ok(());
    }
    let mut to = Append::open(txn)?;
    let mut moved = 0u64;
    if outbox {
        for entry in txn.open_table(OLD_OUTBOX)?.iter()? {
            let (key, value) = entry?;
            let (id, outputs) = value.value();
            to.push(key.value().0, id, outputs)?;
            moved += 1;
        }
    }
    if first {
        let processed = txn.open_table(OLD_PROCESSED)?;
        for entry in txn.open_table(OLD_ORDER)?.iter()? {
            let (key, id) = entry?;
            let (plugin, id) = (key.value().0, id.value());
            if let Some(outputs) = processed.get(super::join(plugin, id).as_str())? {
                to.push(plugin, id, outputs.value())?;
                moved += 1;
            }
        }
    }
    to.finish()?;
    drop(to);
    if outbox {
        txn.delete_table(OLD_OUTBOX)?;
    }
    if first {
        txn.delete_table(OLD_PROCESSED)?;
        txn.delete_table(OLD_ORDER)?;
    }
    tracing::info!(
        "state: moved {moved} processed marks to processed_ids and processed_output_chunks"
    );
    Ok(())
}

/// Gathers the fourth layout's outputs into chunks under the same
/// sequences (their ids in `processed_ids` stay as they are), and drops its
/// table.
fn chunk_outputs(txn: &WriteTransaction) -> anyhow::Result<()> {
    let mut chunks = txn.open_table(OUTPUTS)?;
    let mut moved = 0u64;
    {
        let old = txn.open_table(OLD_OUTPUTS)?;
        let mut current: Option<(String, Builder)> = None;
        for entry in old.iter()? {
            let (key, outputs) = entry?;
            let ((plugin, seq), outputs) = (key.value(), outputs.value());
            let fits = current.as_ref().is_some_and(|(p, chunk)| {
                p == plugin && chunk.next() == seq && chunk.fits(outputs.len())
            });
            if !fits {
                if let Some((p, chunk)) = current.take() {
                    write(&mut chunks, &p, &chunk)?;
                }
                current = Some((plugin.to_string(), Builder::new(seq)));
            }
            if let Some((_, chunk)) = current.as_mut() {
                chunk.push(outputs)?;
            }
            moved += 1;
        }
        if let Some((p, chunk)) = current {
            write(&mut chunks, &p, &chunk)?;
        }
    }
    txn.delete_table(OLD_OUTPUTS)?;
    tracing::info!("state: gathered {moved} processed entries' outputs into chunks");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::marked;
    use super::super::{DiskStore, IDS, OUTPUTS, join, marks, read_outbox};
    use super::*;
    use crate::state::StateStore;
    use redb::{Database, ReadableDatabase, ReadableTableMetadata};

    #[test]
    fn outputs_of_the_fourth_layout_are_gathered_into_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fourth.redb");
        {
            // As the fourth layout wrote them: an entry a sequence, two
            // plugins, a gap in q's sequences where a window was pruned.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut ids = txn.open_table(IDS).unwrap();
                let mut outputs = txn.open_table(OLD_OUTPUTS).unwrap();
                for (plugin, seq, id) in
                    [("p", 0, "a"), ("p", 1, "b"), ("q", 4, "a"), ("q", 6, "c")]
                {
                    ids.insert((plugin, seq), id).unwrap();
                    let out = format!("{plugin}-out-{id}");
                    outputs.insert((plugin, seq), out.as_bytes()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = DiskStore::open(&path, 10).unwrap();
        for (plugin, id) in [("p", "a"), ("p", "b"), ("q", "a"), ("q", "c")] {
            let want = format!("{plugin}-out-{id}").into_bytes();
            assert_eq!(store.processed(plugin, id).unwrap(), Some(want));
        }
        assert_eq!(store.processed("q", "b").unwrap(), None);
        // New entries go on after the gathered ones.
        assert_eq!(store.commit(&[&[vec![marked("d")]]]).unwrap(), vec![1]);
        assert_eq!(store.commit(&[&[vec![marked("a")]]]).unwrap(), vec![0]);
        assert_eq!(store.processed("p", "d").unwrap(), Some(b"out-d".to_vec()));
        let txn = store.db.begin_read().unwrap();
        assert!(
            txn.list_tables()
                .unwrap()
                .all(|t| t.name() != OLD_OUTPUTS.name())
        );
        // p's two in one chunk, q's two in two (not consecutive), d's own.
        assert_eq!(txn.open_table(OUTPUTS).unwrap().len().unwrap(), 4);
    }

    #[test]
    fn marks_of_the_second_layout_are_migrated_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("second.redb");
        {
            // As the second layout wrote them: marks by id, outputs in `outbox`.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut marks = txn.open_table(OLD_MARKS).unwrap();
                let mut outbox = txn.open_table(OLD_OUTBOX).unwrap();
                for (seq, id) in [(0u64, "b"), (1, "a"), (2, "c")] {
                    marks.insert(join("p", id).as_str(), seq).unwrap();
                    let out = format!("out-{id}");
                    outbox.insert(("p", seq), (id, out.as_bytes())).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store = DiskStore::open(&path, 10).unwrap();
        for id in ["a", "b", "c"] {
            assert_eq!(
                store.processed("p", id).unwrap(),
                Some(format!("out-{id}").into_bytes()),
                "{id}"
            );
        }
        // New marks go on from the migrated sequence, and an event already
        // processed is not applied again.
        assert_eq!(store.commit(&[&[vec![marked("d")]]]).unwrap(), vec![1]);
        assert_eq!(store.commit(&[&[vec![marked("a")]]]).unwrap(), vec![0]);
        assert_eq!(store.processed("p", "d").unwrap(), Some(b"out-d".to_vec()));
        drop(store);
        let db = Database::create(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_string())
            .collect();
        for gone in ["processed_marks", "outbox"] {
            assert!(!names.contains(&gone.to_string()), "{names:?}");
        }
        let ids = txn.open_table(IDS).unwrap();
        assert_eq!(ids.get(("p", 3)).unwrap().unwrap().value(), "d");
        let outbox = read_outbox(&db).unwrap();
        assert_eq!(
            marks::Outbox::outputs(&outbox, "p", 3).unwrap(),
            Some(b"out-d".to_vec())
        );
    }
}
