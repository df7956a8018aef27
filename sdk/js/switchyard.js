/**
 * Write Switchyard event handler plugins in plain JavaScript.
 *
 * A plugin is one ES module (say `app.js`) that exports `handle`, wrapped by
 * {@link handler}, and `onTimer`. The handler takes an {@link Event} and
 * returns a list of emits made by {@link emit}; it may use {@link state},
 * {@link timers}, {@link config}, {@link log} and {@link deriveId}, and fails
 * by throwing {@link Retry} or {@link Reject} (any other exception rejects the
 * event with its message). A plugin that sets no timers re-exports this
 * module's `onTimer`, which emits nothing:
 *
 *     import { handler, emit, state } from './switchyard.js';
 *     export { onTimer } from './switchyard.js';
 *     export const handle = handler((event) => {
 *       const seen = state.nextInSequence('seen');
 *       return [emit('echo', { of: event.type, seen })];
 *     });
 *
 * A plugin that sets timers exports its own `onTimer` instead, wrapped by
 * {@link timerHandler}: it takes a {@link Timer} when one comes due and
 * returns emits, or throws, like the handler. Like state writes, setting and
 * cancelling timers take effect only when the call succeeds.
 *
 *     import { handler, timerHandler, emit, timers } from './switchyard.js';
 *     export const handle = handler((event) => {
 *       const order = event.data.order_id;
 *       timers.setAfter(`expire:${order}`, 15 * 60 * 1000, { order_id: order });
 *       return [];
 *     });
 *     export const onTimer = timerHandler((timer) =>
 *       [emit('order.expired', { order_id: timer.payload.order_id, expired_at: timer.due })]);
 *
 * Build it (from the folder holding `app.js`, this module and `wit/`):
 *
 *     componentize-js --wit wit -n handler -d http -d fetch-event -o app.wasm app.js
 *
 * State values, timer payloads and emitted data are JSON text, as the Rust SDK
 * writes them.
 * JavaScript has one number type, so `45.0` reads as `45` and would be written
 * back as `45`; wrap numbers that must stay floats in {@link float}.
 * @module switchyard
 */
import * as hostState from 'switchyard:plugin/state@0.2.0';
import * as hostConfig from 'switchyard:plugin/config@0.2.0';
import * as hostLog from 'switchyard:plugin/log@0.2.0';
import * as hostTimers from 'switchyard:plugin/timers@0.2.0';
import * as hostIds from 'switchyard:plugin/ids@0.2.0';

/** A transient failure: the host retries with backoff, then dead-letters. */
export class Retry extends Error {}

/** A permanent failure: the host dead-letters the event now. */
export class Reject extends Error {}

/**
 * One event, decoded by the host.
 * @typedef {object} Event
 * @property {string} id @property {string} type @property {string} source
 * @property {string} time RFC 3339.
 * @property {string|undefined} correlationId @property {string|undefined} subject
 * @property {any} data The payload parsed from JSON (`null` if it is not JSON).
 * @property {string} dataText The payload as received.
 * @property {string} topic @property {number} partition @property {number} offset
 * @property {string|undefined} key
 * @property {Array<[string, string]>} headers
 * @property {(name: string) => string|undefined} header The first header called `name`.
 */

/**
 * A timer that came due, as {@link timerHandler} passes it.
 * @typedef {object} Timer
 * @property {string} name The name it was set under.
 * @property {any} payload Its payload parsed from JSON (`null` if it is not JSON).
 * @property {Uint8Array} payloadBytes Its payload as received.
 * @property {string} due When it was due, RFC 3339 UTC; also the call's time.
 */

/**
 * An event to emit; the host fills in its id, time, correlation and source.
 * @param {string} type The event type; the plugin's config must allow it.
 * @param {any} data The payload, anything JSON-serializable.
 * @param {{key?: string, topic?: string, headers?: Object<string, string>}} [options]
 *   The Kafka key, an explicit topic and extra headers.
 */
export function emit(type, data, { key, topic, headers = {} } = {}) {
  return { type, data, key, topic, headers };
}

/** `x` written as a JSON float (`45` as `45.0`), as a Rust `f64` is. */
export function float(x) {
  return JSON.rawJSON(Number.isInteger(x) ? x.toFixed(1) : String(x));
}

/** The plugin's private key-value state, JSON-encoded. Writes are staged and
 * applied only when the handler succeeds. */
export const state = {
  /** The JSON value under `key`, or `fallback` when absent. */
  get(key, fallback = undefined) {
    const raw = hostState.get(key);
    if (raw === undefined || raw === null) return fallback;
    try {
      return JSON.parse(new TextDecoder().decode(raw));
    } catch (e) {
      throw new Reject(`state \`${key}\` is corrupt: ${e.message}`);
    }
  },
  /** Stages `value` as JSON under `key`. */
  set(key, value) {
    hostState.set(key, new TextEncoder().encode(JSON.stringify(value)));
  },
  /** Stages the removal of `key`. */
  delete(key) {
    hostState.delete(key);
  },
  /** Increments the counter under `key` and returns its new value (1 the first
   * time); the increment commits only if the handler succeeds. */
  nextInSequence(key) {
    const current = this.get(key, 0);
    if (!Number.isSafeInteger(current) || current < 0) {
      throw new Reject(`state \`${key}\` is corrupt: ${JSON.stringify(current)} is not a counter`);
    }
    this.set(key, current + 1);
    return current + 1;
  },
};

/** `payload` as JSON bytes for a timer. */
function timerPayload(name, payload) {
  let text;
  try {
    text = JSON.stringify(payload ?? null);
  } catch (e) {
    throw new Reject(`cannot serialize timer \`${name}\`: ${e.message}`);
  }
  return new TextEncoder().encode(text);
}

/** The plugin's timers: each calls `onTimer` back once when it comes due,
 * with its payload (any JSON value). Setting a name again replaces that
 * timer. Changes are staged and take effect only when the handler succeeds. */
export const timers = {
  /** Sets the timer `name` to fire at `at`, an RFC 3339 time or a `Date`; a
   * time already past fires at once. A time that is not RFC 3339 rejects the
   * call. */
  setAt(name, at, payload = null) {
    const text = at instanceof Date ? at.toISOString() : at;
    try {
      hostTimers.setAt(name, text, timerPayload(name, payload));
    } catch (e) {
      throw new Reject(typeof e?.payload === 'string' ? e.payload : String(e?.message ?? e));
    }
  },
  /** Sets the timer `name` to fire `delayMs` milliseconds after the time of
   * the event being handled, not the wall clock, so that a replay sets the
   * same due time. */
  setAfter(name, delayMs, payload = null) {
    const ms = typeof delayMs === 'bigint' ? delayMs : Number.isSafeInteger(delayMs) ? BigInt(delayMs) : -1n;
    if (ms < 0n || ms >= 1n << 64n) {
      throw new Reject(`timer \`${name}\`: ${String(delayMs)} is not a delay in milliseconds`);
    }
    hostTimers.setAfter(name, ms, timerPayload(name, payload));
  },
  /** Cancels the timer `name`, if it is set. */
  cancel(name) {
    hostTimers.cancel(name);
  },
};

/** The plugin's whole config (the router's `[plugin.config]`), parsed. */
export function config() {
  return JSON.parse(hostConfig.all());
}

/** Writes a log line through the host; `level` is trace, debug, info, warn or error. */
export function log(message, level = 'info') {
  hostLog.log(level, message);
}

/** A deterministic id, as the Rust SDK's `derive_id`: the UUIDv5 of `name` in
 * the namespace uuid5(NAMESPACE_URL, "switchyard:" + namespace). The host
 * derives it (`switchyard:plugin/ids`): SHA-1 in interpreted JavaScript
 * was a third of what a handler calling this cost (BENCHMARKS.md, P8). */
export function deriveId(namespace, name) {
  return hostIds.derive(namespace, name);
}

/** Runs `fn(arg)` and converts its emits, or its failure, for the host. */
function run(fn, arg) {
  try {
    return fn(arg).map((m) => ({ type: m.type, data: JSON.stringify(m.data ?? null), key: m.key, topic: m.topic,
      headers: Object.entries(m.headers ?? {}).map(([key, value]) => ({ key, value })) }));
  } catch (err) {
    if (err instanceof Retry) throw { tag: 'retry', val: err.message };
    if (err instanceof Reject) throw { tag: 'reject', val: err.message };
    throw { tag: 'reject', val: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
}

/** Wraps `fn(event) -> emits` as the plugin's `handle` export:
 * `export const handle = handler(fn)`. */
export function handler(fn) {
  return (e) => {
    let data = null;
    try { data = JSON.parse(e.data); } catch { /* not JSON: null */ }
    const headers = e.headers.map((h) => [h.key, h.value]);
    const event = { ...e, offset: Number(e.offset), data, dataText: e.data, headers,
      header: (name) => headers.find(([k]) => k === name)?.[1] };
    return run(fn, event);
  };
}

/** Wraps `fn(timer) -> emits` as the plugin's `onTimer` export, called with
 * a {@link Timer} when one comes due: `export const onTimer = timerHandler(fn)`. */
export function timerHandler(fn) {
  return (t) => {
    const payloadBytes = new Uint8Array(t.payload);
    let payload = null;
    try { payload = JSON.parse(new TextDecoder().decode(payloadBytes)); } catch { /* not JSON: null */ }
    return run(fn, { name: t.name, payload, payloadBytes, due: t.due });
  };
}

/** The `onTimer` export of a plugin that sets no timers: it emits nothing.
 * Such a plugin re-exports it: `export { onTimer } from './switchyard.js'`. */
export const onTimer = timerHandler(() => []);
