//! The decline rules, checked in this order:
//!
//! 1. the amount is not a positive number: `invalid_amount`;
//! 2. the currency is not in `currencies`: `currency_not_supported`;
//! 3. the card is not 12 to 19 digits: `invalid_card_number`;
//! 4. the card is in `decline_cards`: `card_declined`;
//! 5. the amount is above `max_amount`: `amount_too_large`.
//!
//! Anything else is approved.

use crate::Config;

/// An approved card: its brand (from the first digit) and last four digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Card {
    /// `visa`, `mastercard`, `amex`, `discover` or `unknown`.
    pub brand: &'static str,
    /// The last four digits.
    pub last4: String,
}

/// Why a charge was declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decline {
    /// A machine-readable code.
    pub code: &'static str,
    /// A message for people.
    pub message: String,
}

/// Applies the rules to one charge.
pub fn decide(config: &Config, amount: f64, currency: &str, card: &str) -> Result<Card, Decline> {
    let decline = |code, message: String| Err(Decline { code, message });
    if !amount.is_finite() || amount <= 0.0 {
        return decline(
            "invalid_amount",
            format!("Amount {amount} is not a positive number"),
        );
    }
    if !config
        .currencies
        .iter()
        .any(|c| c.eq_ignore_ascii_case(currency))
    {
        return decline(
            "currency_not_supported",
            format!("Currency {currency} is not supported"),
        );
    }
    if !(12..=19).contains(&card.len()) || !card.bytes().all(|b| b.is_ascii_digit()) {
        return decline("invalid_card_number", "Your card number is invalid".into());
    }
    if config.decline_cards.iter().any(|c| c == card) {
        return decline("card_declined", "Your card was declined".into());
    }
    if let Some(max) = config.max_amount
        && amount > max
    {
        return decline(
            "amount_too_large",
            format!("Amount exceeds the limit of {max:.2} {currency}"),
        );
    }
    let brand = match card.as_bytes()[0] {
        b'4' => "visa",
        b'5' | b'2' => "mastercard",
        b'3' => "amex",
        b'6' => "discover",
        _ => "unknown",
    };
    Ok(Card {
        brand,
        last4: card[card.len() - 4..].to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        serde_json::from_value(serde_json::json!({
            "vocabulary": "booking",
            "decline_cards": ["4000000000000002"],
            "max_amount": 1000.0
        }))
        .unwrap()
    }

    #[test]
    fn rules_apply_in_order() {
        let c = config();
        let code = |amount, currency, card| decide(&c, amount, currency, card).unwrap_err().code;
        assert_eq!(code(-1.0, "USD", "4242424242424242"), "invalid_amount");
        assert_eq!(
            code(10.0, "XYZ", "4242424242424242"),
            "currency_not_supported"
        );
        assert_eq!(code(10.0, "USD", "42"), "invalid_card_number");
        assert_eq!(code(10.0, "USD", "4000000000000002"), "card_declined");
        assert_eq!(code(1000.01, "usd", "4242424242424242"), "amount_too_large");
        let card = decide(&c, 1000.0, "USD", "5555555555554444").unwrap();
        assert_eq!(
            card,
            Card {
                brand: "mastercard",
                last4: "4444".into()
            }
        );
    }
}
