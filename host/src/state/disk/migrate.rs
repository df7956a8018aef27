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

use super::{IDS, OUTPUTS, next_seq};
use redb::{ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction};
use std::collections::HashMap;

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

/// The new tables, written in order of each plugin's sequence.
struct Append<'t> {
    ids: Table<'t, (&'static str, u64), &'static str>,
    outputs: Table<'t, (&'static str, u64), &'static [u8]>,
    next: HashMap<String, u64>,
    moved: u64,
}

impl Append<'_> {
    fn push(&mut self, plugin: &str, id: &str, outputs: &[u8]) -> anyhow::Result<()> {
        let seq = match self.next.get_mut(plugin) {
            Some(seq) => seq,
            None => self
                .next
                .entry(plugin.to_string())
                .or_insert(next_seq(&self.ids, plugin)?),
        };
        self.ids.insert((plugin, *seq), id)?;
        self.outputs.insert((plugin, *seq), outputs)?;
        *seq += 1;
        self.moved += 1;
        Ok(())
    }
}

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
    let mut to = Append {
        ids: txn.open_table(IDS)?,
        outputs: txn.open_table(OUTPUTS)?,
        next: HashMap::new(),
        moved: 0,
    };
    if outbox {
        for entry in txn.open_table(OLD_OUTBOX)?.iter()? {
            let (key, value) = entry?;
            let (id, outputs) = value.value();
            to.push(key.value().0, id, outputs)?;
        }
    }
    if first {
        let processed = txn.open_table(OLD_PROCESSED)?;
        for entry in txn.open_table(OLD_ORDER)?.iter()? {
            let (key, id) = entry?;
            let (plugin, id) = (key.value().0, id.value());
            if let Some(outputs) = processed.get(super::join(plugin, id).as_str())? {
                to.push(plugin, id, outputs.value())?;
            }
        }
    }
    let moved = to.moved;
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
