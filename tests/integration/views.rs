//! Split horizon: the demo's three views, asked from different loopback source addresses.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::net::client::Client;
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::rr::{DNSClass, RecordType};

use crate::harness::{TestServer, dig, query, summary};

/// A UDP client whose socket is bound to `source` (all of 127.0.0.0/8 is local on Linux).
pub fn client_from(server: SocketAddr, source: &str) -> Client<TokioRuntimeProvider> {
    let bind: SocketAddr = format!("{source}:0").parse().expect("addr");
    let conn = UdpClientStream::builder(server, TokioRuntimeProvider::default())
        .with_bind_addr(Some(bind))
        .with_timeout(Some(Duration::from_secs(5)))
        .build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    client
}

async fn ask_from(server: SocketAddr, source: &str, name: &str, rtype: RecordType) -> Vec<String> {
    let mut client = client_from(server, source);
    summary(&query(&mut client, name, DNSClass::IN, rtype).await)
}

const DB1_PUBLIC: &str = "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com.";

#[tokio::test]
async fn each_view_answers_its_own_way() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let cases: &[(&str, &str, RecordType, &[&str])] = &[
        // inside: CNAME for single instances, private addresses for tiers and private-only hosts.
        (
            "127.0.0.1",
            "db1.internal.",
            RecordType::A,
            &[DB1_PUBLIC, "10.0.1.20"],
        ),
        (
            "127.0.0.1",
            "web.internal.",
            RecordType::A,
            &["10.0.1.10", "10.0.2.10"],
        ),
        (
            "127.0.0.1",
            "batch-worker.internal.",
            RecordType::A,
            &["10.0.3.30"],
        ),
        // peered: the private address itself, also for single instances.
        ("127.0.0.2", "db1.internal.", RecordType::A, &["10.0.1.20"]),
        ("127.0.0.2", "db1.internal.", RecordType::CNAME, &[]),
        (
            "127.0.0.2",
            "web.internal.",
            RecordType::A,
            &["10.0.1.10", "10.0.2.10"],
        ),
        (
            "127.0.0.2",
            "batch-worker.internal.",
            RecordType::A,
            &["10.0.3.30"],
        ),
        // outside: public addresses only; private-only names do not exist.
        ("127.0.0.3", "db1.internal.", RecordType::A, &[DB1_PUBLIC]),
        (
            "127.0.0.3",
            "web.internal.",
            RecordType::A,
            &["34.240.10.11", "34.240.20.12"],
        ),
        (
            "127.0.0.3",
            "db.internal.",
            RecordType::A,
            &["52.49.30.13", "52.49.40.14"],
        ),
        (
            "127.0.0.3",
            "batch-worker.internal.",
            RecordType::A,
            &["Non-Existent Domain"],
        ),
        (
            "127.0.0.3",
            "queue.internal.",
            RecordType::AAAA,
            &["Non-Existent Domain"],
        ),
        (
            "127.0.0.99",
            "reporting.internal.",
            RecordType::A,
            &["Non-Existent Domain"],
        ),
    ];
    for (source, name, rtype, want) in cases {
        let got = ask_from(addr, source, name, *rtype).await;
        let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
        want.sort();
        assert_eq!(got, want, "from {source}: {name} {rtype}");
    }
    server.stop().await;
}

#[tokio::test]
async fn outside_clients_never_see_a_private_address() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let snapshot = server.snapshot();
    let inside = snapshot.view("inside").expect("inside view");
    let mut names: Vec<String> = inside.rows().into_iter().map(|r| r.name).collect();
    names.dedup();
    for name in names {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::CNAME,
            RecordType::ANY,
        ] {
            let mut client = client_from(addr, "127.0.0.3");
            let m = query(&mut client, &name, DNSClass::IN, rtype).await;
            // Every section: glue in the additional section leaks as much as an answer.
            let all = m.answers.iter().chain(&m.authorities).chain(&m.additionals);
            for answer in all.map(|r| r.data.to_string()) {
                let private = answer.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
                    std::net::IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
                    std::net::IpAddr::V6(v6) => v6.is_unique_local(),
                });
                assert!(!private, "outside got {answer} for {name} {rtype}");
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn dig_shows_the_outside_answer_from_another_source_address() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let out = tokio::task::spawn_blocking(move || {
        dig(addr, &["-b", "127.0.0.3", "+short", "web.internal"])
    })
    .await
    .expect("dig ran");
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["34.240.10.11", "34.240.20.12"], "{out}");
    server.stop().await;
}
