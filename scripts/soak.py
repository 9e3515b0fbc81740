#!/usr/bin/env python3
"""Soak: stabledns under steady load while its fleet changes, run by scripts/soak.

A moto_server on loopback holds a fleet of N instances (default 10,000; STABLEDNS_SOAK_INSTANCES)
in tiers of 100 (security groups SG-T-TIER<k>), 30,000 to a subnet. stabledns reads it every
few seconds (or, with --events, hears EC2 events, the way to soak 100,000); a changer replaces a few
instances between refreshes, so nearly every refresh publishes a new snapshot. dnsperf asks
for the fleet's names (5% that do not exist) at 80% of the rate it measured first, for the
given seconds, while the server's RSS is sampled every second. Reports lost queries, the
response codes, publishes and RSS growth after warm-up. Loopback only; bounded in time.
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402  (free_port, rss_kb, dnsperf helpers)

import boto3  # from the venv scripts/soak prepares

CONFIG = """
[server]
listen = ["127.0.0.1:{port}"]

[admin]
listen = "127.0.0.1:{admin}"

[zone]
apex = "soak."
record_ttl = 60

[zone.soa]
hostmaster = "hostmaster.soak."

[[zone.nameservers]]
name = "ns1.soak."
addresses = ["127.0.0.1"]
public_addresses = ["203.0.113.53"]

[inventory]
{inventory}refresh_interval = "{refresh}"
max_removed_fraction = 1.0

{events}
[[naming.rules]]
kind = "security_group"
pattern = "^SG-T-(?P<name>.+)$"

[[views]]
name = "inside"
clients = ["127.0.0.0/8"]
addresses = "private"
single = "address"
"""


def ec2(url):
    return boto3.client("ec2", region_name="us-east-1", endpoint_url=url,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def build_fleet(client, n):
    """n instances in tiers of 100, each tier in one subnet. A /17 subnet holds about 32,000
    addresses, so a larger fleet spreads over more subnets (two to a /16 VPC), each tier's
    group in its subnet's VPC. Returns the groups (each with its subnet) and the instance
    ids, tracked here: listing 100,000 instances in moto takes minutes."""
    per_subnet = 30_000
    subnets = []
    for k in range((n + per_subnet - 1) // per_subnet):
        if k % 2 == 0:
            vpc = client.create_vpc(CidrBlock=f"10.{k // 2}.0.0/16")["Vpc"]["VpcId"]
        cidr = f"10.{k // 2}.{128 * (k % 2)}.0/17"
        subnets.append((vpc, client.create_subnet(VpcId=vpc, CidrBlock=cidr)["Subnet"]["SubnetId"]))
    groups, ids = [], []
    for k in range((n + 99) // 100):
        vpc, subnet = subnets[100 * k // per_subnet]
        g = client.create_security_group(GroupName=f"SG-T-TIER{k}", Description="soak", VpcId=vpc)
        groups.append((g["GroupId"], subnet))
        count = min(100, n - 100 * k)
        made = client.run_instances(ImageId="ami-12345678", MinCount=count, MaxCount=count,
                                    SubnetId=subnet, SecurityGroupIds=[g["GroupId"]],
                                    InstanceType="t3.micro")
        ids.extend(i["InstanceId"] for i in made["Instances"])
    return groups, ids


class FileFleet:
    """The fleet as a describe-instances JSON file that stabledns reads on its refresh
    (--file): each instance's JSON is kept as text, so a change rewrites the file without
    encoding 100,000 instances again. Written to a temporary name and renamed, as a tool
    that exports the fleet would, so a read never sees half a file."""

    def __init__(self, path, n):
        self.path, self.next = path, 0
        self.text = {}
        self.groups = [(f"sg-{k:08x}", None) for k in range((n + 99) // 100)]
        for k in range(n):
            self.launch(k // 100)
        self.write()

    def launch(self, tier):
        i = self.next
        self.next += 1
        iid = f"i-{i:017x}"
        self.text[iid] = json.dumps({
            "InstanceId": iid, "State": {"Name": "running"},
            "LaunchTime": "2026-11-01T10:00:00+00:00",
            "Placement": {"AvailabilityZone": "us-east-1a"},
            "PrivateIpAddress": f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            "SecurityGroups": [{"GroupId": self.groups[tier][0], "GroupName": f"SG-T-TIER{tier}"}],
        })
        return iid

    def write(self):
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text('{"Reservations": [{"OwnerId": "123456789012", "Instances": ['
                       + ",".join(self.text.values()) + "]}]}")
        tmp.replace(self.path)

    # The changer's calls, as boto3's for moto.
    def terminate_instances(self, InstanceIds):  # noqa: N803 (boto3's spelling)
        for iid in InstanceIds:
            del self.text[iid]

    def run_instances(self, MinCount, SecurityGroupIds, **_):  # noqa: N803
        tier = next(k for k, g in enumerate(self.groups) if g[0] == SecurityGroupIds[0])
        made = [{"InstanceId": self.launch(tier)} for _ in range(MinCount)]
        self.write()
        return {"Instances": made}


def metric(admin, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", type=int, nargs="?", default=600)
    ap.add_argument("--instances", type=int, default=10_000)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--refresh", default="5s")
    ap.add_argument("--events", action="store_true",
                    help="changes reach stabledns as EC2 events on an SQS queue (the full read "
                         "hourly), not by its refresh")
    ap.add_argument("--file", action="store_true",
                    help="the fleet is a describe-instances JSON file that the changer rewrites "
                         "and stabledns reads on its refresh: every change a full read and build "
                         "(no moto: launching 100,000 instances in it takes far longer than the soak)")
    args = ap.parse_args()
    if args.file and args.events:
        raise SystemExit("--file and --events: choose one")

    root = Path(tempfile.mkdtemp(prefix="stabledns-soak-"))
    mport, port, admin = bench.free_port(), bench.free_port(), bench.free_port()
    url = f"http://127.0.0.1:{mport}"
    procs = []
    try:
        if not args.file:
            procs.append(subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(mport)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(100):
                try:
                    urllib.request.urlopen(url, timeout=1)
                    break
                except Exception:  # noqa: BLE001 (not up yet)
                    time.sleep(0.2)
        t0 = time.time()
        if args.file:
            client = FileFleet(root / "fleet.json", args.instances)
            groups, live = client.groups, list(client.text)
            inventory = f'source = "file"\npath = "{root / "fleet.json"}"\n'
        else:
            client = ec2(url)
            groups, live = build_fleet(client, args.instances)
            inventory = (f'source = "ec2"\nendpoint_url = "{url}"\nregions = ["us-east-1"]\n'
                         'api_timeout = "60s"\n')
        print(f"fleet: {args.instances} instances in {len(groups)} tiers, built in {time.time() - t0:.0f} s",
              flush=True)

        config = root / "soak.toml"
        events, queue, sqs = "", None, None
        if args.events:
            sqs = boto3.client("sqs", region_name="us-east-1", endpoint_url=url,
                               aws_access_key_id="testing", aws_secret_access_key="testing")
            queue = sqs.create_queue(QueueName="stabledns-soak")["QueueUrl"]
            events = (f'[inventory.events]\nqueues = {{ us-east-1 = "{queue}" }}\n'
                      f'endpoint_url = "{url}"\nwait = "1s"\n')
        refresh = "1h" if args.events else args.refresh
        config.write_text(CONFIG.format(port=port, admin=admin, inventory=inventory,
                                        refresh=refresh, events=events))
        env = dict(os.environ, RUST_LOG="warn")
        server = subprocess.Popen([args.binary, "serve", "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "w"), env=env)
        procs.append(server)
        deadline = time.time() + 300 + args.instances // 100  # moto lists 10,000 in ~30 s
        while metric_safe(admin, "stabledns_instances") < args.instances:
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit(f"stabledns did not load the fleet; see {root / 'server.log'}")
            time.sleep(1)
        print(f"stabledns serves {args.instances} instances after {time.time() - t0:.0f} s", flush=True)

        names = [f"tier{k}.soak." for k in range(len(groups))] + [f"{i}.soak." for i in live]
        rng = random.Random(7)
        queries = [f"{rng.choice(names)} A" for _ in range(50_000)]
        for i in range(0, len(queries), 20):
            queries[i] = f"nx-{rng.randrange(10**9)}.soak. A"
        qfile = root / "queries.txt"
        qfile.write_text("\n".join(queries) + "\n")

        top = bench.dnsperf(port, qfile, 5)["qps"]
        rate = int(top * 0.8)
        print(f"measured {top:.0f} qps; soaking at {rate} qps for {args.seconds} s", flush=True)

        stop = threading.Event()
        changes = [0]

        def changer():
            # The fleet is tracked here: listing 10,000 instances in moto takes longer than the
            # pause between changes.
            # A file is rewritten whole: once per refresh, not more often than it is read.
            while not stop.wait(5 if args.file else 2):
                try:
                    gone = rng.sample(live, 5)
                    client.terminate_instances(InstanceIds=gone)
                    for g in gone:
                        live.remove(g)
                    group, subnet = rng.choice(groups)
                    new = client.run_instances(ImageId="ami-12345678", MinCount=5, MaxCount=5,
                                               SubnetId=subnet, SecurityGroupIds=[group],
                                               InstanceType="t3.micro")
                    born = [i["InstanceId"] for i in new["Instances"]]
                    live.extend(born)
                    if sqs:
                        entries = [{"Id": str(k), "MessageBody": bench.state_change(f"soak-{iid}-{state}", iid, state, "us-east-1")}
                                   for k, (iid, state) in enumerate(
                                       [(g, "terminated") for g in gone] + [(b, "running") for b in born])]
                        sqs.send_message_batch(QueueUrl=queue, Entries=entries)
                    changes[0] += 1
                except Exception as e:  # noqa: BLE001 (moto hiccup: try again next round)
                    print(f"changer: {e}", flush=True)

        rss = []

        def sampler():
            while not stop.wait(1):
                rss.append(bench.rss_kb([server.pid]) / 1024)

        threads = [threading.Thread(target=changer, daemon=True), threading.Thread(target=sampler, daemon=True)]
        publishes_before = metric_safe(admin, "stabledns_snapshots_published_total")
        patches_before = metric_safe(admin, "stabledns_snapshots_patched_total")
        for t in threads:
            t.start()
        out = subprocess.run(
            ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(qfile), "-l", str(args.seconds),
             "-c", "4", "-T", "2", "-Q", str(rate), "-t", "2"],
            capture_output=True, text=True, check=False).stdout
        stop.set()
        for t in threads:
            t.join(timeout=10)
        publishes = metric_safe(admin, "stabledns_snapshots_published_total") - publishes_before
        patches = metric_safe(admin, "stabledns_snapshots_patched_total") - patches_before

        sent = int(re.search(r"Queries sent:\s+(\d+)", out).group(1))
        lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))
        codes = re.search(r"Response codes:\s+(.*)", out)
        codes = codes.group(1).strip() if codes else "?"
        servfail = int(m.group(1)) if (m := re.search(r"SERVFAIL (\d+)", codes)) else 0
        achieved = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))
        # The allocator grows toward a plateau over the first publishes (each builds a new
        # snapshot beside the served one): growth counts from the end of the first third.
        warm = rss[len(rss) // 3:] or rss
        growth = (warm[-1] - warm[0]) / warm[0] * 100 if warm and warm[0] else float("nan")
        # RSS is a sawtooth (up while a publish builds, down once the old snapshot is freed),
        # so two single samples say where in a tooth they fell. What a leak moves is the floor:
        # the lowest RSS of the last third against that of the middle third.
        third = max(1, len(rss) // 3)
        middle, last = rss[third:2 * third] or rss, rss[2 * third:] or rss
        floor_growth = (min(last) - min(middle)) / min(middle) * 100 if min(middle) else float("nan")
        print(f"queries sent {sent}, lost {lost}, {achieved:.0f} qps achieved")
        print(f"response codes: {codes}")
        print(f"fleet changes {changes[0]}, snapshots published {publishes:.0f} "
              f"({patches:.0f} patched from an event's change)")
        print(f"RSS MB: start {rss[0]:.0f}, after warm-up {warm[0]:.0f}, end {warm[-1]:.0f}, "
              f"max {max(rss):.0f}; growth after warm-up {growth:+.1f}%; floor {min(middle):.0f} -> "
              f"{min(last):.0f} ({floor_growth:+.1f}%)")
        step = max(1, len(rss) // 20)
        print("RSS MB every {} s: {}".format(step, " ".join(f"{r:.0f}" for r in rss[::step])))
        ok = lost == 0 and servfail == 0 and floor_growth < 5
        print(f"summary seconds={args.seconds} instances={args.instances} events={args.events} file={args.file} "
              f"rate={rate} sent={sent} lost={lost} "
              f"servfail={servfail} publishes={publishes:.0f} patched={patches:.0f} rss_start_mb={warm[0]:.0f} "
              f"rss_end_mb={warm[-1]:.0f} rss_growth_pct={growth:.1f} rss_floor_growth_pct={floor_growth:.1f} "
              f"goals={'met' if ok else 'NOT met'}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def metric_safe(admin, name):
    try:
        return metric(admin, name)
    except Exception:  # noqa: BLE001 (not listening yet)
        return 0.0


if __name__ == "__main__":
    main()
