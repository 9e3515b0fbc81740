#!/usr/bin/env python3
"""Route 53 publishing cost, run by scripts/publish-bench: API calls and wall time to publish a
fleet into an empty private hosted zone, to sync it again unchanged, and to sync one
replacement (an instance terminated, a successor with its Name tag launched). Against a local
moto_server (loopback only) at `requests_per_second` = 5, Route 53's documented per-account
limit; prints the arithmetic for larger fleets from the measured calls per record set.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402  (free_port)

import boto3  # from the moto venv

CONFIG = """
[server]
listen = ["127.0.0.1:5353"]

[zone]
apex = "internal."

[zone.soa]
hostmaster = "hostmaster.internal."

[[zone.nameservers]]
name = "ns1.internal."
addresses = ["127.0.0.1"]

[inventory]
source = "file"
path = "fleet.json"

[[naming.rules]]
kind = "tag"
tag = "Name"

[[naming.rules]]
kind = "security_group"
pattern = "^SG-T-(?P<name>.+)$"

[[publish]]
kind = "route53"
view = "inside"
hosted_zone_id = "{zone}"
requests_per_second = {rps}
max_changes_per_batch = 1000
endpoint_url = "{endpoint}"
"""


def fleet(n, replaced=0):
    """n instances, unique Name tags, tiers of ten; `replaced`: how many times the first one
    has been replaced (each successor has an id and an address of its own)."""
    instances = []
    for i in range(n):
        iid, ip = f"i-{i:017x}", f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}"
        if replaced and i == 0:
            iid, ip = f"i-f{replaced - 1:016x}", f"10.200.0.{replaced}"
        instances.append({
            "InstanceId": iid, "State": {"Name": "running"},
            "LaunchTime": "2026-11-01T10:00:00+00:00",
            "PrivateIpAddress": ip,
            "Tags": [{"Key": "Name", "Value": f"host-{i}"}],
            "SecurityGroups": [{"GroupId": f"sg-{i // 10}", "GroupName": f"SG-T-TIER{i // 10}"}],
        })
    return {"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]}


def publish(binary, d):
    started = time.perf_counter()
    res = subprocess.run([binary, "publish", "--once", "--config", str(d / "stabledns.toml")],
                         capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if res.returncode != 0:
        raise SystemExit(f"publish failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    summary = res.stdout.splitlines()[0]
    sent = re.search(r"sent (\d+) changes in (\d+) batches \((\d+) Route 53 calls", res.stdout)
    return took, summary, [int(x) for x in sent.groups()]


def metrics(admin):
    import urllib.request
    with urllib.request.urlopen(f"http://{admin}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("stabledns_publish_") and " " in line:
            k, v = line.rsplit(" ", 1)
            # Labels in name order, whatever order the exposition wrote them in.
            if "{" in k:
                name, labels = k[:-1].split("{", 1)
                k = name + "{" + "".join(sorted(l + "," for l in labels.split(","))).rstrip(",") + "}"
            out[k] = float(v)
    return out


def serve_phase(binary, d, zone, n, rps):
    """`serve` publishing: the start (a full sync), then one replacement sent from the zone's
    last known state, then an unchanged fleet for a while: calls and seconds for each."""
    admin = f"127.0.0.1:{bench.free_port()}"
    text = (d / "stabledns.toml").read_text().replace(
        'listen = ["127.0.0.1:5353"]', f'listen = ["127.0.0.1:{bench.free_port()}"]')
    text = text.replace('path = "fleet.json"', 'path = "fleet.json"\nrefresh_interval = "200ms"')
    (d / "serve.toml").write_text(text + f'\n[admin]\nlisten = "{admin}"\n')
    # The zone holds the replaced fleet (the last row): serve starts from it, and then that
    # instance is replaced again. A successor that is new (not the first instance back) is
    # what happens, and what moto handles: it refuses a CREATE it has seen before, values and
    # all, whenever any name sorts after it (its journal check), which Route 53 does not.
    (d / "fleet.json").write_text(json.dumps(fleet(n, 1)))
    log = open(d / "serve.log", "w")
    proc = subprocess.Popen([binary, "serve", "--config", str(d / "serve.toml")], cwd=d,
                            stdout=log, stderr=subprocess.STDOUT)
    key = lambda name, labels="": f'stabledns_publish_{name}{{{labels}zone="{zone}"}}'
    ok, listing, changes = key("syncs_total", 'result="ok",'), key("calls_total", 'purpose="listing",'), \
        key("calls_total", 'purpose="changes",')

    def until(cond, seconds=900):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                m = metrics(admin)
                if cond(m):
                    return m
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("serve never published; see serve.log")

    try:
        started = time.perf_counter()
        first = until(lambda m: m.get(ok, 0) >= 1)
        start_s = time.perf_counter() - started
        calls = lambda m: m.get(listing, 0) + m.get(changes, 0)
        (d / "fleet.json").write_text(json.dumps(fleet(n, 2)))
        started = time.perf_counter()
        after = until(lambda m: m.get(ok, 0) >= 2)
        delta_s = time.perf_counter() - started
        time.sleep(5)  # a bench, not a test: a few refreshes of an unchanged fleet
        quiet = metrics(admin)
        return {
            "start_s": start_s, "start_calls": calls(first),
            "delta_s": delta_s, "delta_calls": calls(after) - calls(first),
            "delta_listing": after.get(listing, 0) - first.get(listing, 0),
            "unchanged_calls": calls(quiet) - calls(after),
        }
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--rps", type=float, default=5)
    args = ap.parse_args()
    port = bench.free_port()
    moto = subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        endpoint = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                r53 = boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1")
                r53.list_hosted_zones()
                break
            except Exception:  # noqa: BLE001 (moto still starting)
                time.sleep(0.2)
        zone = r53.create_hosted_zone(
            Name="internal.", CallerReference="publish-bench",
            HostedZoneConfig={"PrivateZone": True},
            VPC={"VPCRegion": "us-east-1", "VPCId": "vpc-12345678"})["HostedZone"]["Id"]
        zone = zone.split("/")[-1]
        d = Path(tempfile.mkdtemp())
        (d / "stabledns.toml").write_text(CONFIG.format(zone=zone, rps=args.rps, endpoint=endpoint))
        rows = []
        (d / "fleet.json").write_text(json.dumps(fleet(args.instances)))
        for what, replaced in (("from empty", 0), ("unchanged", 0), ("one replacement", 1)):
            (d / "fleet.json").write_text(json.dumps(fleet(args.instances, replaced)))
            took, summary, (sent, batches, calls) = publish(args.binary, d)
            rows.append((what, took, sent, batches, calls))
            print(f"{what}: {took:.1f} s, {calls} Route 53 calls, {batches} batches, {sent} changes; "
                  f"{summary}", flush=True)
        sets = r53.get_hosted_zone(Id=zone)["HostedZone"]["ResourceRecordSetCount"]
        list_calls = rows[1][4] - 1  # an unchanged sync: GetHostedZone, then the listing
        print(f"zone: {sets} record sets; listing them took {list_calls} calls "
              f"({sets / max(list_calls, 1):.0f} a page)")
        per_instance = sets / args.instances
        for n in (10_000, 100_000):
            total = per_instance * n
            pages = total / 300
            creates = total  # every set is one change (its ownership TXT included)
            batches = creates / 1000
            print(f"arithmetic at {n:,} instances, {args.rps:g} calls/s: {total:,.0f} record sets; "
                  f"a sync lists {pages:,.0f} pages ({pages / args.rps / 60:.1f} min); "
                  f"publishing from empty sends {batches:,.0f} batches "
                  f"({(pages + batches) / args.rps / 60:.1f} min with the listing)")
        # serve: it lists once at start and then sends one replacement from what it knows.
        s = serve_phase(args.binary, d, zone, args.instances, args.rps)
        print(f"serve: start (a full sync) {s['start_s']:.1f} s, {s['start_calls']:.0f} calls; one "
              f"replacement {s['delta_s']:.2f} s from the fleet file's change to the sync's end "
              f"(refresh every 200 ms), {s['delta_calls']:.0f} calls ({s['delta_listing']:.0f} "
              f"listing); an unchanged fleet for 5 s: {s['unchanged_calls']:.0f} calls")
        print("summary " + " ".join(
            f"{w.replace(' ', '_')}_s={t:.1f} {w.replace(' ', '_')}_calls={c}" for w, t, _, _, c in rows)
            + f" publish_delta_calls={s['delta_calls']:.0f} publish_delta_s={s['delta_s']:.2f}"
            f" unchanged_serve_calls={s['unchanged_calls']:.0f}")
    finally:
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
