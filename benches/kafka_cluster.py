"""Helpers shared by the benchmark scripts that run on the Apache Kafka test cluster
(tests/kafka/cluster): the cluster command, /proc sampling and the ground-truth check."""

import json
import os
import subprocess
import sys
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
            # Lines name their partitions by topic; this bench reads one topic.
            covered = [p for indices in value["partitions"].values() for p in indices]
            for p in covered:
                u, n = shares.get((value["window_start"], p), (0, 0))
                users += u
                frames += n
            if (value["unique_users"], value["frames"]) != (users, frames):
                sys.exit(f"{path}: wrong window {value}: truth says {users} users, {frames} frames")
            seen.update((value["window_start"], p) for p in covered)
    return lines, seen


def create_topic(brokers, topic, partitions):
    cluster("tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers,
            "--create", "--topic", topic, "--partitions", str(partitions),
            "--replication-factor", "3")


def delete_topic(brokers, topic):
    """Thousands of partitions left behind make every later restart of the test cluster slow
    (each broker loads every log at start)."""
    cluster("tool", "org.apache.kafka.tools.TopicCommand", "--bootstrap-server", brokers,
            "--delete", "--topic", topic)


def produce(topic, frames):
    """Writes `frames` frames with Kafka's Java producer; returns the truth, 60 s windows."""
    return truth_shares(cluster("produce", "--topic", topic, "--frames", str(frames),
                                "--window", "60"))


def timed(command, log_path, timing_path, sample=None):
    """Runs `command` under /usr/bin/time; `sample(pid)` is called every 100 ms while it runs.
    Returns (wall s, cpu s, peak RSS MiB)."""
    with open(log_path, "w") as log:
        proc = subprocess.Popen(["/usr/bin/time", "-o", timing_path, "-f", "%e %U %S %M",
                                 *command], stdout=log, stderr=subprocess.STDOUT)
        pid = child_of(proc.pid)
        while proc.poll() is None:
            if pid and sample:
                sample(pid)
            time.sleep(0.1)
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed ({proc.returncode}); see {log_path}")
    wall, user, system, rss_kib = open(timing_path).read().split()[-4:]
    return float(wall), round(float(user) + float(system), 3), round(int(rss_kib) / 1024, 1)
