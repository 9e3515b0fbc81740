//! Two replicas that read one fleet give one answer: slot numbers live in the fleet (EC2
//! tags), so replicas with different histories (a restart, a replica down during a change,
//! a lost state file) number every tier alike.

use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::Tag;
use hickory_server::proto::rr::RecordType;

use crate::admin::http_get;
use crate::ec2::until;
use crate::harness::{TestServer, ask, dig, summary};
use crate::moto::{Moto, Network, ec2_config, ec2_config_text};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

const SOON: Duration = Duration::from_secs(20);

/// The tier's slots as a server serves them: (number, instance id), sorted.
pub fn slots(server: &TestServer, tier: &str) -> Vec<(u32, String)> {
    let Some(snapshot) = server.published() else {
        return Vec::new();
    };
    let mut v: Vec<(u32, String)> = (snapshot.slots.get(tier).cloned().unwrap_or_default())
        .into_iter()
        .map(|(id, n)| (n, id))
        .collect();
    v.sort();
    v
}

/// The `stabledns:slot:<tier>` tag of every instance of `ids` that has one, as moto holds it.
async fn slot_tags(ec2: &Client, tier: &str) -> Vec<(u32, String)> {
    let key = format!("stabledns:slot:{tier}");
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await
        .expect("describe");
    let mut v: Vec<(u32, String)> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            let tag = i.tags().iter().find(|t| t.key() == Some(key.as_str()))?;
            let n = tag.value()?.parse().ok()?;
            Some((n, i.instance_id()?.to_owned()))
        })
        .collect();
    v.sort();
    v
}

/// What every slot name of a tier of `size` answers on `server`, in order.
async fn slot_answers(server: &TestServer, tier: &str, size: u32) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for n in 1..=size {
        let name = format!("{n}.{tier}.internal.");
        out.push(summary(&ask(server.addr(), &name, RecordType::A).await));
    }
    out
}

/// Waits until the clock is past the second it reads now: EC2 times (launches, terminations)
/// have one-second precision, and a test whose steps must be told apart by them (which launch
/// is earlier, which change is newer) takes each in a second of its own.
pub async fn next_second() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let start = now();
    while now() == start {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A replica's AXFR of the forward zone and of the reverse zone, SOA serial included, as dig
/// prints it (records sorted: a transfer's order is the server's own).
fn axfr(server: &TestServer) -> Vec<String> {
    let mut lines = Vec::new();
    for zone in ["internal.", "10.in-addr.arpa."] {
        let out = dig(server.addr(), &["AXFR", zone, "+noall", "+answer"]);
        assert!(out.contains("SOA"), "no transfer of {zone}: {out}");
        lines.extend(out.lines().filter(|l| !l.is_empty()).map(str::to_owned));
    }
    lines.sort();
    lines.dedup(); // the SOA opens and closes a transfer
    lines
}

/// The serial a replica serves.
fn serial(server: &TestServer) -> u32 {
    server.published().map_or(0, |s| s.serial)
}

/// `stabledns diff` between two servers' admin endpoints: its exit code and output.
async fn diff(a: &TestServer, b: &TestServer) -> (i32, String) {
    let (a, b) = (a.admin().to_string(), b.admin().to_string());
    let out = tokio::process::Command::new(BIN)
        .args(["diff", "--server", &a, "--server", &b])
        .output()
        .await
        .expect("run stabledns diff");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The content hash a server's /metrics shows.
async fn content_label(server: &TestServer) -> String {
    let (_, body) = http_get(server.admin(), "/metrics").await;
    body.lines()
        .find_map(|l| l.strip_prefix("stabledns_zone_content{hash=\""))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no stabledns_zone_content in /metrics:\n{body}"))
        .to_owned()
}

/// A config from its text, on ephemeral ports, as [`ec2_config`] gives one.
pub fn test_config(text: &str) -> stabledns::Config {
    let mut config =
        stabledns::Config::parse(&crate::harness::root().join("config/test.toml"), text)
            .expect("valid config");
    config.server.listen = crate::harness::demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    config
}

/// With replica `a` serving a tier `svc` of three: a launch-first replacement of slot 2 (a
/// newcomer launched, then slot 2's member terminated), each step in a second of its own,
/// until `a` serves the newcomer as 2. Returns the newcomer.
pub async fn replace_slot_two_launch_first(ec2: &Client, net: &Network, a: &TestServer) -> String {
    until("A numbers three", SOON, || slots(a, "svc").len() == 3).await;
    next_second().await;
    let two = slots(a, "svc")[1].1.clone();
    let d = net
        .launch(ec2, 1, false, &[], &["SG-T-SVC"])
        .await
        .remove(0);
    until("A numbers the overlap", SOON, || slots(a, "svc").len() == 4).await;
    next_second().await;
    terminate(ec2, &two).await;
    until("A moves the newcomer into 2", SOON, || {
        slots(a, "svc").get(1).is_some_and(|(_, id)| *id == d)
    })
    .await;
    d
}

async fn terminate(ec2: &Client, id: &str) {
    ec2.terminate_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("terminate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_different_histories_number_every_tier_alike() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str| {
        let state = dir.path().join(format!("{name}.json"));
        ec2_config(
            &moto.url,
            &["us-east-1"],
            &format!("state_file = \"{}\"", state.display()),
        )
    };
    let first = net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;

    // Replica A sees the whole history: a, b, c, then a launch-first replacement of slot 2.
    // Each change in a second of its own, as changes are in a real fleet: the serial is the
    // newest change's time.
    let a = TestServer::start(config("a")).await;
    until("A numbers three", SOON, || slots(&a, "svc").len() == 3).await;
    next_second().await;
    let before = slots(&a, "svc");
    let mut ids: Vec<String> = before.iter().map(|(_, id)| id.clone()).collect();
    ids.sort();
    let mut launched = first.clone();
    launched.sort();
    assert_eq!(ids, launched);
    let b_id = before[1].1.clone();
    let d = net
        .launch(&ec2, 1, false, &[], &["SG-T-SVC"])
        .await
        .remove(0);
    until("A numbers the overlap", SOON, || {
        slots(&a, "svc").len() == 4
    })
    .await;
    next_second().await;
    terminate(&ec2, &b_id).await;
    until("A moves the newcomer into 2", SOON, || {
        slots(&a, "svc").get(1).is_some_and(|(_, id)| *id == d)
    })
    .await;
    assert_eq!(slots(&a, "svc")[0], before[0], "1 never moves");
    assert_eq!(slots(&a, "svc")[2], before[2], "3 never moves");
    // The numbers are in the fleet now, for any replica to read.
    until_tags(&ec2, "svc", &slots(&a, "svc")).await;

    // Replica B starts after all that, from nothing: the same numbers, the same answers.
    let b = TestServer::start(config("b")).await;
    until("B numbers three", SOON, || slots(&b, "svc").len() == 3).await;
    assert_eq!(slots(&b, "svc"), slots(&a, "svc"));
    assert_eq!(
        slot_answers(&a, "svc", 3).await,
        slot_answers(&b, "svc", 3).await
    );
    assert_eq!(serial(&a), serial(&b), "the same serial for the same fleet");
    assert_eq!(axfr(&a), axfr(&b));
    let (code, out) = diff(&a, &b).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("same: "), "{out}");
    assert_eq!(content_label(&a).await, content_label(&b).await);
    let (_, ready) = http_get(a.admin(), "/readyz").await;
    assert!(
        ready.contains(&format!("content {}", content_label(&a).await)),
        "{ready}"
    );

    // B is down during a terminate-first replacement that A follows.
    b.stop().await;
    next_second().await;
    let three = slots(&a, "svc")[2].1.clone();
    terminate(&ec2, &three).await;
    until("A shrinks to two", SOON, || slots(&a, "svc").len() == 2).await;
    next_second().await;
    let e = net
        .launch(&ec2, 1, false, &[], &["SG-T-SVC"])
        .await
        .remove(0);
    until("A numbers the newcomer", SOON, || {
        slots(&a, "svc").len() == 3
    })
    .await;
    assert_eq!(slots(&a, "svc")[2], (3, e.clone()));
    until_tags(&ec2, "svc", &slots(&a, "svc")).await;
    // B comes back with a state file from before the change: the fleet decides.
    let b = TestServer::start(config("b")).await;
    until("B follows the fleet", SOON, || {
        b.successes() > 0 && slots(&b, "svc") == slots(&a, "svc")
    })
    .await;
    assert_eq!(
        slot_answers(&a, "svc", 3).await,
        slot_answers(&b, "svc", 3).await
    );
    assert_eq!(serial(&a), serial(&b));
    assert_eq!(axfr(&a), axfr(&b));
    b.stop().await;

    // A restarted with its state file deleted serves the same slots as before.
    let served = slots(&a, "svc");
    let (served_serial, served_axfr) = (serial(&a), axfr(&a));
    a.stop().await;
    std::fs::remove_file(dir.path().join("a.json")).expect("remove state file");
    let a = TestServer::start(config("a")).await;
    until("A after losing its state file", SOON, || {
        slots(&a, "svc").len() == 3
    })
    .await;
    assert_eq!(slots(&a, "svc"), served);
    assert_eq!(serial(&a), served_serial);
    assert_eq!(axfr(&a), served_axfr);
    let tags_written = a
        .refresh_stats()
        .slot_tags_written
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(tags_written, 0, "the fleet already held every number");
    a.stop().await;
}

/// Waits until moto holds a slot tag for exactly the numbers in `want`.
async fn until_tags(ec2: &Client, tier: &str, want: &[(u32, String)]) {
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        let got = slot_tags(ec2, tier).await;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slot tags in the fleet: {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copied_and_malformed_slot_tags_are_renumbered_and_retagged() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let first = net.launch(&ec2, 2, false, &[], &["SG-T-SVC"]).await;
    let server = TestServer::start(ec2_config(&moto.url, &["us-east-1"], "")).await;
    until("two slots", SOON, || slots(&server, "svc").len() == 2).await;
    let kept = slots(&server, "svc");
    until_tags(&ec2, "svc", &kept).await;
    let holder_of_1 = kept[0].1.clone();
    next_second().await;

    // A launch template that copies tags gives a newcomer slot 1 too; another gets nonsense.
    let copied = net
        .launch(
            &ec2,
            1,
            false,
            &[("stabledns:slot:svc", "1")],
            &["SG-T-SVC"],
        )
        .await
        .remove(0);
    let odd = net
        .launch(
            &ec2,
            1,
            false,
            &[("stabledns:slot:svc", "banana")],
            &["SG-T-SVC"],
        )
        .await
        .remove(0);
    until("four slots", SOON, || slots(&server, "svc").len() == 4).await;
    let now = slots(&server, "svc");
    assert_eq!(
        now[0],
        (1, holder_of_1.clone()),
        "the earlier launch keeps 1"
    );
    assert_eq!(now[1], kept[1], "2 never moves");
    let renumbered: Vec<&String> = now[2..].iter().map(|(_, id)| id).collect();
    assert!(
        renumbered.contains(&&copied) && renumbered.contains(&&odd),
        "{now:?}"
    );
    // Written back, so the next read (on any replica) needs no fixing.
    until_tags(&ec2, "svc", &now).await;
    until("a build without fixes", SOON, || {
        server
            .published()
            .is_some_and(|s| s.slot_fixes == stabledns::naming::SlotFixes::default())
    })
    .await;
    assert_eq!(slots(&server, "svc"), now);
    // `_explain` said why, while the tags were wrong; the copied one no longer fights for 1.
    let one = summary(&ask(server.addr(), "1.svc.internal.", RecordType::A).await);
    assert_eq!(one.len(), 1);

    // A hand edit to a number above the tier's size: renumbered into the free one.
    ec2.create_tags()
        .resources(&first[0])
        .resources(&first[1])
        .tags(Tag::builder().key("stabledns:slot:svc").value("99").build())
        .send()
        .await
        .expect("tag");
    until_tags(&ec2, "svc", &slots(&server, "svc")).await;
    assert_eq!(slots(&server, "svc").len(), 4);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_file_replicas_may_disagree_and_diff_says_where() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str| {
        let state = dir.path().join(format!("{name}.json"));
        let text = ec2_config_text(
            &moto.url,
            &["us-east-1"],
            &format!("state_file = \"{}\"", state.display()),
        )
        .replace("[naming]\n", "[naming]\nslot_numbers = \"state-file\"\n");
        test_config(&text)
    };
    net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;
    let a = TestServer::start(config("a")).await;
    replace_slot_two_launch_first(&ec2, &net, &a).await;
    // Read-only: nothing was written to the fleet.
    assert!(slot_tags(&ec2, "svc").await.is_empty());

    // B starts from nothing and numbers by launch order: 2 and 3 swap.
    let b = TestServer::start(config("b")).await;
    until("B numbers three", SOON, || slots(&b, "svc").len() == 3).await;
    assert_ne!(slots(&a, "svc"), slots(&b, "svc"));
    let (code, out) = diff(&a, &b).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("2.svc.internal.") && out.contains("3.svc.internal."),
        "{out}"
    );
    assert_ne!(content_label(&a).await, content_label(&b).await);
    a.stop().await;
    b.stop().await;
}

/// [`ec2_config_text`] publishing the inside view to `zone` through `r53` (moto, or a proxy
/// in front of it).
fn publishing_config_text(moto: &Moto, r53: &str, zone: &str, state: &std::path::Path) -> String {
    format!(
        "{}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\nhosted_zone_id = \"{zone}\"\n\
         owner_id = \"replicas\"\nrequests_per_second = 50\nendpoint_url = \"{r53}\"\n",
        ec2_config_text(
            &moto.url,
            &["us-east-1"],
            &format!("state_file = \"{}\"", state.display()),
        )
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_publishing_one_zone_never_rewrite_each_other() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let r53 = crate::publish::client(&moto);
    let zone = crate::publish::private_zone(&r53, "internal.").await;
    let proxy = crate::proxy::Proxy::start(&moto.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str| {
        let state = dir.path().join(format!("{name}.json"));
        let text = publishing_config_text(&moto, &proxy.url, &zone, &state);
        test_config(&text)
    };
    net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;
    let a = TestServer::start(config("a")).await;
    let d = replace_slot_two_launch_first(&ec2, &net, &a).await;
    let d_ip = crate::moto::private_ip(&ec2, &d).await;
    let want = format!("2.svc.internal. A {d_ip}");
    let deadline = tokio::time::Instant::now() + SOON;
    while !crate::publish::list(&r53, &zone).await.contains(&want) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{want} never published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // B starts after all that: its first sync finds the zone as it would write it.
    let before = proxy.r53_changes();
    let b = TestServer::start(config("b")).await;
    until("B synced", SOON, || {
        (b.publish_counts())
            .get(&zone)
            .is_some_and(|c| c.last_success_unix > 0)
    })
    .await;
    assert_eq!(slots(&a, "svc"), slots(&b, "svc"));
    // Ten refreshes of each, an unchanged fleet: not one change from either.
    let (sa, sb) = (a.successes(), b.successes());
    until("ten refreshes of each", SOON, || {
        a.successes() >= sa + 10 && b.successes() >= sb + 10
    })
    .await;
    assert_eq!(
        proxy.r53_changes(),
        before,
        "a replica rewrote the other's records"
    );
    assert_eq!(serial(&a), serial(&b));
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_once_from_a_timer_keeps_slot_numbers_in_the_fleet() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let r53 = crate::publish::client(&moto);
    let zone = crate::publish::private_zone(&r53, "internal.").await;
    let dir = tempfile::tempdir().expect("tempdir");
    // No state file: a timer's run remembers nothing of the last.
    let path = dir.path().join("stabledns.toml");
    let text = publishing_config_text(&moto, &moto.url, &zone, &dir.path().join("unused.json"))
        .replace(
            &format!(
                "state_file = \"{}\"",
                dir.path().join("unused.json").display()
            ),
            "",
        );
    std::fs::write(&path, text).expect("config");
    let once = || {
        let out = std::process::Command::new(BIN)
            .args(["publish", "--once", "--config"])
            .arg(&path)
            .output()
            .expect("run publish --once");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let first = net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;
    once();
    let tags = slot_tags(&ec2, "svc").await;
    assert_eq!(tags.len(), 3, "{tags:?}");
    let slot = |n: u32| tags.iter().find(|(k, _)| *k == n).map(|(_, id)| id.clone());
    // A launch-first replacement of slot 2, a run during the overlap and one after.
    next_second().await;
    let d = net
        .launch(&ec2, 1, false, &[], &["SG-T-SVC"])
        .await
        .remove(0);
    once();
    let two = slot(2).expect("slot 2");
    assert!(first.contains(&two));
    next_second().await;
    terminate(&ec2, &two).await;
    once();
    let after = slot_tags(&ec2, "svc").await;
    assert_eq!(
        after,
        [
            (1, slot(1).expect("1")),
            (2, d.clone()),
            (3, slot(3).expect("3"))
        ],
        "only the replaced number changed hands"
    );
    let records = crate::publish::list(&r53, &zone).await;
    let d_ip = crate::moto::private_ip(&ec2, &d).await;
    assert!(
        records.contains(&format!("2.svc.internal. A {d_ip}")),
        "{records:?}"
    );
}

/// A describe-instances dump of `svc` members: (id, launch second, state, slot tag).
fn dump(members: &[(&str, u32, &str, Option<&str>)]) -> String {
    let instances: Vec<serde_json::Value> = members
        .iter()
        .enumerate()
        .map(|(i, (id, launched, state, slot))| {
            let mut tags = vec![serde_json::json!({"Key": "Name", "Value": format!("host-{id}")})];
            if let Some(n) = slot {
                tags.push(serde_json::json!({"Key": "stabledns:slot:svc", "Value": n}));
            }
            let reason = if *state == "terminated" {
                "User initiated (2026-12-01 12:00:00 GMT)"
            } else {
                ""
            };
            serde_json::json!({
                "InstanceId": id,
                "State": {"Name": state},
                "LaunchTime": format!("2026-12-01T10:00:{launched:02}+00:00"),
                "StateTransitionReason": reason,
                "Placement": {"AvailabilityZone": "eu-west-1a"},
                "PrivateIpAddress": format!("10.1.0.{}", i + 10),
                "Tags": tags,
                "SecurityGroups": [{"GroupId": "sg-1", "GroupName": "SG-T-SVC"}],
            })
        })
        .collect();
    serde_json::json!({"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_replicas_serve_the_dump_s_slot_tags_alike() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str| {
        let path = dir.path().join(format!("{name}.toml"));
        let text = std::fs::read_to_string(crate::harness::root().join("config/demo.toml"))
            .expect("demo")
            .replace(
                "path = \"demo-instances.json\"",
                &format!("path = \"fleet-{name}.json\"\nstate_file = \"{name}-state.json\""),
            )
            .replace("refresh_interval = \"30s\"", "refresh_interval = \"200ms\"");
        std::fs::write(&path, &text).expect("config");
        let mut config = stabledns::Config::load(&path).expect("valid config");
        config.server.listen = crate::harness::demo_config().server.listen;
        crate::harness::ephemeral_admin(&mut config);
        config
    };
    let write = |name: &str, text: &str| {
        // Renamed into place, so a refresh never reads half a file.
        let tmp = dir.path().join(format!("fleet-{name}.tmp"));
        std::fs::write(&tmp, text).expect("fleet");
        std::fs::rename(&tmp, dir.path().join(format!("fleet-{name}.json"))).expect("rename");
    };
    // A sees the history, as an EC2 replica tagged it: a, b, c; d launched; b terminated.
    write(
        "a",
        &dump(&[
            ("i-a", 1, "running", Some("1")),
            ("i-b", 2, "running", Some("2")),
            ("i-c", 3, "running", Some("3")),
        ]),
    );
    let a = TestServer::start(config("a")).await;
    until("A numbers three", SOON, || slots(&a, "svc").len() == 3).await;
    write(
        "a",
        &dump(&[
            ("i-a", 1, "running", Some("1")),
            ("i-b", 2, "running", Some("2")),
            ("i-c", 3, "running", Some("3")),
            ("i-d", 4, "running", Some("4")),
        ]),
    );
    until("A numbers four", SOON, || slots(&a, "svc").len() == 4).await;
    let last = dump(&[
        ("i-a", 1, "running", Some("1")),
        ("i-b", 2, "terminated", Some("2")),
        ("i-c", 3, "running", Some("3")),
        ("i-d", 4, "running", Some("2")),
    ]);
    write("a", &last);
    until("A moves i-d into 2", SOON, || {
        slots(&a, "svc") == [(1, "i-a".into()), (2, "i-d".into()), (3, "i-c".into())]
    })
    .await;
    // B reads only the last dump.
    write("b", &last);
    let b = TestServer::start(config("b")).await;
    until("B numbers three", SOON, || slots(&b, "svc").len() == 3).await;
    assert_eq!(slots(&a, "svc"), slots(&b, "svc"));
    assert_eq!(
        slot_answers(&a, "svc", 3).await,
        slot_answers(&b, "svc", 3).await
    );
    // The serial is the termination's time, on both.
    assert_eq!(serial(&b), 1_796_126_400, "2026-12-01 12:00:00 UTC");
    assert_eq!(serial(&a), serial(&b));
    assert_eq!(axfr(&a), axfr(&b));

    // Without tags a dump cannot keep numbers, but replicas still agree: the fleet alone
    // decides, never one replica's memory.
    let untagged = dump(&[
        ("i-a", 1, "running", None),
        ("i-c", 3, "running", None),
        ("i-d", 4, "running", None),
    ]);
    write("a", &untagged);
    write("b", &untagged);
    until("both renumber from the fleet", SOON, || {
        slots(&a, "svc") == [(1, "i-a".into()), (2, "i-c".into()), (3, "i-d".into())]
            && slots(&b, "svc") == slots(&a, "svc")
    })
    .await;
    a.stop().await;
    b.stop().await;
}

/// unbound (a real resolver) with `servers` as the stub zone's addresses, caching nothing, so
/// every query reaches one of them; killed on drop.
struct Unbound {
    _process: crate::harness::Logged,
    addr: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Unbound {
    async fn start(servers: &[std::net::SocketAddr]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .and_then(|s| s.local_addr())
            .expect("a free port")
            .port();
        let stubs: String = servers
            .iter()
            .map(|s| format!("  stub-addr: {}@{}\n", s.ip(), s.port()))
            .collect();
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-daemonize: no\n  \
             use-syslog: no\n  logfile: \"\"\n  chroot: \"\"\n  username: \"\"\n  \
             directory: \"{dir}\"\n  pidfile: \"{dir}/unbound.pid\"\n  num-threads: 1\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  \
             module-config: \"iterator\"\n  qname-minimisation: no\n  cache-max-ttl: 0\n  \
             cache-max-negative-ttl: 0\n  prefetch: no\n  \
             # Every stub address in one RTT band, so queries go to both.\n  \
             infra-keep-probing: yes\n  \
             # A replica slow to answer on a busy machine is tried again within seconds,\n  \
             # not after the default 15 minutes.\n  \
             infra-host-ttl: 2\n\
             stub-zone:\n  name: \"internal.\"\n{stubs}",
            dir = dir.path().display()
        );
        let file = dir.path().join("unbound.conf");
        std::fs::write(&file, conf).expect("unbound.conf");
        let checked = std::process::Command::new("unbound-checkconf")
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run unbound-checkconf ({e}): scripts/test installs unbound")
            });
        assert!(
            checked.status.success(),
            "{}",
            String::from_utf8_lossy(&checked.stdout)
        );
        let mut process = crate::harness::Logged::spawn(
            std::process::Command::new("unbound")
                .args(["-d", "-c"])
                .arg(&file),
        );
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        // unbound's start and its first recursion through both replicas: a minute, as a CI
        // run once took past 20 s here with the whole suite on two cores.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let out = tokio::task::spawn_blocking(move || {
                dig(
                    addr,
                    &["+short", "+tries=1", "+time=1", "1.svc.internal.", "A"],
                )
            })
            .await
            .expect("dig ran");
            if !out.trim().is_empty() && !out.contains(";;") {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                // Whose fault: the replicas asked directly, and unbound's own log.
                let direct: Vec<String> = servers
                    .iter()
                    .map(|s| {
                        dig(
                            *s,
                            &["+short", "+tries=1", "+time=2", "1.svc.internal.", "A"],
                        )
                    })
                    .collect();
                panic!(
                    "unbound never answered (last dig: {out}); the replicas directly: \
                     {direct:?}; unbound's log:\n{}",
                    process.read_now().join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            _process: process,
            addr,
            _dir: dir,
        }
    }
}

/// UDP queries a server answered (fast path and handler).
fn answered(server: &TestServer) -> u64 {
    let (fast, slow) = server.udp_counts();
    fast + slow
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbound_over_two_replicas_gives_one_answer_per_slot_name() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = |name: &str| {
        let state = dir.path().join(format!("{name}.json"));
        ec2_config(
            &moto.url,
            &["us-east-1"],
            &format!("state_file = \"{}\"", state.display()),
        )
    };
    net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;
    // A replacement that A sees through and B only after: different histories.
    let a = TestServer::start(config("a")).await;
    replace_slot_two_launch_first(&ec2, &net, &a).await;
    let b = TestServer::start(config("b")).await;
    until("B numbers three", SOON, || slots(&b, "svc").len() == 3).await;

    let unbound = Unbound::start(&[a.addr(), b.addr()]).await;
    let (before_a, before_b) = (answered(&a), answered(&b));
    for n in 1..=3 {
        let name = format!("{n}.svc.internal.");
        let mut seen = std::collections::BTreeSet::new();
        // dig, which retries a lost UDP datagram as a stub resolver does: a lost packet on a
        // busy machine is not a wrong answer. Nor is a stray datagram on a shared loopback
        // (once, a packet without the QR bit reached dig: unbound never sends one, another
        // test's socket did): dig's own `;;` lines are not answers, and a reply with none is
        // asked again, twice at most.
        let (addr, asked) = (unbound.addr, name.clone());
        let answers = tokio::task::spawn_blocking(move || {
            (0..200)
                .map(|_| {
                    let mut out = String::new();
                    for _ in 0..3 {
                        out = dig(addr, &["+short", "+tries=3", "+time=2", &asked, "A"]);
                        out = (out.lines())
                            .filter(|l| !l.starts_with(";;"))
                            .map(|l| format!("{l}\n"))
                            .collect();
                        if !out.trim().is_empty() {
                            break;
                        }
                    }
                    out
                })
                .collect::<Vec<String>>()
        })
        .await
        .expect("dig ran");
        for out in answers {
            assert!(!out.trim().is_empty(), "{name}: no answer: {out}");
            seen.insert(out);
        }
        assert_eq!(seen.len(), 1, "{name} answered {seen:?}");
    }
    // Both replicas answered: the one answer is not one replica's.
    let (by_a, by_b) = (answered(&a) - before_a, answered(&b) - before_b);
    assert!(by_a > 0 && by_b > 0, "A answered {by_a}, B {by_b}");
    a.stop().await;
    b.stop().await;
}
