//! A running `switchyard run` process, the lines it logged and its admin
//! API's counters.
//!
//! `E2E_VERBOSE=1` echoes every router's log lines as they come, and
//! `E2E_ROUTER_LOG` sets their filter (`RUST_LOG` syntax, default `info`).

use crate::broker::Broker;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A `switchyard run` process and the lines it logged.
pub struct Router {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Router {
    /// Starts `switchyard run` on `config` against `broker` (with
    /// `--no-create-topics` where the broker has no CreateTopics).
    pub fn start(config: &Path, broker: &Broker, state_dir: &Path, cache: &Path) -> Self {
        let flags: &[&str] = if broker.router_creates_topics() {
            &[]
        } else {
            &["--no-create-topics"]
        };
        Self::start_plain(config, broker, state_dir, cache, flags)
    }

    /// Starts `switchyard run` with exactly the flags given besides the
    /// config, brokers, group, admin address and state folder.
    pub fn start_plain(
        config: &Path,
        broker: &Broker,
        state_dir: &Path,
        cache: &Path,
        flags: &[&str],
    ) -> Self {
        Self::start_with(config, broker, state_dir, cache, flags, &[])
    }

    /// [`Router::start_plain`] with extra environment variables.
    pub fn start_with(
        config: &Path,
        broker: &Broker,
        state_dir: &Path,
        cache: &Path,
        flags: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let mut cmd = Command::new(crate::switchyard_bin());
        cmd.arg("run").args(flags).envs(envs.iter().copied());
        let mut child = cmd
            .arg("--config")
            .arg(config)
            .args([
                "--brokers",
                &broker.bootstrap(),
                "--group",
                "e2e",
                "--admin",
                "127.0.0.1:0",
            ])
            .arg("--state-dir")
            .arg(state_dir)
            .env("SWITCHYARD_CACHE_DIR", cache)
            .env(
                "RUST_LOG",
                std::env::var("E2E_ROUTER_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard runs");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("E2E_VERBOSE").is_some() {
                    eprintln!("router: {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Router { child, lines }
    }

    /// The admin API's base URL, once it listens.
    pub fn admin_url(&mut self) -> String {
        self.wait("the admin API", Duration::from_secs(60), |r| {
            r.log().contains("admin: http://")
        });
        let log = self.log();
        let at = log.find("admin: http://").unwrap() + "admin: ".len();
        log[at..].split_whitespace().next().unwrap().to_string()
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// How many `handled` tail lines name `topic` and event type `ty` ("-": undecodable).
    pub fn handled(&self, topic: &str, ty: &str) -> usize {
        let (at, of) = (format!("handled {topic}["), format!(" type={ty} "));
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(&at) && l.contains(&of))
            .count()
    }

    /// Waits until `ready` holds, or panics with the log after `timeout`.
    pub fn wait(&mut self, what: &str, timeout: Duration, ready: impl Fn(&Self) -> bool) {
        let deadline = Instant::now() + timeout;
        while !ready(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "router exited ({status}) while waiting for {what}\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops with SIGTERM (a graceful drain) and waits.
    pub fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        assert!(status.success(), "router failed: {status}\n{}", self.log());
        self.log()
    }

    /// Kills with SIGKILL: no drain, no commit.
    pub fn kill9(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.log()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
