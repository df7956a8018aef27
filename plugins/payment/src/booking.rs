//! Catalog 000: charges and refunds in the booking platform's vocabulary.

use crate::{Config, rules};
use serde::Deserialize;
use switchyard_sdk::{Emit, Event, HandlerError, derive_id, json};

#[derive(Deserialize)]
struct Created {
    booking_id: String,
    user_id: String,
    price_amount: f64,
    price_currency: String,
    #[serde(default)]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
struct Cancelled {
    booking_id: String,
    user_id: String,
    payment_id: String,
    #[serde(default)]
    cancellation_reason: Option<String>,
    #[serde(default)]
    refund_eligible: bool,
    #[serde(default)]
    refund_amount: Option<f64>,
    #[serde(default)]
    refund_currency: Option<String>,
}

/// `booking.booking.created` -> `payment.payment.succeeded` | `payment.payment.failed`.
pub fn charge(config: &Config, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let b: Created = event.data()?;
    let card = b
        .metadata
        .as_ref()
        .and_then(|m| m.get("card_number"))
        .and_then(|c| c.as_str())
        .unwrap_or(&config.default_card);
    let payment_id = derive_id("payment", &b.booking_id);
    let emit = match rules::decide(config, b.price_amount, &b.price_currency, card) {
        Ok(card) => Emit::new(
            "payment.payment.succeeded",
            &json!({
                "payment_id": payment_id,
                "booking_id": b.booking_id,
                "user_id": b.user_id,
                "amount": b.price_amount,
                "currency": b.price_currency,
                "provider": config.provider,
                "provider_payment_id": format!("pi_{}", payment_id.replace('-', "")[..24].to_string()),
                "payment_method": { "type": "card", "brand": card.brand, "last4": card.last4 },
                "succeeded_at": event.time,
            }),
        )?,
        Err(decline) => Emit::new(
            "payment.payment.failed",
            &json!({
                "payment_id": payment_id,
                "booking_id": b.booking_id,
                "user_id": b.user_id,
                "amount": b.price_amount,
                "currency": b.price_currency,
                "provider": config.provider,
                "error_code": decline.code,
                "error_message": decline.message,
                "failed_at": event.time,
            }),
        )?,
    };
    Ok(vec![emit])
}

/// `booking.booking.cancelled` with `refund_eligible` -> `payment.payment.refunded`;
/// an ineligible cancellation emits nothing.
pub fn refund(config: &Config, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let c: Cancelled = event.data()?;
    if !c.refund_eligible {
        return Ok(Vec::new());
    }
    let amount = c
        .refund_amount
        .ok_or_else(|| HandlerError::Reject("refund_eligible but no refund_amount".into()))?;
    if !amount.is_finite() || amount <= 0.0 {
        return Err(HandlerError::Reject(format!(
            "refund_amount {amount} is not positive"
        )));
    }
    let currency = c.refund_currency.unwrap_or_else(|| "USD".into());
    Ok(vec![Emit::new(
        "payment.payment.refunded",
        &json!({
            "payment_id": c.payment_id,
            "booking_id": c.booking_id,
            "user_id": c.user_id,
            "refund_id": derive_id("refund", &c.payment_id),
            "amount": amount,
            "currency": currency,
            "provider": config.provider,
            "reason": c.cancellation_reason,
            "refunded_at": event.time,
        }),
    )?])
}
