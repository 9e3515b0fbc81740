//! The cache of forwarded answers, against a real upstream (NSD behind a relay that counts what
//! reaches it, and can hold or drop it): identical questions go upstream once, negative answers
//! are kept for the SOA's minimum, popular answers are refreshed before they expire, a dead
//! upstream leaves stale answers for a bounded time, the in-flight cap fails at once, a dead
//! upstream is skipped, a truncated upstream answer is fetched over TCP, and the UDP fast path
//! answers cached names as the handler does.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::RecordType;

use crate::admin::{scrape, value};
use crate::fastpath::{normalise, over_tcp, over_udp, wire_query};
use crate::forwarding::forwarding_config;
use crate::harness::{TestServer, ask, ephemeral_admin, summary};
use crate::nsd::{Nsd, zone};

/// A UDP relay in front of an upstream that records every question it passes on.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    /// Answers are held this long before they go back.
    hold_ms: Arc<AtomicU64>,
    /// Nothing is passed on or answered.
    dead: Arc<AtomicBool>,
}

impl Relay {
    async fn start(upstream: SocketAddr) -> Self {
        let sock = Arc::new(
            tokio::net::UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("bind"),
        );
        let relay = Self {
            addr: sock.local_addr().expect("addr"),
            seen: Arc::default(),
            hold_ms: Arc::default(),
            dead: Arc::default(),
        };
        let (seen, hold, dead) = (
            relay.seen.clone(),
            relay.hold_ms.clone(),
            relay.dead.clone(),
        );
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                    return;
                };
                let packet = buf[..n].to_vec();
                if dead.load(Ordering::Relaxed) {
                    continue;
                }
                if let Ok(m) = Message::from_vec(&packet)
                    && let Some(q) = m.queries.first()
                {
                    let asked = format!("{} {}", q.name().to_lowercase(), q.query_type());
                    seen.lock().expect("lock").push(asked);
                }
                let (sock, hold) = (sock.clone(), hold.load(Ordering::Relaxed));
                tokio::spawn(async move {
                    let out = tokio::net::UdpSocket::bind("127.0.0.1:0")
                        .await
                        .expect("bind");
                    let _ = out.send_to(&packet, upstream).await;
                    let mut reply = vec![0u8; 65535];
                    if let Ok(Ok((m, _))) =
                        tokio::time::timeout(Duration::from_secs(3), out.recv_from(&mut reply))
                            .await
                    {
                        tokio::time::sleep(Duration::from_millis(hold)).await;
                        let _ = sock.send_to(&reply[..m], from).await;
                    }
                });
            }
        });
        relay
    }

    /// How many times `question` ("name. TYPE") reached the upstream.
    fn count(&self, question: &str) -> usize {
        let seen = self.seen.lock().expect("lock");
        seen.iter().filter(|q| *q == question).count()
    }
}

/// NSD serving `example.test` with records of short and long TTLs, a big TXT set (more than
/// 512 bytes: truncated over UDP without EDNS), and a SOA whose MINIMUM is `minimum`.
fn upstream(minimum: u32) -> Nsd {
    let big: Vec<String> = (0..12)
        .map(|i| format!("big IN TXT \"{i:02}{}\"", "x".repeat(100)))
        .collect();
    let mut records = vec![
        "www 3600 IN A 192.0.2.80".to_owned(),
        "www 3600 IN AAAA 2001:db8::80".to_owned(),
        "www 3600 IN MX 10 mail.example.test.".to_owned(),
        "www 3600 IN TXT \"hello\"".to_owned(),
        "alias 3600 IN CNAME www".to_owned(),
        "short 1 IN A 192.0.2.1".to_owned(),
        "ten 10 IN A 192.0.2.10".to_owned(),
    ];
    records.extend(big);
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let text = zone("example.test", &refs).replace(
        "1 3600 600 86400 30",
        &format!("1 3600 600 86400 {minimum}"),
    );
    Nsd::start(&[("example.test", &text)])
}

fn config(upstreams: Vec<SocketAddr>, timeout: Duration) -> stabledns::Config {
    let mut config = forwarding_config(upstreams[0], timeout);
    config.set_upstreams(upstreams).expect("the demo forwards");
    ephemeral_admin(&mut config);
    config
}

async fn ask_a(server: &TestServer, name: &str) -> Message {
    ask(server.addr(), name, RecordType::A).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_questions_in_flight_go_upstream_once() {
    let nsd = upstream(30);
    let relay = Relay::start(nsd.addr).await;
    let server = TestServer::start(config(vec![relay.addr], Duration::from_secs(3))).await;
    // Held long enough that every client asks while the first question is out, and less than
    // the 333 ms after which the resolver sends its query again.
    relay.hold_ms.store(250, Ordering::Relaxed);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let addr = server.addr();
            tokio::spawn(async move { ask(addr, "www.example.test.", RecordType::A).await })
        })
        .collect();
    for client in clients {
        let m = client.await.expect("client");
        assert_eq!(summary(&m), ["192.0.2.80"]);
    }
    assert_eq!(
        relay.count("www.example.test. A"),
        1,
        "20 clients, one upstream query: {:?}",
        relay.seen.lock().expect("lock")
    );
    relay.hold_ms.store(0, Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(
            summary(&ask_a(&server, "www.example.test.").await),
            ["192.0.2.80"]
        );
    }
    assert_eq!(
        relay.count("www.example.test. A"),
        1,
        "then the cache answers"
    );
    let samples = scrape(server.admin()).await;
    let coalesced = value(&samples, "stabledns_forward_coalesced_total{}");
    let hits = value(
        &samples,
        "stabledns_forward_cache_lookups_total{result=\"hit\"}",
    );
    assert!(coalesced >= 1.0, "{samples:?}");
    assert!(hits >= 20.0, "{samples:?}");
    let sent = format!(
        "stabledns_forward_upstream_queries_total{{upstream=\"{}\"}}",
        relay.addr
    );
    assert!(value(&samples, &sent) >= 1.0, "{samples:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_answers_are_kept_for_the_soa_minimum() {
    let nsd = upstream(2);
    let relay = Relay::start(nsd.addr).await;
    let server = TestServer::start(config(vec![relay.addr], Duration::from_secs(3))).await;
    let m = ask_a(&server, "nope.example.test.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let soa_ttl = m.authorities.first().map(|r| r.ttl);
    assert!(
        soa_ttl.is_some_and(|t| t <= 2),
        "the SOA's TTL is the minimum: {m:?}"
    );
    let m = ask_a(&server, "nope.example.test.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !m.authorities.is_empty(),
        "the SOA comes along from the cache: {m:?}"
    );
    // A NODATA answer is kept the same way.
    for _ in 0..2 {
        let m = ask(server.addr(), "www.example.test.", RecordType::CAA).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(m.answers.is_empty() && !m.authorities.is_empty(), "{m:?}");
    }
    // Both within the first two seconds, or the minimum ran out between them: then the
    // upstream saw the second one and the count shows it.
    let started = Instant::now();
    let nx = relay.count("nope.example.test. A");
    let nodata = relay.count("www.example.test. CAA");
    assert!(nx >= 1 && nodata >= 1);
    if started.elapsed() < Duration::from_secs(1) && nx + nodata > 2 {
        let ages = relay.seen.lock().expect("lock").clone();
        panic!("a cached negative answer went upstream: {ages:?}");
    }
    // Past the minimum the name is asked again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.count("nope.example.test. A") == nx {
        assert!(
            Instant::now() < deadline,
            "the negative answer never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        ask_a(&server, "nope.example.test.").await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_popular_answer_is_refreshed_before_it_expires() {
    let nsd = upstream(30);
    let relay = Relay::start(nsd.addr).await;
    let server = TestServer::start(config(vec![relay.addr], Duration::from_secs(3))).await;
    assert_eq!(
        summary(&ask_a(&server, "ten.example.test.").await),
        ["192.0.2.10"]
    );
    // Asked on and on: in the last second of its 10 s TTL the answer is fetched again, and
    // the clients never see it expire (no miss, no TTL of 0).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut lowest = u32::MAX;
    let mut renewed = false;
    while !renewed {
        assert!(
            Instant::now() < deadline,
            "no prefetch: {:?}",
            relay.seen.lock().expect("lock")
        );
        let m = ask_a(&server, "ten.example.test.").await;
        assert_eq!(summary(&m), ["192.0.2.10"]);
        let ttl = m.answers.first().map_or(0, |r| r.ttl);
        lowest = lowest.min(ttl);
        renewed = relay.count("ten.example.test. A") >= 2 && ttl > 5;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(lowest >= 1, "a client saw the answer run out: TTL {lowest}");
    let samples = scrape(server.admin()).await;
    assert!(
        value(&samples, "stabledns_forward_prefetches_total{}") >= 1.0,
        "{samples:?}"
    );
    assert_eq!(
        value(
            &samples,
            "stabledns_forward_cache_lookups_total{result=\"miss\"}"
        ),
        1.0,
        "only the first question missed: {samples:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_answers_stand_in_for_a_dead_upstream_for_a_bounded_time() {
    let nsd = upstream(30);
    let relay = Relay::start(nsd.addr).await;
    let mut config = config(vec![relay.addr], Duration::from_millis(500));
    if let Some(f) = &mut config.forwarding {
        f.serve_stale = Duration::from_secs(4);
    }
    let server = TestServer::start(config).await;
    assert_eq!(
        summary(&ask_a(&server, "short.example.test.").await),
        ["192.0.2.1"]
    );
    relay.dead.store(true, Ordering::Relaxed);
    let stored = Instant::now();
    // Past its 1 s TTL the upstream is asked, fails, and the stale answer comes with TTL 30.
    let deadline = Instant::now() + Duration::from_secs(20);
    let stale = loop {
        assert!(Instant::now() < deadline, "no stale answer");
        let m = ask_a(&server, "short.example.test.").await;
        if m.answers.first().is_some_and(|r| r.ttl == 30) {
            break m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(summary(&stale), ["192.0.2.1"]);
    // Our own names are never stale: answered from the snapshot, authoritatively, with their
    // own TTL, whatever the upstream does.
    let own = ask_a(&server, "web.internal.").await;
    assert_eq!(summary(&own), ["10.0.1.10", "10.0.2.10"]);
    assert!(own.metadata.authoritative, "{own:?}");
    assert!(own.answers.iter().all(|r| r.ttl != 30), "{own:?}");
    // A name never seen gets SERVFAIL, within the timeout.
    let m = ask_a(&server, "www.example.test.").await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    // Past serve_stale (4 s after the TTL) the answer is gone: SERVFAIL, never a hang.
    let servfail = loop {
        assert!(Instant::now() < deadline, "stale answers never stopped");
        let m = ask_a(&server, "short.example.test.").await;
        if m.metadata.response_code == ResponseCode::ServFail {
            break stored.elapsed();
        }
        assert_eq!(summary(&m), ["192.0.2.1"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        servfail >= Duration::from_secs(4),
        "stale answers ended early: {servfail:?}"
    );
    let samples = scrape(server.admin()).await;
    assert!(
        value(
            &samples,
            "stabledns_forward_cache_lookups_total{result=\"stale\"}"
        ) >= 1.0,
        "{samples:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_in_flight_cap_lookups_fail_at_once() {
    // Bound and never read: every lookup waits out the timeout.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    // Below the client's own 5 s, so that the two let through get their SERVFAIL too.
    let timeout = Duration::from_secs(3);
    let mut config = config(vec![silent.local_addr().expect("addr")], timeout);
    if let Some(f) = &mut config.forwarding {
        f.max_in_flight = 2;
    }
    let server = TestServer::start(config).await;
    let started = Instant::now();
    let clients: Vec<_> = (0..10)
        .map(|i| {
            let addr = server.addr();
            tokio::spawn(async move {
                let m = ask(addr, &format!("n{i}.example.test."), RecordType::A).await;
                (m.metadata.response_code, Instant::now())
            })
        })
        .collect();
    let mut early = 0;
    for client in clients {
        let (rcode, at) = client.await.expect("client");
        assert_eq!(rcode, ResponseCode::ServFail);
        early += usize::from(at - started < timeout);
    }
    let limited = server.forward_failures(stabledns::dns::forward::Failure::Limit);
    assert_eq!(limited, 8, "two in flight, eight refused at the cap");
    assert!(
        early >= 8,
        "the refused ones did not wait for the timeout: {early}"
    );
    drop(silent);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_upstream_is_skipped() {
    let nsd = upstream(30);
    let dead = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    dead.set_nonblocking(true).expect("nonblocking");
    let server = TestServer::start(config(
        vec![dead.local_addr().expect("addr"), nsd.addr],
        Duration::from_secs(2),
    ))
    .await;
    let started = Instant::now();
    for i in 0..30 {
        // Names NSD does not have: NXDOMAIN, each one a new question.
        let m = ask_a(&server, &format!("x{i}.example.test.")).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "query {i}"
        );
    }
    let mut buf = [0u8; 512];
    let mut reached = 0u64;
    while dead.recv_from(&mut buf).is_ok() {
        reached += 1;
    }
    // The loop probe found it dead (one question, sent again twice); after that it is asked
    // last, and probed with one question (three packets at most) a second.
    let bound = 3 + 3 * (started.elapsed().as_secs() + 1);
    assert!(
        reached <= bound,
        "{reached} packets reached the dead upstream in {:?}",
        started.elapsed()
    );
    let samples = scrape(server.admin()).await;
    let up = |addr: SocketAddr| format!("stabledns_forward_upstream_up{{upstream=\"{addr}\"}}");
    let dead_addr = dead.local_addr().expect("addr");
    assert_eq!(value(&samples, &up(nsd.addr)), 1.0, "{samples:?}");
    assert_eq!(value(&samples, &up(dead_addr)), 0.0, "{samples:?}");
    let (_, ready) = crate::admin::http_get(server.admin(), "/readyz").await;
    assert!(
        ready.contains(&format!("upstream {dead_addr}: DOWN")),
        "{ready}"
    );
    // It comes back: now it relays to NSD, and a probe finds it answering.
    let nsd_addr = nsd.addr;
    dead.set_nonblocking(false).expect("blocking");
    std::thread::spawn(move || {
        let out = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut buf = [0u8; 4096];
        while let Ok((n, from)) = dead.recv_from(&mut buf) {
            let _ = out.send_to(&buf[..n], nsd_addr);
            if let Ok(m) = out.recv(&mut buf) {
                let _ = dead.send_to(&buf[..m], from);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut i = 0;
    while value(&scrape(server.admin()).await, &up(dead_addr)) != 1.0 {
        assert!(Instant::now() < deadline, "the upstream never came back");
        i += 1;
        ask_a(&server, &format!("back{i}.example.test.")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_upstream_answer_is_fetched_over_tcp() {
    let nsd = upstream(30);
    let server = TestServer::start(config(vec![nsd.addr], Duration::from_secs(3))).await;
    let out = crate::harness::dig(
        server.addr(),
        &["+tcp", "+noall", "+answer", "big.example.test", "TXT"],
    );
    assert_eq!(
        out.lines().filter(|l| l.contains("TXT")).count(),
        12,
        "{out}"
    );
    // Over UDP, too big for 1232 bytes: truncated, and whole over TCP again.
    let out = crate::harness::dig(
        server.addr(),
        &["+notcp", "+ignore", "big.example.test", "TXT"],
    );
    assert!(out.contains(" tc"), "{out}");
    server.stop().await;
}

/// `bytes` with every TTL set to 0, normalised: answers a second apart differ only there.
fn without_ttls(bytes: &[u8]) -> (String, Vec<u32>) {
    let mut m = Message::from_vec(bytes).expect("a DNS message");
    let mut ttls = Vec::new();
    for r in m.answers.iter_mut().chain(m.authorities.iter_mut()) {
        ttls.push(r.ttl);
        r.ttl = 0;
    }
    ttls.sort();
    (normalise(&m.to_vec().expect("encodes")), ttls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_forwarded_answers_on_the_fast_path_equal_the_handler_s() {
    let nsd = upstream(30);
    let server = TestServer::start(config(vec![nsd.addr], Duration::from_secs(3))).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut tcp = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    tcp.set_nodelay(true).expect("nodelay");
    let questions = [
        ("www.example.test.", RecordType::A),
        ("www.example.test.", RecordType::AAAA),
        ("www.example.test.", RecordType::MX),
        ("www.example.test.", RecordType::TXT),
        ("www.example.test.", RecordType::CAA),
        ("alias.example.test.", RecordType::A),
        ("alias.example.test.", RecordType::CNAME),
        ("nope.example.test.", RecordType::A),
        ("example.test.", RecordType::SOA),
        ("example.test.", RecordType::NS),
    ];
    let mut id = 0u16;
    let mut fast_answers = 0;
    for (name, rtype) in questions {
        for (edns, cookie) in [(None, false), (Some(1232), false), (Some(4096), true)] {
            id += 1;
            let q = wire_query(id, name, rtype, edns, cookie);
            // The first fills the cache through the handler; the second is the fast path's.
            over_udp(&sock, server.addr(), &q).await;
            let before = server.udp_counts().0;
            let fast = over_udp(&sock, server.addr(), &q).await;
            fast_answers += server.udp_counts().0 - before;
            let slow = over_tcp(&mut tcp, &q).await;
            let qlen = q.len()
                - if edns.is_some() {
                    11 + usize::from(cookie) * 12
                } else {
                    0
                };
            assert_eq!(
                fast.get(12..qlen),
                q.get(12..qlen),
                "the question as asked: {name} {rtype}"
            );
            let ((fast_text, fast_ttls), (slow_text, slow_ttls)) =
                (without_ttls(&fast), without_ttls(&slow));
            assert_eq!(fast_text, slow_text, "{name} {rtype} edns={edns:?}");
            for (f, s) in fast_ttls.iter().zip(&slow_ttls) {
                assert!(
                    f.abs_diff(*s) <= 1,
                    "{name} {rtype}: TTLs {fast_ttls:?} and {slow_ttls:?}"
                );
            }
        }
    }
    assert_eq!(
        fast_answers, 30,
        "every second question came from the cache on the UDP thread"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_answers_dig_and_kdig_alike() {
    let nsd = upstream(30);
    let server = TestServer::start(config(vec![nsd.addr], Duration::from_secs(3))).await;
    let addr = server.addr();
    let first = crate::harness::dig(addr, &["+noall", "+answer", "wWw.Example.TEST", "A"]);
    assert!(
        first.contains("wWw.Example.TEST.") && first.contains("192.0.2.80"),
        "{first}"
    );
    // From the cache, in the case asked (0x20).
    let again = crate::harness::dig(addr, &["+noall", "+answer", "WWW.example.test", "A"]);
    assert!(
        again.contains("WWW.example.test.") && again.contains("192.0.2.80"),
        "{again}"
    );
    let out = std::process::Command::new("kdig")
        .arg(format!("@{}", addr.ip()))
        .args([
            "-p",
            &addr.port().to_string(),
            "+nocookie",
            "www.example.test",
            "A",
        ])
        .output()
        .expect("kdig (knot-dnsutils; scripts/test installs it)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOERROR") && text.contains("192.0.2.80"),
        "{text}"
    );
    assert!(
        !text.contains("WARNING"),
        "kdig found something odd: {text}"
    );
    let samples = scrape(server.admin()).await;
    assert!(
        value(
            &samples,
            "stabledns_forward_cache_lookups_total{result=\"hit\"}"
        ) >= 1.0
    );
    server.stop().await;
}
