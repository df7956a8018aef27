//! Glob patterns for topics and event types.

use globset::{Glob, GlobSet, GlobSetBuilder};

/// The topics the router never consumes, whatever `kafka.exclude` says.
pub const ALWAYS_EXCLUDED: [&str; 2] = ["*.dlq", "__*"];

/// A set of glob patterns (`*` matches anything, dots included).
///
/// The router matches every record against a few of these (the excluded
/// topics, each plugin's types and topics, each emit's type). Patterns whose
/// only wildcard is a single `*` (`booking.*`, `*.dlq`, or none at all, as
/// most are) are matched here, by comparing text; the others (`?`, `[...]`,
/// `{...}`, `**`, escapes) by `globset`, which prepares each text it matches
/// as a path first: 0.8% of the router's CPU when it matched every pattern
/// (BENCHMARKS.md, item 21).
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<String>,
    /// The patterns matched here: only `*` as a wildcard.
    simple: Vec<String>,
    /// The others, if any.
    set: Option<GlobSet>,
}

impl Matcher {
    /// Compiles `patterns`.
    pub(crate) fn new(patterns: &[String]) -> Result<Self, String> {
        let mut builder = GlobSetBuilder::new();
        let mut simple = Vec::new();
        for p in patterns {
            let glob = Glob::new(p).map_err(|e| format!("bad pattern `{p}`: {e}"))?;
            if is_simple(p) {
                simple.push(p.clone());
            } else {
                builder.add(glob);
            }
        }
        let set = if simple.len() < patterns.len() {
            Some(builder.build().map_err(|e| e.to_string())?)
        } else {
            None
        };
        Ok(Matcher {
            patterns: patterns.to_vec(),
            simple,
            set,
        })
    }

    /// Whether any pattern matches `text`.
    pub(crate) fn matches(&self, text: &str) -> bool {
        self.simple.iter().any(|p| star_match(p, text))
            || self.set.as_ref().is_some_and(|set| set.is_match(text))
    }

    /// The patterns as written.
    pub(crate) fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

/// Whether `pattern`'s only wildcards are single `*`s.
fn is_simple(pattern: &str) -> bool {
    !pattern.contains("**") && !pattern.contains(['?', '[', ']', '{', '}', '\\'])
}

/// Whether `text` matches `pattern`, in which `*` stands for any text and
/// everything else for itself.
fn star_match(pattern: &str, text: &str) -> bool {
    let Some((head, tail)) = pattern.split_once('*') else {
        return pattern == text;
    };
    let Some(mut rest) = text.strip_prefix(head) else {
        return false;
    };
    let mut parts = tail.split('*').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            // The last part ends the text.
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_patterns_match_as_globset_matches_them() {
        let patterns = [
            "booking.booking.created",
            "booking.*",
            "*.dlq",
            "__*",
            "*",
            "a*a",
            "a*b*c",
            "*.*.created",
            "pay*ment*",
            "",
        ];
        let texts = [
            "booking.booking.created",
            "booking.",
            "booking",
            "orders.dlq",
            "orders.dlq.retry",
            ".dlq",
            "dlq",
            "__consumer_offsets",
            "_x",
            "a",
            "aa",
            "aba",
            "aab",
            "abc",
            "acb",
            "abbcc",
            "x.y.created",
            "x.created",
            "payment",
            "paymentment",
            "pament",
            "",
        ];
        for p in patterns {
            let set = GlobSetBuilder::new()
                .add(Glob::new(p).unwrap())
                .build()
                .unwrap();
            assert!(is_simple(p), "{p}");
            for t in texts {
                assert_eq!(star_match(p, t), set.is_match(t), "{p:?} on {t:?}");
            }
        }
    }

    #[test]
    fn other_globs_still_match() {
        let patterns = ["audit.[ab]?".to_string(), "orders.*".to_string()];
        let m = Matcher::new(&patterns).unwrap();
        assert!(m.matches("audit.ax") && m.matches("orders.placed"));
        assert!(!m.matches("audit.cx") && !m.matches("audit.a"));
        assert!(Matcher::new(&["a[".to_string()]).is_err());
    }
}
