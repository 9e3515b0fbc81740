//! Publishing to Route 53 through `stabledns publish`, against moto's Route 53: the demo's
//! inside view into a private hosted zone, beside records stabledns does not own.

use std::path::Path;
use std::process::Command;

use aws_sdk_route53::Client;
use aws_sdk_route53::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HostedZoneConfig, ResourceRecord, ResourceRecordSet, RrType,
    Vpc, VpcRegion,
};

use crate::harness::root;
use crate::moto::Moto;
use crate::proxy::{Proxy, R53Fault};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

pub fn client(moto: &Moto) -> Client {
    let config = aws_sdk_route53::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .http_client(crate::moto::http())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
        .endpoint_url(&moto.url)
        .build();
    Client::from_conf(config)
}

/// A private hosted zone; its id without `/hostedzone/`.
pub async fn private_zone(r53: &Client, name: &str) -> String {
    private_zone_named(r53, name, "tests").await
}

/// Another private hosted zone of the same name (Route 53 keeps them apart by caller
/// reference and id).
pub async fn private_zone_named(r53: &Client, name: &str, reference: &str) -> String {
    let out = r53
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("{reference}-{name}"))
        .hosted_zone_config(HostedZoneConfig::builder().private_zone(true).build())
        .vpc(
            Vpc::builder()
                .vpc_region(VpcRegion::UsEast1)
                .vpc_id("vpc-12345678")
                .build(),
        )
        .send()
        .await
        .expect("create zone");
    let id = out.hosted_zone().expect("zone").id();
    id.trim_start_matches("/hostedzone/").to_owned()
}

async fn put(r53: &Client, zone: &str, name: &str, rtype: RrType, values: &[&str]) {
    change(r53, zone, ChangeAction::Create, (name, rtype, 300), values).await;
}

/// One change to `zone` made outside stabledns (an operator, another tool).
pub(crate) async fn change(
    r53: &Client,
    zone: &str,
    action: ChangeAction,
    (name, rtype, ttl): (&str, RrType, i64),
    values: &[&str],
) {
    let records = values
        .iter()
        .map(|v| ResourceRecord::builder().value(*v).build().expect("record"))
        .collect();
    let set = ResourceRecordSet::builder()
        .name(name)
        .r#type(rtype)
        .ttl(ttl)
        .set_resource_records(Some(records))
        .build()
        .expect("set");
    let change = Change::builder()
        .action(action)
        .resource_record_set(set)
        .build()
        .expect("change");
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(
            ChangeBatch::builder()
                .changes(change)
                .build()
                .expect("batch"),
        )
        .send()
        .await
        .expect("change");
}

/// Every record set: "name TYPE value value".
pub async fn list(r53: &Client, zone: &str) -> Vec<String> {
    let mut out: Vec<String> = (list_sets(r53, zone).await.into_iter())
        .map(|(name, rtype, _, values)| format!("{name} {rtype} {}", values.join(" ")))
        .collect();
    out.sort();
    out
}

/// Every record set: (name, type, TTL, values sorted).
async fn list_sets(r53: &Client, zone: &str) -> Vec<(String, String, i64, Vec<String>)> {
    let mut out = Vec::new();
    let mut start: Option<(String, RrType)> = None;
    loop {
        let mut call = r53
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .max_items(100);
        if let Some((name, rtype)) = start.take() {
            call = call.start_record_name(name).start_record_type(rtype);
        }
        let page = call.send().await.expect("list");
        for s in page.resource_record_sets() {
            let mut values: Vec<String> = (s.resource_records().iter())
                .map(|r| r.value().to_owned())
                .collect();
            values.sort_unstable();
            let ttl = s.ttl().unwrap_or_default();
            out.push((
                s.name().to_owned(),
                s.r#type().as_str().to_owned(),
                ttl,
                values,
            ));
        }
        match (
            page.is_truncated(),
            page.next_record_name(),
            page.next_record_type(),
        ) {
            (true, Some(n), Some(t)) => start = Some((n.to_owned(), t.clone())),
            _ => break,
        }
    }
    out
}

/// The demo with its fleet copied into `dir`, publishing the inside view to `zone` through
/// `endpoint` (moto, or a proxy in front of it).
pub(crate) fn write_config(dir: &Path, endpoint: &str, zone: &str, fleet: &serde_json::Value) {
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace("path = \"demo-instances.json\"", "path = \"fleet.json\"");
    let text = format!(
        "{text}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\nhosted_zone_id = \"{zone}\"\n\
         owner_id = \"tests\"\nrequests_per_second = 50\nendpoint_url = \"{endpoint}\"\n"
    );
    std::fs::write(dir.join("stabledns.toml"), text).expect("config");
    std::fs::write(dir.join("fleet.json"), fleet.to_string()).expect("fleet");
}

/// `serve` on the demo with `fleet`, publishing to `zone` through `endpoint`, refreshing
/// every 200 ms (a test rewrites `fleet.json` with [`write_config`] to change the fleet).
pub(crate) async fn serve_publishing(
    dir: &Path,
    endpoint: &str,
    zone: &str,
    fleet: &serde_json::Value,
) -> crate::harness::TestServer {
    write_config(dir, endpoint, zone, fleet);
    let path = dir.join("stabledns.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"200ms\"");
    let mut config = stabledns::Config::parse(&path, &text).expect("config");
    // Tests run side by side: no fixed ports.
    config.server.listen = crate::harness::demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    crate::harness::TestServer::start(config).await
}

/// `n` running instances with unique names, in tiers of ten (`SG-T-TIER<k>`, slotted by the
/// demo's rules): about three record sets each, and their ownership records.
fn generated_fleet(n: usize) -> serde_json::Value {
    let instances: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "InstanceId": format!("i-{i:017x}"),
                "State": {"Name": "running"},
                "LaunchTime": "2026-11-01T10:00:00+00:00",
                "Placement": {"AvailabilityZone": "eu-west-1a"},
                "PrivateIpAddress": format!("10.1.{}.{}", i / 250, i % 250 + 1),
                "Tags": [{"Key": "Name", "Value": format!("host-{i}")}],
                "SecurityGroups": [{"GroupId": format!("sg-{}", i / 10),
                                    "GroupName": format!("SG-T-TIER{}", i / 10)}],
            })
        })
        .collect();
    serde_json::json!({"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]})
}

fn publish(dir: &Path, flag: &str) -> String {
    let out = Command::new(BIN)
        .args(["publish", "--config"])
        .arg(dir.join("stabledns.toml"))
        .arg(flag)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "publish {flag} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Waits (up to 30 s) until the zone holds a record set starting with `line`.
pub(crate) async fn until_zone_has(r53: &Client, zone: &str, line: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !has(&list(r53, zone).await, line) {
        assert!(
            std::time::Instant::now() < deadline,
            "{line} never published"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

pub(crate) fn has(zone: &[String], prefix: &str) -> bool {
    zone.iter().any(|l| l.starts_with(prefix))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_the_inside_view_and_leaves_other_records_alone() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    // Records stabledns does not own: a hand-made one, external-dns's pair, and a hand-made
    // record at a name the fleet makes (a conflict).
    put(&r53, &zone, "hand.internal.", RrType::A, &["10.9.9.9"]).await;
    put(&r53, &zone, "ext.internal.", RrType::A, &["10.8.8.8"]).await;
    let heritage = "\"heritage=external-dns,external-dns/owner=k8s\"";
    put(&r53, &zone, "ext.internal.", RrType::Txt, &[heritage]).await;
    put(&r53, &zone, "db1.internal.", RrType::A, &["10.7.7.7"]).await;
    let untouched = list(&r53, &zone).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut fleet: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("config/demo-instances.json")).expect("demo fleet"),
    )
    .expect("json");
    write_config(dir.path(), &moto.url, &zone, &fleet);
    // PTR records into the view's reverse zone (`reverse = ["10.0.0.0/8"]` in the demo).
    let reverse = private_zone(&r53, "10.in-addr.arpa.").await;
    let config = dir.path().join("stabledns.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!("reverse_hosted_zone_id = \"{reverse}\"\n"));
    std::fs::write(&config, text).expect("config");

    // The dry run prints the plan and changes nothing.
    let plan = publish(dir.path(), "--dry-run");
    assert!(plan.contains("CREATE web.internal. A 60 "), "{plan}");
    assert!(
        plan.contains("CREATE _stabledns-a.web.internal. TXT"),
        "{plan}"
    );
    assert!(plan.contains("conflict: db1.internal. CNAME"), "{plan}");
    assert!(plan.contains("dry run: nothing sent"), "{plan}");
    assert_eq!(list(&r53, &zone).await, untouched);

    // The sync: names and their ownership records; the others exactly as they were.
    let sync = publish(dir.path(), "--once");
    assert!(sync.contains("0 quarantined"), "{sync}");
    let after = list(&r53, &zone).await;
    for line in &untouched {
        assert!(after.contains(line), "{line} changed:\n{after:#?}");
    }
    assert!(
        has(&after, "web.internal. A 10.0.1.10 10.0.2.10"),
        "{after:#?}"
    );
    assert!(
        has(
            &after,
            "web-1.internal. CNAME ec2-34-240-10-11.eu-west-1.compute.amazonaws.com."
        ),
        "{after:#?}"
    );
    assert!(
        has(
            &after,
            "_stabledns-a.web.internal. TXT \"heritage=stabledns,stabledns/owner=tests\""
        ),
        "{after:#?}"
    );
    assert!(
        !has(&after, "db1.internal. CNAME"),
        "the conflict was overwritten"
    );
    let ptr = list(&r53, &reverse).await;
    assert!(
        has(&ptr, "10.1.0.10.in-addr.arpa. PTR web1.internal."),
        "{ptr:#?}"
    );
    assert!(
        has(&ptr, "_stabledns-ptr.10.1.0.10.in-addr.arpa. TXT"),
        "{ptr:#?}"
    );
    assert!(!ptr.iter().any(|l| l.contains(" A ")), "{ptr:#?}");

    // A second sync of the same fleet sends nothing.
    let again = publish(dir.path(), "--once");
    assert!(
        again.contains("0 to create, 0 to update, 0 to delete"),
        "{again}"
    );
    assert!(again.contains("sent 0 changes in 0 batches"), "{again}");

    // web-2 stops: only its names change, and `web`, a tier no more, turns from addresses
    // into a CNAME in one batch (deletions first: Route 53 refuses a CNAME beside an A).
    let web2 = &mut fleet["Reservations"][0]["Instances"][1];
    assert_eq!(web2["InstanceId"], "i-0a1b2c3d4e5f60002");
    web2["State"]["Name"] = "stopped".into();
    write_config(dir.path(), &moto.url, &zone, &fleet);
    let change = publish(dir.path(), "--once");
    assert!(change.contains("DELETE web-2.internal. CNAME"), "{change}");
    assert!(
        change.contains("DELETE _stabledns-cname.web-2.internal. TXT"),
        "{change}"
    );
    let at = |line: &str| {
        change
            .find(line)
            .unwrap_or_else(|| panic!("{line}?\n{change}"))
    };
    assert!(at("DELETE web.internal. A 60 10.0.1.10 10.0.2.10") < at("CREATE web.internal. CNAME"));
    assert!(change.contains("0 quarantined"), "{change}");
    assert!(!change.contains("CREATE web-1"), "{change}");
    let last = list(&r53, &zone).await;
    // An empty fleet publishes nothing and deletes nothing (with allow_empty_fleet set, so
    // the inventory accepts it).
    let mut empty = fleet.clone();
    empty["Reservations"] = serde_json::json!([]);
    write_config(dir.path(), &moto.url, &zone, &empty);
    let config = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    let text = text.replace("[inventory]\n", "[inventory]\nallow_empty_fleet = true\n");
    std::fs::write(&config, text).expect("config");
    let out = Command::new(BIN)
        .args(["publish", "--once", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("the fleet is empty"), "{stderr}");
    assert_eq!(list(&r53, &zone).await, last);
    assert!(!has(&last, "web-2.internal."), "{last:#?}");
    assert!(!has(&last, "web.internal. A"), "{last:#?}");
    assert!(
        has(
            &last,
            "web.internal. CNAME ec2-34-240-10-11.eu-west-1.compute.amazonaws.com."
        ),
        "{last:#?}"
    );
    for line in &untouched {
        assert!(last.contains(line), "{line} changed:\n{last:#?}");
    }
}

pub(crate) fn demo_fleet() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("config/demo-instances.json")).expect("demo");
    serde_json::from_str(&text).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_route53_is_retried_and_a_refused_change_is_quarantined() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let proxy = Proxy::start(&moto.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &proxy.url, &zone, &demo_fleet());
    proxy.r53_faults(&[
        R53Fault::Throttling,
        R53Fault::PriorRequestNotComplete,
        R53Fault::ServerError,
    ]);
    proxy.r53_reject("web-1.internal.");

    let out = publish(dir.path(), "--once");
    assert!(out.contains("3 retries"), "{out}");
    assert!(out.contains("1 quarantined"), "{out}");
    assert!(
        out.contains("quarantined: CREATE web-1.internal. CNAME, CREATE _stabledns-cname.web-1"),
        "{out}"
    );
    assert!(
        out.contains("RRSet with DNS name web-1.internal. is not permitted"),
        "{out}"
    );
    // Everything else went in.
    let after = list(&r53, &zone).await;
    assert!(!has(&after, "web-1.internal."), "{after:#?}");
    assert!(
        has(&after, "web.internal. A 10.0.1.10 10.0.2.10"),
        "{after:#?}"
    );
    assert!(has(&after, "db1.internal. CNAME"), "{after:#?}");
    // One batch plus its bisection: a handful of calls, not one per change.
    assert!(proxy.r53_changes() < 20, "{} calls", proxy.r53_changes());

    // Once Route 53 takes it, the next sync sends just that one.
    proxy.r53_reject("nothing.internal.");
    let again = publish(dir.path(), "--once");
    assert!(
        again.contains("2 to create, 0 to update, 0 to delete"),
        "{again}"
    );
    assert!(has(&list(&r53, &zone).await, "web-1.internal. CNAME"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_fleet_goes_in_batches_and_a_killed_sync_converges() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let proxy = Proxy::start(&moto.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // 850 instances: 2,636 record sets (the nameserver's address among them), twice that with
    // their ownership records.
    write_config(dir.path(), &proxy.url, &zone, &generated_fleet(850));
    let config = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(&config).expect("config");
    // Full batches (moto enforces Route 53's 1,000 records), and slow enough to be killed
    // mid-sync: two calls a second.
    let text = text.replace(
        "requests_per_second = 50",
        "requests_per_second = 50\nmax_changes_per_batch = 1000",
    );
    std::fs::write(&config, &text).expect("config");
    let slow = text.replace("requests_per_second = 50", "requests_per_second = 2");
    std::fs::write(&config, slow).expect("config");

    let plan = publish(dir.path(), "--dry-run");
    assert!(
        plan.contains("5272 to create"),
        "{}",
        &plan[..plan.len().min(400)]
    );
    assert!(
        plan.contains("(7 batches planned)"),
        "{}",
        &plan[plan.len().saturating_sub(300)..]
    );

    // kill -9 once the second batch is in: the zone holds whole units only.
    let mut child = Command::new(BIN)
        .args(["publish", "--once", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    crate::ec2::until(
        "two batches sent",
        std::time::Duration::from_secs(60),
        || proxy.r53_changes() >= 2,
    )
    .await;
    child.kill().expect("kill -9");
    child.wait().expect("reaped");
    let partial = list(&r53, &zone).await;
    assert!(partial.len() < 5272, "{} record sets", partial.len());
    let owned = partial
        .iter()
        .filter(|l| l.starts_with("_stabledns-"))
        .count();
    let records = partial
        .iter()
        .filter(|l| !l.starts_with("_stabledns-") && !l.contains(" NS ") && !l.contains(" SOA "))
        .count();
    assert_eq!(
        owned, records,
        "a record without its ownership record, or the reverse"
    );

    // The restart converges, in batches within Route 53's 1,000-record limit (moto enforces it).
    std::fs::write(&config, text).expect("config");
    let rest = publish(dir.path(), "--once");
    assert!(
        rest.contains("0 quarantined"),
        "{}",
        &rest[rest.len().saturating_sub(300)..]
    );
    let done = publish(dir.path(), "--once");
    assert!(
        done.contains("0 to create, 0 to update, 0 to delete"),
        "{done}"
    );
    assert_eq!(
        list(&r53, &zone).await.len(),
        5272 + 2,
        "every set, its owner, SOA and NS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_publishes_every_new_snapshot_and_reports_it() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fleet = demo_fleet();
    let server = serve_publishing(dir.path(), &moto.url, &zone, &fleet).await;

    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;

    // A new snapshot (web-2 stopped) reaches the zone without anyone running `publish`.
    fleet["Reservations"][0]["Instances"][1]["State"]["Name"] = "stopped".into();
    write_config(dir.path(), &moto.url, &zone, &fleet);
    let cname = "web.internal. CNAME ec2-34-240-10-11.eu-west-1.compute.amazonaws.com.";
    until_zone_has(&r53, &zone, cname).await;
    assert!(!has(&list(&r53, &zone).await, "web-2.internal."));

    let (_, metrics) = crate::admin::http_get(server.admin(), "/metrics").await;
    let ok = format!("stabledns_publish_syncs_total{{zone=\"{zone}\",result=\"ok\"}}");
    let syncs = metrics
        .lines()
        .find_map(|l| l.strip_prefix(&ok))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("{ok} missing:\n{metrics}"));
    assert!(syncs >= 2.0, "{syncs}");
    assert!(
        metrics.contains("stabledns_publish_owned_record_sets{"),
        "{metrics}"
    );
    let (status, ready) = crate::admin::http_get(server.admin(), "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert!(
        ready.contains(&format!("publish {zone}: synced")),
        "{ready}"
    );
    assert!(
        ready.contains("1 conflicts") || ready.contains("0 conflicts"),
        "{ready}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_only_mode_runs_without_listeners_and_follows_the_fleet() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut fleet = demo_fleet();
    write_config(dir.path(), &moto.url, &zone, &fleet);
    // Hold the config's DNS port: publish-only must not need it (serve would fail to bind).
    let held = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let config = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(&config)
        .expect("config")
        .replace("127.0.0.1:5353", &format!("127.0.0.1:{port}"))
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"200ms\"")
        .replace("[admin]\nlisten = \"127.0.0.1:8053\"\n", "");
    std::fs::write(&config, &text).expect("config");
    let child = Command::new(BIN)
        .args(["publish", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");

    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;
    fleet["Reservations"][0]["Instances"][1]["State"]["Name"] = "stopped".into();
    std::fs::write(dir.path().join("fleet.json"), fleet.to_string()).expect("fleet");
    until_zone_has(&r53, &zone, "web.internal. CNAME").await;

    // SIGTERM stops it cleanly.
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let out = child.wait_with_output().expect("exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("no DNS listeners"), "{stderr}");
    assert!(
        stderr.contains("stopped; the Route 53 zones keep what was last synced"),
        "SIGTERM must be said: {stderr}"
    );
    drop(held);
}

/// The owned count in /readyz and its gauge describe the zone after the sync that just ran,
/// and a zone a reload stops publishing leaves both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owned_counts_are_current_and_a_removed_zone_leaves_readyz_and_metrics() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let dir = tempfile::tempdir().expect("tempdir");
    write_config(dir.path(), &moto.url, &zone, &demo_fleet());
    let path = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(&path).expect("config");
    let config = stabledns::Config::parse(&path, &text).expect("config");
    let server = crate::harness::TestServer::start(config).await;
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;
    let ours = list(&r53, &zone)
        .await
        .iter()
        .filter(|l| l.starts_with("_stabledns-"))
        .count();
    assert!(ours > 10, "{ours} ownership records");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let owned = loop {
        let (_, ready) = crate::admin::http_get(server.admin(), "/readyz").await;
        if let Some(n) = ready
            .lines()
            .find(|l| l.starts_with(&format!("publish {zone}: synced")))
            .and_then(|l| l.split(", ").nth(1))
            .and_then(|p| p.split(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(
        owned, ours,
        "one ownership record per record set owned, after the sync"
    );
    let (_, metrics) = crate::admin::http_get(server.admin(), "/metrics").await;
    assert!(
        metrics.contains(&format!(
            "stabledns_publish_owned_record_sets{{zone=\"{zone}\"}} {ours}"
        )),
        "{metrics}"
    );

    // Reloaded without the [[publish]] table: the zone is no longer reported.
    let text = text[..text.find("[[publish]]").expect("publish table")].to_owned();
    server
        .reload(stabledns::Config::parse(&path, &text).expect("config"))
        .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, ready) = crate::admin::http_get(server.admin(), "/readyz").await;
        let (_, metrics) = crate::admin::http_get(server.admin(), "/metrics").await;
        if !ready.contains(&zone) && !metrics.contains(&zone) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "zone {zone} still reported after the reload:\n{ready}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.stop().await;
}

/// What publishing sends is what `stabledns zone` prints for the view, so the two cannot
/// drift: for the demo's fleet and for a generated one (tiers past `max_records_per_rrset`),
/// Route 53 ends up holding exactly the printed record sets, owners, types, TTLs and data,
/// less the apex's SOA and NS (the hosted zone's own) and the ownership records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route53_holds_exactly_the_record_sets_stabledns_zone_prints() {
    use std::collections::BTreeMap;
    type Sets = BTreeMap<(String, String), (i64, Vec<String>)>;
    let apex_own =
        |name: &str, rtype: &str| name == "internal." && (rtype == "SOA" || rtype == "NS");
    for (what, fleet, zone_extra) in [
        ("demo", demo_fleet(), ""),
        (
            "generated",
            generated_fleet(60),
            "max_records_per_rrset = 5\n",
        ),
    ] {
        let moto = Moto::start();
        let r53 = client(&moto);
        let zone = private_zone(&r53, "internal.").await;
        let dir = tempfile::tempdir().expect("tempdir");
        write_config(dir.path(), &moto.url, &zone, &fleet);
        let config = dir.path().join("stabledns.toml");
        let text = std::fs::read_to_string(&config).expect("config");
        std::fs::write(
            &config,
            text.replace("[zone]\n", &format!("[zone]\n{zone_extra}")),
        )
        .expect("config");
        publish(dir.path(), "--once");

        let out = Command::new(BIN)
            .args(["zone", "--view", "inside", "--config"])
            .arg(&config)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut printed = Sets::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let mut f = line.splitn(5, ' ');
            let (name, ttl, _class, rtype, data) = (
                f.next().expect("owner"),
                f.next().expect("ttl"),
                f.next().expect("class"),
                f.next().expect("type"),
                f.next().expect("data"),
            );
            if apex_own(name, rtype) {
                continue;
            }
            let entry = printed
                .entry((name.to_owned(), rtype.to_owned()))
                .or_insert((ttl.parse().expect("a TTL"), Vec::new()));
            entry.1.push(data.to_owned());
        }
        for (_, values) in printed.values_mut() {
            values.sort();
        }
        let held: Sets = (list_sets(&r53, &zone).await.into_iter())
            .filter(|(name, rtype, _, _)| {
                !apex_own(name, rtype) && !name.starts_with("_stabledns-")
            })
            .map(|(name, rtype, ttl, values)| ((name, rtype), (ttl, values)))
            .collect();
        assert!(printed.len() > 20, "{what}: {printed:#?}");
        if what == "generated" {
            let tier = &printed[&("tier0.internal.".to_owned(), "A".to_owned())];
            assert_eq!(tier.1.len(), 5, "{what}: the cap holds in both");
        }
        assert_eq!(held, printed, "{what}: Route 53 against `stabledns zone`");
    }
}
