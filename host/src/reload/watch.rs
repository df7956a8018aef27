//! Watching plugin files, debounced, and reloading them when they change.

use super::Reloader;
use notify::{RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// How long file events must be quiet before a reload. Editors and build
/// tools replace a file by renaming a finished one over it, which is one
/// event; a copy written in pieces that pauses longer than this is refused
/// as unreadable and reloaded again by its next write event.
const DEBOUNCE: Duration = Duration::from_millis(25);

impl Reloader {
    /// Watches every plugin's file and reloads it when it changes, except,
    /// with `skip_built`, the plugins the host builds itself on a save (see
    /// [`crate::rebuild`]): their file is reloaded once its build ends, not
    /// while the build is still writing it. The returned watcher must be
    /// kept alive.
    pub fn watch(self: &Arc<Self>, skip_built: bool) -> anyhow::Result<notify::RecommendedWatcher> {
        let (tx, rx) = mpsc::channel::<PathBuf>();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event
                    && !matches!(event.kind, notify::EventKind::Access(_))
                {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            })?;
        let mut dirs = HashSet::new();
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        for plugin in self.registry.plugins() {
            if skip_built && plugin.spec.build.is_some() {
                continue;
            }
            let file = absolute(&plugin.spec.wasm);
            if let Some(dir) = file.parent()
                && dirs.insert(dir.to_path_buf())
            {
                watcher.watch(dir, RecursiveMode::NonRecursive)?;
            }
            files.push((plugin.spec.name.clone(), file));
        }
        let this = self.clone();
        std::thread::Builder::new()
            .name("switchyard-reload".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut changed = HashSet::from([absolute(&first)]);
                    while let Ok(path) = rx.recv_timeout(DEBOUNCE) {
                        changed.insert(absolute(&path));
                    }
                    for (name, file) in &files {
                        if changed.contains(file) && file.exists() {
                            let _ = this.reload_file(name);
                        }
                    }
                }
            })?;
        Ok(watcher)
    }
}

fn absolute(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    match (
        path.parent().and_then(|d| d.canonicalize().ok()),
        path.file_name(),
    ) {
        (Some(dir), Some(name)) => dir.join(name),
        _ => path,
    }
}
