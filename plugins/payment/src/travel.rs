//! Catalog 003: the travel platform's single `bookings` topic. Billing
//! consumes `booking.created` and answers every booking with
//! `booking.confirmed` or `booking.failed` on the same topic, which this
//! plugin does not subscribe to, so there is no loop.
//!
//! The catalog leaves `data` open, so the charge looks for its inputs under
//! the names a travel payload plausibly uses, first match wins:
//!
//! - the amount: `totalPrice`, `totalAmount`, `amount`, `price`, `total`,
//!   then the same names inside a nested `payment` object; a number, or a
//!   string holding one (`"349.00"`);
//! - the currency: `currency`, then `payment.currency`;
//! - the card: `cardNumber`, then `payment.cardNumber`; the config's
//!   `default_card` when neither is there.
//!
//! A booking whose payment data is missing or unreadable is answered with
//! `booking.failed` (`errorCode` `payment_data_missing` or
//! `payment_data_invalid`) and never dead-lettered: the booking service waits
//! for an answer, and a dead letter would leave it waiting forever. Only an
//! event with no `bookingId` is rejected, since no answer could name it.

use crate::{Config, rules};
use serde_json::{Map, Value};
use switchyard_sdk::{Emit, Event, HandlerError, derive_id, json};

/// The names the amount may go by, in the order they are tried.
const AMOUNT_FIELDS: [&str; 5] = ["totalPrice", "totalAmount", "amount", "price", "total"];

/// The first of `names` present in `data` or, failing that, in `data.payment`.
fn find<'a>(
    data: &'a Map<String, Value>,
    names: &[&'static str],
) -> Option<(&'static str, &'a Value)> {
    let nested = data.get("payment").and_then(Value::as_object);
    [Some(data), nested].into_iter().flatten().find_map(|obj| {
        names
            .iter()
            .find_map(|name| obj.get(*name).filter(|v| !v.is_null()).map(|v| (*name, v)))
    })
}

/// Why the payment data cannot be charged: an error code and a reason.
type Unreadable = (&'static str, String);

/// The amount, currency and card a booking asks to be charged.
fn payment(
    config: &Config,
    data: &Map<String, Value>,
) -> Result<(f64, String, String), Unreadable> {
    let missing = |what: &str| ("payment_data_missing", format!("The booking has no {what}"));
    let invalid = |what: &str, v: &Value| {
        let reason = format!("The booking's {what} {v} is not readable");
        ("payment_data_invalid", reason)
    };
    let (name, amount) = find(data, &AMOUNT_FIELDS).ok_or_else(|| missing("amount"))?;
    let amount = match amount {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|a| a.is_finite())
    .ok_or_else(|| invalid(name, amount))?;
    let currency = match find(data, &["currency"]).ok_or_else(|| missing("currency"))? {
        (_, Value::String(c)) if !c.trim().is_empty() => c.trim().to_string(),
        (_, other) => return Err(invalid("currency", other)),
    };
    let card = match find(data, &["cardNumber"]) {
        None => config.default_card.clone(),
        Some((_, Value::String(c))) => c.clone(),
        Some((_, other)) => return Err(invalid("cardNumber", other)),
    };
    Ok((amount, currency, card))
}

/// `booking.created` -> `booking.confirmed` | `booking.failed`.
pub fn charge(config: &Config, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let data = match event.data_value() {
        Value::Object(data) => data,
        _ => Map::new(),
    };
    let Some(booking_id) = data.get("bookingId").and_then(Value::as_str) else {
        return Err(HandlerError::Reject(
            "`booking.created` has no bookingId, so no answer could name the booking".into(),
        ));
    };
    let text = |k: &str| data.get(k).cloned().unwrap_or(Value::Null);
    let mut out = Map::new();
    out.insert("bookingId".into(), json!(booking_id));
    for field in ["userId", "type", "itemId"] {
        out.insert(field.into(), text(field));
    }
    let decision = payment(config, &data).and_then(|(amount, currency, card)| {
        out.insert("totalPrice".into(), json!(amount));
        out.insert("currency".into(), json!(currency));
        rules::decide(config, amount, &currency, &card).map_err(|d| (d.code, d.message))
    });
    let ty = match decision {
        Ok(card) => {
            out.insert("paymentId".into(), json!(derive_id("payment", booking_id)));
            out.insert(
                "paymentMethod".into(),
                json!({ "brand": card.brand, "last4": card.last4 }),
            );
            out.insert("confirmedAt".into(), json!(event.time));
            "booking.confirmed"
        }
        Err((code, reason)) => {
            out.insert("reason".into(), json!(reason));
            out.insert("errorCode".into(), json!(code));
            out.insert("failedAt".into(), json!(event.time));
            "booking.failed"
        }
    };
    Ok(vec![Emit::new(ty, &out)?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payment;
    use switchyard_sdk::testing::{MemoryState, event, run};

    fn answer(data: Value) -> Emit {
        let config = json!({ "vocabulary": "travel", "max_amount": 10000.0 });
        let created = event("booking.created", data);
        let mut out = run::<Payment>(&mut MemoryState::default(), config, &created).unwrap();
        assert_eq!(out.len(), 1);
        out.remove(0)
    }

    #[test]
    fn the_amount_is_found_under_its_other_names_and_as_text() {
        for data in [
            json!({"bookingId": "B1", "amount": 10.5, "currency": "USD"}),
            json!({"bookingId": "B1", "totalAmount": "10.5", "currency": "USD"}),
            json!({"bookingId": "B1", "payment": {"price": 10.5, "currency": "USD"}}),
        ] {
            let out = answer(data.clone());
            assert_eq!(out.ty, "booking.confirmed", "{data}");
            assert_eq!(out.data_value()["totalPrice"], 10.5);
        }
    }

    #[test]
    fn missing_or_unreadable_payment_data_fails_the_booking_with_a_reason() {
        let cases = [
            (json!({"bookingId": "B2"}), "payment_data_missing", "amount"),
            (
                json!({"bookingId": "B2", "totalPrice": 5}),
                "payment_data_missing",
                "currency",
            ),
            (
                json!({"bookingId": "B2", "totalPrice": "lots", "currency": "USD"}),
                "payment_data_invalid",
                "totalPrice",
            ),
            (
                json!({"bookingId": "B2", "totalPrice": 5, "currency": 7}),
                "payment_data_invalid",
                "currency",
            ),
        ];
        for (data, code, names) in cases {
            let out = answer(data.clone());
            assert_eq!(out.ty, "booking.failed", "{data}");
            assert_eq!(out.data_value()["errorCode"], code, "{data}");
            let reason = out.data_value()["reason"].as_str().unwrap().to_string();
            assert!(reason.contains(names), "{reason}");
        }
    }

    #[test]
    fn a_booking_without_an_id_is_rejected() {
        let config = json!({ "vocabulary": "travel" });
        let created = event("booking.created", json!({"totalPrice": 5}));
        let err = run::<Payment>(&mut MemoryState::default(), config, &created).unwrap_err();
        assert!(matches!(err, HandlerError::Reject(_)));
    }
}
