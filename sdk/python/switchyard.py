"""Write Switchyard event handler plugins in plain Python.

A plugin is one module (say ``app.py``) that decorates one function with
:func:`handler`. The function takes an :class:`Event` and returns a list of
:class:`Emit`; it may use :data:`state`, :data:`timers`, :func:`config`,
:func:`log` and :func:`derive_id`, and fails with :class:`Retry` or
:class:`Reject` (any other exception rejects the event with its message)::

    import switchyard

    @switchyard.handler
    def handle(event):
        seen = switchyard.state.next_in_sequence("seen")
        return [switchyard.Emit("echo", {"of": event.type, "seen": seen})]

A plugin that sets timers also decorates a function with :func:`on_timer`,
which takes a :class:`Timer` when one comes due and returns emits in the same
way (``Retry`` and ``Reject`` too); without one, a due timer emits nothing::

    @switchyard.handler
    def handle(event):
        order = event.data["order_id"]
        switchyard.timers.set_after(f"expire:{order}", 15 * 60 * 1000, {"order_id": order})
        return []

    @switchyard.on_timer
    def expire(timer):
        return [switchyard.Emit("order.expired", {"order_id": timer.payload["order_id"],
                                                  "expired_at": timer.due})]

Like state writes, setting and cancelling timers take effect only when the
call succeeds.

Build it (from the folder holding ``app.py``, this module and ``wit/``)::

    componentize-py -d wit -w handler componentize app -o app.wasm

State values, timer payloads and emitted data are JSON text, as the Rust SDK
writes them.
"""

import hashlib  # noqa: F401  (uuid5 imports it lazily; it must be in the build)
import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, List, Optional, Union

# The bindings componentize-py generates. Imported here, at build time: the
# component has no filesystem at run time, so a later import would fail.
from componentize_py_types import Err
from wit_world.imports import config as host_config, log as host_log
from wit_world.imports import state as host_state, timers as host_timers, types

__all__ = ["Event", "Emit", "Timer", "Retry", "Reject", "state", "timers", "config", "log",
           "derive_id", "handler", "on_timer"]


class Retry(Exception):
    """A transient failure: the host retries with backoff, then dead-letters."""


class Reject(Exception):
    """A permanent failure: the host dead-letters the event now."""


def _dumps(value: Any) -> str:
    """Compact JSON text, UTF-8 kept as is (like serde_json)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@dataclass
class Event:
    """One event, decoded by the host; ``data`` is the payload parsed from JSON
    (``None`` if it is not JSON) and ``data_text`` the payload as received."""
    id: str
    type: str
    source: str
    time: str
    correlation_id: Optional[str]
    subject: Optional[str]
    data: Any
    data_text: str
    topic: str
    partition: int
    offset: int
    key: Optional[str]
    headers: List[tuple]

    def header(self, name: str) -> Optional[str]:
        """The value of the first header called ``name``, if any."""
        return next((v for k, v in self.headers if k == name), None)


@dataclass
class Timer:
    """A timer that came due: the ``name`` it was set under, its ``payload``
    parsed from JSON (``None`` if it is not JSON), the payload as received
    (``payload_bytes``), and ``due``, when it was due (RFC 3339 UTC, also the
    call's time)."""
    name: str
    payload: Any
    payload_bytes: bytes
    due: str


@dataclass
class Emit:
    """An event to emit: its type, its data (anything JSON-serializable) and
    optionally a Kafka key, an explicit topic and extra headers. The host
    fills in its id, time, correlation and source."""
    type: str
    data: Any
    key: Optional[str] = None
    topic: Optional[str] = None
    headers: dict = field(default_factory=dict)


class _State:
    """The plugin's private key-value state, JSON-encoded. Writes are staged
    and applied only when the handler succeeds."""

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value under ``key``, or ``default`` when absent."""
        raw = host_state.get(key)
        if raw is None:
            return default
        try:
            return json.loads(bytes(raw).decode("utf-8"))
        except ValueError as e:
            raise Reject(f"state `{key}` is corrupt: {e}") from None

    def set(self, key: str, value: Any) -> None:
        """Stages ``value`` as JSON under ``key``."""
        host_state.set(key, _dumps(value).encode("utf-8"))

    def delete(self, key: str) -> None:
        """Stages the removal of ``key``."""
        host_state.delete(key)

    def next_in_sequence(self, key: str) -> int:
        """Increments the counter under ``key`` and returns its new value (1 the
        first time); the increment commits only if the handler succeeds."""
        current = self.get(key, 0)
        if not isinstance(current, int) or isinstance(current, bool) or current < 0:
            raise Reject(f"state `{key}` is corrupt: {current!r} is not a counter")
        self.set(key, current + 1)
        return current + 1


state = _State()
"""The plugin's state: ``get``, ``set``, ``delete``, ``next_in_sequence``."""


def _timer_payload(name: str, payload: Any) -> bytes:
    try:
        return _dumps(payload).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise Reject(f"cannot serialize timer `{name}`: {e}") from None


class _Timers:
    """The plugin's timers: each calls the :func:`on_timer` function back once
    when it comes due, with its payload (any JSON value). Setting a name again
    replaces that timer. Changes are staged and take effect only when the
    handler succeeds."""

    def set_at(self, name: str, at: Union[str, datetime], payload: Any = None) -> None:
        """Sets the timer ``name`` to fire at ``at``, an RFC 3339 time (or a
        timezone-aware ``datetime``); a time already past fires at once. A time
        that is not RFC 3339 rejects the call."""
        if isinstance(at, datetime):
            at = at.isoformat()
        try:
            host_timers.set_at(name, at, _timer_payload(name, payload))
        except Err as e:
            raise Reject(str(e.value)) from None

    def set_after(self, name: str, delay_ms: Union[int, timedelta], payload: Any = None) -> None:
        """Sets the timer ``name`` to fire ``delay_ms`` milliseconds (or a
        ``timedelta``) after the time of the event being handled, not the wall
        clock, so that a replay sets the same due time."""
        if isinstance(delay_ms, timedelta):
            delay_ms = delay_ms // timedelta(milliseconds=1)
        if not isinstance(delay_ms, int) or isinstance(delay_ms, bool) or not 0 <= delay_ms < 2**64:
            raise Reject(f"timer `{name}`: {delay_ms!r} is not a delay in milliseconds")
        host_timers.set_after(name, delay_ms, _timer_payload(name, payload))

    def cancel(self, name: str) -> None:
        """Cancels the timer ``name``, if it is set."""
        host_timers.cancel(name)


timers = _Timers()
"""The plugin's timers: ``set_at``, ``set_after``, ``cancel``."""


def config() -> dict:
    """The plugin's whole config (the router's ``[plugin.config]``), parsed."""
    return json.loads(host_config.all())


def log(message: str, level: str = "info") -> None:
    """Writes a log line through the host; ``level`` is trace, debug, info,
    warn or error."""
    host_log.log(host_log.Level[level.upper()], message)


def derive_id(namespace: str, name: str) -> str:
    """A deterministic id, as the Rust SDK's ``derive_id``: the UUIDv5 of
    ``name`` in the namespace uuid5(NAMESPACE_URL, "switchyard:" + namespace)."""
    ns = uuid.uuid5(uuid.NAMESPACE_URL, "switchyard:" + namespace)
    return str(uuid.uuid5(ns, name))


_handle: Optional[Callable[[Event], List[Emit]]] = None
_on_timer: Optional[Callable[[Timer], List[Emit]]] = None


def _run(fn: Callable[[Any], List[Emit]], arg: Any) -> "List[types.Emit]":
    """Runs a handler and converts its emits, or its failure, for the host."""
    try:
        emits = fn(arg)
        return [types.Emit(m.type, _dumps(m.data), m.key, m.topic,
                           [types.Header(k, v) for k, v in m.headers.items()])
                for m in emits]
    except Retry as err:
        raise Err(types.HandlerError_Retry(str(err)))
    except Reject as err:
        raise Err(types.HandlerError_Reject(str(err)))
    except Exception as err:
        raise Err(types.HandlerError_Reject(f"{type(err).__name__}: {err}"))


class _WitWorld:
    """The world's exports, calling the functions :func:`handler` and
    :func:`on_timer` registered."""

    def handle(self, e: "types.Event") -> "List[types.Emit]":
        try:
            data = json.loads(e.data)
        except ValueError:
            data = None
        event = Event(e.id, e.type, e.source, e.time, e.correlation_id, e.subject, data,
                      e.data, e.topic, e.partition, e.offset, e.key,
                      [(h.key, h.value) for h in e.headers])
        if _handle is None:
            raise Err(types.HandlerError_Reject("the plugin has no @switchyard.handler"))
        return _run(_handle, event)

    def on_timer(self, t: "types.Timer") -> "List[types.Emit]":
        raw = bytes(t.payload)
        try:
            payload = json.loads(raw.decode("utf-8"))
        except ValueError:
            payload = None
        if _on_timer is None:
            return []
        return _run(_on_timer, Timer(t.name, payload, raw, t.due))


def handler(fn: Callable[[Event], List[Emit]]) -> Callable[[Event], List[Emit]]:
    """Makes ``fn`` the plugin's handler: defines the ``WitWorld`` export class
    that componentize-py looks for in ``fn``'s module."""
    global _handle
    _handle = fn
    sys.modules[fn.__module__].WitWorld = _WitWorld
    return fn


def on_timer(fn: Callable[[Timer], List[Emit]]) -> Callable[[Timer], List[Emit]]:
    """Makes ``fn`` the plugin's timer handler: it takes a :class:`Timer` that
    came due and returns the events to emit, like a :func:`handler`. Without
    one, a due timer emits nothing."""
    global _on_timer
    _on_timer = fn
    sys.modules[fn.__module__].WitWorld = _WitWorld
    return fn
