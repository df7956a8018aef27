//! The bound on `topic` label values: the topics plugins consume get a
//! label of their own, every other topic is counted under [`OTHER`].
//!
//! A topic is labelled when the config names it literally (declared at
//! startup), when it matches a plugin's topic or event type globs (the
//! catalogs name topics after event types), or when a record of it failed
//! or was dead-lettered (which happens only to records plugins consume).
//! At most [`MAX_LEARNED_TOPICS`] topics are labelled beyond the declared
//! ones; once a label is given it stays, so a series never moves.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{OnceLock, RwLock};

/// The `topic` label value of every topic that has no label of its own
/// (parentheses are not allowed in Kafka topic names, so no real topic
/// reads like it).
pub(crate) const OTHER: &str = "(other)";

/// The most topics labelled beyond the ones the config names literally.
pub(crate) const MAX_LEARNED_TOPICS: usize = 200;

/// Whether plugins consume a topic, judged from their subscriptions.
pub(super) type Consumes = Box<dyn Fn(&str) -> bool + Send + Sync>;

/// The topics that have a label of their own.
#[derive(Default)]
pub(super) struct TopicLabels {
    labelled: RwLock<Labelled>,
    consumes: OnceLock<Consumes>,
    warned: AtomicBool,
}

#[derive(Default)]
struct Labelled {
    topics: HashSet<String>,
    learned: usize,
}

impl TopicLabels {
    /// Labels `topic` whatever the bound: the config names it.
    pub(super) fn declare(&self, topic: &str) {
        let mut labelled = self.labelled.write().expect("labels lock");
        labelled.topics.insert(topic.to_string());
    }

    /// Judges from now on whether plugins consume a topic by `consumes`
    /// (the first one set stays).
    pub(super) fn consumed_when(&self, consumes: Consumes) {
        let _ = self.consumes.set(consumes);
    }

    /// Labels `topic`, a topic plugins consume, if the bound allows;
    /// whether it is labelled.
    pub(super) fn learn(&self, topic: &str) -> bool {
        if self.labelled(topic) {
            return true;
        }
        let mut labelled = self.labelled.write().expect("labels lock");
        if labelled.topics.contains(topic) {
            return true;
        }
        if labelled.learned >= MAX_LEARNED_TOPICS {
            drop(labelled);
            if !self.warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    "plugins consume more than {MAX_LEARNED_TOPICS} topics besides the ones the \
                     config names; the metrics of the others are counted under topic=\"{OTHER}\""
                );
            }
            return false;
        }
        labelled.learned += 1;
        labelled.topics.insert(topic.to_string());
        true
    }

    /// The label value for a record of `topic`: the topic itself if it has
    /// (or now gets) a label, else [`OTHER`].
    pub(super) fn label<'a>(&self, topic: &'a str) -> &'a str {
        let consumed = || self.consumes.get().is_some_and(|consumes| consumes(topic));
        if self.labelled(topic) || (consumed() && self.learn(topic)) {
            topic
        } else {
            OTHER
        }
    }

    /// The label value for `topic`, which plugins consume (a record of it
    /// failed or was dead-lettered).
    pub(super) fn consumed<'a>(&self, topic: &'a str) -> &'a str {
        if self.learn(topic) { topic } else { OTHER }
    }

    fn labelled(&self, topic: &str) -> bool {
        self.labelled
            .read()
            .expect("labels lock")
            .topics
            .contains(topic)
    }
}
