//! The `switchyard` binary, as a user runs it.

use switchyard_testkit as kit;

use std::path::Path;
use std::time::{Duration, Instant};

fn output(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().expect("switchyard runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn validate_accepts_a_plugin_and_names_the_mismatch_of_a_wrong_world() {
    let cache = tempfile::tempdir().unwrap();
    let (ok, text) = output(
        kit::switchyard(cache.path())
            .arg("validate")
            .arg(kit::guest("echo")),
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("implements switchyard:plugin/handler@0.2.0"),
        "{text}"
    );

    let (ok, text) = output(
        kit::switchyard(cache.path())
            .arg("validate")
            .arg(kit::guest("wrong_world")),
    );
    assert!(!ok, "{text}");
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(
        text.contains(
            "wrong_world.wasm: does not implement switchyard:plugin/handler (0.2.0 or 0.1.0)"
        ),
        "{text}"
    );
    assert!(
        text.contains("export `handle` has the wrong type"),
        "{text}"
    );

    let (ok, text) = output(kit::switchyard(cache.path()).args(["validate", "Cargo.toml"]));
    assert!(!ok);
    assert!(
        text.contains("Cargo.toml: not a WebAssembly file"),
        "{text}"
    );
}

#[test]
fn the_fault_fixtures_pass_with_their_typed_errors() {
    let cache = tempfile::tempdir().unwrap();
    kit::guest("echo");
    let (ok, text) = output(kit::switchyard(cache.path()).args(["test", "tests/faults"]));
    assert!(ok, "{text}");
    assert!(text.contains("tests/faults: 7 passed, 0 failed"), "{text}");
}

/// Copies `tests/faults` to a temp folder with absolute wasm paths, so a
/// test can edit fixtures freely.
fn scratch_faults(dir: &Path) {
    let src = kit::root().join("tests/faults");
    let guests = kit::build_wasm("tests/guests");
    let config = std::fs::read_to_string(src.join("router.toml"))
        .unwrap()
        .replace(
            "../guests/target/wasm32-wasip2/release",
            guests.to_str().unwrap(),
        );
    std::fs::write(dir.join("router.toml"), config).unwrap();
    for plugin in ["echo", "trap", "spin", "hog", "deep"] {
        let to = dir.join("fixtures").join(plugin);
        std::fs::create_dir_all(&to).unwrap();
        let file = format!("{plugin}.json");
        std::fs::copy(
            src.join("fixtures").join(plugin).join(&file),
            to.join(&file),
        )
        .unwrap();
    }
}

#[test]
fn a_one_field_change_in_an_expected_emit_fails_with_a_diff() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    scratch_faults(dir.path());
    let fixture = dir.path().join("fixtures/echo/echo.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    std::fs::write(&fixture, text.replacen("\"count\": 1,", "\"count\": 2,", 1)).unwrap();
    let (ok, text) = output(
        kit::switchyard(cache.path())
            .arg("test")
            .arg(dir.path())
            .args(["--plugin", "echo"]),
    );
    assert!(!ok, "{text}");
    assert!(text.contains("FAIL echo"), "{text}");
    assert!(text.contains("--- expected\n     +++ actual"), "{text}");
    assert!(text.contains("-      \"count\": 2,"), "{text}");
    assert!(text.contains("+      \"count\": 1,"), "{text}");
    assert!(text.contains(": 0 passed, 1 failed"), "{text}");
}

#[test]
fn an_infinite_loop_ends_at_its_deadline_with_a_timeout_error() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    scratch_faults(dir.path());
    // Expect emits instead of the error, so the harness prints what it got.
    let fixture = dir.path().join("fixtures/spin/spin.json");
    let text = std::fs::read_to_string(&fixture).unwrap();
    let edited = text.replace(
        r#""error": { "class": "timeout", "contains": "200ms" }"#,
        r#""emits": []"#,
    );
    assert_ne!(text, edited);
    std::fs::write(&fixture, edited).unwrap();
    kit::switchyard(cache.path())
        .args(["validate"])
        .arg(kit::guest("spin"))
        .output()
        .unwrap();
    let started = Instant::now();
    let (ok, text) = output(
        kit::switchyard(cache.path())
            .arg("test")
            .arg(dir.path())
            .args(["--plugin", "spin"]),
    );
    let took = started.elapsed();
    assert!(!ok, "{text}");
    assert!(
        text.contains("got a `timeout` error: timeout: interrupted after the 200ms deadline"),
        "{text}"
    );
    // Two runs (the replay check stops at the first failure) of a 200 ms
    // deadline; a generous bound that only a missing deadline would break.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[test]
fn a_bad_config_gets_one_line_naming_the_file_and_the_fix() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        "[[plugin]]\nname = \"p\"\nwasm = \"missing.wasm\"\nsubscribe.types = [\"x\"]\n",
    )
    .unwrap();
    let (ok, text) = output(kit::switchyard(cache.path()).arg("test").arg(dir.path()));
    assert!(!ok);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(
        text.contains("missing.wasm: plugin `p` cannot read it"),
        "{text}"
    );
    assert!(text.contains("scripts/build-plugins.sh"), "{text}");
}

#[test]
fn only_the_engine_configures_wasmtime_and_only_bindings_calls_bindgen() {
    let src = kit::root().join("host/src");
    let mut files = Vec::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    let configures = [
        "wasmtime::Config",
        "PoolingAllocationConfig",
        "WasiCtxBuilder",
        "Linker::new",
        "wasmtime::Engine::new",
        "wasmtime::Store::new",
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if text.contains("bindgen!(") {
            assert_eq!(rel, "bindings.rs", "{rel} calls bindgen!");
        }
        for needle in configures {
            if text.contains(needle) {
                assert!(
                    rel.starts_with("engine/"),
                    "{rel} configures wasmtime ({needle})"
                );
            }
        }
    }
}

#[test]
fn a_plugin_whose_emits_depend_on_instance_history_fails_and_is_named() {
    let cache = tempfile::tempdir().unwrap();
    kit::guest("history");
    let (ok, text) = output(kit::switchyard(cache.path()).args(["test", "tests/history"]));
    assert!(!ok, "{text}");
    assert!(
        text.contains("FAIL history      tests/history/fixtures/call-1.json"),
        "{text}"
    );
    assert!(
        text.contains("emits depend on what the instance handled before"),
        "{text}"
    );
    assert!(text.contains("tests/history: 0 passed, 2 failed"), "{text}");
}

/// `switchyard dev` runs on the embedded broker, which has no
/// transactions: a config asking for exactly-once gets one line naming the
/// file and the fix, before anything starts.
#[test]
fn dev_refuses_exactly_once_with_one_line_naming_the_file() {
    let cache = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("router.toml");
    std::fs::write(
        &config,
        format!(
            "[kafka]\nguarantee = \"exactly-once\"\n\n[[plugin]]\nname = \"echo\"\nwasm = \"{}\"\nsubscribe.types = [\"x\"]\n",
            kit::guest("echo").display()
        ),
    )
    .unwrap();
    let (ok, text) = output(
        kit::switchyard(cache.path())
            .args(["dev", "--config"])
            .arg(&config),
    );
    assert!(!ok);
    assert_eq!(text.trim().lines().count(), 1, "{text}");
    assert!(text.contains(&config.display().to_string()), "{text}");
    assert!(text.contains("\"at-least-once\""), "{text}");
}
