"""A real outside Kafka client for the end-to-end tests (confluent-kafka).

    kafka_client.py produce BOOTSTRAP   < records.jsonl
    kafka_client.py consume BOOTSTRAP TOPIC [IDLE_SECONDS]  > records.jsonl
    kafka_client.py create BOOTSTRAP TOPIC PARTITIONS [CONFIG_JSON]
    kafka_client.py offsets BOOTSTRAP TOPIC  > {"partition", "lso", "hw"} lines
    kafka_client.py grant BOOTSTRAP PRINCIPAL   (read, write and describe
        every topic and group; nothing else, so no CreateTopics)

A record line is {"topic", "partition"?, "key"?, "headers": [[k, v], ...],
"value_b64"}. Extra client settings (SASL, for one) come as a JSON object in
$KAFKA_CLIENT_SETTINGS. Reads are read_committed: records of aborted or
still open transactions are never printed.
"""
import os
import base64
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec
from confluent_kafka import IsolationLevel


def settings(bootstrap, **more):
    config = {"bootstrap.servers": bootstrap}
    config.update(json.loads(os.environ.get("KAFKA_CLIENT_SETTINGS") or "{}"))
    config.update(more)
    return config


def produce(bootstrap):
    producer = Producer(settings(bootstrap, **{"enable.idempotence": True}))
    for line in sys.stdin:
        if not line.strip():
            continue
        r = json.loads(line)
        kwargs = {}
        if r.get("partition") is not None:
            kwargs["partition"] = r["partition"]
        producer.produce(
            r["topic"],
            value=base64.b64decode(r["value_b64"]),
            key=r.get("key"),
            headers=[(k, v) for k, v in r.get("headers", [])],
            **kwargs,
        )
    if producer.flush(30) != 0:
        sys.exit("produce: not every record was delivered")


def consume(bootstrap, topic, idle):
    """Prints every record of `topic`: all those there when it starts (up to
    each partition's high watermark, however long Tansu takes to serve them),
    then any that arrive until `idle` seconds pass without one.

    The partitions are assigned, not subscribed: no consumer group to join,
    so a slow group coordinator cannot make a read come back short."""
    consumer = Consumer(settings(bootstrap, **{
        "group.id": "e2e-reader-" + uuid.uuid4().hex,
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    }))
    partitions = []
    started = time.time()
    while not partitions and time.time() - started < idle:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is not None and meta.error is None:
            partitions = sorted(meta.partitions)
        else:
            time.sleep(0.2)
    behind = {}
    assigned = []
    for p in partitions:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        if high > low:
            behind[p] = high
        assigned.append(TopicPartition(topic, p, low))
    consumer.assign(assigned)
    last = time.time()
    while behind or time.time() - last < idle:
        msg = consumer.poll(0.5)
        # Under read_committed the last offsets may be transaction markers or
        # aborted records, never delivered: the position tells when a
        # partition has been read up to where it was.
        if behind and msg is None:
            for tp in consumer.position([TopicPartition(topic, p) for p in list(behind)]):
                if tp.offset >= behind.get(tp.partition, 0):
                    behind.pop(tp.partition, None)
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() in (KafkaError._PARTITION_EOF, KafkaError.UNKNOWN_TOPIC_OR_PART):
                continue
            sys.exit("consume: %s" % msg.error())
        last = time.time()
        if msg.offset() + 1 >= behind.get(msg.partition(), 0):
            behind.pop(msg.partition(), None)
        print(json.dumps({
            "topic": msg.topic(),
            "partition": msg.partition(),
            "key": msg.key().decode() if msg.key() is not None else None,
            "headers": [[k, (v or b"").decode()] for k, v in (msg.headers() or [])],
            "value_b64": base64.b64encode(msg.value() or b"").decode(),
        }), flush=True)
    consumer.close()


def create(bootstrap, topic, partitions, config=None):
    admin = AdminClient(settings(bootstrap))
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config=config or {})
    for future in admin.create_topics([new]).values():
        try:
            future.result(30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def offsets(bootstrap, topic):
    """Prints each partition's last stable offset and high watermark."""
    admin = AdminClient(settings(bootstrap))
    meta = admin.list_topics(topic, timeout=30).topics[topic]
    def ask(level):
        request = {TopicPartition(topic, p): OffsetSpec.latest() for p in meta.partitions}
        futures = admin.list_offsets(request, isolation_level=level, request_timeout=30)
        return {tp.partition: f.result().offset for tp, f in futures.items()}
    lso = ask(IsolationLevel.READ_COMMITTED)
    hw = ask(IsolationLevel.READ_UNCOMMITTED)
    for p in sorted(meta.partitions):
        print(json.dumps({"partition": p, "lso": lso[p], "hw": hw[p]}))


def deny_write(bootstrap, action, principal, topic):
    """Adds (or removes) a DENY of WRITE on one topic for `principal`."""
    from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                       AclPermissionType, ResourcePatternType, ResourceType)
    admin = AdminClient(settings(bootstrap))
    args = (ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, principal, "*",
            AclOperation.WRITE, AclPermissionType.DENY)
    if action == "add":
        futures = admin.create_acls([AclBinding(*args)])
    else:
        futures = admin.delete_acls([AclBindingFilter(*args)])
    for future in futures.values():
        future.result(30)


def grant(bootstrap, principal):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       ResourcePatternType, ResourceType)
    allow = lambda kind, op: AclBinding(kind, "*", ResourcePatternType.LITERAL, principal, "*",
                                        op, AclPermissionType.ALLOW)
    bindings = [allow(ResourceType.TOPIC, op) for op in
                (AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE)]
    bindings += [allow(ResourceType.GROUP, op) for op in (AclOperation.READ, AclOperation.DESCRIBE)]
    admin = AdminClient(settings(bootstrap))
    for future in admin.create_acls(bindings).values():
        future.result(30)


if __name__ == "__main__":
    if sys.argv[1] == "deny-write":
        deny_write(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])
    elif sys.argv[1] == "grant":
        grant(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "offsets":
        offsets(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "create":
        create(sys.argv[2], sys.argv[3], int(sys.argv[4]),
               json.loads(sys.argv[5]) if len(sys.argv) > 5 else None)
    elif sys.argv[1] == "produce":
        produce(sys.argv[2])
    else:
        consume(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 4.0)
