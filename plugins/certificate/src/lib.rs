//! The certificate plugin (catalog 002): `inspection.completed` with
//! `result: pass` -> `certificate.generated`; any other result emits nothing.
//!
//! - `certificateNumber` is `SAC-YYYY-NNNNNN`, sequential per year of
//!   `completedAt`, kept in state under `seq:YYYY`. An inspection already
//!   certified gets its original certificate again.
//! - `validUntil` is the completion date plus one year (`YYYY-MM-DD`); a
//!   29 February completion is valid until 28 February.
//! - `qrCode` is the signed text a QR image encodes; see [`qr`].

pub mod qr;

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, derive_id, json};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    qr_signing_key: String,
    pdf_base_url: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Completed {
    inspection_id: String,
    appointment_id: String,
    result: String,
    completed_at: String,
}

#[derive(Serialize, Deserialize)]
struct Issued {
    number: String,
}

/// The date one year after the RFC 3339 time `at`, as `YYYY-MM-DD`.
pub fn one_year_after(at: &str) -> Option<String> {
    let (y, m, d) = (
        at.get(..4)?.parse::<u32>().ok()?,
        at.get(5..7)?,
        at.get(8..10)?,
    );
    let day = if m == "02" && d == "29" { "28" } else { d };
    Some(format!("{}-{m}-{day}", y + 1))
}

/// The exported handler.
pub struct Certificate;

impl Handler for Certificate {
    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        let config: Config = ctx.config()?;
        let c: Completed = event.data()?;
        if c.result != "pass" {
            return Ok(Vec::new());
        }
        let valid_until = one_year_after(&c.completed_at).ok_or_else(|| {
            HandlerError::Reject(format!(
                "completedAt `{}` is not an RFC 3339 time",
                c.completed_at
            ))
        })?;
        let issued_key = format!("certificate:{}", c.inspection_id);
        let number = match ctx.state.get::<Issued>(&issued_key)? {
            Some(issued) => issued.number,
            None => {
                let year = &c.completed_at[..4];
                let n = ctx.state.next_in_sequence(&format!("seq:{year}"))?;
                let number = format!("SAC-{year}-{n:06}");
                ctx.state.set(
                    &issued_key,
                    &Issued {
                        number: number.clone(),
                    },
                )?;
                number
            }
        };
        let certificate_id = derive_id("certificate", &c.inspection_id);
        Ok(vec![Emit::new(
            "certificate.generated",
            &json!({
                "certificateId": certificate_id,
                "inspectionId": c.inspection_id,
                "appointmentId": c.appointment_id,
                "certificateNumber": number,
                "qrCode": qr::sign(config.qr_signing_key.as_bytes(), &certificate_id, &number),
                "validUntil": valid_until,
                "pdfUrl": format!("{}{certificate_id}.pdf", config.pdf_base_url),
                "generatedAt": event.time,
            }),
        )?])
    }
}

switchyard_sdk::plugin!(Certificate);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_for_one_year() {
        assert_eq!(
            one_year_after("2025-01-15T10:45:00Z").as_deref(),
            Some("2026-01-15")
        );
        assert_eq!(
            one_year_after("2028-02-29T08:00:00Z").as_deref(),
            Some("2029-02-28")
        );
        assert_eq!(one_year_after("soon"), None);
    }
}
