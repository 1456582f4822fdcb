#!/usr/bin/env python3
"""What the service costs the machine at a given partition count, on the Apache Kafka test
cluster (tests/kafka/cluster start).

For each partition count: one fresh topic (replication 3), FRAMES frames written by Kafka's Java
producer (tests/kafka/cluster produce, which prints the ground truth), then for each model one
`kafka-actors run --for SECONDS` under /usr/bin/time from an empty group: the frames are read at
once, then the service sits idle until the time is up. While it runs, /proc is sampled every
100 ms for its thread count and its established TCP connections (peaks kept). /usr/bin/time
gives peak RSS and CPU (user + system). Every window line written is checked against the
producer's truth (exact for the partitions it names), and the shares written are counted.

    cargo build --release
    tests/kafka/cluster start
    benches/footprint.py --partitions 256 --partitions 1024 --out target/footprint

Prints one table row per run and writes footprint.json to --out.
"""

import argparse
import json
import os
import tempfile
import time

from kafka_cluster import (REPO, check_windows, cluster, create_topic, delete_topic,
                           established, produce, threads, timed)


def run_model(binary, brokers, topic, model, seconds, out, tag):
    windows = os.path.join(out, f"windows-{tag}-{model}.jsonl")
    config = os.path.join(out, f"settings-{tag}-{model}.toml")
    with open(config, "w") as f:
        f.write(f'[sink]\nkind = "file"\npath = "{windows}"\n[admin]\nport = 0\n')
    group = f"footprint-{tag}-{model}-{os.getpid()}"
    peaks = {"threads": 0, "connections": 0}

    def sample(pid):
        peaks["threads"] = max(peaks["threads"], threads(pid))
        peaks["connections"] = max(peaks["connections"], established(pid))

    wall, cpu, rss = timed(
        [binary, "run", "--config", config, "--brokers", brokers, "--topic", topic,
         "--group", group, "--model", model, "--for", f"{seconds}s"],
        os.path.join(out, f"log-{tag}-{model}.txt"),
        os.path.join(out, f"time-{tag}-{model}.txt"), sample)
    return {"model": model, "threads": peaks["threads"], "connections": peaks["connections"],
            "peak_rss_mib": rss, "cpu_s": cpu, "wall_s": wall, "windows": windows}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, action="append")
    parser.add_argument("--frames", type=int, default=200_000)
    parser.add_argument("--seconds", type=int, default=14)
    parser.add_argument("--model", action="append", choices=["partition", "group"])
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "kafka-actors"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    partition_counts = args.partitions or [256]
    models = args.model or ["partition", "group"]
    out = args.out or tempfile.mkdtemp(prefix="footprint-")
    os.makedirs(out, exist_ok=True)
    brokers = cluster("bootstrap").strip()
    results = []
    print(f"{'partitions':>10} {'model':>9} {'threads':>7} {'conns':>5} {'RSS MiB':>7} "
          f"{'CPU s':>6} {'wall s':>6} {'lines':>5} {'shares':>13}")
    for count in partition_counts:
        tag = f"p{count}-{int(time.time())}"
        topic = f"footprint-{tag}"
        create_topic(brokers, topic, count)
        shares = produce(topic, args.frames)
        for model in models:
            result = run_model(args.binary, brokers, topic, model, args.seconds, out, tag)
            lines, seen = check_windows(result["windows"], shares)
            result.update(partitions=count, frames=args.frames, seconds=args.seconds,
                          lines=lines, shares_written=len(seen), shares_total=len(shares))
            results.append(result)
            print(f"{count:>10} {model:>9} {result['threads']:>7} {result['connections']:>5} "
                  f"{result['peak_rss_mib']:>7} {result['cpu_s']:>6} {result['wall_s']:>6} "
                  f"{lines:>5} {len(seen):>6}/{len(shares):<6}", flush=True)
        delete_topic(brokers, topic)
    with open(os.path.join(out, "footprint.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"footprint.json and every run's windows and log: {out}")


if __name__ == "__main__":
    main()
