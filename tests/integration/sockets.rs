//! Wildcard listeners: every UDP answer leaves from the address its query arrived on (a
//! secondary private IP, a moved ENI), over the fast path and the handler, for both families.

use std::net::SocketAddr;

use crate::harness::{TestServer, demo_config};

/// dig at `dst` on `port`, from `source`; the whole output.
fn dig_at(dst: &str, port: u16, source: &str, args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .arg(format!("@{dst}"))
        .args(["-p", &port.to_string(), "-b", source, "+time=2", "+tries=1"])
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run dig ({e}): install dnsutils (scripts/test does)"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks every one of [`QUESTIONS`] at `dst` from `source` and checks that the answer came
/// from `dst` itself, with `status` (any status when `None`).
fn answered_from(dst: &str, port: u16, source: &str, status: Option<&str>) {
    for q in QUESTIONS {
        let out = dig_at(dst, port, source, q);
        let want = status.map_or("->>HEADER<<-".to_owned(), |s| format!("status: {s}"));
        assert!(out.contains(&want), "@{dst} {q:?}: {out}");
        assert!(
            out.contains(&format!("SERVER: {dst}#{port}")),
            "@{dst} {q:?}: {out}"
        );
    }
}

async fn serve_on(listen: &str) -> TestServer {
    let mut config = demo_config();
    config.server.listen = vec![listen.parse::<SocketAddr>().expect("address")];
    TestServer::start(config).await
}

/// The questions that take each path: a tier A (fast path), a chased CNAME and an explanation
/// (handler), over UDP and TCP.
const QUESTIONS: [&[&str]; 4] = [
    &["+notcp", "web.internal", "A"],
    &["+notcp", "db1.internal", "A"],
    &["+notcp", "_explain.db1.internal", "TXT"],
    &["+tcp", "web.internal", "A"],
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_listener_answers_from_the_address_asked() {
    let server = serve_on("0.0.0.0:0").await;
    let port = server.addr().port();
    let (fast_before, slow_before) = server.udp_counts();
    for dst in ["127.0.0.5", "127.0.0.7", "127.0.0.1"] {
        answered_from(dst, port, "127.0.0.1", Some("NOERROR"));
    }
    let (fast, slow) = server.udp_counts();
    assert!(fast >= fast_before + 3, "the fast path answered: {fast}");
    assert!(slow >= slow_before + 6, "the handler answered: {slow}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v6_wildcard_listener_serves_both_families() {
    let server = serve_on("[::]:0").await;
    let port = server.addr().port();
    // v4 clients arrive as ::ffff:127.0.0.1 and still get their view (inside: the chase).
    for dst in ["127.0.0.5", "127.0.0.1"] {
        answered_from(dst, port, "127.0.0.1", Some("NOERROR"));
    }
    let out = dig_at(
        "127.0.0.5",
        port,
        "127.0.0.1",
        &["+notcp", "db1.internal", "A"],
    );
    assert!(out.contains("10.0.1.20"), "the inside view's chase: {out}");
    // v6 over ::1 (the loopback every Linux has, unless IPv6 is off: then this fails loudly).
    // ::1 is an outside client in the demo: no explanations there, but an answer.
    answered_from("::1", port, "::1", None);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_wildcards_on_one_port_can_be_listed() {
    // `[::]` then serves v6 only, beside `0.0.0.0`. A port free for UDP now may be taken for
    // TCP (or by then) by another test's connection: try a few.
    let mut attempts = 0;
    let (server, port) = loop {
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").expect("a free port");
        let port = probe.local_addr().expect("addr").port();
        drop(probe);
        let mut config = demo_config();
        config.server.listen = vec![
            format!("0.0.0.0:{port}").parse().expect("v4"),
            format!("[::]:{port}").parse().expect("v6"),
        ];
        match TestServer::try_start(config).await {
            Ok(server) => break (server, port),
            Err(stabledns::Error::Bind(e)) if attempts < 5 => {
                attempts += 1;
                eprintln!("port {port} taken ({e}); another");
            }
            Err(e) => panic!("server starts: {e:?}"),
        }
    };
    let out = dig_at(
        "127.0.0.5",
        port,
        "127.0.0.1",
        &["+notcp", "web.internal", "A"],
    );
    assert!(out.contains("status: NOERROR"), "{out}");
    let out = dig_at("::1", port, "::1", &["+notcp", "web.internal", "A"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    server.stop().await;
}
