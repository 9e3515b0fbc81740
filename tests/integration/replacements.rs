//! What a real fleet does to names: launch-then-terminate replacements of single instances and
//! tier members, and an inventory that suddenly finds nothing (a mistyped filter).

use std::time::Duration;

use hickory_server::proto::rr::RecordType;

use crate::admin::http_get;
use crate::ec2::until;
use crate::harness::{TestServer, wait_for};
use crate::moto::{Moto, Network, ec2_config, private_ip, public_dns};
use crate::views::client_from;

const SOON: Duration = Duration::from_secs(15);

/// The answer to `name` A asked from `source`, sorted.
async fn ask_from(server: std::net::SocketAddr, source: &str, name: &str) -> Vec<String> {
    let mut client = client_from(server, source);
    let m = crate::harness::query(
        &mut client,
        name,
        hickory_server::proto::rr::DNSClass::IN,
        RecordType::A,
    )
    .await;
    crate::harness::summary(&m)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_single_instance_answers_one_instance_during_the_overlap() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    // The README's convention: a Name tag (a tier rule) and an SG-I group (a single rule).
    let tags = [("Name", "db2")];
    let old = net.launch(&ec2, 1, true, &tags, &["SG-I-DB2"]).await;
    let old = old[0].clone();
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], "")).await;
    let addr = server.addr();
    let old_public = format!("{}.", public_dns(&ec2, &old).await.expect("public name"));
    let old_ip = private_ip(&ec2, &old).await;
    wait_for(
        addr,
        "db2.internal.",
        RecordType::CNAME,
        &[&old_public],
        SOON,
    )
    .await;

    // Launch the replacement first (a second later: launch times decide), as an ASG does.
    crate::replicas::next_second().await;
    let new = net.launch(&ec2, 1, true, &tags, &["SG-I-DB2"]).await;
    let new = new[0].clone();
    let new_public = format!("{}.", public_dns(&ec2, &new).await.expect("public name"));
    let new_ip = private_ip(&ec2, &new).await;
    until("both instances in the snapshot", SOON, || {
        server.snapshot().instance(&new).is_some()
    })
    .await;
    // Every view answers the newest launch only, never both databases.
    let mut want = vec![new_public.clone(), new_ip.clone()];
    want.sort();
    assert_eq!(
        ask_from(addr, "127.0.0.1", "db2.internal.").await,
        want,
        "inside: the CNAME to the newest launch and its address"
    );
    assert_eq!(
        ask_from(addr, "127.0.0.2", "db2.internal.").await,
        std::slice::from_ref(&new_ip)
    );
    assert!(
        !ask_from(addr, "127.0.0.1", "db2.internal.")
            .await
            .contains(&old_ip)
    );
    // `_explain` says who lost and why.
    let explain = crate::harness::ask(addr, "_explain.db2.internal.", RecordType::TXT).await;
    let text = crate::harness::summary(&explain).join("\n");
    assert!(text.contains(&format!("not served: {old}")), "{text}");
    assert!(text.contains("launched later"), "{text}");
    // The conflict between the Name tag's tier claim and SG-I-DB2 is a warning, once.
    let snapshot = server.snapshot();
    let conflicts: Vec<&String> = snapshot
        .warnings
        .iter()
        .filter(|w| w.starts_with("db2: conflict"))
        .collect();
    assert_eq!(conflicts.len(), 1, "{:?}", snapshot.warnings);

    // The old one terminates: still the new one, and nothing contested any more.
    ec2.terminate_instances()
        .instance_ids(&old)
        .send()
        .await
        .expect("terminate");
    until("the old instance to leave", SOON, || {
        server.snapshot().instance(&old).is_none()
    })
    .await;
    assert_eq!(ask_from(addr, "127.0.0.2", "db2.internal.").await, [new_ip]);
    assert!(server.snapshot().contested.is_empty());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tier_slots_are_one_to_n_after_a_rolling_replacement() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let mut first = Vec::new();
    for _ in 0..3 {
        first.extend(net.launch(&ec2, 1, false, &[], &["SG-T-SVC"]).await);
        crate::replicas::next_second().await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let extra = format!("state_file = \"{}\"", state.display());
    let config = || ec2_config(&moto.url, &["us-east-1"], &extra);
    let slots = |server: &TestServer| {
        let Some(snapshot) = server.published() else {
            return Vec::new();
        };
        let s = snapshot.slots.get("svc").cloned().unwrap_or_default();
        let mut v: Vec<(u32, String)> = s.into_iter().map(|(id, n)| (n, id)).collect();
        v.sort();
        v
    };
    let server = TestServer::start(config()).await;
    let addr = server.addr();
    until("three slots", SOON, || slots(&server).len() == 3).await;
    let numbered: Vec<(u32, String)> = (1..=3).zip(first.iter().cloned()).collect();
    assert_eq!(slots(&server), numbered, "numbered by launch time");
    let ips = [
        private_ip(&ec2, &first[0]).await,
        private_ip(&ec2, &first[1]).await,
        private_ip(&ec2, &first[2]).await,
    ];

    // Launch-then-terminate, the rolling update of an ASG: the newcomer takes 4 while both run.
    let new = net.launch(&ec2, 1, false, &[], &["SG-T-SVC"]).await;
    let new = new[0].clone();
    let new_ip = private_ip(&ec2, &new).await;
    until("the newcomer's slot", SOON, || slots(&server).len() == 4).await;
    assert_eq!(slots(&server)[3], (4, new.clone()));
    wait_for(addr, "2.svc.internal.", RecordType::A, &[&ips[1]], SOON).await;
    wait_for(addr, "4.svc.internal.", RecordType::A, &[&new_ip], SOON).await;
    ec2.terminate_instances()
        .instance_ids(&first[1])
        .send()
        .await
        .expect("terminate");
    // The newcomer moves into the freed 2; 1 and 3 never move; 4 is gone.
    wait_for(addr, "2.svc.internal.", RecordType::A, &[&new_ip], SOON).await;
    assert_eq!(
        slots(&server),
        [
            (1, first[0].clone()),
            (2, new.clone()),
            (3, first[2].clone())
        ]
    );
    wait_for(addr, "1.svc.internal.", RecordType::A, &[&ips[0]], SOON).await;
    wait_for(addr, "3.svc.internal.", RecordType::A, &[&ips[2]], SOON).await;
    wait_for(
        addr,
        "4.svc.internal.",
        RecordType::A,
        &["Non-Existent Domain"],
        SOON,
    )
    .await;

    // Terminate first, then launch: the tier shrinks to two, so the member numbered 3 moves
    // into the freed 2, and the newcomer takes 3.
    ec2.terminate_instances()
        .instance_ids(&new)
        .send()
        .await
        .expect("terminate");
    until("the tier to shrink", SOON, || slots(&server).len() == 2).await;
    assert_eq!(
        slots(&server),
        [(1, first[0].clone()), (2, first[2].clone())]
    );
    let last = net.launch(&ec2, 1, false, &[], &["SG-T-SVC"]).await;
    until("the newcomer's slot", SOON, || slots(&server).len() == 3).await;
    let after = slots(&server);
    assert_eq!(after[2], (3, last[0].clone()));
    let last_ip = private_ip(&ec2, &last[0]).await;
    wait_for(addr, "3.svc.internal.", RecordType::A, &[&last_ip], SOON).await;
    server.stop().await;

    // The numbers persist across a restart.
    let server = TestServer::start(config()).await;
    until("a refresh after the restart", SOON, || {
        server.successes() > 0
    })
    .await;
    assert_eq!(slots(&server), after);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_fleet_never_replaces_a_served_one() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let ids = net.launch(&ec2, 2, false, &[("Name", "svc")], &[]).await;
    let ip = private_ip(&ec2, &ids[0]).await;
    let proxy = crate::proxy::Proxy::start(&moto.url).await;
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], "")).await;
    let addr = server.addr();
    let name = format!("{}.internal.", ids[0]);
    wait_for(addr, &name, RecordType::A, &[&ip], SOON).await;
    let (status, _) = http_get(server.admin(), "/readyz").await;
    assert_eq!(status, 200);

    // The API now answers with no instances at all: more refreshes than the safety valve's
    // confirmations, and the fleet still serves.
    proxy.set(crate::proxy::Mode::Empty);
    until("five empty refreshes refused", SOON, || {
        server
            .refresh_stats()
            .empty_fleet_refusals
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 5
    })
    .await;
    wait_for(addr, &name, RecordType::A, &[&ip], SOON).await;
    assert_eq!(server.snapshot().instance_count, 2);
    let (status, body) = http_get(server.admin(), "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no instances"), "{body}");
    let (_, metrics) = http_get(server.admin(), "/metrics").await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("stabledns_empty_fleet_refusals_total ")),
        "{metrics}"
    );
    // The fleet comes back: ready again.
    proxy.set(crate::proxy::Mode::Pass);
    until("ready again", SOON, || {
        !server
            .refresh_stats()
            .empty_fleet
            .load(std::sync::atomic::Ordering::Relaxed)
    })
    .await;
    assert_eq!(http_get(server.admin(), "/readyz").await.0, 200);
    server.stop().await;

    // With allow_empty_fleet, an empty fleet is published (after the valve's confirmations).
    let allow = "allow_empty_fleet = true";
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], allow)).await;
    wait_for(server.addr(), &name, RecordType::A, &[&ip], SOON).await;
    proxy.set(crate::proxy::Mode::Empty);
    until("the empty fleet", SOON, || {
        server.snapshot().instance_count == 0
    })
    .await;
    assert_eq!(http_get(server.admin(), "/readyz").await.0, 200);
    server.stop().await;
}

#[test]
fn check_fails_on_an_empty_fleet() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    rt.block_on(async {
        let net = Network::create(&ec2).await;
        net.launch(&ec2, 1, false, &[("stabledns", "on")], &[])
            .await;
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let check = |value: &str| {
        let demo =
            std::fs::read_to_string(crate::harness::root().join("config/demo.toml")).expect("demo");
        let start = demo.find("[inventory]").expect("inventory");
        let end = demo.find("[naming]").expect("naming");
        let text = format!(
            "{}[inventory]\nsource = \"ec2\"\nendpoint_url = \"{}\"\nregions = [\"us-east-1\"]\n\n\
             [[inventory.filters]]\nname = \"tag:stabledns\"\nvalues = [\"{value}\"]\n\n{}",
            &demo[..start],
            moto.url,
            &demo[end..]
        );
        let path = dir.path().join("stabledns.toml");
        std::fs::write(&path, text).expect("write");
        std::fs::copy(
            crate::harness::root().join("config/demo-instances.json"),
            dir.path().join("demo-instances.json"),
        )
        .expect("copy");
        std::process::Command::new(env!("CARGO_BIN_EXE_stabledns"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .expect("runs")
    };
    let ok = check("on");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // The mistyped filter of the issue: `On` matches nothing.
    let typo = check("On");
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert!(
        !typo.status.success(),
        "{}",
        String::from_utf8_lossy(&typo.stdout)
    );
    assert!(stderr.contains("no instances"), "{stderr}");
}
