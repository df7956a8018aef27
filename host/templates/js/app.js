/**
 * A Switchyard plugin: answers `greeting.requested` with `greeting.sent`.
 *
 * Build: see README.md; `switchyard test` and `switchyard dev` build it.
 */
import { Reject, emit, handler, log, state } from './switchyard.js';
// The contract's `on-timer`: this plugin sets no timers (see switchyard.js
// for `timers` and `timerHandler`), so the helper's, which emits nothing.
export { onTimer } from './switchyard.js';

export const handle = handler((event) => {
  if (event.type !== 'greeting.requested') return [];
  const name = event.data?.name;
  if (typeof name !== 'string' || name === '') {
    throw new Reject('`greeting.requested` data needs a `name`');
  }
  const count = state.nextInSequence('greetings');
  log(`greeting #${count} for ${name}`);
  return [emit('greeting.sent', { message: `Hello, ${name}!`, name, count })];
});
