//! Forwarding and CNAME chasing against a real upstream (NSD on loopback playing the VPC
//! resolver): answers pass through for views that may recurse, everyone else is refused, a
//! silent upstream gives SERVFAIL in time, and a loop back to us is found by the probe.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, RecordType};
use stabledns::Config;

use crate::harness::{TestServer, demo_config, dig, query, summary};
use crate::nsd::{Nsd, zone};
use crate::views::client_from;

/// NSD serving an outside zone and AWS's public names the way the VPC resolver answers them
/// inside the VPC: with the private addresses.
pub fn vpc_resolver() -> Nsd {
    let example = zone(
        "example.test",
        &["www IN A 192.0.2.80", "alias IN CNAME www"],
    );
    let aws = zone(
        "amazonaws.com",
        &[
            "ec2-52-49-30-13.eu-west-1.compute IN A 10.0.1.20",
            "ec2-52-49-40-14.eu-west-1.compute IN A 10.0.2.20",
            "ec2-34-240-10-11.eu-west-1.compute IN A 10.0.1.10",
            "ec2-34-240-20-12.eu-west-1.compute IN A 10.0.2.10",
        ],
    );
    Nsd::start(&[("example.test", &example), ("amazonaws.com", &aws)])
}

/// The demo, forwarding to `upstream` with `timeout`.
pub fn forwarding_config(upstream: SocketAddr, timeout: Duration) -> Config {
    let mut config = demo_config();
    config
        .set_upstreams(vec![upstream])
        .expect("the demo forwards");
    if let Some(f) = &mut config.forwarding {
        f.timeout = timeout;
        f.chase_timeout = f.chase_timeout.min(timeout);
    }
    // Chase through the upstream (NSD playing AWS's resolver), not from the inventory.
    for view in &mut config.views {
        view.chase_from = stabledns::view::ChaseFrom::Upstream;
    }
    config
}

async fn ask_from(
    server: SocketAddr,
    source: &str,
    name: &str,
    rtype: RecordType,
) -> hickory_server::proto::op::Message {
    let mut client = client_from(server, source);
    query(&mut client, name, DNSClass::IN, rtype).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_answers_pass_through_for_recursing_views_only() {
    let nsd = vpc_resolver();
    let server = TestServer::start(forwarding_config(nsd.addr, Duration::from_secs(2))).await;
    let addr = server.addr();

    let m = ask_from(addr, "127.0.0.1", "www.example.test.", RecordType::A).await;
    assert_eq!(summary(&m), ["192.0.2.80"]);
    assert!(m.metadata.recursion_available, "RA for a recursing view");
    assert!(!m.metadata.authoritative, "not our data");

    let m = ask_from(addr, "127.0.0.1", "alias.example.test.", RecordType::A).await;
    assert_eq!(
        summary(&m),
        ["192.0.2.80", "www.example.test."],
        "the CNAME chain is passed on"
    );

    let m = ask_from(addr, "127.0.0.1", "nope.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::SOA),
        "the upstream's SOA comes along: {m:?}"
    );

    // Our own zone is still answered authoritatively in a recursing view, with RA.
    let m = ask_from(addr, "127.0.0.1", "web.internal.", RecordType::A).await;
    assert_eq!(summary(&m), ["10.0.1.10", "10.0.2.10"]);
    assert!(m.metadata.authoritative && m.metadata.recursion_available);

    // Views without recursion, and queries that do not ask for it, are refused.
    for source in ["127.0.0.2", "127.0.0.3", "127.0.0.77"] {
        let m = ask_from(addr, source, "www.example.test.", RecordType::A).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "from {source}"
        );
        assert!(!m.metadata.recursion_available, "from {source}");
    }
    let out = dig(
        addr,
        &["-b", "127.0.0.1", "+norecurse", "www.example.test", "A"],
    );
    assert!(out.contains("status: REFUSED"), "{out}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dig_sees_the_cname_and_its_address_in_one_answer() {
    let nsd = vpc_resolver();
    let server = TestServer::start(forwarding_config(nsd.addr, Duration::from_secs(2))).await;
    let addr = server.addr();
    let answer = |out: String| -> Vec<String> {
        out.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect()
    };

    let inside = dig(
        addr,
        &["-b", "127.0.0.1", "+noall", "+answer", "db1.internal", "A"],
    );
    assert_eq!(
        answer(inside),
        [
            "db1.internal. 60 IN CNAME ec2-52-49-30-13.eu-west-1.compute.amazonaws.com.",
            "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com. 300 IN A 10.0.1.20",
        ]
    );
    // Over TCP too.
    let tcp = dig(
        addr,
        &[
            "-b",
            "127.0.0.1",
            "+tcp",
            "+noall",
            "+answer",
            "db1.internal",
        ],
    );
    assert_eq!(answer(tcp).len(), 2);
    // No AAAA upstream: the CNAME alone (NOERROR).
    let aaaa = dig(addr, &["-b", "127.0.0.1", "db1.internal", "AAAA"]);
    assert!(aaaa.contains("status: NOERROR"), "{aaaa}");
    assert!(aaaa.contains("ANSWER: 1,"), "{aaaa}");
    // The peered view does not chase: it answers the address itself.
    let peered = dig(
        addr,
        &["-b", "127.0.0.2", "+noall", "+answer", "db1.internal"],
    );
    assert_eq!(answer(peered), ["db1.internal. 60 IN A 10.0.1.20"]);
    // The outside view never chases (it would hand out what the VPC resolver says).
    let outside = dig(
        addr,
        &["-b", "127.0.0.3", "+noall", "+answer", "db1.internal"],
    );
    assert_eq!(
        answer(outside),
        ["db1.internal. 60 IN CNAME ec2-52-49-30-13.eu-west-1.compute.amazonaws.com."]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_gives_servfail_in_time_and_the_cname_alone() {
    // Bound and never read: every query to it goes unanswered.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let upstream = silent.local_addr().expect("addr");
    let timeout = Duration::from_millis(500);
    let server = TestServer::start(forwarding_config(upstream, timeout)).await;
    let addr = server.addr();

    let started = Instant::now();
    let m = ask_from(addr, "127.0.0.1", "www.example.test.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // The client's own timeout is 5 s: an answer at all means we did not hang.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Our own answer waits for the chase at most `chase_timeout` (100 ms), not the forwarding
    // timeout, and then goes without the target's address.
    for _ in 0..3 {
        let started = Instant::now();
        let m = ask_from(addr, "127.0.0.1", "db1.internal.", RecordType::A).await;
        eprintln!(
            "db1.internal A, chased through a silent upstream: answered in {:?} (chase_timeout \
             100 ms, forwarding timeout {timeout:?})",
            started.elapsed()
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(
            summary(&m),
            ["ec2-52-49-30-13.eu-west-1.compute.amazonaws.com."],
            "the CNAME alone when the target cannot be resolved in time"
        );
    }
    let over = server.forward_failures(stabledns::dns::forward::Failure::ChaseBudget);
    assert!(over >= 3, "{over} counted as over the chase budget");
    // A query without RD (a resolver iterating) is never chased: the upstream hears nothing.
    // Earlier lookups end within the forwarding timeout; then drain what they sent.
    tokio::time::sleep(timeout + Duration::from_millis(200)).await;
    silent.set_nonblocking(true).expect("nonblocking");
    let mut buf = [0u8; 512];
    while silent.recv_from(&mut buf).is_ok() {}
    let out = dig(
        addr,
        &[
            "-b",
            "127.0.0.1",
            "+norecurse",
            "+noall",
            "+answer",
            "db1.internal",
            "A",
        ],
    );
    assert!(out.contains("CNAME"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        silent.recv_from(&mut buf).is_err(),
        "an RD=0 query made us ask the upstream"
    );
    drop(silent);
    server.stop().await;
}

/// A forwarding resolver that sends every query on to `target` (set once the server is up):
/// pointed at by the server, it makes a loop.
async fn relay(target: Arc<OnceLock<SocketAddr>>) -> SocketAddr {
    let sock = Arc::new(
        tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind"),
    );
    let addr = sock.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let packet = buf[..n].to_vec();
            let (sock, target) = (sock.clone(), target.clone());
            tokio::spawn(async move {
                for _ in 0..50 {
                    if target.get().is_some() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                let Some(to) = target.get().copied() else {
                    return;
                };
                let out = tokio::net::UdpSocket::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let _ = out.send_to(&packet, to).await;
                let mut reply = vec![0u8; 65535];
                if let Ok(Ok((m, _))) =
                    tokio::time::timeout(Duration::from_secs(3), out.recv_from(&mut reply)).await
                {
                    let _ = sock.send_to(&reply[..m], from).await;
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_forwards_back_to_us_is_found_and_cut() {
    let target = Arc::new(OnceLock::new());
    let upstream = relay(target.clone()).await;
    let server = TestServer::start(forwarding_config(upstream, Duration::from_secs(2))).await;
    target.set(server.addr()).expect("set once");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.forwarding_looped() {
        assert!(
            Instant::now() < deadline,
            "the loop probe never came back to us"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = ask_from(
        server.addr(),
        "127.0.0.1",
        "www.example.test.",
        RecordType::A,
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Our own names still answer.
    let m = ask_from(server.addr(), "127.0.0.1", "web.internal.", RecordType::A).await;
    assert_eq!(summary(&m), ["10.0.1.10", "10.0.2.10"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_upstream_is_not_taken_for_a_loop() {
    let nsd = vpc_resolver();
    let server = TestServer::start(forwarding_config(nsd.addr, Duration::from_secs(1))).await;
    // The probe has had its timeout to come back; it must not have.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!server.forwarding_looped());
    let m = ask_from(
        server.addr(),
        "127.0.0.1",
        "www.example.test.",
        RecordType::A,
    )
    .await;
    assert_eq!(summary(&m), ["192.0.2.80"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_own_names_under_the_apex_go_to_the_vpc_resolver() {
    // NSD plays AWS's resolver for the instances' own names, which lie under our apex
    // `internal.`: `hostname -f` on an instance that uses stabledns must still work.
    let compute = zone("eu-west-1.compute.internal", &["ip-10-0-1-5 IN A 10.0.1.5"]);
    let ec2 = zone("ec2.internal", &["ip-10-0-1-6 IN A 10.0.1.6"]);
    let corp = zone("legacy.internal", &["db IN A 10.9.9.9"]);
    let nsd = Nsd::start(&[
        ("eu-west-1.compute.internal", &compute),
        ("ec2.internal", &ec2),
        ("legacy.internal", &corp),
    ]);
    let mut config = forwarding_config(nsd.addr, Duration::from_secs(2));
    // A subtree another server answers, configured as such.
    config
        .zone
        .passthrough
        .push("legacy.internal.".parse().expect("name"));
    let server = TestServer::start(config).await;
    let addr = server.addr();
    for (name, ip) in [
        ("ip-10-0-1-5.eu-west-1.compute.internal", "10.0.1.5"),
        ("ip-10-0-1-6.ec2.internal", "10.0.1.6"),
        ("db.legacy.internal", "10.9.9.9"),
    ] {
        for transport in ["+notcp", "+tcp"] {
            let out = dig(addr, &["-b", "127.0.0.1", transport, name, "A"]);
            assert!(out.contains("status: NOERROR"), "{name} {transport}: {out}");
            let words: Vec<&str> = out.split_whitespace().collect();
            assert!(
                words.windows(2).any(|w| w == ["A", ip]),
                "{name} {transport}: NSD's answer: {out}"
            );
        }
        // A view that does not recurse refuses them: they are not ours to deny.
        let out = dig(addr, &["-b", "127.0.0.2", name, "A"]);
        assert!(out.contains("status: REFUSED"), "{name}: {out}");
    }
    // Our own names still answer, and nothing of AWS's domains is in a transfer.
    let out = dig(addr, &["-b", "127.0.0.1", "nope.internal", "A"]);
    assert!(out.contains("status: NXDOMAIN"), "{out}");
    let axfr = dig(addr, &["-b", "127.0.0.1", "AXFR", "internal."]);
    assert!(axfr.contains(";; XFR size:"), "{axfr}");
    assert!(!axfr.contains("compute.internal"), "{axfr}");
    assert!(!axfr.contains("ec2.internal"), "{axfr}");
    server.stop().await;
}
