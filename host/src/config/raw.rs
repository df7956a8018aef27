//! The file as written: what `router.toml` deserializes into before it is
//! checked and resolved.

use super::{AdminConfig, Isolation, KafkaConfig, StateConfig};
use crate::envelope::EnvelopeKind;
use serde::Deserialize;

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    #[serde(default)]
    pub(super) kafka: KafkaConfig,
    #[serde(default)]
    pub(super) admin: AdminConfig,
    #[serde(default)]
    pub(super) state: StateConfig,
    #[serde(default)]
    pub(super) defaults: RawDefaults,
    #[serde(default)]
    pub(super) max_hops: Option<u32>,
    #[serde(default, rename = "plugin")]
    pub(super) plugins: Vec<RawPlugin>,
}

/// Defaults that apply to every plugin.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub(super) timeout_ms: Option<u64>,
    pub(super) memory_mib: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSubscribe {
    #[serde(default)]
    pub(super) types: Vec<String>,
    #[serde(default)]
    pub(super) topics: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPlugin {
    pub(super) name: String,
    pub(super) wasm: PathBuf,
    #[serde(default)]
    pub(super) fixtures: Option<PathBuf>,
    #[serde(default)]
    pub(super) subscribe: RawSubscribe,
    #[serde(default)]
    pub(super) emits: Vec<String>,
    #[serde(default)]
    pub(super) topics: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) key_field: Option<String>,
    #[serde(default)]
    pub(super) input_key_field: Option<String>,
    #[serde(default)]
    pub(super) envelope: Option<EnvelopeKind>,
    #[serde(default)]
    pub(super) lift: Option<Vec<String>>,
    #[serde(default)]
    pub(super) source: Option<String>,
    #[serde(default)]
    pub(super) timeout_ms: Option<u64>,
    #[serde(default)]
    pub(super) memory_mib: Option<u64>,
    #[serde(default)]
    pub(super) isolation: Isolation,
    #[serde(default)]
    pub(super) schemas: Option<PathBuf>,
    #[serde(default)]
    pub(super) sources: Option<PathBuf>,
    #[serde(default)]
    pub(super) build: Option<String>,
    #[serde(default)]
    pub(super) config: toml::Table,
}
