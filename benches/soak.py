#!/usr/bin/env python3
"""Memory over minutes with an output slower than the input, on the Apache Kafka test cluster
(tests/kafka/cluster start).

Kafka's Java producer writes frames live for --seconds at --rate frames per second, event time
following the wall clock (one-minute windows), into a fresh 4-partition topic. Meanwhile, side
by side on the same topic, each model runs twice (its own group each): with a slow sink (every
write takes --write-delay-ms, and a flush is due every --flush-frames frames, so the sink can
take --flush-frames frames per write delay: with the defaults 2 000 frames/s, a tenth of the
producer's 20 000) and with a sink that writes at once. Every second each service's resident
set (VmRSS) is sampled from /proc. Once the producer is done the services get --settle
seconds, are stopped with SIGTERM (they write what is closed and commit), and each group is
drained with `run --until-end` into the same file, as an operator's restart would. Every window
line is checked against the producer's truth (exact for the partitions it names), and every
(window, partition) share of the truth must have been written: none lost.

    cargo build --release
    tests/kafka/cluster start
    benches/soak.py --seconds 180 --out target/soak

Prints a table (RSS per minute: median and max) and writes soak.json to --out.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from kafka_cluster import REPO, CLUSTER, check_windows, cluster, create_topic, truth_shares


def rss_mib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def settings_file(out, name, windows, delay_ms, flush_frames):
    path = os.path.join(out, f"settings-{name}.toml")
    with open(path, "w") as f:
        f.write(f'[sink]\nkind = "file"\npath = "{windows}"\nwrite_delay_ms = {delay_ms}\n'
                f'[flush]\nmax_frames = {flush_frames}\n'
                f'[metrics]\nlog_interval_ms = 10000\n[admin]\nport = 0\n')
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=180)
    parser.add_argument("--rate", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--write-delay-ms", type=int, default=1_000)
    parser.add_argument("--flush-frames", type=int, default=2_000)
    parser.add_argument("--settle", type=int, default=15)
    parser.add_argument("--binary", default=os.path.join(REPO, "target", "release", "kafka-actors"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="soak-")
    os.makedirs(out, exist_ok=True)
    brokers = cluster("bootstrap").strip()
    stamp = int(time.time())
    topic = f"soak-{stamp}"
    create_topic(brokers, topic, 4)

    runs = []
    for model in ("partition", "group"):
        for sink, delay in (("slow", args.write_delay_ms), ("fast", 0)):
            name = f"{model}-{sink}"
            windows = os.path.join(out, f"windows-{name}.jsonl")
            if os.path.exists(windows):
                os.remove(windows)
            config = settings_file(out, name, windows, delay, args.flush_frames)
            group = f"soak-{stamp}-{name}"
            log = open(os.path.join(out, f"log-{name}.txt"), "w")
            proc = subprocess.Popen(
                [args.binary, "run", "--config", config, "--brokers", brokers, "--topic", topic,
                 "--group", group, "--model", model], stdout=log, stderr=subprocess.STDOUT)
            runs.append({"name": name, "model": model, "sink": sink, "delay_ms": delay,
                         "config": config, "group": group, "windows": windows, "proc": proc,
                         "log": log, "rss": []})

    frames = args.rate * args.seconds
    producer_out = os.path.join(out, "truth.jsonl")
    started = time.time()
    with open(producer_out, "w") as truth_file:
        producer = subprocess.Popen(
            [CLUSTER, "produce", "--topic", topic, "--frames", str(frames), "--rate",
             str(args.rate), "--event-rate", str(args.rate), "--start-ts", str(int(started)),
             "--users", str(args.users), "--window", "60", "--jitter-ms", "2000"],
            stdout=truth_file)
        while producer.poll() is None or time.time() - started < args.seconds:
            t = time.time() - started
            for run in runs:
                rss = rss_mib(run["proc"].pid)
                if rss is not None:
                    run["rss"].append((round(t, 1), round(rss, 1)))
            time.sleep(1.0)
            if producer.poll() is not None and producer.returncode != 0:
                sys.exit(f"the producer failed ({producer.returncode})")
    produced_in = time.time() - started
    time.sleep(args.settle)
    for run in runs:
        run["proc"].send_signal(signal.SIGTERM)
    for run in runs:
        code = run["proc"].wait(timeout=120)
        run["log"].close()
        if code != 0:
            sys.exit(f"{run['name']} exited with {code}; see its log in {out}")
    # Drain each group to the end, as a restart would.
    for run in runs:
        with open(os.path.join(out, f"drain-{run['name']}.txt"), "w") as log:
            subprocess.run(
                [args.binary, "run", "--config", run["config"], "--brokers", brokers, "--topic",
                 topic, "--group", run["group"], "--model", run["model"], "--until-end"],
                stdout=log, stderr=subprocess.STDOUT, check=True, timeout=600)

    shares = truth_shares(open(producer_out).read())
    print(f"topic {topic}: {frames} frames in {produced_in:.0f} s, {len(shares)} window shares")
    minutes = max(1, (args.seconds + 59) // 60)
    header = "| run | " + " | ".join(f"RSS min {m + 1} (median / max)" for m in range(minutes))
    print(header + " | lines | lost shares |")
    results = []
    for run in runs:
        lines, seen = check_windows(run["windows"], shares)
        lost = sorted(set(shares) - seen)
        per_minute = []
        for m in range(minutes):
            values = [r for t, r in run["rss"] if m * 60 <= t < (m + 1) * 60]
            per_minute.append((round(statistics.median(values), 1), max(values)) if values
                              else (None, None))
        cells = " | ".join(f"{a} / {b}" for a, b in per_minute)
        print(f"| {run['name']} | {cells} | {lines} | {len(lost)} |")
        results.append({k: run[k] for k in ("name", "model", "sink", "delay_ms", "rss")}
                       | {"lines": lines, "lost_shares": len(lost), "per_minute": per_minute})
        if lost:
            sys.exit(f"{run['name']}: {len(lost)} window shares never written, e.g. {lost[:3]}")
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump({"topic": topic, "frames": frames, "rate": args.rate,
                   "seconds": args.seconds, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
