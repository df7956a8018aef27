//! The payment service's handler for catalog 002 (SmartAutoCheck): the
//! 15-minute payment window of an appointment, and its reminder.
//!
//! - `appointment.created` opens a payment window: a timer
//!   `window:<appointmentId>` due `payment_window` after the event (config,
//!   a duration such as `"15m"`, the default, or `"3s"`).
//! - `payment.completed` inside the window emits `appointment.confirmed`,
//!   cancels the window, and sets the reminder timer
//!   `reminder:<appointmentId>` 24 h before the appointment's `date` and
//!   `time` (UTC; a time already past fires at once).
//! - `payment.failed` leaves the window open: the customer can try again
//!   until it ends.
//! - A window that ends unpaid emits `appointment.cancelled` with
//!   `reason: "payment window expired"`, `cancelledBy: "system"` and
//!   `refundEligible: false`, and the slot is released.
//! - A `payment.completed` after the window ended does not confirm the
//!   appointment: the slot may be gone. It emits `payment.refunded`
//!   (`reason: "payment received after the payment window expired"`), the
//!   catalog's event for a refund the payment service issues, so the money
//!   goes back.
//! - The reminder emits `appointment.reminder` on `notifications-topic`:
//!   `{appointmentId, customerId, channel: "sms", template:
//!   "appointment-reminder", date, time, remindAt}`; the notification
//!   service sends it (and then emits `notification.sent`).
//!
//! State, per appointment, under `appt:<appointmentId>`: its status
//! (`pending_payment`, `confirmed`, `cancelled`), customer, date and time.

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, Timer, derive_id, json};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    payment_window: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    appointment_id: String,
    customer_id: String,
    date: String,
    time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paid {
    appointment_id: String,
    payment_id: String,
    #[serde(default)]
    amount: Option<f64>,
    #[serde(default)]
    completed_at: Option<String>,
}

#[derive(Serialize, Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct Appointment {
    status: String,
    customer_id: String,
    date: String,
    time: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Due {
    appointment_id: String,
}

/// `15m`, `3s`, `24h`, `1h30m`, `500ms` in milliseconds.
pub fn duration_ms(text: &str) -> Option<u64> {
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let n: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let ms = match &rest[..unit] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(ms)?)?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The RFC 3339 time 24 h before an appointment on `date` (`YYYY-MM-DD`)
/// at `time` (`10:00 AM`, `2:30 PM` or `14:30`), taken as UTC.
pub fn reminder_at(date: &str, time: &str) -> Option<String> {
    let y: i64 = date.get(..4)?.parse().ok()?;
    let m: i64 = date.get(5..7)?.parse().ok()?;
    let d: i64 = date.get(8..10)?.parse().ok()?;
    let (clock, half) = match time.trim().rsplit_once(' ') {
        Some((clock, half)) => (clock, Some(half.to_ascii_uppercase())),
        None => (time.trim(), None),
    };
    let (h, min) = clock.split_once(':')?;
    let (mut h, min): (i64, i64) = (h.parse().ok()?, min.parse().ok()?);
    match half.as_deref() {
        Some("AM") if h == 12 => h = 0,
        Some("PM") if h < 12 => h += 12,
        Some("AM" | "PM") | None => {}
        Some(_) => return None,
    }
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || min > 59 {
        return None;
    }
    let (y, m, d) = civil_from_days(days_from_civil(y, m, d) - 1);
    Some(format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:00Z"))
}

fn key(appointment: &str) -> String {
    format!("appt:{appointment}")
}

/// The plugin.
pub struct AutocheckPayment;

impl Handler for AutocheckPayment {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        match event.ty.as_str() {
            "appointment.created" => created(ctx, event),
            "payment.completed" => completed(ctx, event),
            // The window stays open: the customer may pay again.
            "payment.failed" => Ok(Vec::new()),
            other => Err(HandlerError::Reject(format!(
                "not an event this plugin handles: {other}"
            ))),
        }
    }

    fn on_timer(ctx: &mut Ctx<'_>, timer: &Timer) -> Result<Vec<Emit>, HandlerError> {
        let due: Due = timer.payload()?;
        let Some(mut appointment) = ctx.state.get::<Appointment>(&key(&due.appointment_id))? else {
            return Ok(Vec::new());
        };
        if timer.name.starts_with("window:") {
            if appointment.status != "pending_payment" {
                return Ok(Vec::new());
            }
            appointment.status = "cancelled".into();
            ctx.state.set(&key(&due.appointment_id), &appointment)?;
            return Ok(vec![
                Emit::new(
                    "appointment.cancelled",
                    &json!({
                        "appointmentId": due.appointment_id,
                        "cancelledBy": "system",
                        "reason": "payment window expired",
                        "cancelledAt": timer.due,
                        "refundEligible": false,
                    }),
                )?
                .key(&due.appointment_id),
            ]);
        }
        if appointment.status != "confirmed" {
            return Ok(Vec::new());
        }
        Ok(vec![
            Emit::new(
                "appointment.reminder",
                &json!({
                    "appointmentId": due.appointment_id,
                    "customerId": appointment.customer_id,
                    "channel": "sms",
                    "template": "appointment-reminder",
                    "date": appointment.date,
                    "time": appointment.time,
                    "remindAt": timer.due,
                }),
            )?
            .key(&due.appointment_id),
        ])
    }
}

fn created(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let config: Config = ctx.config().unwrap_or_default();
    let window = config.payment_window.as_deref().unwrap_or("15m");
    let window = duration_ms(window).ok_or_else(|| {
        HandlerError::Reject(format!(
            "config `payment_window` = {window:?} is not a duration such as \"15m\""
        ))
    })?;
    let a: Created = event.data()?;
    let k = key(&a.appointment_id);
    if ctx.state.get::<Appointment>(&k)?.is_some() {
        return Ok(Vec::new());
    }
    ctx.state.set(
        &k,
        &Appointment {
            status: "pending_payment".into(),
            customer_id: a.customer_id,
            date: a.date,
            time: a.time,
        },
    )?;
    ctx.timers.set_after(
        &format!("window:{}", a.appointment_id),
        std::time::Duration::from_millis(window),
        &Due {
            appointment_id: a.appointment_id,
        },
    )?;
    Ok(Vec::new())
}

fn completed(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
    let p: Paid = event.data()?;
    let k = key(&p.appointment_id);
    let Some(mut appointment) = ctx.state.get::<Appointment>(&k)? else {
        return Err(HandlerError::Retry(format!(
            "no appointment.created seen yet for {}",
            p.appointment_id
        )));
    };
    let at = p.completed_at.clone().unwrap_or_else(|| event.time.clone());
    match appointment.status.as_str() {
        "pending_payment" => {
            appointment.status = "confirmed".into();
            ctx.state.set(&k, &appointment)?;
            ctx.timers.cancel(&format!("window:{}", p.appointment_id));
            if let Some(remind) = reminder_at(&appointment.date, &appointment.time) {
                ctx.timers.set_at(
                    &format!("reminder:{}", p.appointment_id),
                    &remind,
                    &Due {
                        appointment_id: p.appointment_id.clone(),
                    },
                )?;
            }
            Ok(vec![
                Emit::new(
                    "appointment.confirmed",
                    &json!({
                        "appointmentId": p.appointment_id,
                        "paymentId": p.payment_id,
                        "status": "confirmed",
                        "confirmedAt": at,
                    }),
                )?
                .key(&p.appointment_id),
            ])
        }
        "cancelled" => Ok(vec![
            Emit::new(
                "payment.refunded",
                &json!({
                    "paymentId": p.payment_id,
                    "refundId": derive_id("refund", &p.payment_id),
                    "amount": p.amount,
                    "reason": "payment received after the payment window expired",
                    "refundedAt": at,
                }),
            )?
            .key(&p.appointment_id),
        ]),
        // Confirmed already: a second capture of the same payment.
        _ => Ok(Vec::new()),
    }
}

switchyard_sdk::plugin!(AutocheckPayment);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_reminder_times() {
        assert_eq!(duration_ms("15m"), Some(900_000));
        assert_eq!(duration_ms("1h30m"), Some(5_400_000));
        assert_eq!(duration_ms("3s"), Some(3_000));
        assert_eq!(duration_ms("soon"), None);
        assert_eq!(
            reminder_at("2025-01-15", "10:00 AM").as_deref(),
            Some("2025-01-14T10:00:00Z")
        );
        assert_eq!(
            reminder_at("2025-03-01", "2:30 PM").as_deref(),
            Some("2025-02-28T14:30:00Z")
        );
        assert_eq!(
            reminder_at("2024-03-01", "12:00 AM").as_deref(),
            Some("2024-02-29T00:00:00Z")
        );
        assert_eq!(reminder_at("2025-01-15", "25:00"), None);
    }
}
