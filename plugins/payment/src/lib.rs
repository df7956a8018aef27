//! The payment plugin. One handler serves three catalogs; `vocabulary` in
//! its config picks which one (see README.md for every rule).
//!
//! - `booking` (catalog 000): `booking.booking.created` is charged and yields
//!   `payment.payment.succeeded` or `payment.payment.failed`;
//!   `booking.booking.cancelled` with `refund_eligible` yields
//!   `payment.payment.refunded`.
//! - `travel` (catalog 003): `booking.created` yields `booking.confirmed` or
//!   `booking.failed`.
//! - `escrow` (catalog 004): learns the escrow from `payment.escrow_created`
//!   and `payment.escrow_held`, releases held funds on
//!   `booking.delivery_confirmed`, refunds them on `booking.cancelled`, and
//!   emits `payment.failed` when a release cannot happen.

mod booking;
mod escrow;
mod rules;
mod travel;

use serde::Deserialize;
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError};

/// Which catalog's events the plugin speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vocabulary {
    /// Catalog 000, snake_case, topic = type.
    Booking,
    /// Catalog 003, camelCase on one `bookings` topic.
    Travel,
    /// Catalog 004, CloudEvents, escrow saga.
    Escrow,
}

/// The plugin's config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which catalog's events to handle.
    pub vocabulary: Vocabulary,
    /// The payment provider named in emits.
    #[serde(default = "defaults::provider")]
    pub provider: String,
    /// Test card numbers that are always declined.
    #[serde(default)]
    pub decline_cards: Vec<String>,
    /// The card charged when an event carries none.
    #[serde(default = "defaults::card")]
    pub default_card: String,
    /// Charges above this amount are declined (`amount_too_large`).
    #[serde(default)]
    pub max_amount: Option<f64>,
    /// Accepted currencies (`currency_not_supported` otherwise).
    #[serde(default = "defaults::currencies")]
    pub currencies: Vec<String>,
    /// Escrow: the platform fee in basis points of the held amount.
    #[serde(default = "defaults::fee_bps")]
    pub platform_fee_bps: u64,
}

mod defaults {
    pub fn provider() -> String {
        "stripe".into()
    }
    pub fn card() -> String {
        "4242424242424242".into()
    }
    pub fn currencies() -> Vec<String> {
        ["USD", "EUR", "GBP"].map(String::from).to_vec()
    }
    pub fn fee_bps() -> u64 {
        1500
    }
}

/// The exported handler.
pub struct Payment;

impl Handler for Payment {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let config: Config = ctx.config()?;
        match (config.vocabulary, event.ty.as_str()) {
            (Vocabulary::Booking, "booking.booking.created") => booking::charge(&config, event),
            (Vocabulary::Booking, "booking.booking.cancelled") => booking::refund(&config, event),
            (Vocabulary::Travel, "booking.created") => travel::charge(&config, event),
            (
                Vocabulary::Escrow,
                "payment.escrow_created"
                | "payment.escrow_held"
                | "booking.delivery_confirmed"
                | "booking.cancelled",
            ) => escrow::handle(ctx, &config, event),
            (vocabulary, ty) => Err(HandlerError::Reject(format!(
                "payment ({vocabulary:?} vocabulary) does not handle `{ty}`; fix the plugin's subscription"
            ))),
        }
    }
}

switchyard_sdk::plugin!(Payment);
