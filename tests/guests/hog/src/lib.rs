//! A guest that allocates without bound.
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError};

struct Hog;

impl Handler for Hog {
    fn handle(_: &mut Ctx<'_>, _: &Event) -> Result<Vec<Emit>, HandlerError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

switchyard_sdk::plugin!(Hog);
