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
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CLUSTER = os.path.join(REPO, "tests", "kafka", "cluster")


def cluster(*args, capture=True):
    result = subprocess.run([CLUSTER, *args], check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout if capture else ""


def socket_inodes(pid):
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    except OSError:
        pass
    return inodes


def established(pid):
    """TCP connections of `pid` in state ESTABLISHED (IPv4 and IPv6)."""
    inodes = socket_inodes(pid)
    count = 0
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "01" and fields[9] in inodes:
                        count += 1
        except OSError:
            pass
    return count


def threads(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def child_of(pid):
    """The process /usr/bin/time started."""
    for _ in range(200):
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                children = f.read().split()
            if children:
                return int(children[0])
        except OSError:
            pass
        time.sleep(0.01)
    return None


def truth_shares(text):
    shares = {}
    for line in text.splitlines():
        value = json.loads(line)
        if "window_start" in value:
            shares[(value["window_start"], value["partition"])] = (
                value["unique_users"], value["frames"])
    return shares


def check_windows(path, shares):
    """Asserts every line is exact for the partitions it names; returns (lines, shares seen)."""
    seen = set()
    lines = 0
    if not os.path.exists(path):
        return 0, seen
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            value = json.loads(line)
            lines += 1
            users = frames = 0
            for p in value["partitions"]:
                u, n = shares.get((value["window_start"], p), (0, 0))
                users += u
                frames += n
            if (value["unique_users"], value["frames"]) != (users, frames):
                sys.exit(f"{path}: wrong window {value}: truth says {users} users, {frames} frames")
            seen.update((value["window_start"], p) for p in value["partitions"])
    return lines, seen


def run_model(binary, brokers, topic, model, seconds, out, tag):
    windows = os.path.join(out, f"windows-{tag}-{model}.jsonl")
    config = os.path.join(out, f"settings-{tag}-{model}.toml")
    with open(config, "w") as f:
        f.write(f'[sink]\nkind = "file"\npath = "{windows}"\n')
    timing = os.path.join(out, f"time-{tag}-{model}.txt")
    log = open(os.path.join(out, f"log-{tag}-{model}.txt"), "w")
    group = f"footprint-{tag}-{model}-{os.getpid()}"
    command = ["/usr/bin/time", "-o", timing, "-f", "%e %U %S %M",
               binary, "run", "--config", config, "--brokers", brokers, "--topic", topic,
               "--group", group, "--model", model, "--for", f"{seconds}s"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    pid = child_of(proc.pid)
    peak_threads = peak_connections = 0
    while proc.poll() is None:
        if pid:
            peak_threads = max(peak_threads, threads(pid))
            peak_connections = max(peak_connections, established(pid))
        time.sleep(0.1)
    log.close()
    if proc.returncode != 0:
        sys.exit(f"{model} run failed ({proc.returncode}); see {log.name}")
    wall, user, system, rss_kib = open(timing).read().split()[-4:]
    return {
        "model": model,
        "threads": peak_threads,
        "connections": peak_connections,
        "peak_rss_mib": round(int(rss_kib) / 1024, 1),
        "cpu_s": round(float(user) + float(system), 2),
        "wall_s": float(wall),
        "windows": windows,
    }


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
        cluster("tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers,
                "--create", "--topic", topic, "--partitions", str(count),
                "--replication-factor", "3")
        shares = truth_shares(cluster("produce", "--topic", topic, "--frames", str(args.frames),
                                      "--window", "60"))
        for model in models:
            result = run_model(args.binary, brokers, topic, model, args.seconds, out, tag)
            lines, seen = check_windows(result["windows"], shares)
            result.update(partitions=count, frames=args.frames, seconds=args.seconds,
                          lines=lines, shares_written=len(seen), shares_total=len(shares))
            results.append(result)
            print(f"{count:>10} {model:>9} {result['threads']:>7} {result['connections']:>5} "
                  f"{result['peak_rss_mib']:>7} {result['cpu_s']:>6} {result['wall_s']:>6} "
                  f"{lines:>5} {len(seen):>6}/{len(shares):<6}", flush=True)
        # Thousands of partitions left behind make every later restart of the test cluster
        # slow (each broker loads every log at start).
        cluster("tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers,
                "--delete", "--topic", topic)
    with open(os.path.join(out, "footprint.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"footprint.json and every run's windows and log: {out}")


if __name__ == "__main__":
    main()
