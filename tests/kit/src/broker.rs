//! A broker for one test: librdkafka's mock cluster in this process, a
//! Tansu process, or Apache Kafka. Each test starts its own on a free port,
//! so topic names never collide between tests.

use crate::apache::{ApacheKafka, Security};
use crate::client::{Client, Kcat, PyClient, settings_json, which};
use crate::{eventually, free_port};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;
use switchyard::EmbeddedBroker;

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

    /// The broker's own process, when it has one (Apache Kafka, Tansu) and
    /// it runs.
    pub fn pid(&self) -> Option<u32> {
        match self {
            Broker::Mock(_) => None,
            Broker::Kafka(k) => k.pid(),
            Broker::Tansu { child, .. } => child
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(Child::id),
        }
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
                eventually(
                    &format!("tansu to listen on {port}"),
                    Duration::from_secs(30),
                    || {
                        if let Some(status) = child.as_mut().unwrap().try_wait().unwrap() {
                            panic!(
                                "tansu exited ({status}): {}",
                                std::fs::read_to_string(dir.path().join("tansu.log"))
                                    .unwrap_or_default()
                            );
                        }
                        std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
                    },
                );
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
