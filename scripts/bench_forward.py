#!/usr/bin/env python3
"""Forwarding: stabledns against unbound (as a pure forwarder) and dnsmasq, in front of the same
upstream, in one run, on loopback only. Run by `scripts/bench --forward` (which installs the
tools and builds the release binary). Standard library only.

The upstream is a recursive unbound over NSD, authoritative for `fwd.bench.` (20,000 names). The
upstream's own counter (`unbound-control stats_noreset`, total.num.queries) says how many queries
each forwarder sent it: the figure that meets AWS's VPC resolver's 1,024 packets/s.

Two query mixes, each forwarder asked both with dnsperf (-c 8 -T 2), interleaved, median of the
repetitions:
- warm: 2,000 names, all asked once beforehand (every answer cached);
- zipf: 200,000 queries over the 20,000 names, Zipf-distributed (s = 1.1): mostly cached names,
  with a tail each forwarder meets for the first time; caches are emptied (restarts) before it.

Then the upstream is stopped, and stabledns alone is asked for 60 s at 80 % of its warm maximum:
names it has cached (expired, so served stale) and 5 % names it never saw (SERVFAIL, at once or
within `forwarding.timeout`, never a hang).

The last line is machine-readable: `summary mode=forward qps=... ratio_unbound=...`.
"""

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the main bench's helpers: ports, dnsperf, latency, servers)

ZONE = "fwd.bench."
NAMES = 20_000
WARM = 2_000
ZIPF_QUERIES = 200_000


def zone_file():
    lines = [
        f"$ORIGIN {ZONE}",
        "$TTL 3600",
        f"@ IN SOA ns.{ZONE} hostmaster.{ZONE} 1 3600 600 86400 3600",
        f"@ IN NS ns.{ZONE}",
        "ns IN A 127.0.0.1",
    ]
    for i in range(NAMES):
        lines.append(f"h{i} IN A 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}")
    # Short-lived names for the run with the upstream gone: expired by then, served stale.
    for i in range(WARM):
        lines.append(f"s{i} 2 IN A 10.200.{(i >> 8) & 255}.{i & 255}")
    return "\n".join(lines) + "\n"


def start_nsd(d, port):
    nd = d / "nsd"
    nd.mkdir(exist_ok=True)
    (nd / "fwd.zone").write_text(zone_file())
    (nd / "nsd.conf").write_text(f"""server:
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
  server-count: 1
  verbosity: 0
remote-control:
  control-enable: no
zone:
  name: "{ZONE}"
  zonefile: "fwd.zone"
""")
    proc = subprocess.Popen(["nsd", "-d", "-c", str(nd / "nsd.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bench.Server("NSD", port, proc)


def unbound_conf(d, name, port, body, control_port=None):
    ud = d / name
    ud.mkdir(exist_ok=True)
    control = (f"remote-control:\n  control-enable: yes\n  control-interface: 127.0.0.1\n"
               f"  control-port: {control_port}\n  control-use-cert: no\n") if control_port else ""
    conf = ud / "unbound.conf"
    conf.write_text(f"""server:
  interface: 127.0.0.1@{port}
  port: {port}
  num-threads: 1
  username: ""
  chroot: ""
  directory: "{ud}"
  pidfile: "{ud}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 0
  do-not-query-localhost: no
  module-config: "iterator"
  access-control: 127.0.0.0/8 allow
  ratelimit: 0
  ip-ratelimit: 0
{body}
{control}""")
    subprocess.run(["unbound-checkconf", str(conf)], check=True, capture_output=True)
    return conf


def start_unbound(name, port, conf):
    proc = subprocess.Popen(["unbound", "-d", "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bench.Server(name, port, proc)


def upstream_queries(conf):
    out = subprocess.run(["unbound-control", "-c", str(conf), "stats_noreset"],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"^total\.num\.queries=(\d+)$", out, re.M)
    return int(m.group(1)) if m else 0


STABLEDNS_CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]

[zone]
apex = "stable."

[zone.soa]
hostmaster = "hostmaster.stable."

[[zone.nameservers]]
name = "ns1.stable."
addresses = ["127.0.0.1"]

[inventory]
source = "file"
path = "fleet.json"
refresh_interval = "1h"

[[naming.rules]]
kind = "tag"
tag = "Name"
single = true

[forwarding]
upstreams = ["127.0.0.1:{upstream}"]
cache_size = 100000
timeout = "1s"

[[views]]
name = "inside"
clients = ["127.0.0.0/8"]
addresses = "private"
recursion = true
"""


def start_stabledns(binary, d, port, upstream):
    sd = d / f"stabledns-{port}"
    sd.mkdir(exist_ok=True)
    (sd / "fleet.json").write_text(__import__("json").dumps(bench.fleet(10)))
    conf = sd / "stabledns.toml"
    conf.write_text(STABLEDNS_CONFIG.format(port=port, upstream=upstream))
    log = open(sd / "stabledns.log", "w")
    proc = subprocess.Popen([binary, "serve", "--config", str(conf)], cwd=sd,
                            stdout=log, stderr=subprocess.STDOUT)
    return bench.Server("stabledns", port, proc)


def start_dnsmasq(port, upstream):
    proc = subprocess.Popen(
        ["dnsmasq", "-k", "--no-resolv", "--no-hosts", "--bind-interfaces",
         "--listen-address=127.0.0.1", f"--port={port}", f"--server=127.0.0.1#{upstream}",
         "--cache-size=10000", "--user=root", "--pid-file="],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return bench.Server("dnsmasq", port, proc)


def gone_run(port, qfile, seconds, rate):
    """dnsperf at a fixed rate with a long client timeout: what came back, by RCODE, and lost.
    Up to 2,000 queries outstanding: room for the new names that wait for the dead upstream,
    without the bursts of a deeper queue (20,000 overflows a 2-core machine's socket buffers
    with the upstream alive as much as gone)."""
    out = subprocess.run(
        ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(seconds),
         "-c", "8", "-T", "2", "-Q", str(rate), "-t", "5", "-q", "2000"],
        capture_output=True, text=True, check=False,
    ).stdout
    codes = dict((k, int(v)) for k, v in re.findall(r"(NOERROR|SERVFAIL|NXDOMAIN|REFUSED) (\d+)", out))
    lost = re.search(r"Queries lost:\s+(\d+)", out)
    sent = re.search(r"Queries sent:\s+(\d+)", out)
    avg = re.search(r"Average Latency \(s\):\s+([\d.]+)", out)
    return {"rate": rate, "seconds": seconds, "codes": codes, "lost": int(lost.group(1)) if lost else -1,
            "sent": int(sent.group(1)) if sent else 0, "avg_ms": float(avg.group(1)) * 1000 if avg else float("nan")}


def write_queries(path, names):
    path.write_text("".join(f"{n} A\n" for n in names))
    return path


def zipf_names(rng):
    # Rank r drawn with weight 1/r^1.1: a few names carry most queries, the tail is long.
    weights = [1.0 / (r ** 1.1) for r in range(1, NAMES + 1)]
    order = list(range(NAMES))
    rng.shuffle(order)
    picks = rng.choices(range(NAMES), weights=weights, k=ZIPF_QUERIES)
    return [f"h{order[p]}.{ZONE}" for p in picks]


FORWARDERS = ("stabledns", "unbound", "dnsmasq")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--gone-seconds", type=int, default=60)
    args = ap.parse_args()
    binary = os.path.abspath(args.binary)
    rng = random.Random(7)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"forwarding: dnsperf -c 8 -T 2, {args.seconds} s per run, {args.reps} repetition(s), median")
    with tempfile.TemporaryDirectory(prefix="stabledns-bench-forward-") as tmp:
        d = Path(tmp)
        nsd_port, rec_port, rec_control = bench.free_port(), bench.free_port(), bench.free_port()
        servers = [start_nsd(d, nsd_port)]
        rec_conf = unbound_conf(d, "recursive", rec_port, f"""
stub-zone:
  name: "{ZONE}"
  stub-addr: 127.0.0.1@{nsd_port}
""", control_port=rec_control)
        servers.append(start_unbound("recursive unbound", rec_port, rec_conf))
        ports = {name: bench.free_port() for name in FORWARDERS}
        fwd_conf = unbound_conf(d, "forwarder", ports["unbound"], f"""
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@{rec_port}
""")
        starters = {
            "stabledns": lambda: start_stabledns(binary, d, ports["stabledns"], rec_port),
            "unbound": lambda: start_unbound("unbound", ports["unbound"], fwd_conf),
            "dnsmasq": lambda: start_dnsmasq(ports["dnsmasq"], rec_port),
        }
        running = {}
        try:
            bench.wait_answer(rec_port, f"h1.{ZONE}", "the recursive unbound")
            warm_names = [f"h{i}.{ZONE}" for i in range(WARM)]
            warm_file = write_queries(d / "warm.txt", warm_names)
            zipf_mix = zipf_names(rng)
            distinct = len(set(zipf_mix))
            zipf_file = write_queries(d / "zipf.txt", zipf_mix)
            # The upstream knows every name already: each forwarder meets the same warm upstream.
            subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(rec_port), "-d", str(write_queries(
                d / "all.txt", [f"h{i}.{ZONE}" for i in range(NAMES)])), "-n", "1", "-q", "200"],
                capture_output=True, check=False)

            def restart(name):
                if name in running:
                    running.pop(name).stop()
                running[name] = starters[name]()
                bench.wait_answer(ports[name], f"h1.{ZONE}", name)

            for name in FORWARDERS:
                restart(name)
            # Warm: every name asked once first, then the timed runs.
            for name in FORWARDERS:
                subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(ports[name]), "-d", str(warm_file),
                                "-n", "1", "-q", "100"], capture_output=True, check=False)
            warm = {n: [] for n in FORWARDERS}
            warm_up = {n: [] for n in FORWARDERS}
            for _ in range(args.reps):
                for name in FORWARDERS:
                    before = upstream_queries(rec_conf)
                    r = bench.dnsperf(ports[name], warm_file, args.seconds, extra=("-c", "8"))
                    warm[name].append(r)
                    warm_up[name].append((upstream_queries(rec_conf) - before, r["sent"]))
            lat = {n: bench.latency_at_rate(ports[n], warm_file, 5) for n in FORWARDERS}
            # Zipf: from empty caches, the same 200,000 queries for each.
            zipf = {n: [] for n in FORWARDERS}
            for _ in range(args.reps):
                for name in FORWARDERS:
                    restart(name)
                    before = upstream_queries(rec_conf)
                    r = bench.dnsperf(ports[name], zipf_file, args.seconds, extra=("-c", "8", "-n", "1"))
                    r["upstream"] = upstream_queries(rec_conf) - before
                    zipf[name].append(r)
            # The upstream gone: stale answers for what is cached, SERVFAIL for the rest.
            stale_names = [f"s{i}.{ZONE}" for i in range(WARM)]
            subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(ports["stabledns"]), "-d",
                            str(write_queries(d / "stale-warm.txt", stale_names)), "-n", "1", "-q", "100"],
                           capture_output=True, check=False)
            servers[1].stop()
            time.sleep(3)  # the short-lived names expire (a bench, not a test: a fixed wait is fine)
            mix = [n for n in stale_names for _ in range(19)] + [f"new{i}.{ZONE}" for i in range(WARM)]
            rng.shuffle(mix)
            gone_file = write_queries(d / "gone.txt", mix)
            rate = int(0.8 * statistics.median(r["qps"] for r in warm["stabledns"]))
            gone = gone_run(ports["stabledns"], gone_file, args.gone_seconds, rate)
        finally:
            for s in list(running.values()) + servers:
                s.stop()

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def per_1k(rows):
        # Per answered query: a forwarder that drops a query under load never sends it upstream,
        # and that must not count in its favour.
        return statistics.median(1000 * r["upstream"] / max(r["sent"] - r["lost"], 1) for r in rows)

    print()
    print("| forwarder | warm qps (median) | stabledns ÷ this | avg / p99 ms at 20k qps | "
          "Zipf qps | Zipf upstream per 1,000 answered | lost (warm, Zipf) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    wq = {n: med(warm[n], "qps") for n in FORWARDERS}
    zq = {n: med(zipf[n], "qps") for n in FORWARDERS}
    up = {n: per_1k(zipf[n]) for n in FORWARDERS}
    for n in FORWARDERS:
        lost = (sum(r["lost"] for r in warm[n]), sum(r["lost"] for r in zipf[n]))
        print(f"| {n} | {wq[n]:,.0f} | {wq['stabledns'] / wq[n]:.2f} | "
              f"{lat[n]['avg_ms']:.3f} / {lat[n]['p99_ms']:.3f} | {zq[n]:,.0f} | {up[n]:.1f} | "
              f"{lost[0]}, {lost[1]} |")
    warm_upstream = {n: sum(u for u, _ in warm_up[n]) for n in FORWARDERS}
    print(f"warm runs: upstream queries during the timed runs: "
          + ", ".join(f"{n} {warm_upstream[n]}" for n in FORWARDERS))
    print(f"Zipf mix: {ZIPF_QUERIES:,} queries over {distinct:,} distinct names: at least "
          f"{1000 * distinct / ZIPF_QUERIES:.1f} upstream queries per 1,000 for any forwarder")
    print("threads: stabledns both cores; unbound num-threads 1; dnsmasq one thread")
    print(f"upstream gone, stabledns at {gone['rate']:,} qps (80 % of its warm maximum) for {gone['seconds']} s, "
          f"95 % cached names (expired: served stale), 5 % new: sent {gone['sent']:,}, "
          f"NOERROR {gone['codes'].get('NOERROR', 0):,}, SERVFAIL {gone['codes'].get('SERVFAIL', 0):,}, "
          f"lost {gone['lost']}, average {gone['avg_ms']:.3f} ms")
    print(
        f"summary mode=forward qps={wq['stabledns']:.0f} "
        f"ratio_unbound={wq['stabledns'] / wq['unbound']:.2f} "
        f"ratio_dnsmasq={wq['stabledns'] / wq['dnsmasq']:.2f} "
        f"p99_ms={lat['stabledns']['p99_ms']:.3f} "
        f"zipf_qps={zq['stabledns']:.0f} "
        f"zipf_ratio_unbound={zq['stabledns'] / zq['unbound']:.2f} "
        f"zipf_ratio_dnsmasq={zq['stabledns'] / zq['dnsmasq']:.2f} "
        f"upstream_per_1k={up['stabledns']:.1f} "
        f"upstream_per_1k_unbound={up['unbound']:.1f} "
        f"upstream_per_1k_dnsmasq={up['dnsmasq']:.1f} "
        f"gone_lost={gone['lost']} gone_servfail={gone['codes'].get('SERVFAIL', 0)} "
        f"gone_noerror={gone['codes'].get('NOERROR', 0)}"
    )


if __name__ == "__main__":
    sys.exit(main())
