//! The real `dig`, as an operator would use it, over UDP and TCP.

use crate::harness::{TestServer, dig};

fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!(";; {name} SECTION:");
    out.lines()
        .skip_while(|l| *l != header)
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect()
}

fn fields(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

#[tokio::test]
async fn dig_sees_cname_tier_nxdomain_and_refused() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    // dig blocks; run it off the runtime the server answers on.
    let out = tokio::task::spawn_blocking(move || {
        let mut outs = Vec::new();
        for transport in ["+notcp", "+tcp"] {
            outs.push((
                transport,
                dig(addr, &[transport, "db1.internal"]),
                dig(addr, &[transport, "web.internal", "A"]),
                dig(addr, &[transport, "nothing-here.internal"]),
                dig(addr, &[transport, "example.com"]),
                dig(addr, &[transport, "BATCH-worker.Internal", "A"]),
            ));
        }
        outs
    })
    .await
    .expect("dig ran");

    for (t, db1, web, nx, refused, worker) in out {
        assert!(db1.contains("status: NOERROR"), "{t}: {db1}");
        assert!(db1.contains("flags: qr aa"), "{t}: authoritative: {db1}");
        let answer = section(&db1, "ANSWER");
        assert_eq!(
            answer.len(),
            2,
            "{t}: the CNAME and its target's address: {db1}"
        );
        assert_eq!(fields(answer[1])[3..], ["A", "10.0.1.20"], "{t}");
        assert_eq!(
            fields(answer[0]),
            [
                "db1.internal.",
                "60",
                "IN",
                "CNAME",
                "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com."
            ],
            "{t}"
        );

        let mut ips: Vec<&str> = section(&web, "ANSWER")
            .iter()
            .map(|l| fields(l)[4])
            .collect();
        ips.sort_unstable();
        assert_eq!(ips, ["10.0.1.10", "10.0.2.10"], "{t}: {web}");

        assert!(nx.contains("status: NXDOMAIN"), "{t}: {nx}");
        let auth = section(&nx, "AUTHORITY");
        assert_eq!(auth.len(), 1, "{t}: {nx}");
        assert_eq!(
            fields(auth[0])[..4],
            ["internal.", "60", "IN", "SOA"],
            "{t}"
        );

        assert!(refused.contains("status: REFUSED"), "{t}: {refused}");

        let answer = section(&worker, "ANSWER");
        assert_eq!(answer.len(), 1, "{t}: {worker}");
        assert_eq!(fields(answer[0])[3..], ["A", "10.0.3.30"], "{t}");
        // The owner keeps the question's case on every path (the fast path over UDP, the
        // handler over TCP), as 0x20-randomising resolvers check.
        assert_eq!(
            fields(answer[0])[0],
            "BATCH-worker.Internal.",
            "{t}: {worker}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_at_an_explain_name_gives_its_txt_set() {
    let server = TestServer::demo().await;
    let addr = server.addr();
    let (any, txt) = tokio::task::spawn_blocking(move || {
        (
            dig(addr, &["+tcp", "ANY", "_explain.db1.internal"]),
            dig(addr, &["+tcp", "TXT", "_explain.db1.internal"]),
        )
    })
    .await
    .expect("dig ran");
    let any = section(&any, "ANSWER");
    assert!(!any.is_empty(), "ANY gave NODATA");
    assert!(any.iter().all(|l| fields(l)[3] == "TXT"), "{any:?}");
    assert_eq!(any.len(), section(&txt, "ANSWER").len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_version_and_identity_answer_only_as_configured_and_notimp_clears_rd() {
    // Default: nothing about the server (REFUSED), as today.
    let server = crate::harness::TestServer::demo().await;
    let addr = server.addr();
    let out = tokio::task::spawn_blocking(move || {
        (
            dig(addr, &["CH", "TXT", "version.bind"]),
            dig(addr, &["+opcode=status", "+cd", "db1.internal"]),
        )
    })
    .await
    .expect("dig ran");
    assert!(out.0.contains("status: REFUSED"), "{}", out.0);
    // NOTIMP for another opcode, with RD and CD cleared, as BIND does.
    assert!(out.1.contains("status: NOTIMP"), "{}", out.1);
    let flags = out
        .1
        .lines()
        .find(|l| l.starts_with(";; flags:"))
        .expect("flags");
    assert!(!flags.contains(" rd") && !flags.contains(" cd"), "{flags}");
    server.stop().await;

    let mut config = crate::harness::demo_config();
    config.server.chaos = stabledns::dns::Chaos {
        version: Some("stabledns".into()),
        identity: Some("ns1.eu-west-1a".into()),
    };
    let server = crate::harness::TestServer::start(config).await;
    let addr = server.addr();
    let out = tokio::task::spawn_blocking(move || {
        [
            dig(addr, &["+short", "CH", "TXT", "version.bind"]),
            dig(addr, &["+short", "CH", "TXT", "version.server"]),
            dig(addr, &["+short", "CH", "TXT", "id.server"]),
            dig(addr, &["+short", "CH", "TXT", "hostname.bind"]),
            dig(addr, &["CH", "TXT", "other.bind"]),
        ]
    })
    .await
    .expect("dig ran");
    assert_eq!(out[0].trim(), "\"stabledns\"");
    assert_eq!(out[1].trim(), "\"stabledns\"");
    assert_eq!(out[2].trim(), "\"ns1.eu-west-1a\"");
    assert_eq!(out[3].trim(), "\"ns1.eu-west-1a\"");
    assert!(out[4].contains("status: REFUSED"), "{}", out[4]);
    server.stop().await;
}
