//! What Switchyard's integration tests (`tests/*.rs`) and its benchmark
//! (`host/examples/bench`) share: the repository's paths and guest builds,
//! brokers ([`Broker`]: the embedded mock cluster, Tansu, Apache Kafka),
//! outside clients ([`Kcat`], [`PyClient`]), a `switchyard run` process
//! ([`Router`]) and its admin API ([`http`]), a throwaway PostgreSQL
//! ([`postgres`]), config builders and workloads ([`workload`]), fixture
//! runs ([`e2e`]), the broker-outage scenario ([`outage`]), and
//! [`eventually`], the one wait.
#![deny(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("tests/kit/ has a grandparent")
        .to_path_buf()
}

/// The `switchyard` binary Cargo built beside the running test
/// (`target/<profile>/deps/<test>`) or example
/// (`target/<profile>/examples/<name>`): `target/<profile>/switchyard`.
/// Cargo builds it for the integration tests; an example needs
/// `cargo build --bin switchyard` first.
pub fn switchyard_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the running program's path");
    let dir = exe.parent().expect("the program is in a folder");
    let profile = match dir.file_name().and_then(|n| n.to_str()) {
        Some("deps" | "examples") => dir.parent().expect("a profile folder"),
        _ => dir,
    };
    profile.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX))
}

/// `wasm` plus a custom section naming variant `n`: the same plugin
/// under another hash, as a rebuild or a new version would be.
pub fn wasm_variant(wasm: &[u8], n: usize) -> Vec<u8> {
    let name = b"switchyard-variant";
    let payload = format!("variant {n}");
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8);
    out.extend(section);
    out
}

/// A free loopback port.
pub fn free_port() -> u16 {
    let [port] = free_ports();
    port
}

/// `N` distinct free loopback ports: each listener is held until all are
/// picked, so the kernel cannot hand the same port out twice (two calls to
/// [`free_port`] in a row once gave Kafka's client and controller
/// listeners the same port).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: [std::net::TcpListener; N] =
        std::array::from_fn(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap());
    listeners.map(|l| l.local_addr().unwrap().port())
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

/// The Python receipt plugin (`plugins/receipt-py`) with `from` replaced
/// by `to` in its source, built with componentize-py (which
/// `scripts/setup.sh --test` installs): a version that behaves differently
/// in one place, for shadow and replay tests. Built once per change, under
/// `plugins/target/variants/`.
pub fn receipt_py_variant(from: &str, to: &str) -> PathBuf {
    let source = std::fs::read_to_string(root().join("plugins/receipt-py/app.py"))
        .expect("plugins/receipt-py/app.py");
    assert!(
        source.contains(from),
        "receipt-py has no `{from}` to change"
    );
    let changed = source.replace(from, to);
    let tag = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        changed.hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let dir = root().join("plugins/target/variants").join(&tag);
    let out = dir.join("receipt-variant.wasm");
    if out.exists() {
        return out;
    }
    let src = dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("app.py"), changed).unwrap();
    let status = Command::new("componentize-py")
        .current_dir(root())
        .args(["-d", "wit", "-w", "handler", "componentize", "-p"])
        .arg(&src)
        .args(["-p", "sdk/python", "app", "-o"])
        .arg(dir.join("partial.wasm"))
        .stdout(std::process::Stdio::null())
        .status()
        .expect("componentize-py runs (scripts/setup.sh --test installs it)");
    assert!(
        status.success(),
        "componentize-py failed on the receipt variant"
    );
    std::fs::rename(dir.join("partial.wasm"), &out).unwrap();
    out
}

/// The `switchyard` binary under test, with its own compile cache.
pub fn switchyard(cache: &Path) -> Command {
    let mut cmd = Command::new(switchyard_bin());
    cmd.env("SWITCHYARD_CACHE_DIR", cache).current_dir(root());
    cmd
}

pub mod apache;
pub mod broker;
pub mod client;
pub mod e2e;
pub mod http;
pub mod outage;
pub mod postgres;
pub mod router;
pub mod wait;
pub mod workload;

pub use broker::Broker;
pub use client::{Client, Kcat, PyClient, Rec, which};
pub use router::Router;
pub use wait::{Check, eventually};

/// Loads `url` in headless Chromium (Debian's `chromium`, installed by
/// `scripts/setup.sh --test`), lets its scripts run for 6 s of virtual time,
/// and returns its standard output (the DOM with `--dump-dom`).
pub fn chromium(url: &str, extra: &[&str]) -> String {
    let chromium =
        which("chromium").expect("chromium is not installed; run scripts/setup.sh --test");
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

/// An engine compiling into `cache`, and `config`'s plugins loaded on it:
/// what a test or a measure needs to run plugins in-process.
pub fn load_plugins(
    config: &switchyard::RouterConfig,
    cache: &Path,
) -> (
    std::sync::Arc<switchyard::Engine>,
    std::sync::Arc<switchyard::PluginRegistry>,
) {
    let engine = std::sync::Arc::new(
        switchyard::Engine::new(switchyard::EngineOptions {
            cache_dir: Some(cache.to_path_buf()),
            ..switchyard::EngineOptions::default()
        })
        .unwrap(),
    );
    let registry =
        std::sync::Arc::new(switchyard::PluginRegistry::load(&engine, config, None).unwrap());
    (engine, registry)
}
