//! A guest that is not idempotent by itself: every event takes the next
//! number from a counter in state and emits it. Applying an event twice
//! would skip a number, so exactly-once tests count on it.
//!
//! A `tick.*` event instead sets a timer `t:<event id>`, due `delay_ms`
//! (from its data) after the event; when it fires, it takes the next number
//! from a second counter and emits `ticked`.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, Timer, json};

struct Counter;

impl Handler for Counter {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        if event.ty.starts_with("tick.") {
            let delay = event.data_value()["delay_ms"].as_u64().unwrap_or(0);
            ctx.timers.set_after(
                &format!("t:{}", event.id),
                std::time::Duration::from_millis(delay),
                &json!({ "event": event.id }),
            )?;
            return Ok(Vec::new());
        }
        let n: u64 = ctx.state.get("n")?.unwrap_or(0) + 1;
        ctx.state.set("n", &n)?;
        Ok(vec![Emit::new(
            "counted",
            &json!({ "n": n, "event": event.id, "offset": event.offset, "partition": event.partition }),
        )?])
    }

    fn on_timer(ctx: &mut Ctx<'_>, timer: &Timer) -> Result<Vec<Emit>, HandlerError> {
        let n: u64 = ctx.state.get("m")?.unwrap_or(0) + 1;
        ctx.state.set("m", &n)?;
        Ok(vec![Emit::new(
            "ticked",
            &json!({ "n": n, "timer": timer.name, "due": timer.due }),
        )?])
    }
}

switchyard_sdk::plugin!(Counter);
