"""The receipt plugin (catalog 000) in Python, a port of plugins/receipt:
`payment.payment.succeeded` -> `receipt.receipt.generated`.

- `receipt_number` is `RCP-YYYY-NNNNNN`: `YYYY` is the year of the payment's
  `succeeded_at` (the event time when absent) and `NNNNNN` a per-year sequence
  starting at 000001, kept in state under `seq:YYYY`.
- A payment already receipted (another event for the same `payment_id`) gets
  its original receipt again and uses no new number.
- `receipt_url` is `receipt_base_url` from config plus `<number>.pdf`.
"""

import switchyard
from switchyard import Emit, Reject, derive_id, state


def year(time):
    """The four-digit year an RFC 3339 time starts with."""
    if len(time) < 4 or not time[:4].isascii() or not time[:4].isdigit():
        raise Reject(f"`{time}` is not an RFC 3339 time")
    return time[:4]


@switchyard.handler
def handle(event):
    base_url = switchyard.config()["receipt_base_url"]
    p = event.data
    paid_at = p.get("succeeded_at")
    if paid_at is None:
        paid_at = event.time
    issued_key = f"receipt:{p['payment_id']}"
    issued = state.get(issued_key)
    if issued is not None:
        number = issued["receipt_number"]
    else:
        y = year(paid_at)
        number = f"RCP-{y}-{state.next_in_sequence(f'seq:{y}'):06d}"
        state.set(issued_key, {"receipt_number": number})
    return [Emit("receipt.receipt.generated", {
        "receipt_id": derive_id("receipt", p["payment_id"]),
        "payment_id": p["payment_id"],
        "booking_id": p["booking_id"],
        "user_id": p["user_id"],
        "receipt_number": number,
        "receipt_url": f"{base_url}{number}.pdf",
        "amount": float(p["amount"]),
        "currency": p["currency"],
        "generated_at": event.time,
    })]
