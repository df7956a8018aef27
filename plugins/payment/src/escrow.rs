//! Catalog 004: the payment escrow saga, kept in plugin state per booking.
//!
//! ```text
//! escrow_created -> Stripe hold -> escrow_held
//!   delivery_confirmed -> escrow_released
//!   booking.cancelled  -> escrow_refunded
//!   a release that cannot happen -> payment.failed
//! ```
//!
//! Each event adds what it knows to the booking's record, then the record is
//! settled if it can be:
//!
//! - `payment.escrow_created` gives the payment id, the owner, the amount and
//!   the currency. Nothing is held yet.
//! - `payment.escrow_held` says the funds are held, with the held amount and
//!   the payment id (not the owner, which the catalog's "Known Gaps" table
//!   notes).
//! - `booking.delivery_confirmed` asks for a release (and names the owner).
//! - `booking.cancelled` asks for a refund.
//!
//! Only held funds are released or refunded. Events on different topics
//! arrive in any order, so a confirmation or a cancellation that arrives
//! before the hold is remembered, emits nothing then, and is settled when the
//! hold arrives: no retry, no dead letter. A cancellation before the hold
//! refunds nothing at that moment (nothing is held); the hold, when it comes,
//! is refunded at once.
//!
//! - Release: `payment.escrow_released` with
//!   `platform_fee_cents = round(amount_cents * platform_fee_bps / 10000)`
//!   (half up) and `runner_payout_cents = amount_cents - platform_fee_cents`.
//! - Refund: `payment.escrow_refunded` with the held amount.
//! - A settled escrow stays settled: later confirmations, cancellations and
//!   holds emit nothing, except that a confirmation of a booking that was
//!   cancelled (refunded, or waiting to be) cannot release anything and
//!   emits `payment.failed`, once.
//! - A cancellation after a confirmation (delivered, released or waiting for
//!   the hold) is ignored: the delivery happened.
//!
//! Every emit carries `owner_id`, which the catalog's "Known Gaps" table says
//! its payment events lacked. A settlement whose owner is not known yet (the
//! hold came first, and no `escrow_created` or confirmation has named the
//! owner) waits for the event that names it.

use crate::Config;
use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, HandlerError, json};

/// A settlement asked for before it could happen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Request {
    /// The delivery was confirmed: release to the runner.
    Release {
        runner_id: Option<String>,
        occurred_at: String,
    },
    /// The booking was cancelled: refund the owner.
    Refund {
        reason: Option<String>,
        occurred_at: String,
    },
}

/// How an escrow ended.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Settled {
    Released,
    Refunded,
}

/// What is known of one booking's escrow.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
struct Escrow {
    payment_id: Option<String>,
    owner_id: Option<String>,
    amount_cents: Option<u64>,
    currency: Option<String>,
    held: bool,
    request: Option<Request>,
    settled: Option<Settled>,
    failure_sent: bool,
}

fn key(booking_id: &str) -> String {
    format!("escrow:{booking_id}")
}

/// The booking's escrow as stored, read from what this version writes or
/// what the version before the hold was modelled wrote: `{payment_id,
/// owner_id, amount_cents, currency, settled: bool}`, where an escrow was
/// released as soon as it was created. Such a record counts as held, and
/// `settled: true` as released, so an upgrade mid-saga settles it once.
fn load(ctx: &Ctx<'_>, booking_id: &str) -> Result<Escrow, HandlerError> {
    let Some(mut raw) = ctx.state.get::<serde_json::Value>(&key(booking_id))? else {
        return Ok(Escrow::default());
    };
    if let Some(settled) = raw.get("settled").and_then(serde_json::Value::as_bool) {
        raw["held"] = json!(true);
        raw["settled"] = if settled {
            json!("released")
        } else {
            json!(null)
        };
    }
    serde_json::from_value(raw)
        .map_err(|e| HandlerError::Reject(format!("state `{}` is corrupt: {e}", key(booking_id))))
}

/// The fields the saga reads from any of its four events.
#[derive(Deserialize)]
struct Fields {
    booking_id: String,
    #[serde(default)]
    payment_id: Option<String>,
    #[serde(default)]
    owner_id: Option<String>,
    #[serde(default)]
    amount_cents: Option<u64>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    runner_id: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    occurred_at: Option<String>,
}

/// The platform fee and the runner's payout for an amount.
pub fn split(amount_cents: u64, fee_bps: u64) -> (u64, u64) {
    let fee = (amount_cents * fee_bps + 5_000) / 10_000;
    (fee, amount_cents - fee.min(amount_cents))
}

/// Handles any of the saga's four event types.
pub fn handle(
    ctx: &mut Ctx<'_>,
    config: &Config,
    event: &Event,
) -> Result<Vec<Emit>, HandlerError> {
    let f: Fields = event.data()?;
    let mut escrow = load(ctx, &f.booking_id)?;
    let occurred_at = f.occurred_at.clone().unwrap_or_else(|| event.time.clone());
    let mut out = Vec::new();
    if escrow.owner_id.is_none() {
        escrow.owner_id = f.owner_id.clone();
    }
    match event.ty.as_str() {
        "payment.escrow_created" => {
            escrow.payment_id = escrow.payment_id.or(f.payment_id);
            escrow.amount_cents = escrow.amount_cents.or(f.amount_cents);
            escrow.currency = escrow.currency.or(f.currency);
        }
        "payment.escrow_held" => {
            // The hold's own figures are what is actually held.
            escrow.payment_id = f.payment_id.or(escrow.payment_id);
            escrow.amount_cents = f.amount_cents.or(escrow.amount_cents);
            escrow.currency = f.currency.or(escrow.currency);
            escrow.held = true;
        }
        "booking.delivery_confirmed" => {
            let cancelled = escrow.settled == Some(Settled::Refunded)
                || matches!(escrow.request, Some(Request::Refund { .. }));
            if cancelled {
                if !escrow.failure_sent {
                    escrow.failure_sent = true;
                    out.push(failed(&escrow, &f.booking_id, &occurred_at)?);
                }
            } else if escrow.request.is_none() && escrow.settled.is_none() {
                escrow.request = Some(Request::Release {
                    runner_id: f.runner_id,
                    occurred_at,
                });
            }
        }
        "booking.cancelled" => {
            if escrow.request.is_none() && escrow.settled.is_none() {
                escrow.request = Some(Request::Refund {
                    reason: f.reason,
                    occurred_at,
                });
            }
        }
        other => {
            return Err(HandlerError::Reject(format!(
                "the escrow saga does not handle `{other}`"
            )));
        }
    }
    out.extend(settle(&mut escrow, config, &f.booking_id)?);
    ctx.state.set(&key(&f.booking_id), &escrow)?;
    Ok(out)
}

/// Releases or refunds the escrow when it is held, a settlement is asked
/// for, and the owner is known.
fn settle(
    escrow: &mut Escrow,
    config: &Config,
    booking_id: &str,
) -> Result<Option<Emit>, HandlerError> {
    if !escrow.held || escrow.settled.is_some() || escrow.owner_id.is_none() {
        return Ok(None);
    }
    let Some(request) = escrow.request.take() else {
        return Ok(None);
    };
    let amount = escrow.amount_cents.unwrap_or(0);
    let emit = match request {
        Request::Release {
            runner_id,
            occurred_at,
        } => {
            escrow.settled = Some(Settled::Released);
            let (fee, payout) = split(amount, config.platform_fee_bps);
            Emit::new(
                "payment.escrow_released",
                &json!({
                    "payment_id": escrow.payment_id,
                    "booking_id": booking_id,
                    "runner_id": runner_id,
                    "owner_id": escrow.owner_id,
                    "runner_payout_cents": payout,
                    "platform_fee_cents": fee,
                    "currency": escrow.currency,
                    "occurred_at": occurred_at,
                }),
            )?
        }
        Request::Refund {
            reason,
            occurred_at,
        } => {
            escrow.settled = Some(Settled::Refunded);
            Emit::new(
                "payment.escrow_refunded",
                &json!({
                    "payment_id": escrow.payment_id,
                    "booking_id": booking_id,
                    "owner_id": escrow.owner_id,
                    "amount_cents": amount,
                    "currency": escrow.currency,
                    "refund_reason": reason,
                    "occurred_at": occurred_at,
                }),
            )?
        }
    };
    Ok(Some(emit))
}

/// `payment.failed`: a confirmed delivery whose escrow cannot be released.
fn failed(escrow: &Escrow, booking_id: &str, occurred_at: &str) -> Result<Emit, HandlerError> {
    let reason = if escrow.settled == Some(Settled::Refunded) {
        "the escrow was refunded after a cancellation; there is nothing to release"
    } else {
        "the booking was cancelled first; its funds are to be refunded, not released"
    };
    Emit::new(
        "payment.failed",
        &json!({
            "payment_id": escrow.payment_id,
            "booking_id": booking_id,
            "owner_id": escrow.owner_id,
            "reason": reason,
            "occurred_at": occurred_at,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Payment;
    use switchyard_sdk::testing::{MemoryState, event, run};
    use switchyard_sdk::{State, Value};

    fn config() -> Value {
        json!({ "vocabulary": "escrow", "platform_fee_bps": 1500 })
    }

    fn created() -> Event {
        event(
            "payment.escrow_created",
            json!({"payment_id": "p1", "booking_id": "b1", "owner_id": "o1", "amount_cents": 2000, "currency": "IDR"}),
        )
    }

    fn held() -> Event {
        event(
            "payment.escrow_held",
            json!({"payment_id": "p1", "booking_id": "b1", "stripe_payment_id": "pi_1", "amount_cents": 2000, "currency": "IDR"}),
        )
    }

    fn confirmed() -> Event {
        event(
            "booking.delivery_confirmed",
            json!({"booking_id": "b1", "runner_id": "r1", "owner_id": "o1"}),
        )
    }

    fn cancelled() -> Event {
        event(
            "booking.cancelled",
            json!({"booking_id": "b1", "reason": "changed mind"}),
        )
    }

    /// Runs `events` in order; returns the types each one emitted.
    fn saga(events: &[Event]) -> Vec<Vec<String>> {
        let mut state = MemoryState::default();
        events
            .iter()
            .map(|e| {
                let out = run::<Payment>(&mut state, config(), e).unwrap();
                for emit in &out {
                    assert_eq!(emit.data_value()["owner_id"], "o1", "{emit:?}");
                }
                out.into_iter().map(|emit| emit.ty).collect()
            })
            .collect()
    }

    #[test]
    fn fee_rounds_half_up_and_payout_is_the_rest() {
        assert_eq!(split(10_000, 1500), (1500, 8500));
        assert_eq!(split(3_333, 1500), (500, 2833));
        assert_eq!(split(1, 1500), (0, 1));
    }

    #[test]
    fn held_then_confirmed_releases_once() {
        let got = saga(&[created(), held(), confirmed(), confirmed(), cancelled()]);
        let none: Vec<String> = Vec::new();
        assert_eq!(
            got,
            [
                none.clone(),
                none.clone(),
                vec!["payment.escrow_released".to_string()],
                none.clone(),
                none
            ]
        );
    }

    #[test]
    fn only_held_funds_are_released_and_an_early_confirmation_waits_for_the_hold() {
        let got = saga(&[confirmed(), created(), held(), held(), confirmed()]);
        let released = got.iter().flatten().collect::<Vec<_>>();
        assert_eq!(released, ["payment.escrow_released"]);
        assert_eq!(got[2], ["payment.escrow_released"]);
    }

    #[test]
    fn a_cancellation_before_the_hold_refunds_the_hold_once() {
        let got = saga(&[
            created(),
            cancelled(),
            cancelled(),
            held(),
            held(),
            cancelled(),
        ]);
        let emitted = got.iter().flatten().collect::<Vec<_>>();
        assert_eq!(emitted, ["payment.escrow_refunded"]);
        assert_eq!(got[3], ["payment.escrow_refunded"]);
    }

    #[test]
    fn a_confirmation_after_a_refund_fails_once_with_the_owner() {
        let got = saga(&[created(), held(), cancelled(), confirmed(), confirmed()]);
        let emitted = got.iter().flatten().collect::<Vec<_>>();
        assert_eq!(emitted, ["payment.escrow_refunded", "payment.failed"]);
    }

    #[test]
    fn an_escrow_stored_by_the_version_before_holds_settles_once() {
        let mut state = MemoryState::default();
        state.set_raw(
            "escrow:b1",
            serde_json::to_vec(&json!({"payment_id": "p1", "owner_id": "o1", "amount_cents": 2000, "currency": "IDR", "settled": false})).unwrap(),
        );
        let out = run::<Payment>(&mut state, config(), &confirmed()).unwrap();
        assert_eq!(out[0].ty, "payment.escrow_released");
        assert!(
            run::<Payment>(&mut state, config(), &confirmed())
                .unwrap()
                .is_empty()
        );
        let mut settled = MemoryState::default();
        settled.set_raw(
            "escrow:b1",
            serde_json::to_vec(&json!({"payment_id": "p1", "owner_id": "o1", "amount_cents": 2000, "currency": "IDR", "settled": true})).unwrap(),
        );
        assert!(
            run::<Payment>(&mut settled, config(), &confirmed())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_hold_with_no_owner_known_waits_for_the_event_naming_it() {
        let mut state = MemoryState::default();
        let cancel = run::<Payment>(&mut state, config(), &cancelled()).unwrap();
        let hold = run::<Payment>(&mut state, config(), &held()).unwrap();
        assert!(cancel.is_empty() && hold.is_empty());
        let out = run::<Payment>(&mut state, config(), &created()).unwrap();
        assert_eq!(out[0].ty, "payment.escrow_refunded");
        assert_eq!(out[0].data_value()["amount_cents"], 2000);
    }
}
