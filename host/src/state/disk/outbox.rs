//! The outbox's two tables, `processed_ids` and `processed_output_chunks`,
//! keyed by (plugin, sequence): appending a plugin's next entries in a write
//! transaction, and opening both for reading.

use super::chunk::Builder;
use super::marks::{self, Change, MarkIndex, Processed};
use super::{IDS, OUTPUTS};
use redb::{Database, ReadableDatabase, ReadableTable, Table};
use std::collections::HashMap;
use std::ops::Range;

/// The outbox's tables in a write transaction.
pub(super) type WriteOutbox<'t> = Processed<
    Table<'t, (&'static str, u64), &'static str>,
    Table<'t, (&'static str, u64), &'static [u8]>,
>;

/// The sequence number `plugin`'s next processed event takes: one past its
/// newest entry in `ids`.
fn next_seq(
    ids: &impl ReadableTable<(&'static str, u64), &'static str>,
    plugin: &str,
) -> anyhow::Result<u64> {
    Ok(ids
        .range((plugin, 0)..=(plugin, u64::MAX))?
        .next_back()
        .transpose()?
        .map_or(0, |(k, _)| k.value().1 + 1))
}

/// Appends to the outbox in a write transaction, numbering each plugin's
/// entries on from its newest. The outputs are gathered into chunks and
/// written by [`Append::finish`], which must be called before the
/// transaction commits.
pub(super) struct Append<'t> {
    pub(super) tables: WriteOutbox<'t>,
    /// The next sequence number of each plugin seen so far.
    next: HashMap<String, u64>,
    /// Each plugin's chunk of outputs being gathered.
    pending: Vec<(String, Builder)>,
}

impl<'t> Append<'t> {
    pub(super) fn open(txn: &'t redb::WriteTransaction) -> anyhow::Result<Self> {
        Ok(Append {
            tables: Processed {
                ids: txn.open_table(IDS)?,
                outputs: txn.open_table(OUTPUTS)?,
            },
            next: HashMap::new(),
            pending: Vec::new(),
        })
    }

    /// Appends `event_id` and its `outputs` as `plugin`'s next entry;
    /// returns its sequence number.
    pub(super) fn push(
        &mut self,
        plugin: &str,
        event_id: &str,
        outputs: &[u8],
    ) -> anyhow::Result<u64> {
        let next = match self.next.get_mut(plugin) {
            Some(next) => next,
            None => {
                let first = next_seq(&self.tables.ids, plugin)?;
                self.next.entry(plugin.to_string()).or_insert(first)
            }
        };
        let seq = *next;
        self.tables.ids.insert((plugin, seq), event_id)?;
        *next += 1;
        let at = match self.pending.iter().position(|(p, _)| p == plugin) {
            Some(at) => at,
            None => {
                self.pending.push((plugin.to_string(), Builder::new(seq)));
                self.pending.len() - 1
            }
        };
        let chunk = &mut self.pending[at].1;
        if !chunk.fits(outputs.len()) {
            let full = std::mem::replace(chunk, Builder::new(seq));
            write(&mut self.tables.outputs, plugin, &full)?;
        }
        let chunk = &mut self.pending[at].1;
        debug_assert_eq!(chunk.next(), seq, "a chunk's entries are consecutive");
        chunk.push(outputs)?;
        Ok(seq)
    }

    /// Writes the chunks gathered so far.
    pub(super) fn finish(&mut self) -> anyhow::Result<()> {
        for (plugin, chunk) in self.pending.drain(..) {
            write(&mut self.tables.outputs, &plugin, &chunk)?;
        }
        Ok(())
    }
}

impl Drop for Append<'_> {
    fn drop(&mut self) {
        debug_assert!(
            self.pending.iter().all(|(_, chunk)| chunk.is_empty()) || std::thread::panicking(),
            "outputs appended to the outbox and never written: call Append::finish"
        );
    }
}

/// Writes `chunk` of `plugin`'s outputs, unless it is empty.
pub(super) fn write(
    outputs: &mut Table<'_, (&'static str, u64), &'static [u8]>,
    plugin: &str,
    chunk: &Builder,
) -> anyhow::Result<()> {
    if !chunk.is_empty() {
        outputs.insert((plugin, chunk.first), chunk.encode().as_slice())?;
    }
    Ok(())
}

/// The first sequence of the chunk of `plugin`'s outputs that holds `seq`,
/// if any does.
fn chunk_holding(
    outputs: &impl ReadableTable<(&'static str, u64), &'static [u8]>,
    plugin: &str,
    seq: u64,
) -> anyhow::Result<Option<u64>> {
    Ok(outputs
        .range((plugin, 0)..=(plugin, seq))?
        .next_back()
        .transpose()?
        .map(|(k, _)| k.value().1))
}

/// Deletes `plugin`'s chunks of outputs wholly before `end`: the chunk
/// holding `end` stays, with the older entries it also holds, until a
/// later prune passes it (a lookup goes through `processed_ids` first, so
/// they are never answered).
fn prune_chunks(
    outputs: &mut Table<'_, (&'static str, u64), &'static [u8]>,
    plugin: &str,
    end: u64,
) -> anyhow::Result<()> {
    if let Some(first) = chunk_holding(outputs, plugin, end)? {
        outputs.retain_in((plugin, 0)..(plugin, first), |_, _| false)?;
    }
    Ok(())
}

impl Append<'_> {
    /// Deletes `plugin`'s entries in `seqs`, the oldest of its window, and
    /// records each id's removal in `changes`. One range delete rewrites each
    /// leaf page once, where deleting an entry at a time rewrote the page
    /// holding it for every entry (BENCHMARKS.md, item 21). Writes the
    /// chunks gathered so far first, so that the outputs are pruned with
    /// their ids even when a commit appends more than the window.
    pub(super) fn prune<'p>(
        &mut self,
        plugin: &'p str,
        seqs: Range<u64>,
        index: &MarkIndex,
        changes: &mut Vec<Change<'p>>,
    ) -> anyhow::Result<()> {
        let range = (plugin, seqs.start)..(plugin, seqs.end);
        for entry in self.tables.ids.range(range.clone())? {
            let (key, id) = entry?;
            changes.push(Change {
                plugin,
                hash: index.hash(id.value()),
                seq: key.value().1,
                added: false,
            });
        }
        self.finish()?;
        self.tables.ids.retain_in(range, |_, _| false)?;
        prune_chunks(&mut self.tables.outputs, plugin, seqs.end)
    }
}

/// The outbox's tables in one read transaction.
pub(super) fn read_outbox(db: &Database) -> anyhow::Result<impl marks::Outbox> {
    let txn = db.begin_read()?;
    Ok(Processed {
        ids: txn.open_table(IDS)?,
        outputs: txn.open_table(OUTPUTS)?,
    })
}

/// Deletes each plugin's entries older than its newest `keep`, so that a
/// window made smaller since the file was written (a lower
/// `keep_processed`) shrinks when the store opens. A commit deletes only
/// the entries its own appends push out of the window, so without this
/// the entries between the old and the new window's ends stayed for good.
pub(super) fn trim(txn: &redb::WriteTransaction, keep: u64) -> anyhow::Result<()> {
    use std::ops::Bound::{Excluded, Unbounded};
    let mut ids = txn.open_table(IDS)?;
    let mut outputs = txn.open_table(OUTPUTS)?;
    let mut plugins = Vec::new();
    let mut next = ids.first()?.map(|(k, _)| k.value().0.to_string());
    while let Some(plugin) = next {
        let p = plugin.as_str();
        next = ids
            .range::<(&str, u64)>((Excluded((p, u64::MAX)), Unbounded))?
            .next()
            .transpose()?
            .map(|(k, _)| k.value().0.to_string());
        plugins.push(plugin);
    }
    for plugin in &plugins {
        let end = next_seq(&ids, plugin)?.saturating_sub(keep);
        if end > 0 {
            ids.retain_in((plugin.as_str(), 0)..(plugin.as_str(), end), |_, _| false)?;
            prune_chunks(&mut outputs, plugin, end)?;
        }
    }
    Ok(())
}
