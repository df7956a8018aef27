//! A guest that panics on every event.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError};

struct Trap;

impl Handler for Trap {
    fn handle(_: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        panic!("boom on {}", event.ty)
    }
}

switchyard_sdk::plugin!(Trap);
