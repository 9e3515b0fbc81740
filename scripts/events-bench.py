#!/usr/bin/env python3
"""Event-to-answer latency, run by scripts/events-bench.

stabledns serves a moto fleet with the poll set to an hour and `[inventory.events]` reading an
SQS queue. For each instance: launch it, put the "running" state-change event (EventBridge's
shape) on the queue, and time until its name answers its address over DNS; then terminate it,
put the "terminated" event, and time until the name is NXDOMAIN. moto's recorder counts the
API calls stabledns made meanwhile; the arithmetic for a 10,000-instance fleet (events with an
hourly reconcile versus polling alone) comes from those counts.

`--fleet N` serves N more instances beside moto's: moto lists 10,000 instances in about 30 s,
so a large fleet comes from the state file instead (written by a first `serve` of the bench's
generated fleet, then read at the start of the measured one, whose full read is an hour away).
An event's change is then patched into the served snapshot (`build_ms` in the server's log,
`build_delta_s=` in the summary) unless the change is one a patch does not cover yet, which
costs a full build of the whole fleet.
"""

import argparse
import base64
import collections
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench  # noqa: E402  (free_port)

import boto3  # from the moto venv
import dns.message
import dns.query
import dns.rcode

# The zone and the naming rule; each run adds its inventory.
ZONE = """
[server]
listen = ["127.0.0.1:{dns_port}"]

[zone]
apex = "internal."

[zone.soa]
hostmaster = "hostmaster.internal."

[[zone.nameservers]]
name = "ns1.internal."
addresses = ["127.0.0.1"]

[[naming.rules]]
kind = "tag"
tag = "Name"
single = true
"""

INVENTORY = """
[inventory]
source = "ec2"
endpoint_url = "{endpoint}"
regions = ["eu-west-1"]
refresh_interval = "1h"
{state}
[inventory.events]
queues = {{ eu-west-1 = "{queue}" }}
endpoint_url = "{endpoint}"
wait = "{wait}s"
"""

SEED = """
[inventory]
source = "file"
path = "{fleet}"
state_file = "{state_file}"
"""


def seed_state(binary, d, n, dns_port):
    """A state file holding the bench's n-instance fleet, written by `serve` itself."""
    fleet, state = d / "seed-fleet.json", d / "state.json"
    fleet.write_text(json.dumps(bench.fleet(n)))
    config = d / "seed.toml"
    config.write_text(ZONE.format(dns_port=dns_port) + SEED.format(fleet=fleet, state_file=state))
    server = subprocess.Popen([binary, "serve", "--config", str(config)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while not state.exists():
            if time.time() > deadline or server.poll() is not None:
                raise SystemExit(f"the seed server wrote no state file for {n} instances")
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait()
    return state


def event(n, instance, state):
    return bench.state_change(f"bench-{n}", instance, state, "eu-west-1")


def answer(port, name):
    q = dns.message.make_query(name, "A")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    except dns.exception.Timeout:
        return None
    if r.rcode() == dns.rcode.NXDOMAIN:
        return "NXDOMAIN"
    return sorted(rr.to_text() for rrset in r.answer for rr in rrset)


def until(port, name, want, since, limit=60.0):
    """Seconds from `since` until `name` answers `want`, asking every millisecond."""
    while time.perf_counter() - since < limit:
        if answer(port, name) == want:
            return time.perf_counter() - since
        time.sleep(0.001)
    raise SystemExit(f"{name} did not answer {want} within {limit} s")


def until_route53(r53, zone, name, present, since, limit=60.0):
    """Seconds from `since` until the zone holds `name` (or, not `present`, no longer does)."""
    while time.perf_counter() - since < limit:
        sets = r53.list_resource_record_sets(HostedZoneId=zone, StartRecordName=name,
                                             MaxItems="1")["ResourceRecordSets"]
        if (bool(sets) and sets[0]["Name"] == name) == present:
            return time.perf_counter() - since
        time.sleep(0.05)
    raise SystemExit(f"Route 53 never {'had' if present else 'dropped'} {name} within {limit} s")


def calls(endpoint):
    """stabledns's API calls in moto's recording, by operation."""
    with urllib.request.urlopen(f"{endpoint}/moto-api/recorder/download-recording") as r:
        lines = r.read().decode().splitlines()
    counts = collections.Counter()
    for line in lines:
        req = json.loads(line)
        headers = {k.lower(): v for k, v in req.get("headers", {}).items()}
        if "aws-sdk-rust" not in headers.get("user-agent", ""):
            continue  # this script's own boto3 calls
        target = headers.get("x-amz-target")
        if target:
            counts[target.split(".")[-1]] += 1
            continue
        body = req.get("body") or ""
        if req.get("body_encoded"):
            body = base64.b64decode(body).decode(errors="replace")
        action = urllib.parse.parse_qs(body).get("Action", ["?"])[0]
        counts[action] += 1
    return counts


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--moto", required=True)
    ap.add_argument("--events", type=int, default=200, help="events (half launches, half terminations)")
    ap.add_argument("--wait", type=int, default=20, help="SQS long poll, seconds")
    ap.add_argument("--fleet", type=int, default=0,
                    help="instances served beside moto's, from a state file (e.g. 100000)")
    ap.add_argument("--route53", action="store_true",
                    help="also publish to a private zone in moto and time each event until "
                         "Route 53 has it")
    args = ap.parse_args()
    port, dns_port = bench.free_port(), bench.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    # moto's recorder appends to a file (`moto_recording` in the working directory unless
    # told otherwise): one of its own per run, or earlier runs' calls are counted too.
    scratch = Path(tempfile.mkdtemp())
    env = dict(os.environ, MOTO_RECORDER_FILEPATH=str(scratch / "moto_recording"))
    moto = subprocess.Popen([args.moto, "-H", "127.0.0.1", "-p", str(port)], cwd=scratch, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = None
    try:
        for _ in range(100):
            try:
                ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="eu-west-1")
                ec2.describe_vpcs()
                break
            except Exception:  # noqa: BLE001 (moto still starting)
                time.sleep(0.2)
        sqs = boto3.client("sqs", endpoint_url=endpoint, region_name="eu-west-1")
        queue = sqs.create_queue(QueueName="stabledns-events")["QueueUrl"]
        vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.30.0.0/20")["Subnet"]["SubnetId"]
        # One instance that stays: a fleet events would empty is held back, by design.
        ec2.run_instances(ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                          TagSpecifications=[{"ResourceType": "instance",
                                              "Tags": [{"Key": "Name", "Value": "anchor"}]}])
        d = Path(tempfile.mkdtemp())
        state = ""
        if args.fleet:
            seeded = seed_state(args.binary, d, args.fleet, dns_port)
            state = f'state_file = "{seeded}"\n'
        config = d / "stabledns.toml"
        publish, r53, zone = "", None, None
        if args.route53:
            r53 = boto3.client("route53", endpoint_url=endpoint, region_name="us-east-1")
            zone = r53.create_hosted_zone(
                Name="internal.", CallerReference="events-bench",
                HostedZoneConfig={"PrivateZone": True},
                VPC={"VPCRegion": "eu-west-1", "VPCId": vpc})["HostedZone"]["Id"].split("/")[-1]
            publish = (f'\n[[publish]]\nkind = "route53"\nview = "inside"\n'
                       f'hosted_zone_id = "{zone}"\nrequests_per_second = 5\n'
                       f'endpoint_url = "{endpoint}"\n')
        config.write_text(ZONE.format(dns_port=dns_port) + INVENTORY.format(
            endpoint=endpoint, queue=queue, wait=args.wait, state=state) + publish)
        log = open(d / "stabledns.log", "w")
        server = subprocess.Popen([args.binary, "serve", "--config", str(config)],
                                  stdout=log, stderr=subprocess.STDOUT)
        # The first full read: the SOA answers once a snapshot is published.
        deadline = time.time() + 60
        while time.time() < deadline:
            q = dns.message.make_query("internal.", "SOA")
            try:
                if dns.query.udp(q, "127.0.0.1", port=dns_port, timeout=0.5).answer:
                    break
            except dns.exception.Timeout:
                pass
            time.sleep(0.1)
        for op in ("reset-recording", "start-recording"):
            urllib.request.urlopen(urllib.request.Request(
                f"{endpoint}/moto-api/recorder/{op}", method="POST")).read()
        started = time.perf_counter()
        launched, terminated, in_route53 = [], [], []
        for n in range(args.events // 2):
            name = f"lat{n}"
            inst = ec2.run_instances(
                ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet,
                TagSpecifications=[{"ResourceType": "instance",
                                    "Tags": [{"Key": "Name", "Value": name}]}])["Instances"][0]
            iid, ip = inst["InstanceId"], inst["PrivateIpAddress"]
            # From the moment the event is on the queue (SendMessage returned).
            sqs.send_message(QueueUrl=queue, MessageBody=event(2 * n, iid, "running"))
            sent = time.perf_counter()
            launched.append(until(dns_port, f"{name}.internal.", [ip], sent))
            if r53:
                in_route53.append(until_route53(r53, zone, f"{name}.internal.", True, sent))
            ec2.terminate_instances(InstanceIds=[iid])
            sqs.send_message(QueueUrl=queue, MessageBody=event(2 * n + 1, iid, "terminated"))
            sent = time.perf_counter()
            terminated.append(until(dns_port, f"{name}.internal.", "NXDOMAIN", sent))
            if r53:
                in_route53.append(until_route53(r53, zone, f"{name}.internal.", False, sent))
        took = time.perf_counter() - started
        counts = calls(endpoint)
        everything = launched + terminated
        ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
        print(f"{len(everything)} events in {took:.0f} s: event-to-answer median "
              f"{ms(statistics.median(everything))}, p90 {ms(pct(everything, 90))}, "
              f"p99 {ms(pct(everything, 99))}, max {ms(max(everything))}")
        print(f"  launches: median {ms(statistics.median(launched))}, p99 {ms(pct(launched, 99))};"
              f" terminations: median {ms(statistics.median(terminated))}, "
              f"p99 {ms(pct(terminated, 99))}")
        print("stabledns API calls meanwhile: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
        ec2_calls = sum(v for k, v in counts.items() if k.startswith("Describe"))
        ec2_per_event = ec2_calls / len(everything)
        sqs_calls = sum(v for k, v in counts.items() if "Message" in k)
        sqs_per_event = sqs_calls / len(everything)
        print(f"  per event: {ec2_per_event:.2f} EC2 calls, {sqs_per_event:.2f} SQS calls (events "
              f"one at a time, the worst case: events that arrive together share one receive, "
              f"one read and one delete)")
        fleet, page = 10_000, 1000
        pages = math.ceil(fleet / page)
        polling = 3600 / 30 * pages
        print(f"arithmetic for a {fleet:,}-instance fleet ({pages} DescribeInstances pages of "
              f"{page} a full read):")
        print(f"  polling alone every 30 s (the default): {polling:,.0f} EC2 calls/h, and a change "
              f"waits up to 30 s plus the TTL")
        idle = 3600 / args.wait
        for churn in (0, 100, 1000):
            ec2_h = pages + churn * ec2_per_event  # an hourly reconcile, and the events
            sqs_h = idle + churn * sqs_per_event
            print(f"  events with an hourly full read, {churn:>4} events/h: {ec2_h:,.0f} EC2 calls/h "
                  f"({pages} for the full read), {sqs_h:,.0f} SQS calls/h ({idle:.0f} idle long "
                  f"polls)")
        per_event = ec2_per_event
        route53_p99 = float("nan")
        if in_route53:
            route53_p99 = pct(in_route53, 99)
            print(f"event to Route 53 (the record there, or gone): median "
                  f"{ms(statistics.median(in_route53))}, p99 {ms(route53_p99)}, "
                  f"max {ms(max(in_route53))}")
        # The server's own figure for each event: the snapshot builds it cost.
        builds = [float(m) / 1000 for m in
                  re.findall(r'applied EC2 events.*build_ms="?([0-9.]+)', (d / "stabledns.log").read_text())]
        if builds:
            print(f"snapshot builds per event: median {statistics.median(builds) * 1000:.2f} ms, "
                  f"p99 {pct(builds, 99) * 1000:.2f} ms, max {max(builds) * 1000:.2f} ms "
                  f"({len(builds)} groups)")
        build_delta = statistics.median(builds) if builds else float("nan")
        print(f"summary fleet={args.fleet + 1} build_delta_s={build_delta:.4f} "
              f"route53_p99_s={route53_p99:.2f} events={len(everything)} median_ms={statistics.median(everything) * 1000:.0f} "
              f"p99_ms={pct(everything, 99) * 1000:.0f} ec2_calls_per_event={per_event:.2f} "
              f"polling_calls_per_hour={polling:.0f}")
    finally:
        if server:
            server.terminate()
            server.wait()
        moto.terminate()
        moto.wait()


if __name__ == "__main__":
    main()
