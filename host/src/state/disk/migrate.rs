//! The processed marks of earlier layouts, moved on open into
//! `processed_ids` and `processed_outputs`.
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
//!
//! Moved marks are numbered after any already in the new tables (a file
//! that an older router opened again after a newer one), so no entry is
//! overwritten, and an id in both is found at its newer entry. There is no
//! way back: an older router opening the file afterwards finds no processed
//! marks.

use super::outbox::Append;
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

/// Moves every earlier layout's marks into the new tables, oldest first,
/// and drops the old tables; nothing to do in a file made since.
pub(super) fn migrate_marks(txn: &WriteTransaction) -> anyhow::Result<()> {
    let tables: Vec<String> = txn.list_tables()?.map(|t| t.name().to_string()).collect();
    let has = |table: &str| tables.iter().any(|t| t == table);
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
    drop(to);
    if outbox {
        txn.delete_table(OLD_OUTBOX)?;
    }
    if first {
        txn.delete_table(OLD_PROCESSED)?;
        txn.delete_table(OLD_ORDER)?;
    }
    tracing::info!("state: moved {moved} processed marks to processed_ids and processed_outputs");
    Ok(())
}
