//! The waitlist plugin (catalog 001, camelCase, `booking-events` and
//! `waitlist-events`). Each resource's queue lives in state under
//! `queue:<resourceId>`.
//!
//! - `waitlist.joined` queues the user for the resource and the desired
//!   window (`eventData.desiredStartTime`..`desiredEndTime`); joining twice
//!   with the same `waitlistId` changes nothing.
//! - `booking.cancelled` frees the booking's window
//!   (`eventData.startTime`..`endTime`) on its `resourceId`. Among the
//!   entries whose window overlaps it (half-open intervals), the one with
//!   the highest `priority` wins, then the earliest joined, then the smallest
//!   `waitlistId`. It leaves the queue and `waitlist.promoted` is emitted with
//!   its old position and the new positions of everyone still waiting. No
//!   overlapping entry, no emit.
//! - `waitlist.expired` removes the entry; an unknown entry is ignored.
//! - Each entry expires at its `desiredStartTime`: joining sets a timer
//!   `expire:<waitlistId>` for then. If the entry still waits when it
//!   fires, it leaves the queue and `waitlist.expired` is emitted (on
//!   `waitlist-events`), so a later cancellation never promotes it into a
//!   slot that has already begun. A promotion, or an outside
//!   `waitlist.expired`, cancels the timer.
//!
//! Positions are 1-based ranks in queue order (priority, then join order).
//! Times compare as RFC 3339 UTC text (`...Z`), which the catalog uses.

use serde::{Deserialize, Serialize};
use switchyard_sdk::{Ctx, Emit, Event, Handler, HandlerError, Timer, json};

/// One waiting user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The waitlist entry id.
    pub waitlist_id: String,
    /// The waiting user.
    pub user_id: String,
    /// Higher goes first.
    pub priority: i64,
    /// When the user joined (the event time).
    pub joined_at: String,
    /// The desired window's start.
    pub desired_start_time: String,
    /// The desired window's end.
    pub desired_end_time: String,
}

/// Sorts a queue into promotion order.
pub fn order(queue: &mut [Entry]) {
    queue.sort_by(|a, b| {
        b.priority
            .cmp(&a.priority)
            .then_with(|| a.joined_at.cmp(&b.joined_at))
            .then_with(|| a.waitlist_id.cmp(&b.waitlist_id))
    });
}

/// The index (in promotion order) of the entry to promote into `start..end`.
pub fn pick(queue: &[Entry], start: &str, end: &str) -> Option<usize> {
    queue
        .iter()
        .position(|e| e.desired_start_time.as_str() < end && start < e.desired_end_time.as_str())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Joined {
    waitlist_id: String,
    user_id: String,
    resource_id: String,
    #[serde(default)]
    priority: i64,
    desired_start_time: String,
    desired_end_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Cancelled {
    booking_id: String,
    resource_id: String,
    start_time: String,
    end_time: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expired {
    waitlist_id: String,
    resource_id: String,
}

/// What an expiry timer carries.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Expiry {
    waitlist_id: String,
    resource_id: String,
}

fn expiry_timer(waitlist: &str) -> String {
    format!("expire:{waitlist}")
}

fn queue_key(resource: &str) -> String {
    format!("queue:{resource}")
}

fn load(ctx: &Ctx<'_>, resource: &str) -> Result<Vec<Entry>, HandlerError> {
    Ok(ctx.state.get(&queue_key(resource))?.unwrap_or_default())
}

/// The exported handler.
pub struct Waitlist;

impl Handler for Waitlist {
    fn on_timer(ctx: &mut Ctx<'_>, timer: &Timer) -> Result<Vec<Emit>, HandlerError> {
        expire(ctx, timer)
    }

    fn handle(ctx: &mut Ctx<'_>, event: &Event) -> Result<Vec<Emit>, HandlerError> {
        match event.ty.as_str() {
            "waitlist.joined" => {
                let j: Joined = event.data()?;
                let mut queue = load(ctx, &j.resource_id)?;
                if !queue.iter().any(|e| e.waitlist_id == j.waitlist_id) {
                    ctx.timers.set_at(
                        &expiry_timer(&j.waitlist_id),
                        &j.desired_start_time,
                        &Expiry {
                            waitlist_id: j.waitlist_id.clone(),
                            resource_id: j.resource_id.clone(),
                        },
                    )?;
                    queue.push(Entry {
                        waitlist_id: j.waitlist_id,
                        user_id: j.user_id,
                        priority: j.priority,
                        joined_at: event.time.clone(),
                        desired_start_time: j.desired_start_time,
                        desired_end_time: j.desired_end_time,
                    });
                    order(&mut queue);
                    ctx.state.set(&queue_key(&j.resource_id), &queue)?;
                }
                Ok(Vec::new())
            }
            "waitlist.expired" => {
                let x: Expired = event.data()?;
                let mut queue = load(ctx, &x.resource_id)?;
                let before = queue.len();
                queue.retain(|e| e.waitlist_id != x.waitlist_id);
                ctx.timers.cancel(&expiry_timer(&x.waitlist_id));
                if queue.len() != before {
                    ctx.state.set(&queue_key(&x.resource_id), &queue)?;
                }
                Ok(Vec::new())
            }
            "booking.cancelled" => {
                let c: Cancelled = event.data()?;
                let mut queue = load(ctx, &c.resource_id)?;
                let Some(index) = pick(&queue, &c.start_time, &c.end_time) else {
                    return Ok(Vec::new());
                };
                let promoted = queue.remove(index);
                ctx.timers.cancel(&expiry_timer(&promoted.waitlist_id));
                ctx.state.set(&queue_key(&c.resource_id), &queue)?;
                let remaining: Vec<_> = queue
                    .iter()
                    .enumerate()
                    .map(|(i, e)| json!({ "waitlistId": e.waitlist_id, "userId": e.user_id, "position": i + 1 }))
                    .collect();
                Ok(vec![Emit::new(
                    "waitlist.promoted",
                    &json!({
                        "waitlistId": promoted.waitlist_id,
                        "userId": promoted.user_id,
                        "resourceId": c.resource_id,
                        "priority": promoted.priority,
                        "previousPosition": index + 1,
                        "position": 0,
                        "desiredStartTime": promoted.desired_start_time,
                        "desiredEndTime": promoted.desired_end_time,
                        "freedBookingId": c.booking_id,
                        "startTime": c.start_time,
                        "endTime": c.end_time,
                        "remaining": remaining,
                    }),
                )?])
            }
            other => Err(HandlerError::Reject(format!(
                "waitlist does not handle `{other}`"
            ))),
        }
    }
}

/// An entry still waiting at its desired start leaves the queue, and
/// `waitlist.expired` says so.
fn expire(ctx: &mut Ctx<'_>, timer: &Timer) -> Result<Vec<Emit>, HandlerError> {
    let x: Expiry = timer.payload()?;
    let mut queue = load(ctx, &x.resource_id)?;
    let Some(index) = queue.iter().position(|e| e.waitlist_id == x.waitlist_id) else {
        return Ok(Vec::new());
    };
    let entry = queue.remove(index);
    ctx.state.set(&queue_key(&x.resource_id), &queue)?;
    Ok(vec![Emit::new(
        "waitlist.expired",
        &json!({
            "waitlistId": entry.waitlist_id,
            "userId": entry.user_id,
            "resourceId": x.resource_id,
            "priority": entry.priority,
            "position": index + 1,
            "desiredStartTime": entry.desired_start_time,
            "desiredEndTime": entry.desired_end_time,
            "expiredAt": timer.due,
        }),
    )?])
}

switchyard_sdk::plugin!(Waitlist);

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard_sdk::testing::{MemoryState, event, run};

    fn join(state: &mut MemoryState, id: &str, priority: i64, at: &str, window: (&str, &str)) {
        let mut e = event(
            "waitlist.joined",
            json!({"waitlistId": id, "userId": format!("u-{id}"), "resourceId": "room-1", "priority": priority,
                   "desiredStartTime": window.0, "desiredEndTime": window.1}),
        );
        e.time = at.into();
        run::<Waitlist>(state, json!({}), &e).unwrap();
    }

    fn cancel(state: &mut MemoryState, window: (&str, &str)) -> Vec<Emit> {
        let e = event(
            "booking.cancelled",
            json!({"bookingId": "b", "resourceId": "room-1", "startTime": window.0, "endTime": window.1}),
        );
        run::<Waitlist>(state, json!({}), &e).unwrap()
    }

    const MORNING: (&str, &str) = ("2025-08-19T09:00:00Z", "2025-08-19T11:00:00Z");
    const AFTERNOON: (&str, &str) = ("2025-08-19T14:00:00Z", "2025-08-19T16:00:00Z");

    #[test]
    fn highest_priority_then_earliest_overlapping_entry_is_promoted() {
        let mut state = MemoryState::default();
        join(&mut state, "w1", 50, "2025-08-19T08:00:00Z", AFTERNOON);
        join(&mut state, "w2", 100, "2025-08-19T08:05:00Z", AFTERNOON);
        join(&mut state, "w3", 100, "2025-08-19T08:01:00Z", MORNING);
        join(&mut state, "w4", 100, "2025-08-19T08:02:00Z", AFTERNOON);
        let out = cancel(&mut state, AFTERNOON);
        let promoted = out[0].data_value();
        assert_eq!(promoted["waitlistId"], "w4");
        assert_eq!(promoted["previousPosition"], 2);
        let out = cancel(&mut state, AFTERNOON);
        assert_eq!(out[0].data_value()["waitlistId"], "w2");
        let out = cancel(&mut state, AFTERNOON);
        assert_eq!(out[0].data_value()["waitlistId"], "w1");
        assert!(
            cancel(&mut state, AFTERNOON).is_empty(),
            "w3 wants the morning"
        );
    }

    #[test]
    fn touching_windows_do_not_overlap() {
        let q = vec![Entry {
            waitlist_id: "w".into(),
            user_id: "u".into(),
            priority: 1,
            joined_at: "t".into(),
            desired_start_time: "2025-08-19T11:00:00Z".into(),
            desired_end_time: "2025-08-19T12:00:00Z".into(),
        }];
        assert_eq!(pick(&q, MORNING.0, MORNING.1), None);
        assert_eq!(
            pick(&q, "2025-08-19T10:59:00Z", "2025-08-19T11:30:00Z"),
            Some(0)
        );
    }
}
