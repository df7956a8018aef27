//! A guest whose emits depend on what its instance handled before: it
//! counts calls in a global. `switchyard test` must flag it.
use std::sync::atomic::{AtomicU64, Ordering};
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, json};

static CALLS: AtomicU64 = AtomicU64::new(0);

struct History;

impl Handler for History {
    fn handle(_: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        Ok(vec![Emit::new(
            format!("history.{}", event.ty),
            &json!({ "calls": calls }),
        )?])
    }
}

switchyard_sdk::plugin!(History);
