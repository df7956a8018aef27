//! Outside Kafka clients the tests drive brokers with: a record as they
//! see it, Debian's kcat, and confluent-kafka through `kafka_client.py`.

use crate::root;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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
pub(crate) fn settings_json(settings: &[(String, String)]) -> String {
    Value::Object(
        settings
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
    .to_string()
}

/// confluent-kafka from PyPI, through tests/kit/kafka_client.py: its
/// bootstrap servers and extra client settings.
pub struct PyClient(pub String, pub Vec<(String, String)>);

impl PyClient {
    /// A client of `bootstrap` with extra `settings` (such as SASL).
    pub fn with(bootstrap: String, settings: Vec<(String, String)>) -> Self {
        PyClient(bootstrap, settings)
    }

    pub(crate) fn script() -> PathBuf {
        root().join("tests/kit/kafka_client.py")
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
