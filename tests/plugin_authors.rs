//! The plugin author's path, walked as a newcomer would, in each language:
//! `switchyard new`, `switchyard test`, `switchyard dev`, an edit to the
//! handler, the new version serving; then a broken edit, whose build errors
//! are printed once while the last good version keeps serving. It prints how
//! long each step took.
//!
//! The last greeting carries a name outside ASCII (a two-byte letter and an
//! emoji, a surrogate pair in JavaScript), which must come back unchanged:
//! the JavaScript build's faster string copy (`sdk/js/componentize.mjs`)
//! must apply, and must write the same bytes.

use switchyard_testkit as kit;

use kit::{Client, Kcat, eventually};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `switchyard` with the test's cache; a JavaScript build fails if
/// `componentize.mjs` cannot make its change.
fn switchyard(cache: &Path) -> std::process::Command {
    let mut cmd = kit::switchyard(cache);
    cmd.env("SWITCHYARD_STRICT_BINDINGS", "1");
    cmd
}

/// A running `switchyard dev`, its output collected as it comes.
struct Dev {
    child: Child,
    kcat: Kcat,
    log: Arc<Mutex<String>>,
}

impl Dev {
    fn start(config: &Path, cache: &Path) -> Dev {
        let mut child = switchyard(cache)
            .args(["dev", "--summary-secs", "60", "--config"])
            .arg(config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let mut first = String::new();
        let stderr = child.stderr.take().unwrap();
        drain(stderr, log.clone());
        stdout.read_line(&mut first).unwrap();
        drain(stdout, log.clone());
        let bootstrap = first.trim().strip_prefix("bootstrap: ").map(str::to_string);
        let bootstrap = bootstrap.unwrap_or_else(|| panic!("first line: {first}"));
        Dev {
            child,
            kcat: Kcat(bootstrap),
            log,
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Asks for a greeting of `name` until one comes back that satisfies
    /// `wanted`; returns its message. A request unanswered for 3 s, or
    /// answered unwanted, is asked again under a new name.
    fn greet_until(&self, name: &str, timeout: Duration, wanted: impl Fn(&str) -> bool) -> String {
        let mut n = 0;
        let mut asked: Option<(String, Instant)> = None;
        let what = format!("a wanted greeting for {name}");
        eventually(&what, timeout, || {
            let (who, at) = match asked.take() {
                Some((who, at)) if at.elapsed() < Duration::from_secs(3) => (who, at),
                _ => {
                    n += 1;
                    let who = format!("{name}-{n}");
                    let value = json!({
                        "event_id": format!("{who}-{}", std::process::id()),
                        "event_type": "greeting.requested",
                        "timestamp": "2026-01-05T09:00:00Z",
                        "data": { "name": who },
                    });
                    self.kcat.produce_lines(
                        "greeting.requested",
                        None,
                        &[(who.clone(), value.to_string())],
                    );
                    (who, Instant::now())
                }
            };
            let answer = self
                .kcat
                .consume("greeting.sent")
                .iter()
                .filter_map(|r| serde_json::from_slice::<Value>(&r.value).ok())
                .find(|v| v["data"]["name"] == who.as_str());
            match answer {
                Some(answer) => {
                    let message = answer["data"]["message"].as_str().unwrap().to_string();
                    if wanted(&message) {
                        return Ok(message);
                    }
                }
                None => asked = Some((who, at)),
            }
            Err(format!("log:\n{}", self.log()))
        })
    }

    fn stop(mut self) -> String {
        let _ = std::process::Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut from: impl Read + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 8192];
        while let Ok(n) = from.read(&mut buf) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
}

/// Replaces `from` with `to` in a file, which must contain it.
fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", path.display());
    std::fs::write(path, text.replace(from, to)).unwrap();
}

fn walk(lang: &str, handler: &str, broken: &str) -> Vec<(String, Duration)> {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let dir = root.path().join("hello");
    let mut times = Vec::new();
    let started = Instant::now();

    // 1. `new`, and `test` at once (it builds the plugin first).
    let out = switchyard(&cache)
        .args(["new", "hello", "--lang", lang, "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = switchyard(&cache).arg("test").arg(&dir).output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("1 passed, 0 failed"),
        "{text}"
    );
    if lang == "js" {
        // The build goes through it (see the module's docs).
        assert!(dir.join("componentize.mjs").is_file());
    }
    times.push(("new + build + test".to_string(), started.elapsed()));

    // 2. `dev`, serving the first version.
    let mark = Instant::now();
    let dev = Dev::start(&dir.join("router.toml"), &cache);
    let first = dev.greet_until("Ada", Duration::from_secs(120), |_| true);
    assert!(first.starts_with("Hello, Ada-"), "{first}");
    times.push(("dev serving".to_string(), mark.elapsed()));

    // 3. An edit to the handler (and its fixture, which a new version must
    //    pass before it goes live) is rebuilt and serves within seconds.
    let mark = Instant::now();
    edit(&dir.join("fixtures/greeting.json"), "Hello, ", "Howdy, ");
    edit(&dir.join(handler), "Hello, ", "Howdy, ");
    let second = dev.greet_until("Bob", Duration::from_secs(120), |m| m.starts_with("Howdy"));
    assert!(second.starts_with("Howdy, Bob-"), "{second}");
    times.push(("edit -> new version serving".to_string(), mark.elapsed()));

    // 4. A broken edit: its errors are printed once, and the last good
    //    version keeps serving.
    let mark = Instant::now();
    edit(&dir.join(handler), "Howdy, ", broken);
    eventually("the build failure", Duration::from_secs(120), || {
        let log = dev.log();
        if log.contains("build of `hello` failed") {
            return Ok(());
        }
        Err(log)
    });
    times.push(("broken edit -> errors printed".to_string(), mark.elapsed()));
    let still = dev.greet_until("Çy🚀", Duration::from_secs(30), |_| true);
    assert!(still.starts_with("Howdy, Çy🚀-"), "{still}");
    let log = dev.stop();
    assert_eq!(log.matches("build of `hello` failed").count(), 1, "{log}");
    assert!(log.contains("keeps serving"), "{log}");
    times.push(("total".to_string(), started.elapsed()));
    for (step, took) in &times {
        println!("{lang:>6}  {step:<32} {:>6.1} s", took.as_secs_f64());
    }
    times
}

#[test]
fn a_new_rust_plugin_builds_tests_serves_and_reloads_on_save() {
    walk("rust", "src/lib.rs", "Howdy, {undefined_name}");
}

#[test]
fn a_new_python_plugin_builds_tests_serves_and_reloads_on_save() {
    walk("python", "app.py", "Howdy, \" +* (");
}

#[test]
fn a_new_js_plugin_builds_tests_serves_and_reloads_on_save() {
    walk("js", "app.js", "Howdy, ` +* (");
}
