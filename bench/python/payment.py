#!/usr/bin/env python3
"""The plain Python baseline: the payment plugin's booking decision as the
consume-decide-produce script a team would write in an afternoon with
confluent-kafka, instead of the router.

It reads catalog-000 `booking.booking.created` events (snake_case envelope)
from `--input`, applies the plugin's rules in their order with the same
config keys and defaults (plugins/payment), and writes
`payment.payment.succeeded` or `payment.payment.failed` to
`<--output-prefix><type>`, keyed by `payment_id`, in the envelope the router
wraps the plugin's emit in, with the router's `switchyard-hop` and
`switchyard-plugin` headers (`switchyard-plugin-version` is `python`). Its
output is the router's up to JSON field order and the spelling of numbers,
as bench/kstreams's is (`tests/kstreams.rs` checks both against the router).

Its guarantee is the router's at-least-once: an idempotent producer with
`acks=all`, and an input offset stored (then auto-committed) only once the
outputs of its record and of every record before it in its partition are
acknowledged. It keeps no state: unlike the router it does not remember
handled events, so a redelivered booking is decided and produced again.

It prints `running` once subscribed and `first` when it handles its first
record, and stops when its standard input closes. A record it cannot read
(not JSON, another type or envelope, data the plugin rejects) is counted
and skipped; the router would dead-letter it.
"""

import argparse
import collections
import decimal
import hashlib
import json
import math
import sys
import threading
import uuid

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

INPUT_TYPE = "booking.booking.created"
SUCCEEDED = "payment.payment.succeeded"
FAILED = "payment.payment.failed"
# The time of an envelope that has none: the epoch, never the wall clock.
EPOCH = "1970-01-01T00:00:00Z"
# The namespace of every id the router derives (host/src/envelope/mod.rs).
ID_NAMESPACE = uuid.UUID("5b1f1c3e-7a0d-4e62-9f3b-2d4c8e9a0c11")
# The SDK's `derive_id("payment", ..)` namespace, under RFC 4122's URL one.
PAYMENT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "switchyard:payment")
VERSION = b"python"


class Skip(Exception):
    """A record the plugin could not read: the router would not decide it."""


def rust_display(x):
    """A float as Rust's `Display` writes it: shortest digits, no exponent, no `.0`."""
    text = format(decimal.Decimal(repr(x)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def rules(config, amount, currency, card):
    """The decline rules (plugins/payment/src/rules.rs) in their order:
    None when approved, else (code, message)."""
    if not math.isfinite(amount) or amount <= 0.0:
        return ("invalid_amount", f"Amount {rust_display(amount)} is not a positive number")
    if not any(ascii_lower(c) == ascii_lower(currency) for c in config.currencies):
        return ("currency_not_supported", f"Currency {currency} is not supported")
    if not (12 <= len(card) <= 19 and all("0" <= ch <= "9" for ch in card)):
        return ("invalid_card_number", "Your card number is invalid")
    if card in config.decline_cards:
        return ("card_declined", "Your card was declined")
    if config.max_amount is not None and amount > config.max_amount:
        return ("amount_too_large",
                f"Amount exceeds the limit of {config.max_amount:.2f} {currency}")
    return None


ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(s):
    """`s` with ASCII letters lower-cased, for Rust's `eq_ignore_ascii_case`."""
    return s.translate(ASCII_LOWER)


def brand(card):
    """The card's brand, from its first digit."""
    return {"4": "visa", "5": "mastercard", "2": "mastercard", "3": "amex",
            "6": "discover"}.get(card[0], "unknown")


def text(obj, key):
    """An envelope field as the router reads it: text as is, other JSON as its text."""
    v = obj.get(key)
    if v is None:
        return None
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"))


def string(obj, key):
    """A required string field of the plugin's data."""
    v = obj.get(key)
    if not isinstance(v, str):
        raise Skip(f"data.{key} is not a string")
    return v


def decide(config, topic, value):
    """One input record's value read from `topic`: (type, key, output value)."""
    try:
        envelope = json.loads(value)
    except ValueError as e:
        raise Skip(f"not JSON: {e}") from None
    if not isinstance(envelope, dict):
        raise Skip("not a JSON object")
    if "specversion" in envelope or "event_type" not in envelope:
        raise Skip("not a snake_case envelope")
    ty = text(envelope, "event_type")
    if ty != INPUT_TYPE:
        raise Skip(f"event type {ty} is not {INPUT_TYPE}")
    id_ = text(envelope, "event_id")
    if not id_:
        id_ = content_id(topic, value)
    time = text(envelope, "timestamp") or EPOCH
    correlation = text(envelope, "correlation_id")
    if correlation is None:
        correlation = id_

    data = envelope.get("data")
    if not isinstance(data, dict):
        raise Skip("data is not an object")
    booking_id = string(data, "booking_id")
    user_id = string(data, "user_id")
    amount = data.get("price_amount")
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise Skip("price_amount is not a number")
    amount = float(amount)
    if not math.isfinite(amount):
        raise Skip("price_amount is not a number")
    currency = string(data, "price_currency")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise Skip("metadata is not an object")
    card = config.default_card
    if metadata and isinstance(metadata.get("card_number"), str):
        card = metadata["card_number"]

    payment_id = str(uuid.uuid5(PAYMENT_NAMESPACE, booking_id))
    out = {
        "payment_id": payment_id,
        "booking_id": booking_id,
        "user_id": user_id,
        "amount": amount,
        "currency": currency,
        "provider": config.provider,
    }
    decline = rules(config, amount, currency, card)
    if decline is None:
        ty = SUCCEEDED
        out["provider_payment_id"] = "pi_" + payment_id.replace("-", "")[:24]
        out["payment_method"] = {"type": "card", "brand": brand(card), "last4": card[-4:]}
        out["succeeded_at"] = time
    else:
        ty = FAILED
        out["error_code"], out["error_message"] = decline
        out["failed_at"] = time
    # The router's snake_case envelope around the emit (index 0 of its emits).
    wrapped = {
        "event_id": str(uuid.uuid5(ID_NAMESPACE, f"{id_}/{config.plugin}/0")),
        "event_type": ty,
        "event_version": "1.0",
        "timestamp": time,
        "correlation_id": correlation,
        "causation_id": id_,
        "data": out,
        "metadata": {"source": config.source},
    }
    return ty, payment_id, json.dumps(wrapped, separators=(",", ":")).encode()


def content_id(topic, value):
    """The id of an envelope without one: the router's v5 UUID of topic, NUL and value."""
    digest = bytearray(hashlib.sha1(ID_NAMESPACE.bytes + topic.encode() + b"\0" + value).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


class InOrder:
    """Stores a partition's offset once its record and every one before it
    are done (their outputs acknowledged), as the router does; the offsets
    that moved are stored together, once per poll ([`InOrder.store`])."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.waiting = collections.defaultdict(collections.deque)
        self.moved = {}

    def add(self, msg):
        """A record whose outputs are on their way; returns its slot."""
        slot = [msg.offset(), False]
        self.waiting[(msg.topic(), msg.partition())].append(slot)
        return slot

    def done(self, topic, partition, slot):
        """`slot`'s record is done."""
        slot[1] = True
        queue = self.waiting[(topic, partition)]
        while queue and queue[0][1]:
            self.moved[(topic, partition)] = queue.popleft()[0] + 1

    def store(self):
        """Stores the offsets that moved since the last call."""
        if self.moved:
            self.consumer.store_offsets(
                offsets=[TopicPartition(t, p, o) for (t, p), o in self.moved.items()])
            self.moved.clear()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bootstrap-servers", required=True)
    p.add_argument("--group", default="python-payment")
    p.add_argument("--input", default=INPUT_TYPE)
    p.add_argument("--output-prefix", default="")
    p.add_argument("--plugin", default="payment", help="the plugin name in derived ids")
    p.add_argument("--source", default="switchyard/payment", help="metadata.source of outputs")
    p.add_argument("--provider", default="stripe")
    p.add_argument("--decline-cards", default="", help="comma-separated")
    p.add_argument("--default-card", default="4242424242424242")
    p.add_argument("--max-amount", type=float, default=None)
    p.add_argument("--currencies", default="USD,EUR,GBP", help="comma-separated")
    config = p.parse_args()
    config.decline_cards = [c for c in config.decline_cards.split(",") if c]
    config.currencies = [c for c in config.currencies.split(",") if c]

    # The router's settings (BENCHMARKS.md): 10 ms fetch waits, offsets
    # stored by hand and auto-committed every second; an idempotent
    # producer with acks=all that never times a record out.
    consumer = Consumer({
        "bootstrap.servers": config.bootstrap_servers,
        "group.id": config.group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        "enable.auto.offset.store": False,
        "fetch.wait.max.ms": 10,
    })
    producer = Producer({
        "bootstrap.servers": config.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "batch.num.messages": 10000,
        "message.timeout.ms": 0,
    })
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    consumer.subscribe([config.input])
    print("running", flush=True)
    order = InOrder(consumer)
    first = True
    skipped = 0
    while not stop.is_set():
        for msg in consumer.consume(num_messages=500, timeout=0.1):
            if msg.error():
                raise KafkaException(msg.error())
            if first:
                print("first", flush=True)
                first = False
            slot = order.add(msg)
            topic, partition = msg.topic(), msg.partition()
            try:
                ty, key, value = decide(config, topic, msg.value())
            except Skip as why:
                skipped += 1
                print(f"skipped {topic}[{partition}]@{msg.offset()}: {why}", file=sys.stderr)
                order.done(topic, partition, slot)
                continue
            hops = 0
            for name, raw in msg.headers() or []:
                if name == "switchyard-hop":
                    try:
                        hops = int(raw.decode().strip())
                    except ValueError:
                        hops = 0

            def delivered(err, _msg, slot=slot, topic=topic, partition=partition):
                if err is not None:
                    raise KafkaException(err)
                order.done(topic, partition, slot)

            while True:
                try:
                    producer.produce(
                        config.output_prefix + ty, value=value, key=key,
                        headers=[("switchyard-hop", str(hops + 1).encode()),
                                 ("switchyard-plugin", config.plugin.encode()),
                                 ("switchyard-plugin-version", VERSION)],
                        on_delivery=delivered)
                    break
                except BufferError:
                    # The producer's queue is full: wait for acknowledgements.
                    producer.poll(0.05)
            producer.poll(0)
        producer.poll(0)
        order.store()
    producer.flush()
    order.store()
    consumer.close()


if __name__ == "__main__":
    main()
