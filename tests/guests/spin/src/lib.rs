//! A guest that never returns.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError};

struct Spin;

impl Handler for Spin {
    fn handle(_: &mut Ctx<'_>, _: &Event) -> Result<Vec<Emit>, HandlerError> {
        let mut n: u64 = 0;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

switchyard_sdk::plugin!(Spin);
