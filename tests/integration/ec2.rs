//! The EC2 inventory end to end: fleets built in moto, served over DNS after a refresh.

use std::time::Duration;

use hickory_server::proto::rr::RecordType;

use crate::harness::{TestServer, wait_for};
use crate::moto::{Moto, Network, ec2_config, private_ip, public_dns};
use crate::proxy::{Mode, Proxy};

const SOON: Duration = Duration::from_secs(15);

fn fqdn(name: &str) -> String {
    format!("{name}.")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launches_tag_changes_stops_starts_and_replacements_show_after_a_refresh() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let web = net
        .launch(&ec2, 2, true, &[("team", "shop")], &["SG-T-WEB"])
        .await;
    let db1 = net
        .launch(
            &ec2,
            1,
            true,
            &[("Name", "db-primary")],
            &["SG-T-DB", "SG-I-DB1"],
        )
        .await;
    let worker = net
        .launch(&ec2, 1, false, &[("Name", "worker")], &["SG-T-JOBS"])
        .await;
    let db1 = db1[0].clone();
    let worker = worker[0].clone();

    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], "")).await;
    let addr = server.addr();

    // A single-instance name is a CNAME to the instance's public DNS name.
    let db1_public = fqdn(&public_dns(&ec2, &db1).await.expect("db1 has a public name"));
    wait_for(
        addr,
        "db1.internal.",
        RecordType::CNAME,
        &[&db1_public],
        SOON,
    )
    .await;
    wait_for(
        addr,
        "db-primary.internal.",
        RecordType::CNAME,
        &[&db1_public],
        SOON,
    )
    .await;
    // A tier answers its private addresses; a private-only instance its private address.
    let web_ips = [
        private_ip(&ec2, &web[0]).await,
        private_ip(&ec2, &web[1]).await,
    ];
    wait_for(
        addr,
        "web.internal.",
        RecordType::A,
        &[&web_ips[0], &web_ips[1]],
        SOON,
    )
    .await;
    let worker_ip = private_ip(&ec2, &worker).await;
    wait_for(addr, "worker.internal.", RecordType::A, &[&worker_ip], SOON).await;
    wait_for(
        addr,
        &format!("{worker}.internal."),
        RecordType::A,
        &[&worker_ip],
        SOON,
    )
    .await;

    // Unchanged refreshes keep the serial.
    let serial = server.running_serial().expect("published");
    let seen = server.successes();
    while server.successes() < seen + 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        server.running_serial(),
        Some(serial),
        "an unchanged fleet changed the serial"
    );

    // A tag change renames.
    ec2.create_tags()
        .resources(&worker)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key("Name")
                .value("cruncher")
                .build(),
        )
        .send()
        .await
        .expect("tag");
    wait_for(
        addr,
        "cruncher.internal.",
        RecordType::A,
        &[&worker_ip],
        SOON,
    )
    .await;
    wait_for(
        addr,
        "worker.internal.",
        RecordType::A,
        &["Non-Existent Domain"],
        SOON,
    )
    .await;
    assert!(
        server.running_serial() > Some(serial),
        "a change must raise the serial"
    );

    // Stop: the name goes. Start: it comes back with the new public name.
    ec2.stop_instances()
        .instance_ids(&db1)
        .send()
        .await
        .expect("stop");
    wait_for(
        addr,
        "db1.internal.",
        RecordType::A,
        &["Non-Existent Domain"],
        SOON,
    )
    .await;
    ec2.start_instances()
        .instance_ids(&db1)
        .send()
        .await
        .expect("start");
    let restarted = fqdn(
        &public_dns(&ec2, &db1)
            .await
            .expect("public name after start"),
    );
    wait_for(
        addr,
        "db1.internal.",
        RecordType::CNAME,
        &[&restarted],
        SOON,
    )
    .await;

    // Replacement: the old db1 terminates, a new one takes the group and the name.
    ec2.terminate_instances()
        .instance_ids(&db1)
        .send()
        .await
        .expect("terminate");
    let new_db1 = net
        .launch(&ec2, 1, true, &[], &["SG-T-DB", "SG-I-DB1"])
        .await;
    let new_public = fqdn(&public_dns(&ec2, &new_db1[0]).await.expect("public name"));
    wait_for(
        addr,
        "db1.internal.",
        RecordType::CNAME,
        &[&new_public],
        SOON,
    )
    .await;
    wait_for(
        addr,
        &format!("{db1}.internal."),
        RecordType::A,
        &["Non-Existent Domain"],
        SOON,
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_regions_are_merged() {
    let moto = Moto::start();
    let east = moto.client("us-east-1");
    let west = moto.client("eu-west-1");
    let east_net = Network::create(&east).await;
    let west_net = Network::create_in(&west, 21).await;
    let a = east_net
        .launch(&east, 1, false, &[("Name", "api")], &["SG-T-API"])
        .await;
    let b = west_net
        .launch(&west, 1, false, &[("Name", "api")], &["SG-T-API"])
        .await;
    let ips = [
        private_ip(&east, &a[0]).await,
        private_ip(&west, &b[0]).await,
    ];
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1", "eu-west-1"], "")).await;
    wait_for(
        server.addr(),
        "api.internal.",
        RecordType::A,
        &[&ips[0], &ips[1]],
        SOON,
    )
    .await;
    let snapshot = server.snapshot();
    assert!(
        snapshot
            .names()
            .contains_key(&format!("{}.internal.", b[0]))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_serves_the_state_file_while_the_api_is_down_and_serials_only_grow() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let extra = format!("state_file = \"{}\"", state.display());

    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let db = net.launch(&ec2, 1, false, &[("Name", "db")], &[]).await;
    let db_ip = private_ip(&ec2, &db[0]).await;
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "db.internal.",
        RecordType::A,
        &[&db_ip],
        SOON,
    )
    .await;
    let first_serial = server.running_serial().expect("serial");
    server.stop().await;
    let dead_url = moto.url.clone();
    drop(moto);

    // The API is gone: the restarted server answers from the state file within a second.
    let started = tokio::time::Instant::now();
    let server = TestServer::start(ec2_config(&dead_url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "db.internal.",
        RecordType::A,
        &[&db_ip],
        Duration::from_secs(1),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(
        server.running_serial(),
        Some(first_serial),
        "same data, same serial"
    );
    // Refreshes fail, and the names stay.
    while server.failures() < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    wait_for(
        server.addr(),
        "db.internal.",
        RecordType::A,
        &[&db_ip],
        SOON,
    )
    .await;
    server.stop().await;

    // A new API with another fleet: the serial moves forward from the saved one.
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let db = net.launch(&ec2, 2, false, &[("Name", "db")], &[]).await;
    let ips = [
        private_ip(&ec2, &db[0]).await,
        private_ip(&ec2, &db[1]).await,
    ];
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "db.internal.",
        RecordType::A,
        &[&ips[0], &ips[1]],
        SOON,
    )
    .await;
    assert!(server.running_serial() > Some(first_serial));
    server.stop().await;

    // A corrupt state file is ignored, never a crash.
    std::fs::write(&state, b"{ not json").expect("write");
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "db.internal.",
        RecordType::A,
        &[&ips[0], &ips[1]],
        SOON,
    )
    .await;
    server.stop().await;
}

/// Waits until `cond` holds, polling; panics with `what` after `within`.
pub async fn until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_page() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    for _ in 0..12 {
        net.launch(&ec2, 100, false, &[], &["SG-T-FLEET"]).await;
    }
    let proxy = Proxy::start(&moto.url).await;
    // moto takes seconds to describe 1,200 instances, and the proxy asks it once per page.
    let extra = "page_size = 500\napi_timeout = \"60s\"\nrefresh_interval = \"1h\"";
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], extra)).await;
    until("the first refresh", Duration::from_secs(180), || {
        server.successes() > 0
    })
    .await;
    let snapshot = server.snapshot();
    assert_eq!(snapshot.instance_count, 1200);
    assert_eq!(snapshot.names()["fleet.internal."].len(), 1200);
    // 500 + 500 + 200 instances: three pages for the one refresh.
    assert!(
        proxy.describe_calls() >= 3,
        "only {} pages",
        proxy.describe_calls()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_faults_keep_the_last_good_answers_back_off_and_recover() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    // Four reservations of two: with page_size 5 every walk takes two pages.
    for tier in ["app", "app", "db", "jobs"] {
        net.launch(&ec2, 2, false, &[], &[&format!("SG-T-{tier}")])
            .await;
    }
    let proxy = Proxy::start(&moto.url).await;
    let extra = "page_size = 5\nconfirm_refreshes = 1000";
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], extra)).await;
    until("the first refresh", SOON, || server.successes() > 0).await;

    for (round, mode) in [
        Mode::ServerError,
        Mode::Throttle,
        Mode::Hang,
        Mode::FailLaterPages,
        Mode::Garbage,
        Mode::Truncated,
        Mode::Empty,
    ]
    .into_iter()
    .enumerate()
    {
        // A change that a successful refresh would publish.
        let added = net
            .launch(&ec2, 1, false, &[("Name", &format!("new{round}"))], &[])
            .await;
        let ip = private_ip(&ec2, &added[0]).await;
        let before = server.snapshot();
        proxy.set(mode.clone());
        if mode == Mode::Empty {
            // Success with nothing in it is refused, never published (not a failure either).
            let stats = server.refresh_stats();
            let refusals =
                || (stats.empty_fleet_refusals).load(std::sync::atomic::Ordering::Relaxed);
            let before = refusals();
            until("two refused empty refreshes", SOON, || {
                refusals() >= before + 2
            })
            .await;
        } else {
            let failures = server.failures();
            until(&format!("two failures under {mode:?}"), SOON * 2, || {
                server.failures() >= failures + 2
            })
            .await;
            let (n, delay) = server.last_backoff();
            assert!(
                n >= 2 && delay > Duration::from_millis(1500),
                "{mode:?}: backoff {n} {delay:?}"
            );
        }
        // Exactly the last good answers are still served.
        let during = server.snapshot();
        assert_eq!(during.serial, before.serial, "{mode:?}");
        assert_eq!(during.names(), before.names(), "{mode:?}");
        crate::harness::wait_for(
            server.addr(),
            &format!("new{round}.internal."),
            RecordType::A,
            &["Non-Existent Domain"],
            SOON,
        )
        .await;
        // Recovery publishes the new fleet.
        proxy.set(Mode::Pass);
        wait_for(
            server.addr(),
            &format!("new{round}.internal."),
            RecordType::A,
            &[&ip],
            SOON * 2,
        )
        .await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_valve_publishes_a_shrink_only_once_confirmed_or_when_off() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    // svc and four instance ids: five names. Losing three of the instances removes 60%.
    let ids = net.launch(&ec2, 4, false, &[("Name", "svc")], &[]).await;
    let proxy = Proxy::start(&moto.url).await;
    let server = TestServer::start(ec2_config(
        &proxy.url,
        &["us-east-1"],
        "confirm_refreshes = 3",
    ))
    .await;
    until("the first refresh", SOON, || server.successes() > 0).await;
    let ip = private_ip(&ec2, &ids[0]).await;
    wait_for(
        server.addr(),
        &format!("{}.internal.", ids[0]),
        RecordType::A,
        &[&ip],
        SOON,
    )
    .await;

    // The shrink is held for two refreshes and published on the third.
    ec2.terminate_instances()
        .set_instance_ids(Some(ids[1..].to_vec()))
        .send()
        .await
        .expect("terminate");
    until("the shrink to be published", SOON, || {
        server.snapshot().name_total() == 2
    })
    .await;
    assert_eq!(
        server.valve_trips(),
        2,
        "held exactly confirm_refreshes - 1 times"
    );
    server.stop().await;

    // With the valve off, it is published at once.
    let more = net.launch(&ec2, 3, false, &[("Name", "svc")], &[]).await;
    let off = "max_removed_fraction = 1.0";
    let server = TestServer::start(ec2_config(&proxy.url, &["us-east-1"], off)).await;
    until("the first refresh", SOON, || server.successes() > 0).await;
    assert_eq!(server.snapshot().name_total(), 5);
    ec2.terminate_instances()
        .set_instance_ids(Some(more))
        .send()
        .await
        .expect("terminate");
    until("the shrink", SOON, || server.snapshot().name_total() == 2).await;
    assert_eq!(server.valve_trips(), 0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_instance_field_is_filled_from_the_api() {
    use stabledns::inventory::{InstanceState, Source};
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let id = net
        .launch(
            &ec2,
            1,
            true,
            &[("Name", "db1"), ("team", "data")],
            &["SG-I-DB1"],
        )
        .await
        .remove(0);
    let config = ec2_config(&moto.url, &["eu-west-1"], "");
    let source = Source::from_config(&config.inventory).await;
    let fleet = source.fetch().await.expect("fetch").instances;
    let [inst] = &fleet[..] else {
        panic!("one instance expected: {fleet:?}")
    };
    assert_eq!(inst.id, id);
    assert_eq!(inst.state, InstanceState::Running);
    assert!(inst.launch_time.is_some());
    assert_eq!(inst.region(), Some("eu-west-1"));
    assert!(
        inst.availability_zone()
            .is_some_and(|z| z.starts_with("eu-west-1"))
    );
    assert!(
        inst.account().is_some_and(|a| a.len() == 12),
        "{:?}",
        inst.account()
    );
    assert!(inst.vpc_id().is_some_and(|v| v.starts_with("vpc-")));
    assert_eq!(inst.subnet_id(), Some(net.public_subnet.as_str()));
    assert_eq!(
        inst.private_ip.map(|ip| ip.to_string()),
        Some(private_ip(&ec2, &id).await)
    );
    assert!(inst.private_dns_name.is_some());
    assert!(inst.public_ip.is_some());
    assert_eq!(
        inst.public_dns_name.as_deref(),
        public_dns(&ec2, &id).await.as_deref()
    );
    assert_eq!(inst.tags.get("team"), Some("data"));
    assert!(
        inst.security_groups
            .iter()
            .any(|g| g.name == "SG-I-DB1" && g.id.starts_with("sg-"))
    );
    // Stopped instances are filtered out by the API (instance-state-name from naming.states).
    ec2.stop_instances()
        .instance_ids(&id)
        .send()
        .await
        .expect("stop");
    assert!(source.fetch().await.expect("fetch").instances.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assumed_roles_add_other_accounts_fleets() {
    let moto = Moto::start();
    let own = moto.client("us-east-1");
    let role = "arn:aws:iam::111111111111:role/stabledns-read";
    let other = moto.assumed_client("us-east-1", role).await;
    let own_net = Network::create(&own).await;
    let other_net = Network::create_in(&other, 22).await;
    let a = own_net
        .launch(&own, 1, false, &[("Name", "ledger")], &[])
        .await;
    let b = other_net
        .launch(&other, 1, false, &[("Name", "ledger")], &[])
        .await;
    let ips = [
        private_ip(&own, &a[0]).await,
        private_ip(&other, &b[0]).await,
    ];
    let extra = format!("assume_roles = [\"{role}\"]");
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "ledger.internal.",
        RecordType::A,
        &[&ips[0], &ips[1]],
        SOON,
    )
    .await;
    server.stop().await;

    // Only the other account when the own one is switched off.
    let extra = format!("{extra}\nown_account = false");
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], &extra)).await;
    wait_for(
        server.addr(),
        "ledger.internal.",
        RecordType::A,
        &[&ips[1]],
        SOON,
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_does_not_wait_for_an_unreachable_api() {
    // A loopback port nothing listens on: connection refused, every time.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    let started = tokio::time::Instant::now();
    let server = TestServer::start(ec2_config(&dead, &["us-east-1"], "")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start blocked {:?}",
        started.elapsed()
    );
    // Nothing to serve yet: SERVFAIL (not NXDOMAIN, which resolvers would cache as an answer).
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &["Server Failure"],
        SOON,
    )
    .await;
    until("failed refreshes", SOON, || server.failures() >= 2).await;
    wait_for(
        server.addr(),
        "internal.",
        RecordType::SOA,
        &["Server Failure"],
        SOON,
    )
    .await;
    server.stop().await;
}

/// An API failure reads as one line with the service's code, message and status, not the
/// SDK's debug form of the request and answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_error_is_one_readable_line() {
    let moto = Moto::start();
    let proxy = Proxy::start(&moto.url).await;
    proxy.set(Mode::ServerError);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stabledns.toml");
    let text = crate::moto::ec2_config_text(&proxy.url, &["us-east-1"], "");
    std::fs::write(&path, text).expect("config");
    // Blocking, off the runtime: the proxy answers on it meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_stabledns"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
    })
    .await
    .expect("joined")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.contains("InternalError: injected by the test proxy (HTTP 500)"),
        "{stderr}"
    );
    for debug in ["SdkBody", "headers", "ServiceError {"] {
        assert!(!stderr.contains(debug), "{debug} in: {stderr}");
    }
}
