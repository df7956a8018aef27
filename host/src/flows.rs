//! What actually flowed, for the status page's routing map and charts:
//! records per edge (input topic → plugin → output topic, and into the
//! dead-letter topics), and per-plugin calls, errors and dead letters over
//! the last minutes, sampled in memory.
//!
//! Node names are prefixed: `topic:<name>` and `plugin:<name>`.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// How many samples the history keeps (with [`SAMPLE_EVERY`], 5 minutes).
pub(crate) const HISTORY: usize = 60;

/// How often the history is sampled.
pub(crate) const SAMPLE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Counts of one plugin, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    /// Calls that ran.
    pub(crate) calls: u64,
    /// Calls that failed (each attempt).
    pub(crate) errors: u64,
    /// Records dead-lettered by its failures.
    pub(crate) dead_letters: u64,
}

/// One point of a plugin's chart: what happened in one sample interval.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Point {
    /// The end of the interval, in Unix seconds.
    pub(crate) at: u64,
    /// Calls in the interval.
    pub(crate) calls: u64,
    /// Errors in the interval.
    pub(crate) errors: u64,
    /// Dead letters in the interval.
    pub(crate) dead_letters: u64,
}

/// One edge of the map, with the records that went along it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Edge {
    /// `topic:<name>` or `plugin:<name>`.
    pub(crate) from: String,
    /// `topic:<name>` or `plugin:<name>`.
    pub(crate) to: String,
    /// Records so far.
    pub(crate) count: u64,
    /// Records in the last sample interval, per second.
    pub(crate) rate: f64,
}

/// Records per edge: from node → to node → count.
type EdgeCounts = HashMap<String, HashMap<String, u64>>;

/// A node of the map, as the per-record path names it (no allocation).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Node<'a> {
    /// A topic.
    Topic(&'a str),
    /// A plugin.
    Plugin(&'a str),
}

impl<'a> Node<'a> {
    /// Its prefixed name: `topic:<name>` or `plugin:<name>`.
    fn name(self) -> String {
        let (prefix, name) = self.parts();
        [prefix, name].concat()
    }

    /// Whether `name` is its prefixed name (no allocation).
    fn is(self, name: &str) -> bool {
        let (prefix, own) = self.parts();
        name.strip_prefix(prefix) == Some(own)
    }

    fn parts(self) -> (&'static str, &'a str) {
        match self {
            Node::Topic(name) => ("topic:", name),
            Node::Plugin(name) => ("plugin:", name),
        }
    }
}

/// Counts gathered apart from the shared [`Flows`] (one batch's, on its
/// partition's task) and added to them at once ([`Flows::add`]): a batch
/// takes the lock once, not three times a record. A batch has a handful of
/// distinct edges and plugins, so a list searched in order is enough.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    /// (from, to, records), prefixed names.
    edges: Vec<(String, String, u64)>,
    /// Each plugin's counts.
    plugins: Vec<(String, Counts)>,
}

impl Tally {
    /// Counts one record along `from` → `to`. An edge seen before in this
    /// tally costs a comparison, no allocation.
    pub(crate) fn edge(&mut self, from: Node<'_>, to: Node<'_>) {
        match self
            .edges
            .iter_mut()
            .find(|(f, t, _)| from.is(f) && to.is(t))
        {
            Some((_, _, count)) => *count += 1,
            None => self.edges.push((from.name(), to.name(), 1)),
        }
    }

    /// Counts `counts` of `plugin`'s calls ([`Flows::add`] adds up what is
    /// counted for one plugin more than once).
    pub(crate) fn calls(&mut self, plugin: &str, counts: Counts) {
        self.plugins.push((plugin.to_string(), counts));
    }

    /// Whether it counted nothing.
    pub(crate) fn is_empty(&self) -> bool {
        self.edges.is_empty() && self.plugins.is_empty()
    }
}

fn count_of(edges: &EdgeCounts, from: &str, to: &str) -> u64 {
    edges
        .get(from)
        .and_then(|m| m.get(to))
        .copied()
        .unwrap_or(0)
}

#[derive(Default)]
struct Inner {
    edges: EdgeCounts,
    plugins: BTreeMap<String, Counts>,
    /// Snapshots of (unix seconds, per-plugin counts, per-edge counts).
    samples: VecDeque<Sample>,
}

struct Sample {
    at: u64,
    plugins: BTreeMap<String, Counts>,
    edges: EdgeCounts,
}

/// The flow counters of one router.
#[derive(Default)]
pub struct Flows {
    inner: Mutex<Inner>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Flows {
    /// Adds what `tally` counted, under one lock.
    pub(crate) fn add(&self, tally: &Tally) {
        if tally.is_empty() {
            return;
        }
        let mut inner = self.inner.lock().expect("flows lock");
        for (from, to, count) in &tally.edges {
            match inner
                .edges
                .get_mut(from.as_str())
                .and_then(|m| m.get_mut(to.as_str()))
            {
                Some(n) => *n += count,
                None => {
                    let tos = inner.edges.entry(from.clone()).or_default();
                    *tos.entry(to.clone()).or_default() += count;
                }
            }
        }
        for (plugin, add) in &tally.plugins {
            let counts = match inner.plugins.get_mut(plugin.as_str()) {
                Some(counts) => counts,
                None => inner.plugins.entry(plugin.clone()).or_default(),
            };
            counts.calls += add.calls;
            counts.errors += add.errors;
            counts.dead_letters += add.dead_letters;
        }
    }

    /// Takes a sample for the charts; call every [`SAMPLE_EVERY`].
    pub(crate) fn sample(&self) {
        let mut inner = self.inner.lock().expect("flows lock");
        let sample = Sample {
            at: now(),
            plugins: inner.plugins.clone(),
            edges: inner.edges.clone(),
        };
        inner.samples.push_back(sample);
        while inner.samples.len() > HISTORY + 1 {
            inner.samples.pop_front();
        }
    }

    /// Every edge seen, with its count and its rate over the last interval.
    pub(crate) fn edges(&self) -> Vec<Edge> {
        let inner = self.inner.lock().expect("flows lock");
        let window = inner.samples.len().checked_sub(2).map(|i| {
            let (a, b) = (&inner.samples[i], &inner.samples[i + 1]);
            (a, b, (b.at.saturating_sub(a.at)).max(1) as f64)
        });
        let mut edges: Vec<Edge> = inner
            .edges
            .iter()
            .flat_map(|(from, to)| to.iter().map(move |(to, count)| (from, to, *count)))
            .map(|(from, to, count)| {
                let rate = window.map_or(0.0, |(a, b, secs)| {
                    let (x, y) = (count_of(&a.edges, from, to), count_of(&b.edges, from, to));
                    y.saturating_sub(x) as f64 / secs
                });
                Edge {
                    from: from.clone(),
                    to: to.clone(),
                    count,
                    rate,
                }
            })
            .collect();
        edges.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        edges
    }

    /// Each plugin's cumulative counts.
    pub(crate) fn totals(&self) -> BTreeMap<String, Counts> {
        self.inner.lock().expect("flows lock").plugins.clone()
    }

    /// Each plugin's chart: one point per sample interval, oldest first.
    pub(crate) fn history(&self) -> BTreeMap<String, Vec<Point>> {
        let inner = self.inner.lock().expect("flows lock");
        let mut out: BTreeMap<String, Vec<Point>> = BTreeMap::new();
        for (a, b) in inner.samples.iter().zip(inner.samples.iter().skip(1)) {
            for (plugin, now) in &b.plugins {
                let before = a.plugins.get(plugin).copied().unwrap_or_default();
                out.entry(plugin.clone()).or_default().push(Point {
                    at: b.at,
                    calls: now.calls - before.calls,
                    errors: now.errors - before.errors,
                    dead_letters: now.dead_letters - before.dead_letters,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_and_charts_count_what_flowed() {
        let flows = Flows::default();
        flows.sample();
        let mut tally = Tally::default();
        tally.edge(Node::Topic("a"), Node::Plugin("p"));
        tally.edge(Node::Topic("a"), Node::Plugin("p"));
        tally.edge(Node::Plugin("p"), Node::Topic("b"));
        // The same names on other kinds of node are other edges.
        tally.edge(Node::Plugin("a"), Node::Topic("p"));
        tally.calls(
            "p",
            Counts {
                calls: 1,
                ..Counts::default()
            },
        );
        flows.add(&tally);
        let mut tally = Tally::default();
        tally.edge(Node::Topic("a"), Node::Plugin("p"));
        tally.calls(
            "p",
            Counts {
                calls: 1,
                errors: 1,
                dead_letters: 1,
            },
        );
        flows.add(&tally);
        flows.sample();
        let edges = flows.edges();
        let seen: Vec<_> = edges
            .iter()
            .map(|e| (e.from.as_str(), e.to.as_str(), e.count))
            .collect();
        assert_eq!(
            seen,
            [
                ("plugin:a", "topic:p", 1),
                ("plugin:p", "topic:b", 1),
                ("topic:a", "plugin:p", 3)
            ]
        );
        assert!(edges[2].rate > 0.0);
        let history = flows.history();
        let points = &history["p"];
        assert_eq!(points.len(), 1);
        assert_eq!(
            (points[0].calls, points[0].errors, points[0].dead_letters),
            (2, 1, 1)
        );
        assert_eq!(flows.totals()["p"].errors, 1);
    }
}
