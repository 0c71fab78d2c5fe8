"""Kafka clients driven by spool's tests (tests/kafka_clients.rs).

Each command uses one client library against a broker's Kafka listener
and prints what it saw as JSON lines in the shape `spool consume
--format json` prints, so the test compares readers field by field.

  produce LIB BOOTSTRAP TOPIC PREFIX COUNT [COMPRESSION]
      COUNT records: key PREFIX-kI, value PREFIX-vI, header via=LIB,
      create time 1700000000000+I, batches compressed with COMPRESSION
      (none by default).
  consume LIB BOOTSTRAP TOPIC COUNT [GROUP] [ISOLATION]
      Reads until COUNT records arrived (or 30 s passed) from the
      earliest offset, in GROUP (committing) or by assignment.
  transactions BOOTSTRAP TOPIC TRANSACTIONAL_ID COUNT
      COUNT transactions of two records each; odd ones are aborted.
  committed LIB BOOTSTRAP GROUP TOPIC
      Prints the group's committed offset of partition 0 (-1: none).

LIB is `confluent` (confluent-kafka, on librdkafka) or `kafka-python`.
"""

import json
import sys
import time

BASE_TIME = 1700000000000


def text(raw):
    return None if raw is None else raw.decode()


def record(partition, offset, timestamp, key, value, headers):
    return json.dumps(
        {
            "headers": {k: text(v) for k, v in (headers or [])},
            "key": text(key),
            "offset": offset,
            "partition": partition,
            "timestamp": timestamp,
            "value": text(value),
        },
        sort_keys=True,
    )


def produce(lib, bootstrap, topic, prefix, count, compression="none"):
    if lib == "confluent":
        from confluent_kafka import Producer

        producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "compression.type": compression,
            }
        )
        for i in range(count):
            producer.produce(
                topic,
                key=f"{prefix}-k{i}",
                value=f"{prefix}-v{i}",
                headers=[("via", lib.encode())],
                timestamp=BASE_TIME + i,
            )
        assert producer.flush(30) == 0, "records left unsent"
    else:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            compression_type=None if compression == "none" else compression,
        )
        for i in range(count):
            producer.send(
                topic,
                key=f"{prefix}-k{i}".encode(),
                value=f"{prefix}-v{i}".encode(),
                headers=[("via", lib.encode())],
                timestamp_ms=BASE_TIME + i,
            ).get(timeout=30)
        producer.close()


def consume(lib, bootstrap, topic, count, group=None, isolation="read_uncommitted"):
    deadline = time.time() + 30
    seen = []
    if lib == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        config = {
            "bootstrap.servers": bootstrap,
            "group.id": group or "spool-test-unused",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        }
        consumer = Consumer(config)
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, 0, 0)])
        while len(seen) < count and time.time() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            seen.append(
                record(
                    message.partition(),
                    message.offset(),
                    message.timestamp()[1],
                    message.key(),
                    message.value(),
                    message.headers(),
                )
            )
        if group and seen:
            consumer.commit(asynchronous=False)
        consumer.close()
    else:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            isolation_level=isolation,
        )
        if group:
            consumer.subscribe([topic])
        else:
            consumer.assign([TopicPartition(topic, 0)])
            consumer.seek_to_beginning()
        while len(seen) < count and time.time() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                for m in messages:
                    seen.append(record(m.partition, m.offset, m.timestamp, m.key, m.value, m.headers))
        if group and seen:
            consumer.commit()
        consumer.close()
    for line in seen:
        print(line)


def transactions(bootstrap, topic, transactional_id, count):
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id})
    producer.init_transactions(30)
    for n in range(count):
        producer.begin_transaction()
        for i in range(2):
            producer.produce(topic, key=f"t{n}", value=f"t{n}-{i}")
        # Sent before the end: librdkafka drops what an abort finds unsent.
        assert producer.flush(30) == 0, "records left unsent"
        if n % 2 == 0:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)


def committed(lib, bootstrap, group, topic):
    if lib == "confluent":
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
        [partition] = consumer.committed([TopicPartition(topic, 0)], timeout=30)
        consumer.close()
        print(partition.offset if partition.offset >= 0 else -1)
    else:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
        offset = consumer.committed(TopicPartition(topic, 0))
        consumer.close()
        print(-1 if offset is None else offset)


def main(args):
    command = args[0]
    if command == "produce":
        produce(args[1], args[2], args[3], args[4], int(args[5]), *args[6:7])
    elif command == "consume":
        group = args[5] if len(args) > 5 and args[5] != "-" else None
        isolation = args[6] if len(args) > 6 else "read_uncommitted"
        consume(args[1], args[2], args[3], int(args[4]), group, isolation)
    elif command == "transactions":
        transactions(args[1], args[2], args[3], int(args[4]))
    elif command == "committed":
        committed(args[1], args[2], args[3], args[4])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv[1:])
