//! The UDP fast path gives the same answers as the hickory handler: for every name, type and
//! view of the demo and of a generated fleet, a query over UDP (fast path) and the same query
//! over TCP (always the hickory handler) decode to the same message; the question comes back
//! byte for byte as asked; and the fast path really answered them.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_server::proto::op::Message;
use hickory_server::proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::TestServer;

/// A query in wire form: `name` with random letter case, optionally with an OPT record (and a
/// cookie option, as dig sends; with `cookie` the DO bit is set too, as dig +dnssec does).
pub(crate) fn wire_query(
    id: u16,
    name: &str,
    rtype: RecordType,
    edns: Option<u16>,
    cookie: bool,
) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00]); // RD
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend(label.bytes().map(|b| {
            if fastrand::bool() {
                b.to_ascii_uppercase()
            } else {
                b
            }
        }));
    }
    q.push(0);
    q.extend_from_slice(&u16::from(rtype).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes());
    if let Some(payload) = edns {
        q.push(0);
        q.extend_from_slice(&41u16.to_be_bytes());
        q.extend_from_slice(&payload.to_be_bytes());
        q.extend_from_slice(&[0, 0, if cookie { 0x80 } else { 0 }, 0]);
        if cookie {
            q.extend_from_slice(&12u16.to_be_bytes());
            q.extend_from_slice(&10u16.to_be_bytes()); // COOKIE
            q.extend_from_slice(&8u16.to_be_bytes());
            q.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        } else {
            q.extend_from_slice(&0u16.to_be_bytes());
        }
    }
    q
}

pub(crate) async fn over_udp(
    sock: &tokio::net::UdpSocket,
    server: SocketAddr,
    q: &[u8],
) -> Vec<u8> {
    sock.send_to(q, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a UDP answer in time")
        .expect("recv");
    buf.truncate(n);
    buf
}

pub(crate) async fn over_tcp(stream: &mut tokio::net::TcpStream, q: &[u8]) -> Vec<u8> {
    let len = u16::try_from(q.len()).expect("short query");
    // One write: a length prefix sent alone waits on Nagle and the peer's delayed ACK.
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(q);
    stream.write_all(&framed).await.expect("write");
    let n = stream.read_u16().await.expect("length");
    let mut buf = vec![0u8; usize::from(n)];
    stream.read_exact(&mut buf).await.expect("read");
    buf
}

/// Everything a client sees, with names lower-cased and each section sorted (sets are rotated
/// per query, so their order is not part of the answer).
pub(crate) fn normalise(bytes: &[u8]) -> String {
    let m = Message::from_vec(bytes).expect("a DNS message");
    let section = |records: &[hickory_server::proto::rr::Record]| {
        let mut v: Vec<String> = records
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {} {}",
                    r.name.to_lowercase(),
                    r.ttl,
                    r.dns_class,
                    r.record_type(),
                    r.data.to_string().to_lowercase()
                )
            })
            .collect();
        v.sort();
        v
    };
    let md = &m.metadata;
    format!(
        "id={} qr={:?} op={:?} aa={} tc={} rd={} ra={} ad={} cd={} rcode={:?}\nq={:?}\nan={:?}\nns={:?}\nar={:?}\nedns={:?}",
        md.id,
        md.message_type,
        md.op_code,
        md.authoritative,
        md.truncation,
        md.recursion_desired,
        md.recursion_available,
        md.authentic_data,
        md.checking_disabled,
        md.response_code,
        m.queries
            .iter()
            .map(|q| format!("{} {} {}", q.name(), q.query_type(), q.query_class()))
            .collect::<Vec<_>>(),
        section(&m.answers),
        section(&m.authorities),
        section(&m.additionals),
        m.edns
            .as_ref()
            .map(|e| (e.max_payload(), e.version(), e.flags().dnssec_ok)),
    )
}

/// Asks every name of every view, from each view's address, with A, AAAA and CNAME, with and
/// without EDNS, over UDP and TCP, and compares. Returns (queries sent for forward-zone names,
/// fast-path answers, the first few forward-zone queries the fast path left to the handler).
async fn compare_all(
    server: &TestServer,
    sources: &[&str],
    extra_names: &[&str],
) -> (u64, u64, Vec<String>) {
    let snapshot = server.snapshot();
    let mut names: Vec<String> = snapshot
        .views
        .iter()
        .flat_map(|v| v.rows().into_iter().map(|r| r.name))
        .chain(extra_names.iter().map(|n| (*n).to_owned()))
        .collect();
    names.sort();
    names.dedup();
    let (fast_before, _) = server.udp_counts();
    let mut sent = 0u64;
    let mut id = 1u16;
    let mut slow_ones = Vec::new();
    for source in sources {
        let sock = tokio::net::UdpSocket::bind(format!("{source}:0"))
            .await
            .expect("bind");
        let tcp_sock = tokio::net::TcpSocket::new_v4().expect("tcp socket");
        tcp_sock
            .bind(format!("{source}:0").parse().expect("addr"))
            .expect("bind tcp");
        let mut tcp = tcp_sock.connect(server.addr()).await.expect("connect");
        tcp.set_nodelay(true).expect("nodelay");
        for name in &names {
            for rtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
                for (edns, cookie) in [(None, false), (Some(1232), false), (Some(4096), true)] {
                    id = id.wrapping_add(1);
                    let q = wire_query(id, name, rtype, edns, cookie);
                    let before = server.udp_counts().0;
                    let fast = over_udp(&sock, server.addr(), &q).await;
                    let forward = !name.ends_with(".arpa.");
                    if forward && server.udp_counts().0 == before && slow_ones.len() < 10 {
                        slow_ones.push(format!(
                            "{name} {rtype} edns={edns:?} from {source}: {} bytes",
                            fast.len()
                        ));
                    }
                    let slow = over_tcp(&mut tcp, &q).await;
                    // Reverse zones are the handler's (the fast path serves the forward zone).
                    sent += u64::from(!name.ends_with(".arpa."));
                    let qlen = q.len()
                        - if edns.is_some() {
                            11 + usize::from(cookie) * 12
                        } else {
                            0
                        };
                    assert_eq!(
                        fast.get(12..qlen),
                        q.get(12..qlen),
                        "the question is echoed as asked: {name} {rtype} from {source}"
                    );
                    assert_eq!(
                        normalise(&fast),
                        normalise(&slow),
                        "UDP (fast path) and TCP (hickory) differ for {name} {rtype} edns={edns:?} from {source}"
                    );
                }
            }
        }
    }
    let (fast_after, _) = server.udp_counts();
    (sent, fast_after - fast_before, slow_ones)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_answers_like_the_handler_on_the_demo() {
    let server = TestServer::demo().await;
    let (sent, fast, _) = compare_all(
        &server,
        &["127.0.0.1", "127.0.0.2", "127.0.0.3"],
        &[
            "nope.internal.",
            "deep.nope.web.internal.",
            "_explain.db1.internal.",
        ],
    )
    .await;
    // Inside, CNAME answers to A/AAAA wait for the upstream (chase_cname) and stay slow;
    // everything else of this mix is the fast path's.
    assert!(fast * 10 >= sent * 7, "fast path answered {fast} of {sent}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fast_path_answers_like_the_handler_on_a_generated_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = crate::leaks::generated_config(dir.path(), 120, 0xfa57);
    let server = TestServer::start(config).await;
    let (sent, fast, slow) =
        compare_all(&server, &["127.0.0.2", "127.0.0.3"], &["missing.internal."]).await;
    // No chasing in these views: every query of the mix is the fast path's.
    assert_eq!(
        fast, sent,
        "fast path answered {fast} of {sent}; slow: {slow:#?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn with_the_fast_path_off_the_handler_answers_everything() {
    let mut config = crate::harness::demo_config();
    config.server.fast_path = false;
    let server = TestServer::start(config).await;
    let m = crate::harness::ask(server.addr(), "web.internal.", RecordType::A).await;
    assert_eq!(crate::harness::summary(&m), ["10.0.1.10", "10.0.2.10"]);
    assert_eq!(server.udp_counts().0, 0);
    assert!(server.udp_counts().1 > 0);
    server.stop().await;
}
