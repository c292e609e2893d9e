"""One-shot job: create every rewardflow topic on the Kafka cluster, then exit.

Topic names and the partition count come from the same settings the gateway and the dataflow
read (``RF_TOPIC_PREFIX``, ``RF_TOPIC_PARTITIONS``, ``KAFKA_BOOTSTRAP_SERVERS``), so they can
never disagree. Existing topics are left alone, so the job is safe to run on every ``up``.

    python /app/create_topics.py [--replication-factor N]
"""

from __future__ import annotations

import argparse
import sys
import time

from confluent_kafka.admin import AdminClient, NewTopic

from schemas.settings import get_settings

# Input topics keep a week (replays, recovery from an old snapshot); the DLQ keeps a month.
RETENTION_MS = {"dlq": str(30 * 86400 * 1000)}
DEFAULT_RETENTION_MS = str(7 * 86400 * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replication-factor", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)

    s = get_settings()
    if not s.kafka_bootstrap_servers:
        print("KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap_servers})
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            existing = set(admin.list_topics(timeout=5).topics)
            break
        except Exception as exc:
            if time.monotonic() > deadline:
                print(f"Kafka not reachable: {exc}", file=sys.stderr)
                return 1
            time.sleep(1)

    new = []
    for topic in s.topics.all:
        if topic in existing:
            print(f"exists  {topic}")
            continue
        suffix = topic.rsplit(".", 1)[-1]
        config = {"retention.ms": RETENTION_MS.get(suffix, DEFAULT_RETENTION_MS)}
        new.append(
            NewTopic(
                topic,
                num_partitions=s.topic_partitions,
                replication_factor=args.replication_factor,
                config=config,
            )
        )
    failed = 0
    futures = admin.create_topics(new, operation_timeout=30) if new else {}
    for topic, fut in futures.items():
        try:
            fut.result()
            print(f"created {topic} ({s.topic_partitions} partitions)")
        except Exception as exc:
            if "already exists" in str(exc).lower() or "TOPIC_ALREADY_EXISTS" in str(exc):
                print(f"exists  {topic}")
            else:
                print(f"FAILED  {topic}: {exc}", file=sys.stderr)
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
