//! Apache Kafka for the tests: a single-node KRaft broker (broker and
//! controller in one JVM) on free loopback ports, in a temporary folder,
//! from the jars `scripts/setup.sh --test` fetched from Maven Central
//! (pinned in `scripts/kafka/pom.xml`). The benchmark's P1 runs on it too.
//!
//! The broker keeps its log in its folder, so [`ApacheKafka::set_down`] can
//! kill it and start it again with every record, offset and transaction
//! kept. Settings are a one-node cluster's: replication factor and min ISR 1
//! for the internal topics, one partition each for the offsets and
//! transaction-state topics and no initial rebalance delay, so that it is
//! ready in a few seconds; auto-create on (as on a default Apache Kafka).
//!
//! With [`Security::SaslAcl`] the client listener asks for SASL/PLAIN and
//! the broker enforces ACLs: `admin` (password `admin-secret`) is a super
//! user; `router` (password `router-secret`) has only the rights a test
//! grants it.

use crate::{eventually, free_ports};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

/// How the client listener is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// PLAINTEXT, no ACLs.
    Plain,
    /// SASL/PLAIN with ACLs enforced.
    SaslAcl,
}

/// One Apache Kafka broker process.
pub struct ApacheKafka {
    child: Mutex<Option<Child>>,
    /// The client listener's port.
    pub port: u16,
    controller: u16,
    dir: tempfile::TempDir,
    /// How its client listener is secured.
    pub security: Security,
}

/// The folder holding the broker's jars: `$SWITCHYARD_KAFKA_JARS`, or the
/// one `scripts/setup.sh --test` fills for the version the pom pins.
pub fn jars() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHYARD_KAFKA_JARS") {
        return PathBuf::from(dir);
    }
    let pom = std::fs::read_to_string(crate::root().join("scripts/kafka/pom.xml")).unwrap();
    let version = pom
        .split("<kafka.version>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("scripts/kafka/pom.xml pins <kafka.version>");
    let home = std::env::var_os("HOME").expect("HOME is set");
    PathBuf::from(home).join(format!(".cache/switchyard/kafka/{version}"))
}

impl ApacheKafka {
    /// Formats a new broker's storage and starts it; returns once it
    /// serves clients.
    pub fn start(security: Security) -> Self {
        let jars = jars();
        assert!(
            jars.join(".complete").exists(),
            "Apache Kafka's jars are not in {}; run scripts/setup.sh --test",
            jars.display()
        );
        let [port, controller] = free_ports();
        let kafka = ApacheKafka {
            child: Mutex::new(None),
            port,
            controller,
            dir: tempfile::tempdir().unwrap(),
            security,
        };
        kafka.write_config();
        let format = Command::new("java")
            .args(["-cp", &classpath()])
            .args(["kafka.tools.StorageTool", "format", "-t", CLUSTER_ID, "-c"])
            .arg(kafka.dir.path().join("server.properties"))
            .output()
            .expect("java runs (scripts/setup.sh --test installs it)");
        assert!(
            format.status.success(),
            "formatting Kafka's storage failed: {}",
            String::from_utf8_lossy(&format.stderr)
        );
        kafka.set_down(false);
        kafka
    }

    /// `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker process's id, while it runs (the benchmark reads its CPU
    /// time).
    pub fn pid(&self) -> Option<u32> {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        child.as_ref().map(Child::id)
    }

    /// The broker's folder (its log, `server.log`, is there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills the broker (SIGKILL), or starts it again on the same ports and
    /// log.
    pub fn set_down(&self, down: bool) {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut old) = child.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        if down {
            return;
        }
        let log_path = self.dir.path().join("server.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let started_at = std::fs::metadata(&log_path).map_or(0, |m| m.len());
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xms128m",
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
        ])
        .arg(format!(
            "-Dlog4j2.configurationFile={}",
            self.dir.path().join("log4j2.properties").display()
        ));
        if self.security == Security::SaslAcl {
            cmd.arg(format!(
                "-Djava.security.auth.login.config={}",
                self.dir.path().join("jaas.conf").display()
            ));
        }
        *child = Some(
            cmd.args(["-cp", &classpath(), "kafka.Kafka"])
                .arg(self.dir.path().join("server.properties"))
                .current_dir(self.dir.path())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .stdin(Stdio::null())
                .spawn()
                .expect("java runs"),
        );
        eventually("Apache Kafka to start", Duration::from_secs(90), || {
            let mut text = String::new();
            if let Ok(mut f) = std::fs::File::open(&log_path) {
                use std::io::Seek;
                let _ = f.seek(std::io::SeekFrom::Start(started_at));
                let _ = f.read_to_string(&mut text);
            }
            if let Some(status) = child.as_mut().unwrap().try_wait().unwrap() {
                panic!("Apache Kafka exited ({status}):\n{text}");
            }
            if text.contains("Kafka Server started") {
                Ok(())
            } else {
                Err(format!("its log:\n{text}"))
            }
        });
    }

    fn write_config(&self) {
        let (port, controller) = (self.port, self.controller);
        let data = self.dir.path().join("data");
        let (protocol, security) = match self.security {
            Security::Plain => ("PLAINTEXT", String::new()),
            Security::SaslAcl => (
                "SASL_PLAINTEXT",
                "sasl.enabled.mechanisms=PLAIN\n\
                 authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
                 super.users=User:admin;User:ANONYMOUS\n\
                 allow.everyone.if.no.acl.found=false\n\
                 sasl.mechanism.inter.broker.protocol=PLAIN\n"
                    .to_string(),
            ),
        };
        let properties = format!(
            "process.roles=broker,controller\n\
             node.id=1\n\
             controller.quorum.voters=1@127.0.0.1:{controller}\n\
             listeners=CLIENT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}\n\
             advertised.listeners=CLIENT://127.0.0.1:{port}\n\
             controller.listener.names=CONTROLLER\n\
             inter.broker.listener.name=CLIENT\n\
             listener.security.protocol.map=CLIENT:{protocol},CONTROLLER:PLAINTEXT\n\
             log.dirs={}\n\
             num.partitions=1\n\
             auto.create.topics.enable=true\n\
             offsets.topic.replication.factor=1\n\
             offsets.topic.num.partitions=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n\
             transaction.state.log.num.partitions=1\n\
             share.coordinator.state.topic.replication.factor=1\n\
             share.coordinator.state.topic.min.isr=1\n\
             group.initial.rebalance.delay.ms=0\n\
             log.flush.interval.messages=9223372036854775807\n\
             {security}",
            data.display()
        );
        std::fs::write(self.dir.path().join("server.properties"), properties).unwrap();
        std::fs::write(
            self.dir.path().join("log4j2.properties"),
            "rootLogger.level = WARN\n\
             rootLogger.appenderRef.out.ref = OUT\n\
             appender.out.type = Console\n\
             appender.out.name = OUT\n\
             appender.out.layout.type = PatternLayout\n\
             appender.out.layout.pattern = [%d] %p %m (%c)%n\n\
             logger.started.name = kafka.server.KafkaRaftServer\n\
             logger.started.level = INFO\n",
        )
        .unwrap();
        if self.security == Security::SaslAcl {
            std::fs::write(
                self.dir.path().join("jaas.conf"),
                "KafkaServer {\n  org.apache.kafka.common.security.plain.PlainLoginModule required\n  \
                 username=\"admin\" password=\"admin-secret\"\n  user_admin=\"admin-secret\"\n  \
                 user_router=\"router-secret\";\n};\n",
            )
            .unwrap();
        }
    }
}

/// A fixed cluster id: every test broker is its own one-node cluster.
const CLUSTER_ID: &str = "c3dpdGNoeWFyZC10ZXN0cw";

fn classpath() -> String {
    format!("{}/*", jars().display())
}

impl Drop for ApacheKafka {
    fn drop(&mut self) {
        if let Some(mut child) = self
            .child
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
