//! A Switchyard plugin: answers `greeting.requested` with `greeting.sent`.
//!
//! Build: cargo build --release --target wasm32-wasip2

use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, json};

/// The exported handler.
pub struct Plugin;

impl Handler for Plugin {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        if event.ty != "greeting.requested" {
            return Ok(vec![]);
        }
        let data = event.data_value();
        let Some(name) = data["name"].as_str().filter(|n| !n.is_empty()) else {
            return Err(HandlerError::Reject("`greeting.requested` data needs a `name`".into()));
        };
        let count = ctx.state.next_in_sequence("greetings")?;
        ctx.log(switchyard_sdk::Level::Info, &format!("greeting #{count} for {name}"));
        let message = format!("Hello, {name}!");
        Ok(vec![Emit::new(
            "greeting.sent",
            &json!({ "message": message, "name": name, "count": count }),
        )?])
    }
}

switchyard_sdk::plugin!(Plugin);
