//! The demo's other records, checked with dig: SRV from tags, PTR in reverse zones, AAAA, the
//! `_explain` TXT, inside-only instances, and how tiers are handed out per query.

use std::collections::BTreeSet;

use hickory_server::proto::rr::{DNSClass, RecordType};

use crate::harness::{TestServer, demo_config, dig, query, summary};
use crate::views::client_from;

/// dig's answer section, whitespace folded, one record a line.
async fn answer(addr: std::net::SocketAddr, args: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    args.extend(["+noall".to_owned(), "+answer".to_owned()]);
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dig(addr, &args)
    })
    .await
    .expect("dig ran");
    let mut lines: Vec<String> = out
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|l| !l.is_empty())
        .collect();
    lines.sort();
    lines
}

async fn status(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        dig(addr, &args)
    })
    .await
    .expect("dig ran");
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_owned()
}

#[tokio::test]
async fn srv_records_point_at_names_with_addresses_in_each_view() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    // Inside (CNAME mode): the public DNS names, which AWS's resolver answers privately.
    assert_eq!(
        answer(addr, &["-b", "127.0.0.1", "_http._tcp.web.internal", "SRV"]).await,
        [
            "_http._tcp.web.internal. 60 IN SRV 0 0 80 ec2-34-240-10-11.eu-west-1.compute.amazonaws.com.",
            "_http._tcp.web.internal. 60 IN SRV 0 0 80 ec2-34-240-20-12.eu-west-1.compute.amazonaws.com.",
        ]
    );
    // Peered (address mode): the slot names, which answer A records there (never a CNAME).
    assert_eq!(
        answer(addr, &["-b", "127.0.0.2", "_http._tcp.web.internal", "SRV"]).await,
        [
            "_http._tcp.web.internal. 60 IN SRV 0 0 80 1.web.internal.",
            "_http._tcp.web.internal. 60 IN SRV 0 0 80 2.web.internal.",
        ]
    );
    assert_eq!(
        answer(addr, &["-b", "127.0.0.2", "1.web.internal"]).await,
        ["1.web.internal. 60 IN A 10.0.1.10"]
    );
    assert_eq!(
        answer(addr, &["-b", "127.0.0.2", "2.web.internal"]).await,
        ["2.web.internal. 60 IN A 10.0.2.10"]
    );
    // The slot names exist in the other views too.
    assert_eq!(
        answer(addr, &["-b", "127.0.0.3", "2.web.internal"]).await,
        ["2.web.internal. 60 IN CNAME ec2-34-240-20-12.eu-west-1.compute.amazonaws.com."]
    );
    server.stop().await;
}

#[tokio::test]
async fn ptr_aaaa_and_reverse_zones() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    for source in ["127.0.0.1", "127.0.0.2"] {
        assert_eq!(
            answer(addr, &["-b", source, "-x", "10.0.1.20"]).await,
            ["20.1.0.10.in-addr.arpa. 60 IN PTR db1.internal."],
            "from {source}"
        );
        // A tier member's PTR names it by its shortest own name (SG-I-WEB1), not the tier.
        assert_eq!(
            answer(addr, &["-b", source, "-x", "10.0.1.10"]).await,
            ["10.1.0.10.in-addr.arpa. 60 IN PTR web1.internal."]
        );
        // An address we do not know, inside the reverse zone: NXDOMAIN with its SOA.
        let out =
            tokio::task::spawn_blocking(move || dig(addr, &["-b", "127.0.0.1", "-x", "10.9.9.9"]))
                .await
                .expect("dig");
        assert!(out.contains("status: NXDOMAIN"), "{out}");
        let folded = out.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            folded.contains("10.in-addr.arpa. 60 IN SOA ns1.internal. hostmaster.internal."),
            "the reverse zone's SOA at the negative TTL: {out}"
        );
    }
    assert_eq!(
        answer(addr, &["-b", "127.0.0.1", "10.in-addr.arpa", "SOA"])
            .await
            .len(),
        1
    );
    // The outside view serves no reverse zone for private networks: not ours to answer.
    assert_eq!(
        status(addr, &["-b", "127.0.0.3", "-x", "10.0.1.20"]).await,
        "REFUSED"
    );
    // IPv6 inside; the private-only worker's IPv6 is not shown outside.
    assert_eq!(
        answer(addr, &["-b", "127.0.0.1", "web-1.internal", "AAAA"]).await,
        ["web-1.internal. 60 IN CNAME ec2-34-240-10-11.eu-west-1.compute.amazonaws.com."]
    );
    assert_eq!(
        answer(addr, &["-b", "127.0.0.2", "batch-worker.internal", "AAAA"]).await,
        ["batch-worker.internal. 60 IN AAAA 2a05:d018:1f2:5603::30"]
    );
    assert_eq!(
        answer(addr, &["-b", "127.0.0.1", "web.internal", "AAAA"]).await,
        ["web.internal. 60 IN AAAA 2a05:d018:1f2:5601::10"]
    );
    assert_eq!(
        status(addr, &["-b", "127.0.0.3", "batch-worker.internal", "AAAA"]).await,
        "NXDOMAIN"
    );
    server.stop().await;
}

#[tokio::test]
async fn explain_says_what_backs_a_name_and_why_this_view() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let lines = answer(addr, &["-b", "127.0.0.1", "TXT", "_explain.db1.internal"]).await;
    let text = lines.join("\n");
    for want in [
        "\"view inside: client 127.0.0.1 matched 127.0.0.1/32\"",
        "\"db1.internal. CNAME ec2-52-49-30-13.eu-west-1.compute.amazonaws.com.\"",
        "\"i-0a1b2c3d4e5f60003 running, launched 2026-10-02T09:14:27Z, eu-west-1a, via tag Name=\\\"db1\\\"; security group SG-I-DB1",
        "\"data: serial ",
        "confirmed by the inventory",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    // A tier lists every instance and the rule; the peered view says why it was chosen.
    let text = answer(addr, &["-b", "127.0.0.2", "TXT", "_explain.web.internal"])
        .await
        .join("\n");
    assert!(
        text.contains("view peered: client 127.0.0.2 matched 127.0.0.2/32"),
        "{text}"
    );
    assert!(
        text.contains("web.internal. A 10.0.1.10 10.0.2.10"),
        "{text}"
    );
    assert_eq!(
        text.matches("via security group SG-T-WEB").count(),
        2,
        "{text}"
    );
    // `_explain.<name>` exists exactly when `<name>` does (RFC 8020): below a name that does
    // not exist there is nothing, and other types at an explanation are NODATA, on both paths
    // (ANY gives its TXT set: dig::any_at_an_explain_name_gives_its_txt_set).
    for transport in ["+notcp", "+tcp"] {
        let nx = [
            "-b",
            "127.0.0.1",
            transport,
            "TXT",
            "_explain.nope.internal",
        ];
        assert_eq!(status(addr, &nx).await, "NXDOMAIN");
        for rtype in ["A", "AAAA"] {
            let q = ["-b", "127.0.0.1", transport, rtype, "_explain.db1.internal"];
            assert_eq!(status(addr, &q).await, "NOERROR", "{rtype} {transport}");
            assert!(
                answer(addr, &q).await.is_empty(),
                "{rtype} {transport}: NODATA"
            );
            let q = [
                "-b",
                "127.0.0.1",
                transport,
                rtype,
                "_explain.nope.internal",
            ];
            assert_eq!(status(addr, &q).await, "NXDOMAIN", "{rtype} {transport}");
        }
    }
    // Nor does an explanation ever travel in a transfer.
    let axfr = answer(addr, &["-b", "127.0.0.1", "AXFR", "internal."]).await;
    assert!(axfr.iter().all(|l| !l.contains("_explain")), "{axfr:?}");
    // Outside views do not explain (it names instances and groups): plain NXDOMAIN.
    assert_eq!(
        status(addr, &["-b", "127.0.0.3", "TXT", "_explain.web.internal"]).await,
        "NXDOMAIN"
    );
    server.stop().await;
}

#[tokio::test]
async fn inside_only_instances_do_not_exist_outside() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    assert_eq!(
        answer(addr, &["-b", "127.0.0.1", "admin.internal"]).await,
        [
            "admin.internal. 60 IN CNAME ec2-52-49-50-15.eu-west-1.compute.amazonaws.com.",
            "ec2-52-49-50-15.eu-west-1.compute.amazonaws.com. 60 IN A 10.0.1.50"
        ]
    );
    assert_eq!(
        answer(addr, &["-b", "127.0.0.2", "i-0a1b2c3d4e5f60008.internal"]).await,
        ["i-0a1b2c3d4e5f60008.internal. 60 IN A 10.0.1.50"]
    );
    // It has a public address, and still: nothing outside.
    for name in ["admin.internal", "i-0a1b2c3d4e5f60008.internal"] {
        assert_eq!(
            status(addr, &["-b", "127.0.0.3", name]).await,
            "NXDOMAIN",
            "{name}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn tiers_rotate_per_query_or_answer_one_member_by_cname() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let mut firsts = BTreeSet::new();
    let mut client = client_from(addr, "127.0.0.1");
    for _ in 0..40 {
        let m = query(&mut client, "web.internal.", DNSClass::IN, RecordType::A).await;
        assert_eq!(m.answers.len(), 2, "the whole set every time");
        firsts.insert(m.answers[0].data.to_string());
    }
    assert_eq!(
        firsts.into_iter().collect::<Vec<_>>(),
        ["10.0.1.10", "10.0.2.10"],
        "each member comes first sometimes"
    );
    server.stop().await;

    // tiers = "cname": one member's public name per query.
    let mut config = demo_config();
    config.views[0].tiers = stabledns::view::TierMode::Cname;
    let server = TestServer::start(config).await;
    let mut client = client_from(server.addr(), "127.0.0.1");
    let mut targets = BTreeSet::new();
    for _ in 0..40 {
        let m = query(
            &mut client,
            "web.internal.",
            DNSClass::IN,
            RecordType::CNAME,
        )
        .await;
        let got = summary(&m);
        assert_eq!(got.len(), 1, "one CNAME: {got:?}");
        targets.insert(got[0].clone());
        // Asked for A, the member's address comes with it (chased from the inventory).
        let m = query(&mut client, "web.internal.", DNSClass::IN, RecordType::A).await;
        assert_eq!(m.answers.len(), 2, "{:?}", m.answers);
    }
    assert_eq!(
        targets.into_iter().collect::<Vec<_>>(),
        [
            "ec2-34-240-10-11.eu-west-1.compute.amazonaws.com.",
            "ec2-34-240-20-12.eu-west-1.compute.amazonaws.com."
        ]
    );
    // A name without a public DNS name still answers its address.
    let m = query(&mut client, "worker.internal.", DNSClass::IN, RecordType::A).await;
    assert_eq!(summary(&m), ["10.0.3.30"]);
    server.stop().await;
}
