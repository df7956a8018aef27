//! A guest built for a different world than `switchyard:plugin/handler`.
wit_bindgen::generate!({ path: "wit", world: "other:thing/transformer@1.0.0" });

struct Upper;

impl Guest for Upper {
    fn handle(input: String) -> String {
        input.to_uppercase()
    }
}

export!(Upper);
