//! Brokers, a running router and outside clients for the Kafka end-to-end
//! tests. Each test starts its own broker on a free port, so topic names
//! never collide between tests.
//!
//! `E2E_VERBOSE=1` echoes every router's log lines as they come, and
//! `E2E_ROUTER_LOG` sets their filter (`RUST_LOG` syntax, default `info`).
#![allow(dead_code)]

use super::apache::{ApacheKafka, Security};
use super::root;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchyard::kafka::broker::EmbeddedBroker;

/// A record as a client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    /// Topic.
    pub topic: String,
    /// Partition to produce to (`None`: by key).
    pub partition: Option<i32>,
    /// Key.
    pub key: Option<String>,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Value.
    pub value: Vec<u8>,
}

impl Rec {
    /// A header's value.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// A broker for one test.
pub enum Broker {
    /// librdkafka's mock cluster, in this process.
    Mock(EmbeddedBroker),
    /// A Tansu process on a free loopback port.
    Tansu {
        /// The process (`None` while stopped).
        child: Mutex<Option<Child>>,
        /// Its port.
        port: u16,
        /// Its storage engine URL.
        storage: String,
        /// Its storage folder.
        dir: tempfile::TempDir,
    },
    /// Apache Kafka, the reference broker: a KRaft process on free ports.
    Kafka(ApacheKafka),
}

pub use super::apache::free_port;

impl Broker {
    /// A mock cluster.
    pub fn mock() -> Self {
        Broker::Mock(EmbeddedBroker::start().expect("mock cluster starts"))
    }

    /// Apache Kafka (fetched by scripts/setup.sh --test), single node.
    pub fn kafka() -> Self {
        Broker::Kafka(ApacheKafka::start(Security::Plain))
    }

    /// Apache Kafka with SASL/PLAIN and ACLs on its client listener.
    pub fn kafka_secured() -> Self {
        Broker::Kafka(ApacheKafka::start(Security::SaslAcl))
    }

    /// A Tansu broker (installed by scripts/setup.sh --tansu), with in-memory storage.
    pub fn tansu() -> Self {
        Self::tansu_on("memory://tansu/")
    }

    /// A Tansu broker with durable storage (libsql, a file in its folder,
    /// which is its working directory): it keeps its topics, records and
    /// offsets across a restart.
    pub fn tansu_durable() -> Self {
        Self::tansu_on("sqlite://tansu.db")
    }

    fn tansu_on(storage: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::Tansu {
            child: Mutex::new(None),
            port: free_port(),
            storage: storage.to_string(),
            dir,
        };
        broker.set_down(false);
        broker
    }

    /// Takes the broker down or back up: the mock cluster's broker stops
    /// answering; the Tansu process is killed, or started again on the same
    /// port and storage.
    pub fn set_down(&self, down: bool) {
        match self {
            Broker::Mock(b) => b.set_down(down).expect("mock broker toggles"),
            Broker::Kafka(k) => k.set_down(down),
            Broker::Tansu {
                child,
                port,
                storage,
                dir,
            } => {
                let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(mut old) = child.take() {
                    let _ = old.kill();
                    let _ = old.wait();
                }
                if down {
                    return;
                }
                let tansu = which("tansu").expect("tansu is not installed; run scripts/setup.sh");
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join("tansu.log"))
                    .unwrap();
                *child = Some(
                    Command::new(tansu)
                        .args(["broker", "--storage-engine", storage])
                        .arg(format!("--listener-url=tcp://127.0.0.1:{port}"))
                        .arg(format!("--advertised-listener-url=tcp://127.0.0.1:{port}"))
                        .current_dir(dir.path())
                        .stdout(Stdio::null())
                        .stderr(log)
                        .spawn()
                        .expect("tansu starts"),
                );
                let deadline = Instant::now() + Duration::from_secs(30);
                while std::net::TcpStream::connect(("127.0.0.1", *port)).is_err() {
                    if let Some(status) = child.as_mut().unwrap().try_wait().unwrap() {
                        panic!(
                            "tansu exited ({status}): {}",
                            std::fs::read_to_string(dir.path().join("tansu.log"))
                                .unwrap_or_default()
                        );
                    }
                    assert!(Instant::now() < deadline, "tansu did not listen on {port}");
                    std::thread::sleep(Duration::from_millis(100));
                }
                if let Some(file) = storage.strip_prefix("sqlite://") {
                    index_tansu_headers(&dir.path().join(file));
                }
            }
        }
    }

    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        match self {
            Broker::Mock(b) => b.bootstrap(),
            Broker::Tansu { port, .. } => format!("127.0.0.1:{port}"),
            Broker::Kafka(k) => k.bootstrap(),
        }
    }

    /// Whether the router must create topics itself (brokers with CreateTopics).
    pub fn router_creates_topics(&self) -> bool {
        !matches!(self, Broker::Mock(_))
    }

    /// Whether the broker has transactions (the mock cluster has none).
    pub fn transactional(&self) -> bool {
        matches!(self, Broker::Kafka(_))
    }

    /// Client settings an outside admin client needs (SASL on a secured
    /// Apache Kafka).
    pub fn admin_settings(&self) -> Vec<(String, String)> {
        match self {
            Broker::Kafka(k) if k.security == Security::SaslAcl => [
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                ("sasl.username", "admin"),
                ("sasl.password", "admin-secret"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            _ => Vec::new(),
        }
    }

    /// Creates a topic: through the mock's own API (it has no CreateTopics),
    /// or with the outside client's admin API.
    pub fn create_topic(&self, topic: &str, partitions: i32) {
        match self {
            Broker::Mock(b) => {
                let _ = b.create_topic(topic, partitions);
            }
            Broker::Tansu { .. } | Broker::Kafka(_) => {
                self.create_topic_with(topic, partitions, &[])
            }
        }
    }

    /// Creates a topic with topic-level settings (such as
    /// `max.message.bytes`), through confluent-kafka's admin API.
    pub fn create_topic_with(&self, topic: &str, partitions: i32, config: &[(&str, &str)]) {
        let config: Vec<(String, String)> = config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let status = Command::new("python3")
            .arg(PyClient::script())
            .args(["create", &self.bootstrap(), topic, &partitions.to_string()])
            .arg(settings_json(&config))
            .env(
                "KAFKA_CLIENT_SETTINGS",
                settings_json(&self.admin_settings()),
            )
            .status()
            .expect("python3 runs");
        assert!(status.success(), "creating {topic} failed");
    }

    /// The outside client to drive this broker with: kcat for the mock
    /// cluster; confluent-kafka for Tansu, whose handshake Debian's kcat
    /// (librdkafka 2.0) fails, and for Apache Kafka (a current librdkafka,
    /// reading committed records only).
    pub fn client(&self) -> Box<dyn Client> {
        match self {
            Broker::Mock(_) => Box::new(Kcat(self.bootstrap())),
            Broker::Tansu { .. } | Broker::Kafka(_) => Box::new(self.py()),
        }
    }

    /// confluent-kafka on this broker, as its admin.
    pub fn py(&self) -> PyClient {
        PyClient::with(self.bootstrap(), self.admin_settings())
    }
}

/// Adds the index Tansu 0.6's libsql schema lacks: its fetch looks up each
/// record's headers by `(topition, offset_id)` in a `header` table with no
/// index, a scan of every header in the broker per record served. With the
/// router's outputs (each carries its headers) that made a 100,000-event
/// crash loop quadratic: Tansu sat at full CPU in SQLite, serving nothing
/// for minutes, and the run stalled (RELIABILITY.md, "What the Tansu runs
/// found"). The index changes no data or answer, only the query plan; it
/// is added again (if missing) each time the broker starts.
fn index_tansu_headers(db: &Path) {
    const SCRIPT: &str = r#"
import sqlite3, sys, time
deadline = time.time() + 30
while True:
    c = sqlite3.connect(sys.argv[1], timeout=30)
    if c.execute("select 1 from sqlite_master where name = 'header'").fetchone():
        c.execute("create index if not exists header_record on header (topition, offset_id)")
        c.commit()
        break
    c.close()
    if time.time() > deadline:
        sys.exit("tansu made no header table")
    time.sleep(0.1)
"#;
    let status = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(db)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "indexing {} failed", db.display());
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Broker::Tansu { child, .. } = self
            && let Some(mut child) = child.get_mut().unwrap_or_else(|e| e.into_inner()).take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The path of program `name` on `PATH` or in `~/.cargo/bin`.
pub fn which(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&std::env::var_os("PATH")?).collect();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A real Kafka client outside the router.
pub trait Client {
    /// Produces records, in order, and waits for their acknowledgement.
    fn produce(&self, records: &[Rec]);
    /// Everything on `topic` so far.
    fn consume(&self, topic: &str) -> Vec<Rec>;
}

/// Debian's kcat.
pub struct Kcat(pub String);

impl Kcat {
    /// Produces many one-line values to `topic` in one kcat run, each with
    /// its key, to `partition` (or by key).
    pub fn produce_lines(&self, topic: &str, partition: Option<i32>, lines: &[(String, String)]) {
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut text = String::new();
        for (key, value) in lines {
            assert!(!key.contains('\t') && !value.contains('\n'));
            text.push_str(&format!("{key}\t{value}\n"));
        }
        std::fs::write(file.path(), text).unwrap();
        let mut cmd = Command::new("kcat");
        cmd.args(["-P", "-b", &self.0, "-t", topic, "-K", "\t"]);
        if let Some(p) = partition {
            cmd.args(["-p", &p.to_string()]);
        }
        // Lines on stdin are one message each (a file argument is one message).
        let status = cmd
            .stdin(std::fs::File::open(file.path()).unwrap())
            .status()
            .expect("kcat runs");
        assert!(status.success(), "kcat produce to {topic} failed");
    }
}

impl Client for Kcat {
    fn produce(&self, records: &[Rec]) {
        for r in records {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &r.value).unwrap();
            let mut cmd = Command::new("kcat");
            cmd.args(["-P", "-b", &self.0, "-t", &r.topic]);
            if let Some(p) = r.partition {
                cmd.args(["-p", &p.to_string()]);
            }
            if let Some(k) = &r.key {
                cmd.args(["-k", k]);
            }
            for (k, v) in &r.headers {
                cmd.args(["-H", &format!("{k}={v}")]);
            }
            let status = cmd
                .arg(file.path())
                .status()
                .expect("kcat runs (apt-get install kcat)");
            assert!(status.success(), "kcat produce to {} failed", r.topic);
        }
    }

    fn consume(&self, topic: &str) -> Vec<Rec> {
        let out = Command::new("kcat")
            .args([
                "-C",
                "-b",
                &self.0,
                "-t",
                topic,
                "-o",
                "beginning",
                "-e",
                "-J",
                "-q",
            ])
            .output()
            .expect("kcat runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|m| Rec {
                topic: topic.to_string(),
                partition: m["partition"].as_i64().map(|p| p as i32),
                key: m["key"].as_str().map(str::to_string),
                headers: m["headers"]
                    .as_array()
                    .map(|h| {
                        h.chunks(2)
                            .map(|kv| {
                                (
                                    kv[0].as_str().unwrap_or_default().to_string(),
                                    kv[1].as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                value: m["payload"]
                    .as_str()
                    .unwrap_or_default()
                    .as_bytes()
                    .to_vec(),
            })
            .collect()
    }
}

/// Client settings as the JSON object kafka_client.py reads from
/// `KAFKA_CLIENT_SETTINGS`.
fn settings_json(settings: &[(String, String)]) -> String {
    Value::Object(
        settings
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
    .to_string()
}

/// confluent-kafka from PyPI, through tests/support/kafka_client.py: its
/// bootstrap servers and extra client settings.
pub struct PyClient(pub String, pub Vec<(String, String)>);

impl PyClient {
    /// A client of `bootstrap` with extra `settings` (such as SASL).
    pub fn with(bootstrap: String, settings: Vec<(String, String)>) -> Self {
        PyClient(bootstrap, settings)
    }

    fn script() -> PathBuf {
        root().join("tests/support/kafka_client.py")
    }

    fn command(&self, verb: &str) -> Command {
        let mut cmd = Command::new("python3");
        cmd.arg(Self::script())
            .args([verb, &self.0])
            .env("KAFKA_CLIENT_SETTINGS", settings_json(&self.1));
        cmd
    }

    /// Lets `principal` read, write and describe every topic and group, and
    /// nothing else (no CreateTopics).
    pub fn grant(&self, principal: &str) {
        let status = self
            .command("grant")
            .arg(principal)
            .status()
            .expect("python3 runs");
        assert!(status.success(), "granting ACLs to {principal} failed");
    }

    /// Denies (`deny` true) or stops denying `principal` the right to write
    /// to `topic`.
    pub fn deny_write(&self, principal: &str, topic: &str, deny: bool) {
        let status = self
            .command("deny-write")
            .args([if deny { "add" } else { "remove" }, principal, topic])
            .status()
            .expect("python3 runs");
        assert!(status.success(), "changing the ACL on {topic} failed");
    }

    /// Every partition of `topic` whose last stable offset is below its
    /// high watermark (a transaction left open), as `(partition, lso, hw)`.
    pub fn open_transactions(&self, topic: &str) -> Vec<(i32, i64, i64)> {
        let out = self
            .command("offsets")
            .arg(topic)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "listing offsets of {topic} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|m| {
                (
                    m["partition"].as_i64().unwrap() as i32,
                    m["lso"].as_i64().unwrap(),
                    m["hw"].as_i64().unwrap(),
                )
            })
            .filter(|(_, lso, hw)| lso != hw)
            .collect()
    }
}

impl Client for PyClient {
    fn produce(&self, records: &[Rec]) {
        let mut child = self
            .command("produce")
            .stdin(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        {
            let stdin = child.stdin.as_mut().unwrap();
            for r in records {
                let line = json!({
                    "topic": r.topic, "partition": r.partition, "key": r.key,
                    "headers": r.headers, "value_b64": STANDARD.encode(&r.value),
                });
                writeln!(stdin, "{line}").unwrap();
            }
        }
        assert!(
            child.wait().unwrap().success(),
            "confluent-kafka produce failed"
        );
    }

    fn consume(&self, topic: &str) -> Vec<Rec> {
        let out = self
            .command("consume")
            .args([topic, "3"])
            .output()
            .expect("python3 runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|m| Rec {
                topic: topic.to_string(),
                partition: m["partition"].as_i64().map(|p| p as i32),
                key: m["key"].as_str().map(str::to_string),
                headers: serde_json::from_value(m["headers"].clone()).unwrap_or_default(),
                value: STANDARD
                    .decode(m["value_b64"].as_str().unwrap_or_default())
                    .unwrap_or_default(),
            })
            .collect()
    }
}

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
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
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
