#!/usr/bin/env python3
"""Sums the nemesis.json of a campaign run in chunks (`kafka-actors-lab chaos --nemesis random`):
runs per model and output, faults by kind, anomalies, recovery after the last heal, and
catch-up after each heal by kind. Usage: nemesis-sum.py GLOB [GLOB...]"""
import json, glob, sys, collections
dirs = sorted(p for a in sys.argv[1:] for p in glob.glob(a))
runs = []
for path in dirs:
    runs += json.load(open(path))['results']
by = collections.defaultdict(lambda: [0, 0])
faults = collections.defaultdict(lambda: [0, 0])
anomalies = collections.Counter()
catch = collections.defaultdict(lambda: [0, []])
recov = []
frames = []
late = [0, 0]
overlapping = 0
for r in runs:
    key = (r['result']['model'], r['result']['output'])
    by[key][0] += 1
    by[key][1] += r['result']['passed']
    kinds = {}
    for a in r['applied']:
        if not a['applied']:
            continue
        k = a['step']['kind']
        kinds[k] = kinds.get(k, False) or a['while_flowing']
        if a.get('healed_at_ms') is not None:
            catch[k][0] += 1
            if a.get('caught_up_ms') is not None:
                catch[k][1].append(a['caught_up_ms'])
    for k, f in kinds.items():
        faults[k][0] += 1
        faults[k][1] += f
    for an in r['anomalies']:
        anomalies[an] += 1
    if r['anomalies']:
        print('FAILED', r['replay'], r['result']['problems'])
    if r['result']['recovery_ms'] is not None:
        recov.append(r['result']['recovery_ms'])
    frames.append(r['result']['frames'])
    late[0] += r['result']['late_replayed']; late[1] += r['result']['late_missed']
    timed = [s for s in r['plan']['steps'] if s['hold_ms'] > 0]
    overlapping += len(timed) >= 3
def pct(xs, q):
    xs = sorted(xs)
    return xs[round((len(xs) - 1) * q)] if xs else None
print('runs', len(runs), 'passed', sum(v[1] for v in by.values()), 'with >=3 timed faults', overlapping)
for k, v in sorted(by.items()):
    print(f'  {k[0]}/{k[1]}: {v[1]} of {v[0]}')
print('frames per run: min', min(frames), 'median', pct(frames, .5), '; late replayed/missed', late)
print('faults by kind (runs applied / while flowing):', ', '.join(f'{k} {v[0]}/{v[1]}' for k, v in sorted(faults.items())))
print('anomalies:', dict(anomalies) or 'none')
print('recovery after last heal: p50 %.1f p90 %.1f p99 %.1f max %.1f ms' % (pct(recov, .5), pct(recov, .9), pct(recov, .99), max(recov)))
print('caught up after each heal, by kind: caught up/healed, p50, p90, max (s)')
for k, (healed, ms) in sorted(catch.items()):
    if ms:
        print(f'  {k}: {len(ms)}/{healed}, {pct(ms,.5)/1e3:.2f}, {pct(ms,.9)/1e3:.2f}, {max(ms)/1e3:.2f}')
    else:
        print(f'  {k}: 0/{healed}')
