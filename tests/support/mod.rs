//! Shared helpers for the end-to-end tests: building guest components and
//! locating the repository.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// Builds a wasm workspace (`plugins` or `tests/guests`) for wasm32-wasip2 in
/// release mode, once per test process, and returns its output folder.
pub fn build_wasm(workspace: &str) -> PathBuf {
    static PLUGINS: OnceLock<PathBuf> = OnceLock::new();
    static GUESTS: OnceLock<PathBuf> = OnceLock::new();
    let cell = if workspace == "plugins" {
        &PLUGINS
    } else {
        &GUESTS
    };
    cell.get_or_init(|| {
        let dir = root().join(workspace);
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--release",
                "--target",
                "wasm32-wasip2",
                "--manifest-path",
            ])
            .arg(dir.join("Cargo.toml"))
            .env_remove("CARGO_TARGET_DIR")
            .status()
            .expect("cargo runs");
        assert!(
            status.success(),
            "building {workspace} for wasm32-wasip2 failed; run scripts/setup.sh"
        );
        dir.join("target/wasm32-wasip2/release")
    })
    .clone()
}

/// A built guest from `tests/guests`.
pub fn guest(name: &str) -> PathBuf {
    build_wasm("tests/guests").join(format!("{name}.wasm"))
}

/// The `switchyard` binary under test, with its own compile cache.
pub fn switchyard(cache: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.env("SWITCHYARD_CACHE_DIR", cache).current_dir(root());
    cmd
}

pub mod apache;
pub mod e2e;
pub mod http;
pub mod kafka;
pub mod postgres;
pub mod workload;

/// Loads `url` in headless Chromium (Debian's `chromium`, installed by
/// `scripts/setup.sh --test`), lets its scripts run for 6 s of virtual time,
/// and returns its standard output (the DOM with `--dump-dom`).
pub fn chromium(url: &str, extra: &[&str]) -> String {
    let chromium =
        kafka::which("chromium").expect("chromium is not installed; run scripts/setup.sh --test");
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--virtual-time-budget=6000",
        ])
        .args(extra)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}
pub mod outage;

/// Writes `dir/router.toml` with the one `echo` guest, subscribed as
/// `subscribe` says (TOML lines, such as `subscribe.types = ["o.*"]`),
/// emitting `echo.*`; returns its path.
pub fn echo_config(dir: &Path, subscribe: &str) -> PathBuf {
    let config = dir.join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[[plugin]]\nname = \"echo\"\nwasm = \"{}\"\n{subscribe}\nemits = [\"echo.*\"]\n",
            guest("echo").display()
        ),
    )
    .unwrap();
    config
}
