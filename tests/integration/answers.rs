//! What the server answers, asked with the hickory client over UDP and over TCP.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use hickory_server::proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};

use crate::harness::{TestServer, query, raw_udp};

const DB1_PUBLIC: &str = "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com.";

fn a_set(m: &Message) -> BTreeSet<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

fn assert_soa_authority(m: &Message, what: &str) {
    assert!(m.answers.is_empty(), "{what}: answers {:?}", m.answers);
    assert_eq!(
        m.authorities.len(),
        1,
        "{what}: authority {:?}",
        m.authorities
    );
    let soa = &m.authorities[0];
    assert_eq!(soa.name.to_ascii(), "internal.", "{what}");
    let RData::SOA(soa_data) = &soa.data else {
        panic!("{what}: authority is not an SOA: {soa:?}");
    };
    // RFC 2308: the negative TTL is min(SOA TTL, MINIMUM); the demo's MINIMUM is 60.
    assert_eq!(soa.ttl, 60, "{what}");
    assert_eq!(soa_data.minimum, 60, "{what}");
}

#[tokio::test]
async fn single_instance_name_is_a_cname_to_the_public_dns_name() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        for qtype in [RecordType::A, RecordType::AAAA, RecordType::CNAME] {
            let m = query(&mut client, "db1.internal.", DNSClass::IN, qtype).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{proto} {qtype}"
            );
            assert!(m.metadata.authoritative, "{proto}: AA must be set");
            // RFC 1034: nothing beside a CNAME, and the CNAME answers every type. An A
            // question also gets the target's address from the inventory (the inside view
            // chases); AWS's public names have no AAAA.
            let chased = usize::from(qtype == RecordType::A);
            assert_eq!(
                m.answers.len(),
                1 + chased,
                "{proto} {qtype}: {:?}",
                m.answers
            );
            if let Some(a) = m.answers.get(1) {
                assert_eq!(a.name.to_ascii(), DB1_PUBLIC, "{proto}");
                assert_eq!(a.data.to_string(), "10.0.1.20", "{proto}");
            }
            let r = &m.answers[0];
            assert_eq!(r.name.to_ascii(), "db1.internal.");
            assert_eq!(r.ttl, 60);
            match &r.data {
                RData::CNAME(c) => assert_eq!(c.0.to_ascii(), DB1_PUBLIC, "{proto}"),
                other => panic!("{proto} {qtype}: expected a CNAME, got {other:?}"),
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_tier_answers_every_private_address() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        let m = query(&mut client, "web.internal.", DNSClass::IN, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proto}");
        let want: BTreeSet<Ipv4Addr> = ["10.0.1.10", "10.0.2.10"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        assert_eq!(a_set(&m), want, "{proto}");
        assert_eq!(
            m.answers.len(),
            2,
            "{proto}: no extra records beside the set"
        );

        let m = query(&mut client, "web.internal.", DNSClass::IN, RecordType::AAAA).await;
        let v6: Vec<Ipv6Addr> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect();
        assert_eq!(
            v6,
            vec!["2a05:d018:1f2:5601::10".parse::<Ipv6Addr>().expect("ip")]
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_instance_without_a_public_name_answers_its_private_address() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        for name in [
            "batch-worker.internal.",
            "queue.internal.",
            "i-0a1b2c3d4e5f60005.internal.",
        ] {
            let m = query(&mut client, name, DNSClass::IN, RecordType::A).await;
            let want: BTreeSet<Ipv4Addr> = ["10.0.3.30".parse().expect("ip")].into();
            assert_eq!(a_set(&m), want, "{proto} {name}");
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn instance_ids_name_every_running_instance() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        let m = query(
            &mut client,
            "i-0a1b2c3d4e5f60001.internal.",
            DNSClass::IN,
            RecordType::A,
        )
        .await;
        assert!(
            matches!(&m.answers[..], [r, _] if matches!(&r.data, RData::CNAME(c)
                if c.0.to_ascii() == "ec2-34-240-10-11.eu-west-1.compute.amazonaws.com.")),
            "{proto}: {:?}",
            m.answers
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn unknown_names_are_nxdomain_with_the_soa() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        // web-old is stopped: neither its Name nor its id is served.
        for name in [
            "nope.internal.",
            "web-old.internal.",
            "i-0a1b2c3d4e5f60006.internal.",
            "a.b.db1.internal.",
        ] {
            let m = query(&mut client, name, DNSClass::IN, RecordType::A).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NXDomain,
                "{proto} {name}"
            );
            assert!(m.metadata.authoritative, "{proto} {name}");
            assert_soa_authority(&m, &format!("{proto} {name}"));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_name_without_that_type_is_nodata_with_the_soa() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        for (name, qtype) in [
            ("web.internal.", RecordType::MX),
            ("batch-worker.internal.", RecordType::TXT),
            ("db.internal.", RecordType::AAAA),
            ("ns1.internal.", RecordType::SOA),
        ] {
            let m = query(&mut client, name, DNSClass::IN, qtype).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{proto} {name} {qtype}"
            );
            assert!(m.metadata.authoritative, "{proto} {name}");
            assert_soa_authority(&m, &format!("{proto} {name} {qtype}"));
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn names_outside_the_zone_are_refused() {
    // The demo allows transfers from 127.0.0.1; without an allow list nobody may transfer.
    let mut config = crate::harness::demo_config();
    for view in &mut config.views {
        view.transfer.clear();
    }
    let server = TestServer::start(config).await;
    for (proto, mut client) in server.clients().await {
        for name in ["example.com.", "internal.example.", "."] {
            let m = query(&mut client, name, DNSClass::IN, RecordType::A).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{proto} {name}"
            );
            assert!(!m.metadata.authoritative, "{proto} {name}");
            assert!(
                m.answers.is_empty() && m.authorities.is_empty(),
                "{proto} {name}"
            );
        }
        // Other classes (e.g. CHAOS version.bind) are not ours either.
        let m = query(&mut client, "db1.internal.", DNSClass::CH, RecordType::TXT).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::Refused,
            "{proto} CH"
        );
        // No transfers without an allow list.
        if proto == "tcp" {
            let m = query(&mut client, "internal.", DNSClass::IN, RecordType::AXFR).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::Refused,
                "{proto} AXFR"
            );
            assert!(m.answers.is_empty());
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn names_match_case_insensitively() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        for name in ["DB1.INTERNAL.", "Db1.InTeRnAl.", "WEB.internal."] {
            let m = query(&mut client, name, DNSClass::IN, RecordType::A).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{proto} {name}"
            );
            assert!(!m.answers.is_empty(), "{proto} {name}");
        }
    }
    // The question is echoed byte for byte as asked: resolvers that randomise the case of
    // query names (0x20) drop answers whose question differs. Checked on the wire, since
    // decoders may normalise case.
    let request = raw_query(5, "Db1.InTeRnAl.", 0);
    let reply = raw_udp(server.addr(), &request, Duration::from_secs(2))
        .await
        .expect("a reply");
    let question = 12..request.len();
    assert_eq!(
        reply[question.clone()],
        request[question],
        "question echoed as asked"
    );
    assert_eq!(decode(&reply).answers.len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn the_apex_has_soa_and_ns_with_glue() {
    let server = TestServer::demo().await;
    let serial = server
        .running_serial()
        .expect("a snapshot is published before start returns");
    for (proto, mut client) in server.clients().await {
        let m = query(&mut client, "internal.", DNSClass::IN, RecordType::SOA).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proto}");
        assert!(m.metadata.authoritative);
        let [soa] = &m.answers[..] else {
            panic!("{proto}: {:?}", m.answers)
        };
        let RData::SOA(soa) = &soa.data else {
            panic!("{proto}: not an SOA")
        };
        assert_eq!(soa.mname.to_ascii(), "ns1.internal.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.internal.");
        assert_eq!(soa.serial, serial);
        assert_eq!(
            (soa.refresh, soa.retry, soa.expire, soa.minimum),
            (3600, 600, 604800, 60)
        );

        let m = query(&mut client, "INTERNAL.", DNSClass::IN, RecordType::NS).await;
        let [ns] = &m.answers[..] else {
            panic!("{proto}: {:?}", m.answers)
        };
        assert!(matches!(&ns.data, RData::NS(n) if n.0.to_ascii() == "ns1.internal."));
        assert!(
            m.additionals
                .iter()
                .any(|r| r.name.to_ascii() == "ns1.internal."
                    && matches!(&r.data, RData::A(a) if a.0 == Ipv4Addr::LOCALHOST)),
            "{proto}: glue missing: {:?}",
            m.additionals
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn any_gets_one_rrset_and_edns_is_echoed() {
    let server = TestServer::demo().await;
    for (proto, mut client) in server.clients().await {
        let m = query(&mut client, "web.internal.", DNSClass::IN, RecordType::ANY).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{proto}");
        let types: BTreeSet<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(types.len(), 1, "{proto}: RFC 8482 minimal ANY: {types:?}");
        // The hickory client sends EDNS; RFC 6891 requires the OPT back.
        let edns = m
            .edns
            .as_ref()
            .unwrap_or_else(|| panic!("{proto}: no OPT in the response"));
        assert!(
            edns.max_payload() >= 512 && edns.max_payload() <= 1232,
            "{proto}"
        );
    }
    server.stop().await;
}

fn raw_query(id: u16, name: &str, extra_questions: usize) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    for _ in 0..=extra_questions {
        m.add_query(Query::query(
            Name::from_ascii(name).expect("name"),
            RecordType::A,
        ));
    }
    m.to_vec().expect("encodes")
}

fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("the server's reply decodes")
}

#[tokio::test]
async fn garbage_does_not_stop_the_server_and_bad_queries_get_formerr() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let short = Duration::from_millis(300);

    // Too short to hold a header: dropped.
    assert_eq!(raw_udp(addr, &[0x12, 0x34, 0x01], short).await, None);
    // Noise of every length, and a datagram of the largest size.
    let mut seed = 0x9e37_79b9_u32;
    for len in [12, 13, 40, 511, 512, 4096, 65507] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                (seed & 0xff) as u8
            })
            .collect();
        if let Some(reply) = raw_udp(addr, &junk, short).await {
            // Whatever comes back answers the same ID and is never a crash.
            assert_eq!(
                reply[..2],
                junk[..2],
                "reply to junk of {len} bytes has another ID"
            );
        }
    }
    // A header that promises a question that is not there: FORMERR.
    let header_only = [0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0];
    let reply = raw_udp(addr, &header_only, Duration::from_secs(2))
        .await
        .expect("a reply");
    let m = decode(&reply);
    assert_eq!(m.metadata.id, 0xabcd);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);

    // Two questions in one query: FORMERR (RFC 9619).
    let reply = raw_udp(
        addr,
        &raw_query(7, "db1.internal.", 1),
        Duration::from_secs(2),
    )
    .await
    .expect("a reply");
    assert_eq!(decode(&reply).metadata.response_code, ResponseCode::FormErr);

    // A response sent to us is not answered (no reflection loops).
    let mut resp = Message::new(9, MessageType::Response, OpCode::Query);
    resp.add_query(Query::query(
        Name::from_ascii("db1.internal.").expect("n"),
        RecordType::A,
    ));
    assert_eq!(
        raw_udp(addr, &resp.to_vec().expect("enc"), short).await,
        None
    );

    // An unsupported opcode: NOTIMP.
    let mut status = Message::new(11, MessageType::Query, OpCode::Status);
    status.add_query(Query::query(
        Name::from_ascii("db1.internal.").expect("n"),
        RecordType::A,
    ));
    let reply = raw_udp(addr, &status.to_vec().expect("enc"), Duration::from_secs(2))
        .await
        .expect("a reply");
    assert_eq!(decode(&reply).metadata.response_code, ResponseCode::NotImp);

    // After all that, a normal query is still answered.
    let reply = raw_udp(
        addr,
        &raw_query(42, "db1.internal.", 0),
        Duration::from_secs(2),
    )
    .await
    .expect("server still answers");
    let m = decode(&reply);
    assert_eq!(m.metadata.id, 42);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    server.stop().await;
}

/// A describe-instances dump of `n` private instances in the tier `big`.
pub fn tier_fleet(n: usize) -> String {
    fleet_json("BIG", n, &[])
}

/// A describe-instances dump: `n` private instances in the tier group `SG-T-<tier>`, and one
/// private instance tagged `Name=<name>` for each of `named`.
pub fn fleet_json(tier: &str, n: usize, named: &[&str]) -> String {
    let mut instances: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"InstanceId":"i-{i:017x}","State":{{"Code":16,"Name":"running"}},
                "PrivateIpAddress":"10.9.{}.{}","PublicDnsName":"",
                "SecurityGroups":[{{"GroupId":"sg-1","GroupName":"SG-T-{tier}"}}]}}"#,
                i / 200,
                i % 200 + 1
            )
        })
        .collect();
    for (k, name) in named.iter().enumerate() {
        instances.push(format!(
            r#"{{"InstanceId":"i-e{k:016x}","State":{{"Code":16,"Name":"running"}},
            "PrivateIpAddress":"10.8.0.{}","PublicDnsName":"",
            "Tags":[{{"Key":"Name","Value":"{name}"}}]}}"#,
            k + 1
        ));
    }
    format!(
        r#"{{"Reservations":[{{"Instances":[{}]}}]}}"#,
        instances.join(",")
    )
}

#[tokio::test]
async fn a_large_tier_truncates_over_plain_udp_and_is_complete_over_tcp() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.json"), tier_fleet(60)).expect("write");
    let demo =
        std::fs::read_to_string(crate::harness::root().join("config/demo.toml")).expect("demo");
    let config_path = dir.path().join("big.toml");
    std::fs::write(
        &config_path,
        demo.replace("demo-instances.json", "fleet.json"),
    )
    .expect("write");
    let mut config = stabledns::Config::load(&config_path).expect("config");
    config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    let server = TestServer::start(config).await;

    // No EDNS: 512 bytes at most, so 60 A records do not fit and TC is set (RFC 1035 4.2.1).
    let reply = raw_udp(
        server.addr(),
        &raw_query(3, "big.internal.", 0),
        Duration::from_secs(2),
    )
    .await
    .expect("a reply");
    assert!(reply.len() <= 512, "{} bytes over plain UDP", reply.len());
    let m = decode(&reply);
    assert!(m.metadata.truncation, "TC must be set");
    assert!(m.answers.len() < 60);

    // TCP carries the whole set.
    let mut tcp = crate::harness::tcp_client(server.addr()).await;
    let m = query(&mut tcp, "big.internal.", DNSClass::IN, RecordType::A).await;
    assert!(!m.metadata.truncation);
    assert_eq!(a_set(&m).len(), 60);
    // dig sees TC over plain UDP and retries over TCP by itself, as stub resolvers do.
    let addr = server.addr();
    let out = tokio::task::spawn_blocking(move || {
        crate::harness::dig(addr, &["+noedns", "big.internal", "A"])
    })
    .await
    .expect("dig ran");
    assert!(out.contains("Truncated, retrying in TCP mode"), "{out}");
    assert!(out.contains("ANSWER: 60,"), "{out}");
    server.stop().await;
}

#[tokio::test]
async fn a_compression_pointer_in_the_question_gets_a_formerr_that_parses() {
    // Found by the packet fuzzer: the question's name points into the header. hickory decoded
    // it and echoed the raw question, whose pointer then landed in our own header.
    let server = TestServer::demo().await;
    let mut query = vec![0x10, 0x05, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    query.extend_from_slice(&[3, b'w', b'e', b'b', 0xc0, 0x02, 0, 1, 0, 1]);
    let reply = raw_udp(server.addr(), &query, Duration::from_secs(2))
        .await
        .expect("a reply");
    let m = decode(&reply);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 0x1005);
    server.stop().await;
}

#[tokio::test]
async fn a_compression_pointer_in_a_later_question_gets_a_formerr_that_parses() {
    // Found by the packet fuzzer: the first question is plain, a later one points into the
    // header. The query is refused for its many questions (RFC 9619), and hickory's FORMERR
    // echoed the raw questions, whose pointer then landed in our own header.
    let server = TestServer::demo().await;
    // Nine questions: the first a root name, and a later one's pointer (0xc0 0x03) lands in
    // the header. The fuzzer's input as it found it.
    let query: Vec<u8> = vec![
        16, 9, 1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 120, 110, 45, 45, 1, 0, 0, 0, 0, 0, 0, 0, 0, 65, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 192, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
        3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 254, 255, 255, 255, 38, 255, 255, 255, 255, 8, 1,
    ];
    let reply = raw_udp(server.addr(), &query, Duration::from_secs(2))
        .await
        .expect("a reply");
    let m = decode(&reply);
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(m.metadata.id, 0x1009);
    server.stop().await;
}

/// `_explain` of a large tier is capped like any RRset: a resolver refuses a TXT set past its
/// record limit, and 700 members' lines would not fit one TCP message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_answers_of_large_tiers_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("fleet.json"), fleet_json("BIG", 700, &[])).expect("write");
    let demo =
        std::fs::read_to_string(crate::harness::root().join("config/demo.toml")).expect("demo");
    let config_path = dir.path().join("big.toml");
    std::fs::write(
        &config_path,
        demo.replace("demo-instances.json", "fleet.json"),
    )
    .expect("write");
    let mut config = stabledns::Config::load(&config_path).expect("config");
    config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    let server = TestServer::start(config).await;
    let mut tcp = crate::harness::tcp_client(server.addr()).await;
    let m = query(
        &mut tcp,
        "_explain.big.internal.",
        DNSClass::IN,
        RecordType::TXT,
    )
    .await;
    assert!(!m.metadata.truncation, "TC over TCP");
    let n = m.answers.len();
    assert!((10..=100).contains(&n), "{n} TXT records");
    let text: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    assert!(
        text.iter()
            .any(|t| t.contains("more lines") && t.contains("stabledns why big")),
        "{text:?}"
    );
    assert!(
        text.last().is_some_and(|t| t.contains("data: serial")),
        "{text:?}"
    );
    // dig, as an operator asks, sees the same over TCP.
    let out = crate::harness::dig(
        server.addr(),
        &["+tcp", "+short", "TXT", "_explain.big.internal."],
    );
    assert_eq!(out.lines().count(), n, "{out}");
    server.stop().await;
}
