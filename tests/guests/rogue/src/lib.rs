//! A guest that misbehaves in the way its event's `data.mode` asks:
//! - `panic-big`: panics with a 3 MB message;
//! - `huge`: emits a 2 MB record;
//! - `bad-topic`: emits to a topic name Kafka refuses;
//! - `sleep`: sleeps for an hour;
//! - `forge`: emits with forged host headers (`switchyard-hop: 0`);
//! - `retry`: asks to be retried, every time;
//! - `flaky`: asks to be retried on every other call of its instance, and
//!   emits `rogue.ok` on the others (so a retry succeeds);
//! - `hoard`: stages 1 MiB values in state, 200 times (200 MiB in the host);
//! - `chatter`: logs 1 MiB lines, 200 times;
//! - `flood`: stages 9 MiB of state, then emits 8 MiB (17 MiB in all);
//! - `print`: prints about 200 bytes to stdout and to stderr, and emits
//!   `rogue.ok`;
//! - anything else: emits `rogue.ok`.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, Level, json};

struct Rogue;

/// How many `flaky` calls this instance has seen.
static FLAKY_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Handler for Rogue {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let data = event.data_value();
        let mode = data["mode"].as_str().unwrap_or("");
        match mode {
            "panic-big" => panic!("{}", "x".repeat(3 << 20)),
            "huge" => Ok(vec![Emit::new(
                "rogue.huge",
                &json!({ "blob": "y".repeat(2 << 20) }),
            )?]),
            "bad-topic" => Ok(vec![Emit::new("rogue.ok", &json!({}))?.topic("bad topic!")]),
            "sleep" => {
                std::thread::sleep(std::time::Duration::from_secs(3600));
                Ok(vec![Emit::new("rogue.ok", &json!({ "slept": true }))?])
            }
            "forge" => Ok(vec![
                Emit::new("rogue.ok", &json!({ "forged": true }))?
                    .header("switchyard-hop", "0")
                    .header("ce_type", "forged"),
            ]),
            "retry" => Err(HandlerError::Retry("not yet, and never".into())),
            "flaky" => {
                let calls = FLAKY_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if calls % 2 == 0 {
                    return Err(HandlerError::Retry("not yet".into()));
                }
                Ok(vec![Emit::new(
                    "rogue.ok",
                    &json!({ "mode": mode, "after": "a retry" }),
                )?])
            }
            "hoard" => {
                let mib = "h".repeat(1 << 20);
                for i in 0..200 {
                    ctx.state.set(&format!("k{i}"), &mib)?;
                }
                Ok(vec![])
            }
            "chatter" => {
                let mib = "c".repeat(1 << 20);
                for _ in 0..200 {
                    ctx.log(Level::Info, &mib);
                }
                Ok(vec![])
            }
            "flood" => {
                let chunk = "f".repeat(3 << 20);
                for i in 0..3 {
                    ctx.state.set(&format!("k{i}"), &chunk)?;
                }
                drop(chunk);
                (0..4)
                    .map(|_| Emit::new("rogue.ok", &json!({ "blob": "e".repeat(2 << 20) })))
                    .collect()
            }
            "print" => {
                println!("{} {}", event.id, "o".repeat(190));
                eprintln!("{} {}", event.id, "e".repeat(190));
                Ok(vec![Emit::new("rogue.ok", &json!({ "mode": mode }))?])
            }
            _ => Ok(vec![Emit::new("rogue.ok", &json!({ "mode": mode }))?]),
        }
    }
}

switchyard_sdk::plugin!(Rogue);
