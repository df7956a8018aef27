//! A guest that recurses until the wasm call stack is exhausted.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError};

struct Deep;

#[inline(never)]
fn down(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    down(n - 1).wrapping_mul(3).wrapping_add(n)
}

impl Handler for Deep {
    fn handle(_: &mut Ctx<'_>, _: &Event) -> Result<Vec<Emit>, HandlerError> {
        let depth = std::hint::black_box(u64::MAX);
        std::hint::black_box(down(depth));
        Ok(Vec::new())
    }
}

switchyard_sdk::plugin!(Deep);
