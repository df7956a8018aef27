/**
 * The receipt plugin (catalog 000) in JavaScript, a port of plugins/receipt:
 * `payment.payment.succeeded` -> `receipt.receipt.generated`.
 *
 * - `receipt_number` is `RCP-YYYY-NNNNNN`: `YYYY` is the year of the
 *   payment's `succeeded_at` (the event time when absent) and `NNNNNN` a
 *   per-year sequence starting at 000001, kept in state under `seq:YYYY`.
 * - A payment already receipted (another event for the same `payment_id`)
 *   gets its original receipt again and uses no new number.
 * - `receipt_url` is `receipt_base_url` from config plus `<number>.pdf`.
 */
import { Reject, config, deriveId, emit, float, handler, state } from './switchyard.js';
// It sets no timers: `on-timer` emits nothing.
export { onTimer } from './switchyard.js';

/** The four-digit year an RFC 3339 time starts with. */
function year(time) {
  if (!/^[0-9]{4}/.test(time)) throw new Reject(`\`${time}\` is not an RFC 3339 time`);
  return time.slice(0, 4);
}

/** The field `name` of the payment, which must be present. */
function field(p, name) {
  if (p?.[name] === undefined) throw new Reject(`\`payment.payment.succeeded\` data does not fit: missing field \`${name}\``);
  return p[name];
}

export const handle = handler((event) => {
  const baseUrl = config().receipt_base_url;
  const p = event.data;
  const paymentId = field(p, 'payment_id');
  const paidAt = p.succeeded_at ?? event.time;
  const issuedKey = `receipt:${paymentId}`;
  let number = state.get(issuedKey)?.receipt_number;
  if (number === undefined) {
    const y = year(paidAt);
    number = `RCP-${y}-${String(state.nextInSequence(`seq:${y}`)).padStart(6, '0')}`;
    state.set(issuedKey, { receipt_number: number });
  }
  return [emit('receipt.receipt.generated', {
    receipt_id: deriveId('receipt', paymentId),
    payment_id: paymentId,
    booking_id: field(p, 'booking_id'),
    user_id: field(p, 'user_id'),
    receipt_number: number,
    receipt_url: `${baseUrl}${number}.pdf`,
    amount: float(field(p, 'amount')),
    currency: field(p, 'currency'),
    generated_at: event.time,
  })];
});
