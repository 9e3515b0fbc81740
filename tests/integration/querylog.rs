//! The query log and dnstap, from the real binary: JSON lines read back from its log, and
//! dnstap frames caught by `fstrm_capture` and decoded by BIND's `dnstap-read`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::harness::{Logged, dig, root};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

/// The demo config with `extra` appended, in `dir`.
fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let demo = std::fs::read_to_string(root().join("config/demo.toml")).expect("demo config");
    let inventory = root().join("config/demo-instances.json");
    let text = demo.replace(
        "path = \"demo-instances.json\"",
        &format!("path = {:?}", inventory.display().to_string()),
    );
    assert_ne!(text, demo, "the demo config names its inventory file");
    let path = dir.join("stabledns.toml");
    std::fs::write(&path, format!("{text}\n{extra}")).expect("write config");
    path
}

/// `stabledns --log-format json serve` on an ephemeral port, forwarding to `upstream`.
fn serve(config: &Path, upstream: SocketAddr) -> (Logged, SocketAddr, SocketAddr) {
    let mut p = Logged::spawn(
        Command::new(BIN)
            .args(["--log-format", "json", "serve", "--config"])
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", &upstream.to_string()])
            .env("RUST_LOG", "info"),
    );
    let (mut dns, mut admin) = (None, None);
    p.wait_log("admin endpoints");
    for line in p.log() {
        let v = json(line);
        if let Some(local) = v["fields"]["local"].as_str() {
            dns = local.parse().ok();
        }
        if let Some(rest) = line.split("http://").nth(1) {
            admin = rest.split('/').next().and_then(|a| a.parse().ok());
        }
    }
    (p, dns.expect("listening line"), admin.expect("admin line"))
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
}

/// The query lines among `lines`, as their fields.
fn queries(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| json(l))
        .filter(|v| v["target"] == "stabledns::query")
        .map(|v| v["fields"].clone())
        .collect()
}

fn find<'a>(lines: &'a [serde_json::Value], qname: &str, proto: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|l| l["qname"] == qname && l["proto"] == proto)
        .unwrap_or_else(|| panic!("no {proto} line for {qname} in {lines:#?}"))
}

#[test]
fn every_answer_gets_a_line_with_view_path_rcode_and_latency() {
    let nsd = crate::forwarding::vpc_resolver();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "[log]\nqueries = \"all\"\n");
    let (server, dns, _) = serve(&cfg, nsd.addr);
    // From the peered view (addresses, fast path), over UDP and TCP.
    assert!(dig(dns, &["-b", "127.0.0.2", "db1.internal", "A", "+short"]).contains("10.0."));
    assert!(
        dig(
            dns,
            &["-b", "127.0.0.2", "+tcp", "web.internal", "A", "+short"]
        )
        .contains("10.")
    );
    // From inside: an explanation (the handler), a forwarded name, and one refused in peered.
    dig(dns, &["TXT", "_explain.db1.internal"]);
    assert!(dig(dns, &["www.example.test", "A", "+short"]).contains("192.0.2.80"));
    assert!(dig(dns, &["-b", "127.0.0.2", "www.example.test", "A"]).contains("REFUSED"));
    let lines = queries(&server.stop());
    assert_eq!(lines.len(), 5, "one line per answer: {lines:#?}");

    let fast = find(&lines, "db1.internal.", "udp");
    assert_eq!(fast["view"], "peered");
    assert_eq!(fast["path"], "fast");
    assert_eq!(fast["qtype"], "A");
    assert_eq!(fast["rcode"], "NOERROR");
    assert_eq!(fast["flags"], "qr,aa,rd");
    assert!(
        fast["client"]
            .as_str()
            .is_some_and(|c| c.starts_with("127.0.0.2:"))
    );
    assert!(fast["size"].as_u64().is_some_and(|s| s > 40));
    assert!(fast["latency_us"].is_u64());

    let tcp = find(&lines, "web.internal.", "tcp");
    assert_eq!(tcp["path"], "handler");
    assert_eq!(tcp["view"], "peered");

    let explain = find(&lines, "_explain.db1.internal.", "udp");
    assert_eq!(
        (&explain["view"], &explain["qtype"]),
        (&"inside".into(), &"TXT".into())
    );

    let forwarded: Vec<_> = lines
        .iter()
        .filter(|l| l["qname"] == "www.example.test.")
        .collect();
    assert_eq!(forwarded.len(), 2);
    let ok = forwarded
        .iter()
        .find(|l| l["view"] == "inside")
        .expect("inside");
    assert_eq!(
        (&ok["path"], &ok["rcode"]),
        (&"forwarded".into(), &"NOERROR".into())
    );
    assert_eq!(ok["flags"], "qr,rd,ra");
    let refused = forwarded
        .iter()
        .find(|l| l["view"] == "peered")
        .expect("peered");
    assert_eq!(
        (&refused["path"], &refused["rcode"]),
        (&"handler".into(), &"REFUSED".into())
    );
}

#[test]
fn errors_mode_logs_failures_only_and_a_reload_turns_on_sampled_lines() {
    let nsd = crate::forwarding::vpc_resolver();
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "[log]\nqueries = \"errors\"\n");
    let (mut server, dns, _) = serve(&cfg, nsd.addr);
    for _ in 0..3 {
        dig(dns, &["-b", "127.0.0.2", "db1.internal", "A"]);
    }
    dig(dns, &["-b", "127.0.0.2", "nosuch.internal", "A"]); // NXDOMAIN: an answer, not an error
    dig(dns, &["-b", "127.0.0.2", "www.example.test", "A"]); // REFUSED
    dig(dns, &["-b", "127.0.0.2", "db1.internal", "A", "CH"]); // REFUSED (CHAOS, not configured)

    config(dir.path(), "[log]\nqueries = \"all\"\nsample = 2\n");
    server.signal("-HUP");
    server.wait_log("reloaded the config");
    let before = queries(server.log());
    for _ in 0..4 {
        dig(dns, &["-b", "127.0.0.2", "db1.internal", "A"]);
    }
    let after = queries(&server.stop()).split_off(before.len());
    let rcodes: Vec<_> = before
        .iter()
        .map(|l| l["rcode"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(rcodes, ["REFUSED", "REFUSED"], "{before:#?}");
    assert_eq!(after.len(), 2, "1 in 2 of 4 answers: {after:#?}");
}

/// Runs `dnstap-read -y` on `file` and returns its YAML.
fn dnstap_read(file: &Path) -> String {
    let out = Command::new("dnstap-read")
        .arg("-y")
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dnstap-read ({e}): scripts/test installs it"));
    let yaml = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnstap-read failed: {}\n{yaml}",
        String::from_utf8_lossy(&out.stderr)
    );
    yaml
}

#[tokio::test]
async fn dnstap_frames_reach_fstrm_capture_and_dnstap_read_decodes_them() {
    let nsd = crate::forwarding::vpc_resolver();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("dnstap.sock");
    let cfg = config(
        dir.path(),
        &format!(
            "[log]\ndnstap_socket = {:?}\ndnstap_identity = \"ns-test\"\n",
            socket.display().to_string()
        ),
    );
    // The server starts before its collector: it serves, counts what it cannot send, and
    // connects once the collector is there.
    let (mut server, dns, admin) = serve(&cfg, nsd.addr);
    server.wait_log("cannot reach the collector");
    dig(dns, &["-b", "127.0.0.2", "db1.internal", "A"]);
    let capture = dir.path().join("out.fstrm");
    let mut fstrm = Logged::spawn(
        Command::new("fstrm_capture")
            .args(["-t", "protobuf:dnstap.Dnstap", "-u"])
            .arg(&socket)
            .arg("-w")
            .arg(&capture),
    );
    server.wait_log("connected to the collector");
    let metrics = crate::admin::http_get(admin, "/metrics").await.1;
    assert!(
        metrics.contains("stabledns_dnstap_connected 1"),
        "{metrics}"
    );
    // The query before the collector was there (and the start-up loop probe's exchange with
    // the upstream): counted, not sent.
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("stabledns_dnstap_messages_total{outcome=\"dropped\"} "))
        .and_then(|n| n.parse().ok())
        .expect("the dropped count");
    assert!(dropped >= 2, "{metrics}");

    assert!(dig(dns, &["-b", "127.0.0.2", "db1.internal", "A", "+short"]).contains("10.0."));
    assert!(dig(dns, &["+tcp", "www.example.test", "A", "+short"]).contains("192.0.2.80"));
    server.stop();
    // fstrm_capture closes its file cleanly on SIGINT.
    fstrm.signal("-INT");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while fstrm.child.try_wait().ok().flatten().is_none() {
        assert!(
            std::time::Instant::now() < deadline,
            "fstrm_capture did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(fstrm);

    let yaml = dnstap_read(&capture);
    let messages: Vec<&str> = yaml.split("\n---").collect();
    assert_eq!(
        messages.len(),
        6,
        "two exchanges and one upstream's:\n{yaml}"
    );
    let kinds: Vec<&str> = yaml
        .lines()
        .filter_map(|l| l.trim().strip_prefix("type: "))
        .filter(|t| *t != "MESSAGE")
        .collect();
    // The forwarded name's upstream exchange comes first: the client's pair is written when
    // its answer is sent.
    assert_eq!(
        kinds,
        [
            "AUTH_QUERY",
            "AUTH_RESPONSE",
            "FORWARDER_QUERY",
            "FORWARDER_RESPONSE",
            "CLIENT_QUERY",
            "CLIENT_RESPONSE"
        ],
        "{yaml}"
    );
    let upstream = format!("response_port: {}", nsd.addr.port());
    assert_eq!(yaml.matches(&upstream).count(), 2, "{yaml}");
    assert!(yaml.contains("identity: ns-test"), "{yaml}");
    assert!(yaml.contains("query_address: \"127.0.0.2\""), "{yaml}");
    assert!(yaml.contains("socket_protocol: UDP") && yaml.contains("socket_protocol: TCP"));
    // The messages decode as DNS: the question and the answer are there.
    assert!(yaml.contains("db1.internal."), "{yaml}");
    assert!(
        yaml.contains("www.example.test.") && yaml.contains("192.0.2.80"),
        "{yaml}"
    );
}
