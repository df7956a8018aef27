//! The on-disk cache of compiled components.
//!
//! An entry is keyed by the SHA-256 of the wasm bytes plus the engine's
//! compatibility hash (wasmtime version, target and settings), so a restart
//! reuses compiled code and an engine upgrade never loads stale code.
//! Entries are written to a temporary file with an unpredictable name
//! (created exclusively) and renamed into place, so a crash never leaves a
//! torn entry behind and nobody can plant the file being written.
//!
//! A cached entry is native code the host will run, so the cache trusts its
//! folder only when it is a real folder (not a symbolic link) owned by this
//! user and writable by nobody else; a new folder is created that way
//! (mode 0700). An untrusted folder is not used at all, with a warning naming
//! it and the fix, and every plugin is compiled instead. Entries that are
//! symbolic links or not regular files are ignored. An entry is opened
//! without following links and checked through its open handle before its
//! bytes are read, so a file swapped in between a check and a load is never
//! loaded.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// A directory of serialized components.
#[derive(Debug, Clone)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    engine_hash: String,
    /// Set when the folder cannot be trusted: nothing is read or written.
    disabled: bool,
}

/// Why `dir` cannot be trusted with compiled code, if it cannot.
fn untrusted(dir: &Path) -> Option<String> {
    let meta = match std::fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) => return Some(format!("cannot read it: {e}")),
    };
    if meta.file_type().is_symlink() {
        return Some("it is a symbolic link; point the cache at a real folder".into());
    }
    if !meta.is_dir() {
        return Some("it is not a folder".into());
    }
    if meta.mode() & 0o022 != 0 {
        return Some(format!(
            "other users can write to it (mode {:o}); run `chmod go-w {}`",
            meta.mode() & 0o777,
            dir.display()
        ));
    }
    // /proc/self belongs to this process's user.
    if let Ok(me) = std::fs::metadata("/proc/self")
        && me.uid() != meta.uid()
    {
        return Some(format!(
            "it belongs to another user (uid {}); use a cache folder of your own",
            meta.uid()
        ));
    }
    None
}

/// Reads a cache entry with no window between its check and its read: the
/// file is opened without following a symbolic link, and what is checked
/// (a regular file, owned by this user, writable by nobody else) is the
/// open file itself, whose bytes are then read. `Ok(None)`: no entry.
fn read_entry(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(format!(
                "cannot open it ({e}); a symbolic link is never followed"
            ));
        }
    };
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.file_type().is_file() {
        return Err("it is not a regular file".into());
    }
    // /proc/self belongs to this process's user.
    let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
    if meta.mode() & 0o022 != 0 || Some(meta.uid()) != me {
        return Err("it is writable by others or not this user's".into());
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
    Ok(Some(bytes))
}

impl CompileCache {
    /// A cache in `dir` for components compiled by `engine`; see the module
    /// docs for when it refuses the folder.
    pub(crate) fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        let refused = untrusted(&dir);
        if let Some(why) = &refused {
            tracing::warn!(
                "compile cache {}: not used, {why}; plugins are compiled at every start",
                dir.display()
            );
        }
        CompileCache {
            dir,
            engine_hash: format!("{:016x}", hasher.finish()),
            disabled: refused.is_some(),
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
        if self.disabled {
            return None;
        }
        let path = self.path(content_hash);
        let bytes = match read_entry(&path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(why) => {
                tracing::warn!(path = %path.display(), "ignoring a compile cache entry: {why}");
                return None;
            }
        };
        // SAFETY: the bytes were read from the very file that was checked
        // (opened without following links, then checked through its open
        // handle: a regular file of this user that nobody else can write),
        // in a folder only this user can write (checked in `new`), written
        // by `store` below from a component this engine compiled; the name
        // carries the engine's compatibility hash, and wasmtime checks the
        // header again and rejects a mismatch.
        match unsafe { wasmtime::component::Component::deserialize(engine, &bytes) } {
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
        if self.disabled {
            return Ok(());
        }
        let bytes = component.serialize()?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".entry-")
            .suffix(".tmp")
            .tempfile_in(&self.dir)?;
        tmp.write_all(&bytes)?;
        tmp.persist(self.path(content_hash))?;
        Ok(())
    }
}

/// Wasmtime's incremental compilation cache: compiled functions keyed by
/// their body and settings, one file each, in a folder trusted as above.
///
/// Python and JavaScript components embed the same interpreter build after
/// build, and only their data (the snapshot of the handler's module)
/// changes, so a rebuilt component's functions are nearly all found here and
/// it compiles in seconds instead of the tens of seconds a cold compile of
/// an interpreter takes. Entries are written like the component cache's.
#[derive(Debug)]
pub(crate) struct FunctionCache {
    dir: PathBuf,
}

impl FunctionCache {
    /// A function cache in `dir`, or `None` (with a warning) when the folder
    /// cannot be trusted.
    pub(crate) fn new(dir: PathBuf) -> Option<Self> {
        let _ = std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir);
        match untrusted(&dir) {
            Some(why) => {
                tracing::warn!("function cache {}: not used, {why}", dir.display());
                None
            }
            None => Some(FunctionCache { dir }),
        }
    }

    fn path(&self, key: &[u8]) -> PathBuf {
        use sha2::Digest;
        self.dir.join(hex::encode(sha2::Sha256::digest(key)))
    }
}

impl wasmtime::CacheStore for FunctionCache {
    fn get(&self, key: &[u8]) -> Option<std::borrow::Cow<'_, [u8]>> {
        read_entry(&self.path(key))
            .ok()
            .flatten()
            .map(std::borrow::Cow::Owned)
    }

    fn insert(&self, key: &[u8], value: Vec<u8>) -> bool {
        let write = || -> std::io::Result<()> {
            let mut tmp = tempfile::Builder::new()
                .prefix(".entry-")
                .suffix(".tmp")
                .tempfile_in(&self.dir)?;
            tmp.write_all(&value)?;
            tmp.persist(self.path(key)).map_err(|e| e.error)?;
            Ok(())
        };
        write().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_folder_others_can_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(untrusted(dir.path()), None);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(untrusted(dir.path()).unwrap().contains("chmod go-w"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(std::env::temp_dir(), &link).unwrap();
        assert!(untrusted(&link).unwrap().contains("symbolic link"));
        let engine = wasmtime::Engine::default();
        let cache = CompileCache::new(dir.path().to_path_buf(), &engine);
        assert!(cache.disabled);
    }

    #[test]
    fn an_entry_is_read_only_when_the_open_file_itself_passes() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("entry");
        assert_eq!(read_entry(&entry), Ok(None));
        std::fs::write(&entry, b"compiled").unwrap();
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_entry(&entry), Ok(Some(b"compiled".to_vec())));
        // A link planted under an entry's name is never followed.
        let link = dir.path().join("planted");
        std::os::unix::fs::symlink(&entry, &link).unwrap();
        assert!(read_entry(&link).unwrap_err().contains("symbolic link"));
        std::fs::set_permissions(&entry, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(
            read_entry(&entry)
                .unwrap_err()
                .contains("writable by others")
        );
        let fifo = dir.path().join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(
            read_entry(&fifo)
                .unwrap_err()
                .contains("not a regular file")
        );
    }
}
