#!/usr/bin/env python3
"""What each output mode costs against the file sink, on the Apache Kafka test cluster
(tests/kafka/cluster start), side by side in one run.

Modes (all the partition model, `kafka-actors run`, default settings otherwise):
  - file:          windows appended to a file, fsynced, then offsets committed (the reference);
  - kafka:         windows produced to an output topic (acks=all, idempotent), acknowledged,
                   then offsets committed (at least once);
  - exactly-once:  windows and offsets in one Kafka transaction per flush.
Every mode dead-letters nothing here (the data is all valid), so the cost is the windows' and
the offsets' path alone.

1. Throughput and CPU: one topic (4 partitions, 1 000 000 frames from Kafka's Java producer,
   60 s windows) read to its end by each mode in alternating order, `--rounds` times, timed by
   /usr/bin/time; per round each mode's frames/s and CPU per frame are compared with the file
   run of the same round. The raw consumer (examples/raw_consumer: one plain consumer with the
   service's own fetch tuning, counting records) is run too, as the floor. Every window line is
   checked against the producer's truth (for Kafka modes, read back read_committed).
2. Live, all modes at once on the same stream: the Java producer writes 5 000 frames/s for
   --live-seconds with event time following the wall clock (event time = start + frames /
   5 000, no jitter) into a fresh topic that a service of each mode reads from its end (each
   its own group; 1 s windows, no lateness, 100 ms flushes, so ten flushes, and exactly once
   ten transactions, a second), while examples/tail_output follows each output (the file, or
   the topic read_committed) and notes when each window line becomes visible. Latency of a
   window = visible - window end (when its last frame was produced); p50 and p99 over the
   windows after the first 5. CPU per frame: each service's user + system CPU over the
   stream (/proc) divided by the frames.

    cargo build --release --bins --example raw_consumer --example tail_output
    tests/kafka/cluster start
    benches/sink_cost.py --rounds 3 --out target/sink-cost
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

from kafka_cluster import REPO, check_windows, cluster, create_topic, delete_topic, produce, timed

MODES = ["file", "kafka", "exactly-once"]


def mode_config(mode, path, windows, out_topic, extra=""):
    with open(path, "w") as f:
        f.write("[admin]\nport = 0\n")
        if mode == "file":
            f.write(f'[sink]\nkind = "file"\npath = "{windows}"\n')
        else:
            f.write(f'[sink]\nkind = "kafka"\ntopic = "{out_topic}"\ncreate_topic = true\n'
                    f'topic_partitions = 3\nexactly_once = {"true" if mode == "exactly-once" else "false"}\n')
        f.write(extra)


def read_back(binaries, brokers, topic, path):
    with open(path, "w") as f:
        subprocess.run([binaries["tail"], "--brokers", brokers, "--topic", topic, "--to-end"],
                       check=True, stdout=f)


def run_once(mode, brokers, topic, out, tag, binaries):
    log = os.path.join(out, f"log-{tag}-{mode}.txt")
    timing = os.path.join(out, f"time-{tag}-{mode}.txt")
    if mode == "raw":
        wall, cpu, rss = timed([binaries["raw"], "--brokers", brokers, "--topic", topic],
                               log, timing)
        return {"mode": mode, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss}
    windows = os.path.join(out, f"windows-{tag}-{mode}.jsonl")
    out_topic = f"{topic}-out-{tag}-{mode}"
    config = os.path.join(out, f"settings-{tag}-{mode}.toml")
    mode_config(mode, config, windows, out_topic)
    wall, cpu, rss = timed(
        [binaries["service"], "run", "--config", config, "--brokers", brokers, "--topic", topic,
         "--group", f"sink-cost-{tag}-{mode}-{os.getpid()}", "--model", "partition",
         "--until-end"], log, timing)
    if mode != "file":
        read_back(binaries, brokers, out_topic, windows)
        delete_topic(brokers, out_topic)
    return {"mode": mode, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "windows": windows}


def spread(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def percentile(values, p):
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def cpu_seconds(pid):
    """User + system CPU of `pid` so far, in seconds."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_all(brokers, out, binaries, seconds, rate):
    """One live stream read by a service of every mode at once (each its own group), each
    output followed by examples/tail_output: per mode the latency of each window in ms and the
    service's CPU per frame over the stream."""
    topic = f"sink-latency-{int(time.time())}"
    create_topic(brokers, topic, 4)
    services, followers, seen = {}, {}, {}
    for mode in MODES:
        windows = os.path.join(out, f"latency-windows-{mode}.jsonl")
        config = os.path.join(out, f"latency-settings-{mode}.toml")
        mode_config(mode, config, windows, f"{topic}-out-{mode}",
                    "[window]\nlength_secs = 1\nlateness_secs = 0\n[flush]\ninterval_ms = 100\n"
                    "[kafka]\nauto_offset_reset = \"latest\"\n")
        log = open(os.path.join(out, f"latency-log-{mode}.txt"), "w")
        services[mode] = subprocess.Popen(
            [binaries["service"], "run", "--config", config, "--brokers", brokers, "--topic",
             topic, "--group", f"sink-latency-{mode}-{os.getpid()}", "--model", "partition"],
            stdout=log, stderr=subprocess.STDOUT)
    time.sleep(4)
    for mode in MODES:
        follower_args = (["--brokers", brokers, "--topic", f"{topic}-out-{mode}"]
                         if mode != "file" else
                         ["--file", os.path.join(out, f"latency-windows-{mode}.jsonl")])
        seen[mode] = os.path.join(out, f"latency-seen-{mode}.jsonl")
        followers[mode] = subprocess.Popen(
            [binaries["tail"], *follower_args, "--for", str(seconds + 12)],
            stdout=open(seen[mode], "w"))
    time.sleep(1)
    cpu_before = {mode: cpu_seconds(p.pid) for mode, p in services.items()}
    start = int(time.time()) + 1
    cluster("produce", "--topic", topic, "--frames", str(rate * seconds), "--rate", str(rate),
            "--event-rate", str(rate), "--jitter-ms", "0", "--start-ts", str(start),
            "--window", "1")
    time.sleep(3)
    cpu = {mode: cpu_seconds(p.pid) - cpu_before[mode] for mode, p in services.items()}
    for follower in followers.values():
        follower.wait()
    for service in services.values():
        service.terminate()
        service.wait()
    results = {}
    for mode in MODES:
        lines = [json.loads(l) for l in open(seen[mode]) if l.strip()]
        latencies = sorted((l["window_start"], l["seen_ms"] - l["window_end"] * 1000)
                           for l in lines)
        # The first windows wait for the start; the last for the producer to stop.
        results[mode] = {
            "latencies": [ms for w, ms in latencies if start + 5 <= w < start + seconds - 1],
            "cpu_us_per_frame": cpu[mode] / (rate * seconds) * 1e6,
        }
        if mode != "file":
            delete_topic(brokers, f"{topic}-out-{mode}")
    delete_topic(brokers, topic)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--live-seconds", type=int, default=40)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    binaries = {"service": os.path.join(REPO, "target", "release", "kafka-actors"),
                "raw": os.path.join(REPO, "target", "release", "examples", "raw_consumer"),
                "tail": os.path.join(REPO, "target", "release", "examples", "tail_output")}
    out = args.out or tempfile.mkdtemp(prefix="sink-cost-")
    os.makedirs(out, exist_ok=True)
    brokers = cluster("bootstrap").strip()

    topic = f"sink-cost-{int(time.time())}"
    create_topic(brokers, topic, 4)
    shares = produce(topic, args.frames)
    kinds = ["raw", *MODES]
    runs = []
    for round_ in range(args.rounds):
        order = kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]
        for mode in order:
            run = run_once(mode, brokers, topic, out, f"r{round_}", binaries)
            run["round"] = round_
            if mode != "raw":
                lines, seen = check_windows(run["windows"], shares)
                run["lines"], run["shares_written"] = lines, len(seen)
                if len(seen) != len(shares):
                    raise SystemExit(f"{mode} round {round_}: {len(seen)} of {len(shares)} shares")
            runs.append(run)
            print(f"round {round_} {mode:>12}: {run['wall_s']:6.2f} s wall, "
                  f"{run['cpu_s']:6.2f} s CPU, {run['peak_rss_mib']:6.1f} MiB", flush=True)
    delete_topic(brokers, topic)
    file_runs = {r["round"]: r for r in runs if r["mode"] == "file"}
    summary = {}
    for mode in kinds:
        mine = [r for r in runs if r["mode"] == mode]
        summary[mode] = {
            "frames_per_s": spread([args.frames / r["wall_s"] for r in mine]),
            "cpu_us_per_frame": spread([r["cpu_s"] / args.frames * 1e6 for r in mine]),
            "throughput_vs_file": spread(
                [file_runs[r["round"]]["wall_s"] / r["wall_s"] for r in mine]),
            "cpu_us_per_frame_over_file": spread(
                [(r["cpu_s"] - file_runs[r["round"]]["cpu_s"]) / args.frames * 1e6 for r in mine]),
            "peak_rss_mib": spread([r["peak_rss_mib"] for r in mine]),
        }
    live = latency_all(brokers, out, binaries, args.live_seconds, args.rate)
    for mode in MODES:
        measured = live[mode]["latencies"]
        if not measured:
            raise SystemExit(f"{mode}: no window seen in the live run; see {out}")
        summary[mode]["live"] = {
            "windows": len(measured), "latency_p50_ms": percentile(measured, 50),
            "latency_p99_ms": percentile(measured, 99), "latency_max_ms": max(measured),
            "cpu_us_per_frame": round(live[mode]["cpu_us_per_frame"], 3)}
        print(f"live {mode:>12}: latency p50 {summary[mode]['live']['latency_p50_ms']} ms, "
              f"p99 {summary[mode]['live']['latency_p99_ms']} ms over {len(measured)} windows; "
              f"{summary[mode]['live']['cpu_us_per_frame']} us CPU per frame", flush=True)
    report = {"frames": args.frames, "rounds": args.rounds, "live_seconds": args.live_seconds,
              "rate": args.rate, "summary": summary, "runs": runs}
    with open(os.path.join(out, "sink-cost.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(f"sink-cost.json and every run's windows and log: {out}")


if __name__ == "__main__":
    main()
