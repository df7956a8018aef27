//! A well-behaved guest: emits `echo.<type>` with the event's data, the
//! host-provided time, a deterministic random number, and a per-plugin
//! counter kept in state.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, json};

struct Echo;

impl Handler for Echo {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let count: u64 = ctx.state.get("count")?.unwrap_or(0) + 1;
        ctx.state.set("count", &count)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // WASI randomness, which the host reseeds from each event's id.
        let random = {
            let mut bytes = [0u8; 8];
            getrandom::fill(&mut bytes).map_err(|e| HandlerError::Retry(e.to_string()))?;
            u64::from_le_bytes(bytes)
        };
        Ok(vec![Emit::new(
            format!("echo.{}", event.ty),
            &json!({
                "data": event.data_value(),
                "count": count,
                "now": now,
                "random": random,
            }),
        )?])
    }
}

switchyard_sdk::plugin!(Echo);
