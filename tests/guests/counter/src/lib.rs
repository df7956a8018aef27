//! A guest that is not idempotent by itself: every event takes the next
//! number from a counter in state and emits it. Applying an event twice
//! would skip a number, so exactly-once tests count on it.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, json};

struct Counter;

impl Handler for Counter {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let n: u64 = ctx.state.get("n")?.unwrap_or(0) + 1;
        ctx.state.set("n", &n)?;
        Ok(vec![Emit::new(
            "counted",
            &json!({ "n": n, "event": event.id, "offset": event.offset, "partition": event.partition }),
        )?])
    }
}

switchyard_sdk::plugin!(Counter);
