//! The limits that keep abuse from taking the server down: TCP connections in all and per
//! client, idle TCP connections, and forwarded lookups in flight. Each bites here and is
//! counted.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{DNSClass, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::forwarding::forwarding_config;
use crate::harness::{TestServer, demo_config, query, udp_client};

/// A TCP connection to `server` from the loopback address `source`.
async fn connect_from(server: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("addr"))
        .expect("bind");
    socket.connect(server).await.expect("connect")
}

/// Asks `db1.internal. A` on an open connection; `None` if the server closed it.
async fn ask_on(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let query: [u8; 30] = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'd', b'b', b'1', 8, b'i', b'n', b't',
        b'e', b'r', b'n', b'a', b'l', 0, 0, 1, 0, 1,
    ];
    let mut framed = (query.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&query);
    if stream.write_all(&framed).await.is_err() {
        return None;
    }
    let mut len = [0u8; 2];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut len)).await;
    if !matches!(read, Ok(Ok(_))) {
        return None;
    }
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut answer).await.ok()?;
    Some(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_limited_in_all_per_client_and_in_idle_time() {
    let mut config = demo_config();
    config.server.max_tcp_connections = 3;
    config.server.max_tcp_connections_per_client = 2;
    config.server.tcp_idle_timeout = Duration::from_millis(700);
    let server = TestServer::start(config).await;
    let addr = server.addr();
    let stats = server.tcp_stats();

    // Two from one client answer; its third is closed at once.
    let mut a1 = connect_from(addr, "127.0.0.1").await;
    let mut a2 = connect_from(addr, "127.0.0.1").await;
    assert!(ask_on(&mut a1).await.is_some());
    assert!(ask_on(&mut a2).await.is_some());
    let mut a3 = connect_from(addr, "127.0.0.1").await;
    assert!(
        ask_on(&mut a3).await.is_none(),
        "a third connection from one client"
    );
    assert_eq!(stats.refused_client.load(Ordering::Relaxed), 1);

    // Another client gets the last of three; a fourth client is refused.
    let mut b1 = connect_from(addr, "127.0.0.2").await;
    assert!(ask_on(&mut b1).await.is_some());
    let mut c1 = connect_from(addr, "127.0.0.3").await;
    assert!(
        ask_on(&mut c1).await.is_none(),
        "a fourth connection in all"
    );
    assert_eq!(stats.refused_total.load(Ordering::Relaxed), 1);

    // Idle connections close, which frees their places.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        ask_on(&mut a1).await.is_none(),
        "an idle connection is closed"
    );
    assert!(stats.idle_closed.load(Ordering::Relaxed) >= 3);
    let mut d1 = connect_from(addr, "127.0.0.4").await;
    assert!(
        ask_on(&mut d1).await.is_some(),
        "room again after the idle ones closed"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_lookups_in_flight_are_limited() {
    // An upstream that never answers: every forwarded lookup waits its full timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let mut config = forwarding_config(silent.local_addr().expect("addr"), Duration::from_secs(3));
    if let Some(f) = &mut config.forwarding {
        f.max_in_flight = 2;
    }
    let server = TestServer::start(config).await;
    let addr = server.addr();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let asks: Vec<_> = (0..6)
        .map(|i| {
            tokio::spawn(async move {
                let mut client = udp_client(addr);
                let name = format!("name{i}.example.test.");
                let m = query(&mut client, &name, DNSClass::IN, RecordType::A).await;
                (m.metadata.response_code, started.elapsed())
            })
        })
        .collect();
    let mut quick = 0;
    for ask in asks {
        let (rcode, took) = ask.await.expect("task");
        assert_eq!(rcode, ResponseCode::ServFail);
        if took < Duration::from_secs(1) {
            quick += 1;
        }
    }
    // The loop probe may hold a place too: at most two wait, the rest fail at once.
    assert!(quick >= 4, "{quick} of 6 failed at once");
    let over = server.forward_failures(stabledns::dns::forward::Failure::Limit);
    assert!(over >= 4, "{over} counted as over the limit");
    drop(silent);
    server.stop().await;
}

/// Sends `n` A queries for `name` from `source` over one UDP socket as fast as it can, then
/// collects answers for half a second: (full answers, truncated empty answers).
async fn burst(server: SocketAddr, source: &str, name: &str, n: u16) -> (usize, usize) {
    let socket = std::sync::Arc::new(
        tokio::net::UdpSocket::bind(format!("{source}:0"))
            .await
            .expect("bind"),
    );
    // Answers are read while the questions go out, so the client's own buffer never drops.
    let reader = {
        let socket = socket.clone();
        tokio::spawn(async move {
            let (mut full, mut truncated) = (0, 0);
            let mut buf = [0u8; 1500];
            while let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), socket.recv(&mut buf)).await
            {
                let tc = buf[2] & 0x02 != 0;
                match (tc, u16::from_be_bytes([buf[6], buf[7]])) {
                    (true, 0) => truncated += 1,
                    (false, a) if a > 0 => full += 1,
                    other => panic!("unexpected answer {other:?}"),
                }
            }
            (full, truncated)
        })
    };
    for id in 0..n {
        let mut msg = hickory_server::proto::op::Message::query();
        msg.metadata.id = id;
        msg.add_query(hickory_server::proto::op::Query::query(
            hickory_server::proto::rr::Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
        let bytes =
            hickory_server::proto::serialize::binary::BinEncodable::to_bytes(&msg).expect("encode");
        socket.send_to(&bytes, server).await.expect("send");
        // In bursts of 25: a loopback socket's default buffer (208 KiB, net.core.rmem_max)
        // holds a few hundred datagrams, and this test is about the limit, not the buffer.
        if id % 25 == 24 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let (full, truncated) = reader.await.expect("reader");
    (full, truncated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_answers_are_rate_limited_per_prefix_with_slip() {
    let mut config = demo_config();
    for view in &mut config.views {
        if view.name == "outside" {
            view.rate_limit = 20;
            view.rate_limit_slip = 2;
        }
    }
    let server = TestServer::start_rate_limited(config).await;
    let addr = server.addr();

    // 300 questions in a burst from outside: 20 a second answer (40 if the burst straddles a
    // second), every second one past that comes back truncated, the rest get nothing.
    let (full, truncated) = burst(addr, "127.0.0.3", "web.internal.", 300).await;
    assert!((20..=40).contains(&full), "{full} full answers");
    assert!(
        (120..=150).contains(&truncated),
        "{truncated} truncated of {} over the rate",
        300 - full
    );
    let counters = server.metrics().views.view("outside").0;
    let (dropped, slipped) = counters.limited();
    assert_eq!(slipped as usize, truncated);
    assert_eq!(dropped as usize, 300 - full - truncated);

    // A truncated client retries over TCP, which is not limited (no spoofing there).
    let mut tcp = connect_from(addr, "127.0.0.3").await;
    assert!(ask_on(&mut tcp).await.is_some());
    // The inside view has no limit.
    let (full, truncated) = burst(addr, "127.0.0.1", "web.internal.", 300).await;
    assert_eq!((full, truncated), (300, 0));
    server.stop().await;
}

/// A query for `name` A with id `id` and RD set, framed for TCP.
fn framed_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(u8::try_from(label.len()).expect("label"));
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut framed = u16::try_from(q.len()).expect("len").to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    framed
}

/// RFC 7766 6.2.1.1: pipelined queries on one connection are answered as each is ready, so a
/// forwarded query waiting on a silent upstream holds back none of the in-zone answers sent
/// after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_tcp_queries_are_answered_out_of_order() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let upstream = silent.local_addr().expect("addr");
    let config = forwarding_config(upstream, Duration::from_secs(2));
    let server = TestServer::start(config).await;
    let mut stream = connect_from(server.addr(), "127.0.0.1").await;
    let mut all = framed_query(1, "slow.example.");
    for id in 2..=10 {
        all.extend(framed_query(id, "db1.internal."));
    }
    stream.write_all(&all).await.expect("write");
    let mut order = Vec::new();
    let started = Instant::now();
    for _ in 0..10 {
        let mut len = [0u8; 2];
        tokio::time::timeout(Duration::from_secs(20), stream.read_exact(&mut len))
            .await
            .expect("an answer within 20 s")
            .expect("read");
        let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut body).await.expect("read");
        order.push((u16::from_be_bytes([body[0], body[1]]), started.elapsed()));
    }
    let ids: Vec<u16> = order.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids.last(),
        Some(&1),
        "the forwarded query is answered last: {order:?}"
    );
    let mut zone: Vec<u16> = ids[..9].to_vec();
    zone.sort_unstable();
    assert_eq!(zone, (2..=10).collect::<Vec<u16>>(), "{order:?}");
    drop(silent);
    server.stop().await;
}
