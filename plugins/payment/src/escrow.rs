//! Catalog 004: the payment escrow saga, kept in plugin state per booking.
//!
//! - `payment.escrow_created` records the escrow (payment id, owner, amount).
//! - `booking.delivery_confirmed` releases it: `payment.escrow_released` with
//!   `platform_fee_cents = round(amount_cents * platform_fee_bps / 10000)`
//!   (half up) and `runner_payout_cents = amount_cents - platform_fee_cents`.
//!   With no escrow recorded yet, the handler asks to retry: the escrow event
//!   travels on another topic and may simply not have arrived.
//! - `booking.cancelled` refunds a held escrow with `payment.escrow_refunded`;
//!   with none recorded there is nothing to refund and nothing is emitted.
//! - A released or refunded escrow is settled: later confirmations or
//!   cancellations of that booking emit nothing.
//!
//! Every emit carries `owner_id`, which the catalog's "Known Gaps" table says
//! its payment events lacked.

use crate::Config;
use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, HandlerError, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Escrow {
    payment_id: String,
    owner_id: String,
    amount_cents: u64,
    currency: String,
    settled: bool,
}

fn key(booking_id: &str) -> String {
    format!("escrow:{booking_id}")
}

#[derive(Deserialize)]
struct Created {
    payment_id: String,
    booking_id: String,
    owner_id: String,
    amount_cents: u64,
    currency: String,
}

#[derive(Deserialize)]
struct Booking {
    booking_id: String,
    #[serde(default)]
    runner_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// `payment.escrow_created`: remember the escrow; emits nothing.
pub fn remember(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let c: Created = event.data()?;
    let escrow = Escrow {
        payment_id: c.payment_id,
        owner_id: c.owner_id,
        amount_cents: c.amount_cents,
        currency: c.currency,
        settled: false,
    };
    ctx.state.set(&key(&c.booking_id), &escrow)?;
    Ok(Vec::new())
}

/// The platform fee and the runner's payout for an amount.
pub fn split(amount_cents: u64, fee_bps: u64) -> (u64, u64) {
    let fee = (amount_cents * fee_bps + 5_000) / 10_000;
    (fee, amount_cents - fee.min(amount_cents))
}

/// `booking.delivery_confirmed` -> `payment.escrow_released`.
pub fn release(
    ctx: &mut Ctx<'_>,
    config: &Config,
    event: &Event,
) -> Result<Vec<Emit>, HandlerError> {
    let b: Booking = event.data()?;
    let Some(mut escrow) = ctx.state.get::<Escrow>(&key(&b.booking_id))? else {
        return Err(HandlerError::Retry(format!(
            "no escrow recorded yet for booking {}",
            b.booking_id
        )));
    };
    if escrow.settled {
        return Ok(Vec::new());
    }
    escrow.settled = true;
    ctx.state.set(&key(&b.booking_id), &escrow)?;
    let (fee, payout) = split(escrow.amount_cents, config.platform_fee_bps);
    Ok(vec![Emit::new(
        "payment.escrow_released",
        &json!({
            "payment_id": escrow.payment_id,
            "booking_id": b.booking_id,
            "runner_id": b.runner_id,
            "owner_id": escrow.owner_id,
            "runner_payout_cents": payout,
            "platform_fee_cents": fee,
            "currency": escrow.currency,
            "occurred_at": b.occurred_at.as_deref().unwrap_or(&event.time),
        }),
    )?])
}

/// `booking.cancelled` -> `payment.escrow_refunded` when an escrow is held.
pub fn refund(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let b: Booking = event.data()?;
    let Some(mut escrow) = ctx.state.get::<Escrow>(&key(&b.booking_id))? else {
        return Ok(Vec::new());
    };
    if escrow.settled {
        return Ok(Vec::new());
    }
    escrow.settled = true;
    ctx.state.set(&key(&b.booking_id), &escrow)?;
    Ok(vec![Emit::new(
        "payment.escrow_refunded",
        &json!({
            "payment_id": escrow.payment_id,
            "booking_id": b.booking_id,
            "owner_id": escrow.owner_id,
            "amount_cents": escrow.amount_cents,
            "currency": escrow.currency,
            "refund_reason": b.reason,
            "occurred_at": b.occurred_at.as_deref().unwrap_or(&event.time),
        }),
    )?])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payment;
    use switchyard_sdk::testing::{MemoryState, event, run};

    fn config() -> serde_json::Value {
        json!({ "vocabulary": "escrow", "platform_fee_bps": 1500 })
    }

    #[test]
    fn fee_rounds_half_up_and_payout_is_the_rest() {
        assert_eq!(split(10_000, 1500), (1500, 8500));
        assert_eq!(split(3_333, 1500), (500, 2833));
        assert_eq!(split(1, 1500), (0, 1));
    }

    #[test]
    fn the_saga_releases_once_and_never_refunds_after() {
        let mut state = MemoryState::default();
        let created = event(
            "payment.escrow_created",
            json!({"payment_id": "p1", "booking_id": "b1", "owner_id": "o1", "amount_cents": 2000, "currency": "IDR"}),
        );
        assert!(
            run::<Payment>(&mut state, config(), &created)
                .unwrap()
                .is_empty()
        );
        let confirmed = event(
            "booking.delivery_confirmed",
            json!({"booking_id": "b1", "runner_id": "r1"}),
        );
        let out = run::<Payment>(&mut state, config(), &confirmed).unwrap();
        assert_eq!(out[0].data_value()["runner_payout_cents"], 1700);
        assert_eq!(out[0].data_value()["owner_id"], "o1");
        assert!(
            run::<Payment>(&mut state, config(), &confirmed)
                .unwrap()
                .is_empty()
        );
        let cancelled = event("booking.cancelled", json!({"booking_id": "b1"}));
        assert!(
            run::<Payment>(&mut state, config(), &cancelled)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn release_without_escrow_retries_and_stages_nothing() {
        let mut state = MemoryState::default();
        let confirmed = event("booking.delivery_confirmed", json!({"booking_id": "b9"}));
        let err = run::<Payment>(&mut state, config(), &confirmed).unwrap_err();
        assert!(matches!(err, HandlerError::Retry(_)));
        assert_eq!(state, MemoryState::default());
    }
}
