#!/usr/bin/env python3
"""stabledns against NSD and Knot on loopback: run by scripts/bench (which installs the tools
and builds the release binary). Standard library only.

For each fleet size: generate a describe-instances fleet, serve it with stabledns, print the
view as a zone file (`stabledns zone`) and serve that with NSD and Knot, check with dig that all
three give the same answers for a sample of names, then run one dnsperf query mix (A queries,
5% NXDOMAIN) against each server, interleaved, and report the median qps, the ratios, latency at
a fixed rate, lost queries and memory. Then instruction counts per query (callgrind) for the
fast path and the hickory handler, and the snapshot build time at each size.
"""

import argparse
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

APEX = "bench."
FIXED_RATE = 20_000


def free_port():
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise SystemExit("no free loopback port")


def state_change(event_id, instance, state, region):
    """An "EC2 Instance State-change Notification" as EventBridge puts it on an SQS queue."""
    return json.dumps({
        "version": "0", "id": event_id,
        "detail-type": "EC2 Instance State-change Notification", "source": "aws.ec2",
        "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [f"arn:aws:ec2:{region}:123456789012:instance/{instance}"],
        "detail": {"instance-id": instance, "state": state},
    })


def fleet(n, seed=1):
    """n instances: unique Name tags, tiers of ten by security group, 60% with public names."""
    rng = random.Random(seed)
    instances = []
    for i in range(n):
        private = f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{(i & 255)}"
        inst = {
            "InstanceId": f"i-{i:017x}",
            "State": {"Name": "running"},
            "LaunchTime": "2026-11-01T10:00:00+00:00",
            "Placement": {"AvailabilityZone": "eu-west-1a"},
            "PrivateIpAddress": private,
            "Tags": [{"Key": "Name", "Value": f"host-{i}"}],
            "SecurityGroups": [{"GroupId": f"sg-{i // 10}", "GroupName": f"SG-T-TIER{i // 10}"}],
        }
        if rng.random() < 0.6:
            pub = f"52.{16 + ((i >> 16) & 15)}.{(i >> 8) & 255}.{i & 255}"
            inst["PublicIpAddress"] = pub
            inst["PublicDnsName"] = f"ec2-{pub.replace('.', '-')}.eu-west-1.compute.amazonaws.com"
        instances.append(inst)
    return {"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]}


CONFIG = """
[server]
listen = ["{host}:{port}"]
fast_path = {fast}

[zone]
apex = "bench."

[zone.soa]
hostmaster = "hostmaster.bench."

[[zone.nameservers]]
name = "ns1.bench."
addresses = ["127.0.0.1"]
public_addresses = ["203.0.113.53"]

[inventory]
source = "file"
path = "fleet.json"
refresh_interval = "1h"

[[naming.rules]]
kind = "tag"
tag = "Name"
single = true

[[naming.rules]]
kind = "tag"
tag = "dns:names"
separator = ","

[[naming.rules]]
kind = "security_group"
pattern = "^SG-T-(?P<name>.+)$"

[[views]]
name = "inside"
clients = ["127.0.0.0/8"]
addresses = "private"
single = "cname"

[[views]]
name = "outside"
addresses = "public"
"""


def write_config(d, port, fast=True, host="127.0.0.1", extra=""):
    path = d / f"bench-{port}.toml"
    path.write_text(CONFIG.format(host=host, port=port, fast="true" if fast else "false") + extra)
    return path


def dig_short(port, name):
    out = subprocess.run(
        ["dig", "@127.0.0.1", "-p", str(port), "+short", "+time=2", "+tries=2", name, "A"],
        capture_output=True, text=True, check=False,
    ).stdout
    # dig +short prints errors (";; communications error ...") on stdout too.
    return sorted(w for line in out.splitlines() if not line.startswith(";") for w in line.split())


def wait_answer(port, name, what, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if dig_short(port, name):
            return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not answer {name} on port {port} within {seconds} s")


def rss_kb(pids):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def children(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


class Server:
    def __init__(self, name, port, proc=None, pidfile=None):
        self.name, self.port, self.proc, self.pidfile = name, port, proc, pidfile

    def pids(self):
        if self.pidfile:
            try:
                main = int(Path(self.pidfile).read_text().split()[0])
            except (OSError, ValueError, IndexError):
                return []
            return [main] + children(main)
        return [self.proc.pid] + children(self.proc.pid)

    def stop(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def start_stabledns(binary, d, port, fast=True, wrapper=(), host="127.0.0.1", name="stabledns",
                    extra="", log=None):
    config = write_config(d, port, fast, host, extra)
    log = log or open(d / f"stabledns-{port}.log", "w")
    proc = subprocess.Popen(
        [*wrapper, binary, "serve", "--config", str(config)],
        cwd=d, stdout=log, stderr=subprocess.STDOUT,
    )
    return Server(name, port, proc)


# The query log's cost: the same server with a line per answer (to /dev/null, so the disk is not
# measured), and with dnstap to fstrm_capture; each with an admin port to read what it wrote.
QUERY_LOG = "stabledns +log"
DNSTAP = "stabledns +dnstap"


def start_logging(binary, d):
    """The two logging servers (and the dnstap collector), with their admin ports."""
    sock = d / "dnstap.sock"
    capture = subprocess.Popen(
        ["fstrm_capture", "-t", "protobuf:dnstap.Dnstap", "-u", str(sock), "-w", "/dev/null"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    collector = Server("fstrm_capture", 0, capture)
    servers, admins = [], {}
    for name, extra in ((QUERY_LOG, '[log]\nqueries = "all"\n'),
                        (DNSTAP, f'[log]\ndnstap_socket = "{sock}"\n')):
        port, admin = free_port(), free_port()
        extra = f'{extra}\n[admin]\nlisten = "127.0.0.1:{admin}"\n'
        servers.append(start_stabledns(binary, d, port, name=name, extra=extra,
                                       log=open(os.devnull, "w")))
        admins[name] = admin
    return servers, admins, collector


def logged(admin):
    """(written, dropped) query log lines and dnstap messages, from /metrics."""
    import urllib.request
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    def value(pattern):
        m = re.search(pattern, text)
        return int(float(m.group(1))) if m else 0
    return {
        "lines": value(r'stabledns_query_log_lines_total\{outcome="written"\} (\S+)'),
        "lines_dropped": value(r'stabledns_query_log_lines_total\{outcome="dropped"\} (\S+)'),
        "dnstap": value(r'stabledns_dnstap_messages_total\{outcome="sent"\} (\S+)'),
        "dnstap_dropped": value(r'stabledns_dnstap_messages_total\{outcome="dropped"\} (\S+)'),
    }


# stabledns on the wildcard address: every answer carries its source address (IP_PKTINFO),
# which is what listening on 0.0.0.0 costs. Same binary and config otherwise.
WILDCARD = "stabledns 0.0.0.0"


def start_nsd(d, zone_file, port):
    nd = d / "nsd"
    nd.mkdir(exist_ok=True)
    (nd / "bench.zone").write_text(zone_file)
    conf = nd / "nsd.conf"
    conf.write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  username: ""
  chroot: ""
  zonesdir: "{nd}"
  pidfile: "{nd}/nsd.pid"
  database: ""
  xfrdfile: "{nd}/xfrd.state"
  zonelistfile: "{nd}/zone.list"
  xfrdir: "{nd}"
  logfile: "{nd}/nsd.log"
  server-count: 2
  verbosity: 0
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
zone:
  name: "{APEX}"
  zonefile: "bench.zone"
""")
    proc = subprocess.Popen(["nsd", "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return Server("NSD", port, proc)


def start_knot(d, zone_file, port):
    kd = d / "knot"
    (kd / "db").mkdir(parents=True, exist_ok=True)
    (kd / "bench.zone").write_text(zone_file)
    conf = kd / "knot.conf"
    conf.write_text(f"""server:
    rundir: "{kd}"
    listen: 127.0.0.1@{port}
    udp-workers: 2
    tcp-workers: 1
    background-workers: 1

database:
    storage: "{kd}/db"

log:
  - target: stderr
    any: error

template:
  - id: default
    storage: "{kd}"
    semantic-checks: off
    zonefile-sync: -1
    journal-content: none

zone:
  - domain: {APEX}
    file: "bench.zone"
""")
    proc = subprocess.Popen(["knotd", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=open(kd / "knot.log", "w"))
    return Server("Knot", port, proc)


def dnsperf(port, qfile, seconds, extra=()):
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(seconds),
         "-c", "4", "-T", "2", "-q", "500", "-t", "2", *extra],
        capture_output=True, text=True, check=False,
    ).stdout
    def grab(pattern, cast=float, default=0.0):
        m = re.search(pattern, out)
        return cast(m.group(1)) if m else default
    return {
        "qps": grab(r"Queries per second:\s+([\d.]+)"),
        "lost": grab(r"Queries lost:\s+(\d+)", int, 0),
        "sent": grab(r"Queries sent:\s+(\d+)", int, 0),
        "avg_ms": grab(r"Average Latency \(s\):\s+([\d.]+)") * 1000,
        "raw": out,
    }


def latency_at_rate(port, qfile, seconds):
    """Average and p99 latency at a fixed rate, from dnsperf's per-query report (-v)."""
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(seconds),
         "-c", "4", "-T", "2", "-Q", str(FIXED_RATE), "-t", "2", "-v"],
        capture_output=True, text=True, check=False,
    ).stdout
    lat = []
    for line in out.splitlines():
        if line.startswith(">"):
            try:
                lat.append(float(line.split()[-1]))
            except ValueError:
                pass
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    if not lat:
        return {"avg_ms": float("nan"), "p99_ms": float("nan"), "lost": int(lost.group(1)) if lost else -1}
    lat.sort()
    return {
        "avg_ms": statistics.fmean(lat) * 1000,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000,
        "lost": int(lost.group(1)) if lost else 0,
    }


def instructions_per_query(binary, d, qfile_small, n_queries, fast):
    """Instructions per query under callgrind: the whole process's count with `n_queries`
    queries (one in flight) minus its count with none, so start-up, the snapshot build and
    shutdown cancel out. (Toggling collection on function names does not work here: callgrind
    toggles at every matching entry and exit, and async code nests such names.)"""
    def count(queries):
        port = free_port()
        out = d / f"callgrind-{port}.out"
        server = start_stabledns(binary, d, port, fast, wrapper=(
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))
        try:
            wait_answer(port, "host-1.bench.", "stabledns under valgrind", seconds=180)
            if queries:
                subprocess.run(
                    ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile_small), "-n", "1",
                     "-c", "1", "-q", "1", "-t", "10"],
                    capture_output=True, text=True, check=False,
                )
        finally:
            server.stop()
        m = re.search(r"^summary:\s+(\d+)", out.read_text(errors="replace"), re.M) if out.exists() else None
        return int(m.group(1)) if m else float("nan")
    return (count(n_queries) - count(0)) / n_queries


def build_time(binary, d, n, runs=3):
    """`stabledns check` on an n-instance fleet, `runs` times: the median snapshot build time
    and the largest peak RSS of the runs (one run varies by 15 % here)."""
    sub = d / f"build-{n}"
    sub.mkdir(exist_ok=True)
    (sub / "fleet.json").write_text(json.dumps(fleet(n)))
    config = write_config(sub, 5353)
    times, peaks = [], []
    for _ in range(runs):
        res = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M", binary, "check", "--config", str(config)],
                             capture_output=True, text=True, check=False)
        m = re.search(r"snapshot built in (\d+) ms", res.stdout)
        rss = re.search(r"maxrss_kb=(\d+)", res.stderr)
        if not m:
            raise SystemExit(f"check failed for {n} instances:\n{res.stdout}\n{res.stderr}")
        times.append(int(m.group(1)) / 1000)
        peaks.append(int(rss.group(1)) / 1024 if rss else float("nan"))
    return statistics.median(times), max(peaks)


def zone_load_times(d, zone_text):
    """How long NSD and Knot take to load and check the same zone (`nsd-checkzone`,
    `kzonecheck`): what stabledns's snapshot build is measured against."""
    path = d / "load.zone"
    path.write_text(zone_text)
    out = {}
    for name, cmd in (("NSD", ["nsd-checkzone", APEX, str(path)]),
                      ("Knot", ["kzonecheck", "-o", APEX, str(path)])):
        took = []
        for _ in range(3):  # the median, as for the build it is compared with
            started = time.perf_counter()
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            took.append(time.perf_counter() - started)
            if res.returncode != 0:
                raise SystemExit(f"{cmd[0]} refused the zone:\n{res.stdout}{res.stderr}")
        out[name] = statistics.median(took)
    return out


def run_fleet(binary, root, n, reps, seconds, logging=False):
    d = root / f"fleet-{n}"
    d.mkdir()
    (d / "fleet.json").write_text(json.dumps(fleet(n)))
    sport, nport, kport, wport = free_port(), free_port(), free_port(), free_port()
    zone = subprocess.run([binary, "zone", "--config", str(write_config(d, sport)), "--view", "inside"],
                          capture_output=True, text=True, check=True, cwd=d).stdout
    names = sorted({line.split()[0] for line in zone.splitlines()
                    if line.split()[3] in ("A", "CNAME", "AAAA")})
    load = zone_load_times(d, zone)
    rng = random.Random(n)
    queries = [f"{rng.choice(names)} A" for _ in range(20_000)]
    for i in range(0, len(queries), 20):  # 5% names that do not exist
        queries[i] = f"nx-{rng.randrange(10**9)}.{APEX} A"
    qfile = d / "queries.txt"
    qfile.write_text("\n".join(queries) + "\n")
    (d / "queries-2000.txt").write_text("\n".join(queries[:2000]) + "\n")

    servers = [start_stabledns(binary, d, sport), start_nsd(d, zone, nport), start_knot(d, zone, kport),
               start_stabledns(binary, d, wport, host="0.0.0.0", name=WILDCARD)]
    admins, extra = {}, []
    if logging:
        more, admins, collector = start_logging(binary, d)
        servers += more
        extra.append(collector)
    try:
        for s in servers:
            # A million instances take each server tens of seconds to read and load.
            wait_answer(s.port, names[0], s.name, seconds=max(60, n // 5000))
        sample = rng.sample(names, min(50, len(names))) + [f"nx-sample-{i}.{APEX}" for i in range(5)]
        for name in sample:
            answers = {s.name: dig_short(s.port, name) for s in servers}
            if len({tuple(a) for a in answers.values()}) != 1:
                raise SystemExit(f"answers differ for {name}: {answers}")
        print(f"fleet {n}: {len(names)} names; stabledns (127.0.0.1 and 0.0.0.0), NSD and Knot agree "
              f"on {len(sample)} sampled names")

        qps = {s.name: [] for s in servers}
        lost = {s.name: 0 for s in servers}
        for rep in range(reps):
            for s in servers:  # interleaved, so drift hits all three alike
                r = dnsperf(s.port, qfile, seconds)
                qps[s.name].append(r["qps"])
                lost[s.name] += r["lost"]
                print(f"  rep {rep + 1} {s.name:9} {r['qps']:>10.0f} qps  lost {r['lost']}", flush=True)
        # Latency differences between the servers are a few microseconds, about the noise of
        # one run: the median of `reps` interleaved runs, as for qps.
        runs = {s.name: [] for s in servers}
        for _ in range(reps):
            for s in servers:
                runs[s.name].append(latency_at_rate(s.port, qfile, max(3, seconds // 2)))
        lat = {name: {"avg_ms": statistics.median(r["avg_ms"] for r in rs),
                      "p99_ms": statistics.median(r["p99_ms"] for r in rs),
                      "lost": sum(r["lost"] for r in rs)}
               for name, rs in runs.items()}
        rss = {s.name: rss_kb(s.pids()) / 1024 for s in servers}
        logs = {name: logged(admin) for name, admin in admins.items()}
    finally:
        for s in servers + extra:
            s.stop()
    return {"names": len(names), "qps": {k: statistics.median(v) for k, v in qps.items()}, "load": load,
            "lost": lost, "lat": lat, "rss": rss, "dir": d, "logs": logs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--fleets", default="1000,100000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    args = ap.parse_args()
    fleets = [1000] if args.quick else [int(x) for x in args.fleets.split(",")]
    reps = 1 if args.quick else args.reps
    binary = os.path.abspath(args.binary)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"dnsperf -c 4 -T 2, {args.seconds} s per run, {reps} repetition(s), median; "
          f"latency at a fixed {FIXED_RATE} qps")
    results = {}
    with tempfile.TemporaryDirectory(prefix="stabledns-bench-") as tmp:
        root = Path(tmp)
        for n in fleets:
            # A million instances once: each repetition there is minutes of loading.
            runs = 1 if n >= 1_000_000 else reps
            results[n] = run_fleet(binary, root, n, runs, args.seconds, logging=n == fleets[0])
        first = results[fleets[0]]["dir"]
        qsmall = first / "queries-2000.txt"
        ipq_fast = instructions_per_query(binary, first, qsmall, 2000, True)
        ipq_slow = instructions_per_query(binary, first, qsmall, 2000, False)
        builds = {n: build_time(binary, root, n) for n in sorted(set(fleets) | {10_000, 100_000})}

    print()
    print("| fleet | server | qps (median) | vs NSD | vs Knot | avg / p99 ms at 20k qps | lost | RSS MB |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for n, r in results.items():
        for s in ("stabledns", WILDCARD, QUERY_LOG, DNSTAP, "NSD", "Knot"):
            if s not in r["qps"]:
                continue
            q = r["qps"][s]
            lat = r["lat"][s]
            print(f"| {n} | {s} | {q:,.0f} | {q / r['qps']['NSD']:.2f} | {q / r['qps']['Knot']:.2f} | "
                  f"{lat['avg_ms']:.3f} / {lat['p99_ms']:.3f} | {r['lost'][s] + max(lat['lost'], 0)} | {r['rss'][s]:.0f} |")
    for name, got in results[fleets[0]]["logs"].items():
        print(f"{name}: {got['lines']:,} lines written, {got['lines_dropped']:,} dropped; "
              f"{got['dnstap']:,} dnstap messages sent, {got['dnstap_dropped']:,} dropped")
    print()
    print(f"instructions per query (callgrind, whole process, 2,000 queries less none): fast path {ipq_fast:,.0f}, "
          f"hickory handler {ipq_slow:,.0f}")
    for n, (secs, rss) in builds.items():
        load = results.get(n, {}).get("load")
        against = (f"; the same zone loaded by nsd-checkzone {load['NSD']:.3f} s, kzonecheck {load['Knot']:.3f} s"
                   if load else "")
        print(f"snapshot build, {n} instances, 3 rules, 2 views: {secs:.3f} s (check's peak RSS {rss:.0f} MB){against}")
    last = results[fleets[-1]]
    first_r = results[fleets[0]]
    b100 = builds.get(100_000, (float("nan"), float("nan")))
    print(
        f"summary fleet={fleets[0]} qps={first_r['qps']['stabledns']:.0f} "
        f"ratio_nsd={first_r['qps']['stabledns'] / first_r['qps']['NSD']:.2f} "
        f"ratio_knot={first_r['qps']['stabledns'] / first_r['qps']['Knot']:.2f} "
        f"lat20k_ms={first_r['lat']['stabledns']['avg_ms']:.3f} "
        f"nsd_lat20k_ms={first_r['lat']['NSD']['avg_ms']:.3f} "
        f"knot_lat20k_ms={first_r['lat']['Knot']['avg_ms']:.3f} "
        f"p99_20k_ms={first_r['lat']['stabledns']['p99_ms']:.3f} "
        f"lost={first_r['lost']['stabledns']} "
        f"fleet_large={fleets[-1]} qps_large={last['qps']['stabledns']:.0f} "
        f"ratio_nsd_large={last['qps']['stabledns'] / last['qps']['NSD']:.2f} "
        f"build100k_s={b100[0]:.3f} rss_mb={last['rss']['stabledns']:.0f} "
        f"ipq_fast={ipq_fast:.0f} ipq_slow={ipq_slow:.0f} "
        # RSS and build against NSD and Knot at 100,000 instances (the largest fleet when
        # the run has none that size), and at a million when it has one.
        + ratios(results, builds, 100_000 if 100_000 in results else fleets[-1], "")
        + ratios(results, builds, 1_000_000, "_1m")
        + f"wildcard_vs_bound={first_r['qps'][WILDCARD] / first_r['qps']['stabledns']:.2f} "
        f"wildcard_vs_bound_large={last['qps'][WILDCARD] / last['qps']['stabledns']:.2f} "
        f"log_vs_off={first_r['qps'][QUERY_LOG] / first_r['qps']['stabledns']:.2f} "
        f"dnstap_vs_off={first_r['qps'][DNSTAP] / first_r['qps']['stabledns']:.2f}"
    )


def ratios(results, builds, n, suffix):
    """stabledns against NSD and Knot at one fleet size, when the run had it: qps, RSS and
    the snapshot build against loading the same zone."""
    r = results.get(n)
    if not r or n not in builds:
        return ""
    build = builds[n][0]
    qps = f"ratio_nsd{suffix}={r['qps']['stabledns'] / r['qps']['NSD']:.2f} " if suffix else ""
    return (qps + f"rss_ratio_nsd{suffix}={r['rss']['stabledns'] / r['rss']['NSD']:.2f} "
            f"rss_ratio_knot{suffix}={r['rss']['stabledns'] / r['rss']['Knot']:.2f} "
            f"build_ratio_nsd{suffix}={build / r['load']['NSD']:.2f} "
            f"build_ratio_knot{suffix}={build / r['load']['Knot']:.2f} ")


if __name__ == "__main__":
    sys.exit(main())
