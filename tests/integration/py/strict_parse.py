"""Asks each question of stdin's JSON list over UDP and parses the reply with dnspython, strictly:
trailing bytes, counts that do not describe the sections, or a record cut short raise. Prints one
JSON object per question. Used by tests/integration/wire.rs; standard dnspython only."""

import json
import socket
import sys

import dns.flags
import dns.message
import dns.rcode

out = []
for case in json.load(sys.stdin):
    query = dns.message.make_query(
        case["name"],
        case["type"],
        use_edns=0 if case["edns"] is not None else False,
        payload=case["edns"] or 512,
        want_dnssec=case["do"],
    )
    wire = query.to_wire()
    if case.get("bad_opt"):
        # An option whose length runs past the OPT RDATA: RDLEN 4, option length 10.
        wire = wire[:-2] + b"\x00\x04\x00\x0a\x00\x0a"
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    sock.sendto(wire, ("127.0.0.1", case["port"]))
    try:
        reply, _ = sock.recvfrom(65535)
    except socket.timeout:
        out.append({"error": "no reply"})
        continue
    finally:
        sock.close()
    result = {"len": len(reply)}
    try:
        m = dns.message.from_wire(reply)
        result.update(
            rcode=dns.rcode.to_text(m.rcode()),
            tc=bool(m.flags & dns.flags.TC),
            answers=sum(len(rrset) for rrset in m.answer),
            opt=m.edns >= 0,
            do=bool(m.ednsflags & dns.flags.DO),
            payload=m.payload if m.edns >= 0 else None,
        )
    except Exception as e:  # noqa: BLE001 - every parse error is the finding
        result["error"] = f"{type(e).__name__}: {e}"
    out.append(result)
print(json.dumps(out))
