//! The on-disk cache of compiled components.
//!
//! An entry is keyed by the SHA-256 of the wasm bytes plus the engine's
//! compatibility hash (wasmtime version, target and settings), so a restart
//! reuses compiled code and an engine upgrade never loads stale code.
//! Entries are written to a temporary file and renamed into place, so a crash
//! never leaves a torn entry behind.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// A directory of serialized components.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`.
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        CompileCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
        }
    }

    fn path(&self, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{content_hash}-{}.cwasm", self.engine_hash))
    }

    /// Loads the compiled component for `content_hash`, if cached and usable.
    pub(crate) fn load(
        &self,
        engine: &wasmtime::Engine,
        content_hash: &str,
    ) -> Option<wasmtime::component::Component> {
        let path = self.path(content_hash);
        if !path.exists() {
            return None;
        }
        // SAFETY: the file lives in the host's own cache directory and was
        // written by `store` below from a component this engine compiled; the
        // name carries the engine's compatibility hash, and wasmtime checks
        // the header again and rejects a mismatch.
        match unsafe { wasmtime::component::Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), "ignoring unusable compile cache entry: {e}");
                None
            }
        }
    }

    /// Stores a compiled component; failures only cost a recompile later.
    pub(crate) fn store(&self, content_hash: &str, component: &wasmtime::component::Component) {
        if let Err(e) = self.try_store(content_hash, component) {
            tracing::warn!(dir = %self.dir.display(), "could not write compile cache: {e:#}");
        }
    }

    fn try_store(
        &self,
        content_hash: &str,
        component: &wasmtime::component::Component,
    ) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let bytes = component.serialize()?;
        let path = self.path(content_hash);
        let tmp = tmp_path(&path);
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}
