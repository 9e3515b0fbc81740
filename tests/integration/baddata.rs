//! Bad inventory data: instances the API or a dump describes wrongly, huge and numerous tags,
//! names that collide. A bad instance is skipped with a warning and counted; its neighbours
//! keep their names. (Garbage and truncated API answers fail the whole refresh cleanly: see
//! the proxy modes in `ec2.rs`.)

use std::path::Path;
use std::time::Duration;

use hickory_server::proto::rr::RecordType;
use serde_json::{Value, json};

use crate::harness::{TestServer, root, wait_for};
use crate::moto::{Moto, Network, ec2_config, private_ip};
use crate::proxy::{Mode, Proxy};

const SOON: Duration = Duration::from_secs(20);

fn instance(id: &str, ip: &str, tags: &[(&str, String)]) -> Value {
    json!({
        "InstanceId": id,
        "State": {"Name": "running"},
        "LaunchTime": "2026-11-01T10:00:00+00:00",
        "Placement": {"AvailabilityZone": "eu-west-1a"},
        "PrivateIpAddress": ip,
        "Tags": tags.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>(),
    })
}

fn write_fleet(dir: &Path, instances: Vec<Value>) {
    let doc = json!({"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]});
    let tmp = dir.join(".fleet.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&doc).expect("json")).expect("write");
    std::fs::rename(&tmp, dir.join("fleet.json")).expect("rename");
}

/// The bad neighbours: every way an instance can be wrong or oversized.
fn bad_neighbours() -> Vec<Value> {
    let mut many: Vec<(&str, String)> = vec![("Name", "many-tags".to_owned())];
    let keys: Vec<String> = (0..10_000).map(|i| format!("junk{i}")).collect();
    many.extend(keys.iter().map(|k| (k.as_str(), "x".repeat(20))));
    let flood = (0..2000)
        .map(|i| format!("n{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut no_state = instance("i-nostate", "10.0.9.2", &[("Name", "ghost".to_owned())]);
    no_state.as_object_mut().expect("object").remove("State");
    let mut no_id = instance("i-x", "10.0.9.3", &[("Name", "nobody".to_owned())]);
    no_id.as_object_mut().expect("object").remove("InstanceId");
    vec![
        // A 10 KB Name of many labels: too long for a DNS name; the instance keeps its id
        // name.
        instance("i-long", "10.0.9.4", &[("Name", "seg.".repeat(2560))]),
        // 10,000 tags.
        instance("i-many", "10.0.9.5", &many),
        // 2,000 names (10 KB) in one list tag: the first 32 are used.
        instance("i-flood", "10.0.9.6", &[("dns:names", flood)]),
        no_state,
        no_id,
        instance("i-badip", "999.0.9.7", &[("Name", "badip".to_owned())]),
        // Two rules claim `db1`: a Name tag (a tier rule) and a one-instance group.
        instance("i-claim", "10.0.9.8", &[("Name", "db1".to_owned())]),
    ]
}

/// The demo serving `fleet` from a file in `dir`, read again every `interval`.
async fn file_fleet_server(dir: &Path, fleet: Vec<Value>, interval: &str) -> TestServer {
    write_fleet(dir, fleet);
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace("path = \"demo-instances.json\"", "path = \"fleet.json\"")
        .replace(
            "refresh_interval = \"30s\"",
            &format!("refresh_interval = \"{interval}\""),
        );
    let config = stabledns::Config::parse(&dir.join("stabledns.toml"), &text).expect("config");
    TestServer::start(config).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_instances_are_skipped_and_their_neighbours_keep_their_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = instance("i-good", "10.0.1.1", &[("Name", "good".to_owned())]);
    let mut fleet = vec![good.clone()];
    fleet.extend(bad_neighbours());
    let server = file_fleet_server(dir.path(), fleet.clone(), "200ms").await;
    let addr = server.addr();
    let a = RecordType::A;

    wait_for(addr, "good.internal.", a, &["10.0.1.1"], SOON).await;
    wait_for(addr, "many-tags.internal.", a, &["10.0.9.5"], SOON).await;
    wait_for(addr, "i-long.internal.", a, &["10.0.9.4"], SOON).await;
    wait_for(addr, "n0.internal.", a, &["10.0.9.6"], SOON).await;
    wait_for(addr, "n31.internal.", a, &["10.0.9.6"], SOON).await;
    wait_for(addr, "n32.internal.", a, &["Non-Existent Domain"], SOON).await;
    for gone in ["ghost", "nobody", "badip", "i-nostate", "i-badip"] {
        let name = format!("{gone}.internal.");
        wait_for(addr, &name, a, &["Non-Existent Domain"], SOON).await;
    }
    wait_for(addr, "db1.internal.", a, &["10.0.9.8"], SOON).await;
    assert_eq!(
        server.skipped_instances(),
        3,
        "no state, no id, bad address"
    );
    let warnings = server.snapshot().warnings.join("\n");
    assert!(
        warnings.contains("i-flood: tag dns:names holds 2000 names"),
        "{warnings}"
    );
    assert!(warnings.contains("i-long: tag Name="), "{warnings}");
    assert!(
        warnings.len() < 20_000,
        "warnings stay short: {} bytes",
        warnings.len()
    );

    // A new good instance arrives beside the same bad ones: it is published, nothing is lost.
    fleet.push(instance(
        "i-good2",
        "10.0.1.2",
        &[("Name", "good2".to_owned())],
    ));
    write_fleet(dir.path(), fleet);
    wait_for(addr, "good2.internal.", a, &["10.0.1.2"], SOON).await;
    wait_for(addr, "good.internal.", a, &["10.0.1.1"], SOON).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_that_finds_the_served_fleet_builds_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fleet = vec![instance("i-a", "10.0.1.1", &[("Name", "a".to_owned())])];
    let server = file_fleet_server(dir.path(), fleet.clone(), "100ms").await;
    let addr = server.addr();
    wait_for(addr, "a.internal.", RecordType::A, &["10.0.1.1"], SOON).await;
    let builds = || (server.refresh_stats().builds).load(std::sync::atomic::Ordering::Relaxed);
    let first = server.successes();
    crate::ec2::until("five more refreshes", SOON, || {
        server.successes() >= first + 5
    })
    .await;
    assert_eq!(builds(), 1, "refreshes of the same fleet built snapshots");
    let serial = server.snapshot().serial;

    fleet.push(instance("i-b", "10.0.1.2", &[("Name", "b".to_owned())]));
    write_fleet(dir.path(), fleet);
    wait_for(addr, "b.internal.", RecordType::A, &["10.0.1.2"], SOON).await;
    assert_eq!(builds(), 2);
    assert!(server.snapshot().serial > serial);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_instance_without_an_id_is_skipped_and_counted() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let keep = net.launch(&ec2, 3, false, &[("Name", "keep")], &[]).await;
    let bad = net.launch(&ec2, 1, false, &[("Name", "bad")], &[]).await;
    let proxy = Proxy::start(&moto.url).await;
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], "")).await;
    let mut keep_ips = Vec::new();
    for id in &keep {
        keep_ips.push(private_ip(&ec2, id).await);
    }
    let keep_ips: Vec<&str> = keep_ips.iter().map(String::as_str).collect();
    wait_for(
        server.addr(),
        "keep.internal.",
        RecordType::A,
        &keep_ips,
        SOON,
    )
    .await;
    assert_eq!(server.skipped_instances(), 0);

    proxy.set(Mode::StripInstanceId(bad[0].clone()));
    let successes = server.successes();
    crate::ec2::until("two refreshes with the bad answer", SOON, || {
        server.successes() >= successes + 2
    })
    .await;
    assert_eq!(server.skipped_instances(), 1);
    wait_for(
        server.addr(),
        "keep.internal.",
        RecordType::A,
        &keep_ips,
        SOON,
    )
    .await;
    server.stop().await;
}

/// A broken file inventory stops a start with nothing else to serve; with a state file, the
/// server starts from it, as the README says, and picks the file up once it is fixed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_at_start_is_an_error_unless_the_state_file_can_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace(
            "path = \"demo-instances.json\"",
            "path = \"fleet.json\"\nstate_file = \"state.json\"",
        )
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"200ms\"");
    std::fs::write(&path, text).expect("config");
    let config = || {
        let mut c = stabledns::Config::load(&path).expect("config");
        c.server.listen = crate::harness::demo_config().server.listen;
        c
    };
    std::fs::write(dir.path().join("fleet.json"), "{ not json").expect("fleet");
    let Err(e) = TestServer::try_start(config()).await else {
        panic!("a broken file and no state file must not start");
    };
    assert!(e.to_string().contains("fleet.json"), "{e}");

    write_fleet(
        dir.path(),
        vec![instance("i-1", "10.0.0.1", &[("Name", "db1".into())])],
    );
    let server = TestServer::start(config()).await;
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &["10.0.0.1"],
        SOON,
    )
    .await;
    server.stop().await;
    assert!(dir.path().join("state.json").exists());

    std::fs::write(dir.path().join("fleet.json"), "{ not json").expect("fleet");
    let server = TestServer::start(config()).await;
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &["10.0.0.1"],
        SOON,
    )
    .await;
    write_fleet(
        dir.path(),
        vec![instance("i-2", "10.0.0.2", &[("Name", "db1".into())])],
    );
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &["10.0.0.2"],
        SOON,
    )
    .await;
    server.stop().await;
}
