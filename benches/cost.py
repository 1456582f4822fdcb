#!/usr/bin/env python3
"""What the service costs per frame against a raw consumer, on the Apache Kafka test cluster
(tests/kafka/cluster start).

One topic (default 4 partitions, 1 000 000 frames from Kafka's Java producer) is read to its
end, in alternating rounds, by:
  - raw:       target/release/examples/raw_consumer, one plain librdkafka consumer with the
               service's own fetch and prefetch tuning, counting records (the floor);
  - partition: `kafka-actors run --until-end --model partition` from a fresh group;
  - group:     `kafka-actors run --until-end --model group` from a fresh group.
Each run is timed by /usr/bin/time (wall, user + system CPU, peak RSS). Per round the models are
compared with the raw run of the same round: frames/s ratio and CPU per frame over the floor.
The report gives the median and the spread (min..max) over the rounds, checks every window
line against the producer's truth, and writes cost.json and cost.svg to --out.

    cargo build --release --bins --example raw_consumer
    tests/kafka/cluster start
    benches/cost.py --rounds 5 --out target/cost
"""

import argparse
import json
import os
import statistics
import tempfile
import time

from kafka_cluster import REPO, check_windows, cluster, create_topic, delete_topic, produce, timed

MODELS = ["raw", "partition", "group"]


def run_once(kind, brokers, topic, out, tag, binaries):
    log = os.path.join(out, f"log-{tag}-{kind}.txt")
    timing = os.path.join(out, f"time-{tag}-{kind}.txt")
    if kind == "raw":
        wall, cpu, rss = timed([binaries["raw"], "--brokers", brokers, "--topic", topic],
                               log, timing)
        return {"kind": kind, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss,
                "records": json.loads(open(log).read().strip().splitlines()[-1])["records"]}
    windows = os.path.join(out, f"windows-{tag}-{kind}.jsonl")
    config = os.path.join(out, f"settings-{tag}-{kind}.toml")
    with open(config, "w") as f:
        f.write(f'[sink]\nkind = "file"\npath = "{windows}"\n[admin]\nport = 0\n')
    wall, cpu, rss = timed(
        [binaries["service"], "run", "--config", config, "--brokers", brokers, "--topic", topic,
         "--group", f"cost-{tag}-{kind}-{os.getpid()}", "--model", kind, "--until-end"],
        log, timing)
    return {"kind": kind, "wall_s": wall, "cpu_s": cpu, "peak_rss_mib": rss, "windows": windows}


def spread(values):
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3),
            "max": round(max(values), 3)}


def chart(summary, path):
    """A bar chart of the median frames/s ratios (with their spread) and peak RSS."""
    width, height, bar = 520, 260, 60
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             '<text x="10" y="20">frames/s relative to the raw consumer (median, min..max)</text>']
    for i, model in enumerate(["partition", "group"]):
        s = summary[model]["throughput_ratio"]
        x = 80 + i * 200
        scale = 180
        top = height - 40 - s["median"] * scale
        parts.append(f'<rect x="{x}" y="{top:.1f}" width="{bar}" height="{s["median"] * scale:.1f}" '
                     f'fill="#4a7ab0"/>')
        lo, hi = height - 40 - s["min"] * scale, height - 40 - s["max"] * scale
        parts.append(f'<line x1="{x + bar / 2}" y1="{lo:.1f}" x2="{x + bar / 2}" y2="{hi:.1f}" '
                     f'stroke="black"/>')
        parts.append(f'<text x="{x}" y="{height - 22}">{model}</text>')
        parts.append(f'<text x="{x}" y="{top - 6:.1f}">{s["median"]:.2f}</text>')
    floor = height - 40 - 1.0 * 180
    parts.append(f'<line x1="60" y1="{floor:.1f}" x2="{width - 20}" y2="{floor:.1f}" '
                 f'stroke="#b04a4a" stroke-dasharray="4"/>')
    parts.append(f'<text x="{width - 90}" y="{floor - 4:.1f}">raw = 1.0</text>')
    parts.append('</svg>')
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    binaries = {"service": os.path.join(REPO, "target", "release", "kafka-actors"),
                "raw": os.path.join(REPO, "target", "release", "examples", "raw_consumer")}
    out = args.out or tempfile.mkdtemp(prefix="cost-")
    os.makedirs(out, exist_ok=True)
    brokers = cluster("bootstrap").strip()
    topic = f"cost-{int(time.time())}"
    create_topic(brokers, topic, args.partitions)
    shares = produce(topic, args.frames)
    runs = []
    for round_ in range(args.rounds):
        # Alternate the order so no kind always runs first (warm page cache, idle cores).
        order = MODELS[round_ % 3:] + MODELS[:round_ % 3]
        for kind in order:
            run = run_once(kind, brokers, topic, out, f"r{round_}", binaries)
            run["round"] = round_
            if kind != "raw":
                lines, seen = check_windows(run["windows"], shares)
                run["lines"], run["shares_written"] = lines, len(seen)
                if len(seen) != len(shares):
                    raise SystemExit(f"{kind} round {round_}: {len(seen)} of {len(shares)} shares")
            runs.append(run)
            print(f"round {round_} {kind:>9}: {run['wall_s']:6.2f} s wall, "
                  f"{run['cpu_s']:6.2f} s CPU, {run['peak_rss_mib']:6.1f} MiB", flush=True)
    summary = {}
    raw = {r["round"]: r for r in runs if r["kind"] == "raw"}
    summary["raw"] = {
        "frames_per_s": spread([args.frames / r["wall_s"] for r in raw.values()]),
        "cpu_us_per_frame": spread([r["cpu_s"] / args.frames * 1e6 for r in raw.values()]),
        "peak_rss_mib": spread([r["peak_rss_mib"] for r in raw.values()]),
    }
    for model in ["partition", "group"]:
        mine = [r for r in runs if r["kind"] == model]
        summary[model] = {
            "throughput_ratio": spread([raw[r["round"]]["wall_s"] / r["wall_s"] for r in mine]),
            "cpu_us_per_frame_over_raw": spread(
                [(r["cpu_s"] - raw[r["round"]]["cpu_s"]) / args.frames * 1e6 for r in mine]),
            "peak_rss_mib": spread([r["peak_rss_mib"] for r in mine]),
        }
    delete_topic(brokers, topic)
    report = {"partitions": args.partitions, "frames": args.frames, "rounds": args.rounds,
              "summary": summary, "runs": runs}
    with open(os.path.join(out, "cost.json"), "w") as f:
        json.dump(report, f, indent=2)
    chart(summary, os.path.join(out, "cost.svg"))
    print(json.dumps(summary, indent=2))
    print(f"cost.json, cost.svg and every run's windows and log: {out}")


if __name__ == "__main__":
    main()
