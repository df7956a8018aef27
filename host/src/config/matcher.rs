//! Glob patterns for topics and event types.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// The topics the router never consumes, whatever `kafka.exclude` says.
pub const ALWAYS_EXCLUDED: [&str; 2] = ["*.dlq", "__*"];

/// A set of glob patterns (`*` matches anything, dots included).
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<String>,
    set: GlobSet,
}

impl Matcher {
    /// Compiles `patterns`.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        for p in patterns {
            builder.add(Glob::new(p).map_err(|e| format!("bad pattern `{p}`: {e}"))?);
        }
        Ok(Matcher {
            patterns: patterns.to_vec(),
            set: builder.build().map_err(|e| e.to_string())?,
        })
    }

    /// Whether any pattern matches `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.set.is_match(text)
    }

    /// The patterns as written.
    pub(crate) fn patterns(&self) -> &[String] {
        &self.patterns
    }
}
