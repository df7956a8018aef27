//! A running `switchyard run` process: the lines it logged, and its admin
//! API's counters, which say what it routed.
//!
//! `E2E_VERBOSE=1` echoes every router's log lines as they come, and
//! `E2E_ROUTER_LOG` sets their filter (`RUST_LOG` syntax, default `info`).

use crate::broker::Broker;
use crate::http;
use crate::wait::eventually;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// How many of the last log lines a failed wait shows.
const TAIL: usize = 60;

/// A `switchyard run` process and the lines it logged.
pub struct Router {
    child: Mutex<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    /// The thread collecting `lines`, until the process closes its stderr.
    reader: Mutex<Option<JoinHandle<()>>>,
    admin: OnceLock<String>,
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

    /// [`Router::start_plain`] with extra environment variables (which may
    /// set `RUST_LOG` too).
    pub fn start_with(
        config: &Path,
        broker: &Broker,
        state_dir: &Path,
        cache: &Path,
        flags: &[&str],
        envs: &[(&str, &str)],
    ) -> Self {
        let bin = crate::switchyard_bin();
        let mut child = Command::new(&bin)
            .arg("run")
            .args(flags)
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
            .envs(envs.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "{}: {e} (cargo build --bin switchyard builds it)",
                    bin.display()
                )
            });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("E2E_VERBOSE").is_some() {
                    eprintln!("router: {line}");
                }
                sink.lock().unwrap().push(line);
            }
        });
        Router {
            child: Mutex::new(child),
            lines,
            reader: Mutex::new(Some(reader)),
            admin: OnceLock::new(),
        }
    }

    /// The admin API's base URL, if it listens yet (it logs the address).
    pub fn admin_url_now(&self) -> Option<String> {
        if let Some(url) = self.admin.get() {
            return Some(url.clone());
        }
        let log = self.log();
        let at = log.find("admin: http://")? + "admin: ".len();
        let url = log[at..].split_whitespace().next()?.to_string();
        Some(self.admin.get_or_init(|| url).clone())
    }

    /// The admin API's base URL, once it listens.
    pub fn admin_url(&self) -> String {
        eventually("the admin API", Duration::from_secs(60), || {
            self.or_log(self.admin_url_now())
        })
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap().join("\n")
    }

    /// Whether a line logged so far contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.lines.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// The last `n` lines logged.
    pub fn log_tail(&self, n: usize) -> String {
        let lines = self.lines.lock().unwrap();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// How the process ended, if it has.
    pub fn exited(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    /// What a look of [`eventually`] found, for a wait on this router:
    /// `found` if it holds something, else the router's last log lines.
    /// Panics at once, with the log, if the router has exited.
    pub fn or_log<C: crate::wait::Check>(&self, found: C) -> Result<C::Output, String> {
        found.check().map_err(|_| {
            if let Some(status) = self.exited() {
                panic!("router exited ({status})\n{}", self.full_log());
            }
            format!("its last log lines:\n{}", self.log_tail(TAIL))
        })
    }

    /// GETs `path` of the admin API; panics with the log if the router has
    /// exited or the answer is not 200.
    pub fn get(&self, path: &str) -> String {
        let url = format!("{}{path}", self.admin_url());
        match http::try_request("GET", &url, None, b"") {
            Ok((200, body)) => body,
            Ok((status, body)) => panic!("GET {url}: {status} {body}"),
            Err(e) => match self.exited() {
                Some(status) => panic!("router exited ({status})\n{}", self.full_log()),
                None => panic!("GET {url}: {e}"),
            },
        }
    }

    /// The sum of the samples of Prometheus metric `name` (for a histogram,
    /// `<name>_count` counts its observations) whose labels include every
    /// pair of `labels`, from `/metrics`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        metric_sum(&self.get("/metrics"), name, labels)
    }

    /// How many records of `topic` the router has handled (decoded and
    /// routed, dead-lettered or skipped), by
    /// `kafka_consumer_processing_duration_seconds_count`. A record run
    /// again after an exactly-once transaction aborted counts again.
    pub fn processed(&self, topic: &str) -> u64 {
        self.metric(
            "kafka_consumer_processing_duration_seconds_count",
            &[("topic", topic)],
        )
    }

    /// How many records the router has handled on every topic (`records`
    /// of `GET /api/summary`).
    pub fn records(&self) -> u64 {
        self.summary()["records"].as_u64().expect("a count")
    }

    /// How many records of `topic` it has dead-lettered
    /// (`kafka_dlq_messages_total`).
    pub fn dead_lettered(&self, topic: &str) -> u64 {
        self.metric("kafka_dlq_messages_total", &[("topic", topic)])
    }

    /// The consumer lag of each partition as the router's Kafka client
    /// last reported it (`GET /api/lag`, from its statistics every second):
    /// `(topic, partition, lag)`, the high watermark less the committed
    /// offset. A partition shows once both are known.
    pub fn lags(&self) -> Vec<(String, i64, i64)> {
        let lag: Value = serde_json::from_str(&self.get("/api/lag")).expect("JSON");
        lag["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .map(|p| {
                (
                    p["topic"].as_str().expect("topic").to_string(),
                    p["partition"].as_i64().expect("partition"),
                    p["lag"].as_i64().expect("lag"),
                )
            })
            .collect()
    }

    /// Whether the router has handled and committed everything on
    /// `topics`: each shows in [`Router::lags`], and every partition of
    /// them shown has lag 0.
    pub fn caught_up(&self, topics: &[&str]) -> bool {
        let lags = self.lags();
        topics.iter().all(|t| {
            let mut of = lags.iter().filter(|(topic, _, _)| topic == t).peekable();
            of.peek().is_some() && of.all(|(_, _, lag)| *lag == 0)
        })
    }

    /// Plugin `name` as `GET /plugins/{name}` shows it (version, counts,
    /// last error).
    pub fn plugin(&self, name: &str) -> Value {
        serde_json::from_str(&self.get(&format!("/plugins/{name}"))).expect("JSON")
    }

    /// How many calls plugin `name` has had (`invocations` of
    /// `GET /plugins/{name}`).
    pub fn invocations(&self, name: &str) -> u64 {
        self.plugin(name)["invocations"].as_u64().expect("a count")
    }

    /// `GET /api/summary`: records, emitted, errors, dead letters, lag.
    pub fn summary(&self) -> Value {
        serde_json::from_str(&self.get("/api/summary")).expect("JSON")
    }

    /// Everything the process logged, once it has exited: waits for the
    /// last lines it wrote.
    fn full_log(&self) -> String {
        if let Some(reader) = self.reader.lock().unwrap().take() {
            let _ = reader.join();
        }
        self.log()
    }

    /// Waits up to `timeout` for the process to end by itself, which `what`
    /// names; returns how it ended and everything it logged.
    pub fn exit_within(&self, what: &str, timeout: Duration) -> (ExitStatus, String) {
        let status = eventually(what, timeout, || self.exited());
        (status, self.full_log())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Stops with SIGTERM (a graceful drain) and waits.
    pub fn stop(self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let status = self.child.lock().unwrap().wait().unwrap();
        let log = self.full_log();
        assert!(status.success(), "router failed: {status}\n{log}");
        log
    }

    /// Kills with SIGKILL: no drain, no commit.
    pub fn kill9(self) -> String {
        {
            let mut child = self.child.lock().unwrap();
            let _ = child.kill();
            let _ = child.wait();
        }
        self.full_log()
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// The sum of the samples of metric `name` in Prometheus text `text` whose
/// labels include every pair of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let wanted = metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            wanted.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum::<f64>() as u64
}
