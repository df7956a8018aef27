//! Catalog 003: the travel platform's single `bookings` topic. The charge
//! reads `data.totalPrice`, `data.currency` and, optionally, `data.cardNumber`.
//! The results go back to the same topic as `booking.confirmed` or
//! `booking.failed`, which this plugin does not subscribe to, so there is no loop.

use crate::{Config, rules};
use serde::Deserialize;
use switchyard_sdk::{Emit, Event, HandlerError, derive_id, json};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    booking_id: String,
    user_id: String,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    item_id: Option<String>,
    total_price: f64,
    currency: String,
    #[serde(default)]
    card_number: Option<String>,
}

/// `booking.created` -> `booking.confirmed` | `booking.failed`.
pub fn charge(config: &Config, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let b: Created = event.data()?;
    let card = b.card_number.as_deref().unwrap_or(&config.default_card);
    let payment_id = derive_id("payment", &b.booking_id);
    let common = json!({
        "bookingId": b.booking_id,
        "userId": b.user_id,
        "type": b.kind,
        "itemId": b.item_id,
        "totalPrice": b.total_price,
        "currency": b.currency,
    });
    let mut data = common.as_object().cloned().unwrap_or_default();
    let ty = match rules::decide(config, b.total_price, &b.currency, card) {
        Ok(card) => {
            data.insert("paymentId".into(), json!(payment_id));
            data.insert(
                "paymentMethod".into(),
                json!({ "brand": card.brand, "last4": card.last4 }),
            );
            data.insert("confirmedAt".into(), json!(event.time));
            "booking.confirmed"
        }
        Err(decline) => {
            data.insert("reason".into(), json!(decline.message));
            data.insert("errorCode".into(), json!(decline.code));
            data.insert("failedAt".into(), json!(event.time));
            "booking.failed"
        }
    };
    Ok(vec![Emit::new(ty, &data)?])
}
