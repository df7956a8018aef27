//! The receipt plugin (catalog 000): `payment.payment.succeeded` ->
//! `receipt.receipt.generated`.
//!
//! - `receipt_number` is `RCP-YYYY-NNNNNN`: `YYYY` is the year of the
//!   payment's `succeeded_at` (the event time when absent) and `NNNNNN` a
//!   per-year sequence starting at 000001, kept in state under `seq:YYYY`.
//! - A payment already receipted (another event for the same `payment_id`)
//!   gets its original receipt again and uses no new number.
//! - `receipt_url` is `receipt_base_url` from config plus `<number>.pdf`.

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, derive_id, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    receipt_base_url: String,
}

#[derive(Deserialize)]
struct Succeeded {
    payment_id: String,
    booking_id: String,
    user_id: String,
    amount: f64,
    currency: String,
    #[serde(default)]
    succeeded_at: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Issued {
    receipt_number: String,
}

/// The receipt number for the `n`th receipt of `year`.
pub fn receipt_number(year: &str, n: u64) -> String {
    format!("RCP-{year}-{n:06}")
}

/// The four-digit year an RFC 3339 time starts with.
fn year(time: &str) -> Result<&str, HandlerError> {
    time.get(..4)
        .filter(|y| y.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| HandlerError::Reject(format!("`{time}` is not an RFC 3339 time")))
}

/// The exported handler.
pub struct Receipt;

impl Handler for Receipt {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let config: Config = ctx.config()?;
        let p: Succeeded = event.data()?;
        let paid_at = p.succeeded_at.as_deref().unwrap_or(&event.time);
        let issued_key = format!("receipt:{}", p.payment_id);
        let number = match ctx.state.get::<Issued>(&issued_key)? {
            Some(issued) => issued.receipt_number,
            None => {
                let year = year(paid_at)?;
                let n = ctx.state.next_in_sequence(&format!("seq:{year}"))?;
                let receipt_number = receipt_number(year, n);
                ctx.state.set(
                    &issued_key,
                    &Issued {
                        receipt_number: receipt_number.clone(),
                    },
                )?;
                receipt_number
            }
        };
        Ok(vec![Emit::new(
            "receipt.receipt.generated",
            &json!({
                "receipt_id": derive_id("receipt", &p.payment_id),
                "payment_id": p.payment_id,
                "booking_id": p.booking_id,
                "user_id": p.user_id,
                "receipt_number": number,
                "receipt_url": format!("{}{number}.pdf", config.receipt_base_url),
                "amount": p.amount,
                "currency": p.currency,
                "generated_at": event.time,
            }),
        )?])
    }
}

switchyard_sdk::plugin!(Receipt);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{MemoryState, event, run};

    fn paid(payment_id: &str, at: &str) -> Event {
        event(
            "payment.payment.succeeded",
            json!({"payment_id": payment_id, "booking_id": "b", "user_id": "u", "amount": 99.99,
                   "currency": "USD", "succeeded_at": at}),
        )
    }

    fn number(state: &mut MemoryState, e: &Event) -> String {
        let config = json!({"receipt_base_url": "https://r/"});
        let out = run::<Receipt>(state, config, e).unwrap();
        out[0].data_value()["receipt_number"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn numbers_are_sequential_per_year_and_stable_per_payment() {
        let mut state = MemoryState::default();
        assert_eq!(
            number(&mut state, &paid("p1", "2025-12-31T23:59:00Z")),
            "RCP-2025-000001"
        );
        assert_eq!(
            number(&mut state, &paid("p2", "2025-12-31T23:59:30Z")),
            "RCP-2025-000002"
        );
        assert_eq!(
            number(&mut state, &paid("p3", "2026-01-01T00:00:00Z")),
            "RCP-2026-000001"
        );
        assert_eq!(
            number(&mut state, &paid("p1", "2025-12-31T23:59:00Z")),
            "RCP-2025-000001"
        );
        assert_eq!(state.json("seq:2025"), Some(json!(2)));
    }
}
