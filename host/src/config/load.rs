//! Reading `router.toml`: parse strictly, check, and resolve paths,
//! defaults and globs, with one-line errors naming the file and the fix.

use super::raw::RawConfig;
use super::*;
use std::path::Path;

impl RouterConfig {
    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            path: shown.clone(),
            line: None,
            message: format!("cannot read the config ({e}); pass an existing router.toml"),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and resolves config text; relative paths resolve against `path`'s folder.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let fail = |line: Option<usize>, message: String| ConfigError {
            path: shown.clone(),
            line,
            message,
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
            fail(
                line,
                format!(
                    "{}; fix this entry (see the `config` module docs for every field)",
                    e.message().trim()
                ),
            )
        })?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let line_of = |name: &str| {
            let needle = format!("\"{name}\"");
            text.lines()
                .position(|l| l.contains("name") && l.contains(&needle))
                .map(|i| i + 1)
        };
        let default_timeout = raw.defaults.timeout_ms.unwrap_or(1000);
        let default_memory = raw.defaults.memory_mib.unwrap_or(64);
        let mut plugins: Vec<PluginSpec> = Vec::new();
        for p in raw.plugins {
            let line = line_of(&p.name);
            let bad = |m: String| fail(line, format!("plugin `{}`: {m}", p.name));
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(bad(
                    "`name` must be non-empty letters, digits, `-` or `_`".into()
                ));
            }
            if plugins.iter().any(|q| q.name == p.name) {
                return Err(bad(
                    "a plugin of this name is already defined; give each plugin a unique `name`"
                        .into(),
                ));
            }
            if p.subscribe.types.is_empty() && p.subscribe.topics.is_empty() {
                return Err(bad(
                    "subscribes to nothing; set `subscribe.types` or `subscribe.topics`".into(),
                ));
            }
            let timeout_ms = p.timeout_ms.unwrap_or(default_timeout);
            if timeout_ms == 0 || timeout_ms > 60_000 {
                return Err(bad(format!(
                    "`timeout_ms = {timeout_ms}` is out of range; use 1 to 60000"
                )));
            }
            let memory_mib = p.memory_mib.unwrap_or(default_memory);
            if memory_mib == 0 || memory_mib > 512 {
                return Err(bad(format!(
                    "`memory_mib = {memory_mib}` is out of range; use 1 to 512"
                )));
            }
            let matcher = |patterns: &[String], field: &str| {
                Matcher::new(patterns).map_err(|m| bad(format!("`{field}`: {m}")))
            };
            let config = serde_json::to_value(&p.config)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default();
            plugins.push(PluginSpec {
                wasm: base.join(&p.wasm),
                fixtures: p.fixtures.as_ref().map(|f| base.join(f)),
                types: matcher(&p.subscribe.types, "subscribe.types")?,
                topics: matcher(&p.subscribe.topics, "subscribe.topics")?,
                emits: matcher(&p.emits, "emits")?,
                topic_map: p.topics,
                key_field: p.key_field,
                input_key_field: p.input_key_field,
                envelope: p.envelope,
                lift: p.lift,
                source: p.source.unwrap_or_else(|| format!("switchyard/{}", p.name)),
                limits: Limits {
                    timeout: Duration::from_millis(timeout_ms),
                    memory_bytes: (memory_mib as usize) << 20,
                },
                isolation: p.isolation,
                config: Arc::new(config),
                schemas: match &p.schemas {
                    None => None,
                    Some(dir) => Some(Arc::new(Schemas::load(&base.join(dir)).map_err(&bad)?)),
                },
                build: match (p.sources.as_ref().map(|d| base.join(d)), p.build.clone()) {
                    (Some(dir), _) if !dir.is_dir() => {
                        return Err(bad(format!(
                            "`sources`: {} is not a folder; point it at the plugin's source folder",
                            dir.display()
                        )));
                    }
                    (None, None) => None,
                    (dir, Some(command)) => Some(Build {
                        dir: dir.unwrap_or_else(|| base.to_path_buf()),
                        command,
                    }),
                    (Some(dir), None) => match Build::detect(&dir).map(Build::default_command_for) {
                        Some(command) => Some(Build {
                            dir,
                            command: command.into(),
                        }),
                        None => {
                            return Err(bad(format!(
                                "`sources = {:?}` holds no Cargo.toml, app.py or app.js, so there is no default build; set `build = \"...\"`",
                                p.sources.as_ref().map(|d| d.display().to_string()).unwrap_or_default()
                            )));
                        }
                    },
                },
                name: p.name,
            });
        }
        if plugins.is_empty() {
            return Err(fail(
                None,
                "no plugins; add a `[[plugin]]` table with `name`, `wasm` and `subscribe`".into(),
            ));
        }
        let mut excluded: Vec<String> = ALWAYS_EXCLUDED.map(String::from).to_vec();
        excluded.extend(
            raw.kafka
                .exclude
                .iter()
                .filter(|p| !ALWAYS_EXCLUDED.contains(&p.as_str()))
                .cloned(),
        );
        let exclude =
            Matcher::new(&excluded).map_err(|m| fail(None, format!("`kafka.exclude`: {m}")))?;
        if raw.kafka.partitions < 1 || raw.kafka.topic_partitions.values().any(|p| *p < 1) {
            return Err(fail(None, "`kafka.partitions` must be at least 1".into()));
        }
        if !(1..=65536).contains(&raw.state.cache_mib) {
            return Err(fail(
                None,
                "`state.cache_mib` must be 1 to 65536 (MiB of the redb store's file kept in memory)"
                    .into(),
            ));
        }
        let k = &raw.kafka;
        if k.guarantee == Guarantee::ExactlyOnce
            && (k.transaction_interval_ms == 0
                || k.transaction_timeout_ms < 1000
                || k.transaction_timeout_ms <= k.transaction_interval_ms)
        {
            return Err(fail(
                None,
                "`kafka.transaction_timeout_ms` must be at least 1000 and above \
                 `kafka.transaction_interval_ms`, which must be above 0"
                    .into(),
            ));
        }
        Ok(RouterConfig {
            path: path.to_path_buf(),
            kafka: raw.kafka,
            admin: raw.admin,
            state: raw.state,
            exclude,
            max_hops: raw.max_hops.unwrap_or(8),
            plugins,
        })
    }

    /// The input topics the config names literally: subscribed topics, and
    /// subscribed types without wildcards (the catalogs name topics after
    /// types).
    pub(crate) fn input_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.topics.patterns().iter().chain(p.types.patterns()))
            .filter(|t| !t.contains(['*', '?', '[', '{']))
            .cloned()
            .collect();
        topics.sort();
        topics.dedup();
        topics
    }

    /// The plugin named `name`.
    pub fn plugin(&self, name: &str) -> Option<&PluginSpec> {
        self.plugins.iter().find(|p| p.name == name)
    }

    /// The topics the router produces to that it can name up front: every
    /// mapped topic, and the topic of every literal (glob-free) emit type.
    pub(crate) fn output_topics(&self) -> Vec<String> {
        let mut topics: Vec<String> = Vec::new();
        for p in &self.plugins {
            topics.extend(p.topic_map.values().cloned());
            for ty in p.emits.patterns() {
                if !ty.contains(['*', '?', '[', '{']) {
                    topics.push(p.topic_for(ty));
                }
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }

    /// Every topic the router creates at startup when missing: the outputs,
    /// the literal subscribed topics and `kafka.create`.
    pub fn topics_to_create(&self) -> Vec<String> {
        let mut topics = self.output_topics();
        topics.extend(self.kafka.create.iter().cloned());
        for p in &self.plugins {
            let literal = |t: &&String| !t.contains(['*', '?', '[', '{']);
            topics.extend(p.topics.patterns().iter().filter(literal).cloned());
        }
        topics.sort();
        topics.dedup();
        topics
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RouterConfig, ConfigError> {
        RouterConfig::parse(text, Path::new("ex/router.toml"))
    }

    #[test]
    fn resolves_paths_defaults_and_globs() {
        let c = parse(
            r#"
            [defaults]
            timeout_ms = 250
            [[plugin]]
            name = "payment"
            wasm = "p.wasm"
            subscribe.types = ["booking.booking.*"]
            emits = ["payment.*"]
            topics = { "payment.payment.failed" = "failures" }
            [plugin.config]
            limit = 5
            "#,
        )
        .unwrap();
        let p = &c.plugins[0];
        assert_eq!(p.wasm, Path::new("ex/p.wasm"));
        assert_eq!(p.limits.timeout, Duration::from_millis(250));
        assert_eq!(p.limits.memory_bytes, 64 << 20);
        assert!(p.subscribes("booking.booking.created", "x"));
        assert!(!p.subscribes("payment.payment.succeeded", "x"));
        assert!(p.emits.matches("payment.payment.succeeded"));
        assert_eq!(p.topic_for("payment.payment.failed"), "failures");
        assert_eq!(
            p.topic_for("payment.payment.succeeded"),
            "payment.payment.succeeded"
        );
        assert_eq!(p.config["limit"], 5);
        assert_eq!(p.source, "switchyard/payment");
    }

    #[test]
    fn the_state_cache_is_32_mib_unless_set_and_refused_outside_its_range() {
        let plugin = "[[plugin]]\nname = \"a\"\nwasm = \"a.wasm\"\nsubscribe.types = [\"x\"]\n";
        assert_eq!(parse(plugin).unwrap().state.cache_mib, 32);
        let set = parse(&format!("[state]\ncache_mib = 256\n{plugin}")).unwrap();
        assert_eq!(set.state.cache_mib, 256);
        for bad in [0, 65537] {
            let e = parse(&format!("[state]\ncache_mib = {bad}\n{plugin}"))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with("ex/router.toml"), "{e}");
            assert!(e.contains("`state.cache_mib` must be 1 to 65536"), "{e}");
            assert!(!e.contains('\n'), "{e}");
        }
    }

    #[test]
    fn errors_are_one_line_with_file_line_and_fix() {
        let e = parse("[[plugin]]\nname = \"a\"\nwasm = \"a.wasm\"\nsubscribe.types = [\"x\"]\ntimout_ms = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ex/router.toml:"), "{e}");
        assert!(e.contains("timout_ms"), "{e}");
        assert!(!e.contains('\n'), "{e}");

        let e = parse("[[plugin]]\nname = \"a\"\nwasm = \"a.wasm\"\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ex/router.toml:2: plugin `a`: subscribes to nothing; set `subscribe.types` or `subscribe.topics`"
        );
    }
}
