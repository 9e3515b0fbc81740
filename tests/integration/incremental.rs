//! Incremental Route 53 syncs in `serve`, against moto through the fault proxy: a change to
//! the fleet costs one change call and no listing; a hand edit to a record we change makes
//! Route 53 refuse our DELETE (the proxy plays Route 53's exact-match rule, which moto lacks),
//! and that refusal leads to a listing and a correct zone; an unchanged fleet costs no call.

use std::time::{Duration, Instant};

use aws_sdk_route53::types::{ChangeAction, RrType};

use crate::admin::{scrape, value};
use crate::moto::Moto;
use crate::proxy::Proxy;
use crate::publish::{
    change, client, demo_fleet, has, list, private_zone, serve_publishing, until_zone_has,
    write_config,
};

/// The demo fleet with the instance at `old` given the private address `new`.
fn readdressed(fleet: &mut serde_json::Value, old: &str, new: &str) {
    let instances = fleet["Reservations"][0]["Instances"]
        .as_array_mut()
        .expect("instances");
    let instance = (instances.iter_mut())
        .find(|i| i["PrivateIpAddress"] == old)
        .unwrap_or_else(|| panic!("no instance at {old}"));
    instance["PrivateIpAddress"] = new.into();
}

/// Scrapes until `done` holds for the samples (the zone can show a change before the sync
/// that made it has counted it).
async fn scrape_until(
    admin: std::net::SocketAddr,
    what: &str,
    done: impl Fn(&std::collections::BTreeMap<String, f64>) -> bool,
) -> std::collections::BTreeMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let samples = scrape(admin).await;
        if done(&samples) {
            return samples;
        }
        let publish: Vec<_> = samples
            .iter()
            .filter(|(k, _)| k.contains("publish"))
            .collect();
        assert!(Instant::now() < deadline, "never {what}: {publish:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// moto with a private zone `internal.`, and the fault proxy in front playing Route 53's
/// exact-match DELETE rule: (moto, its Route 53 client, the zone's id, the proxy, a folder).
async fn route53() -> (
    Moto,
    aws_sdk_route53::Client,
    String,
    Proxy,
    tempfile::TempDir,
) {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let proxy = Proxy::start(&moto.url).await;
    proxy.r53_exact_deletes();
    (
        moto,
        r53,
        zone,
        proxy,
        tempfile::tempdir().expect("tempdir"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_sent_alone_and_a_hand_edit_it_meets_is_reconciled() {
    let (_moto, r53, zone, proxy, dir) = route53().await;
    let mut fleet = demo_fleet();
    let server = serve_publishing(dir.path(), &proxy.url, &zone, &fleet).await;
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;

    // Labels as the exposition orders them: by name.
    let key =
        |name: &str, labels: &str| format!("stabledns_publish_{name}{{{labels}zone=\"{zone}\"}}");
    let listing = key("calls_total", "purpose=\"listing\",");
    let changes = key("calls_total", "purpose=\"changes\",");
    let listings = key("listings_total", "");
    let before = scrape(server.admin()).await;
    assert_eq!(
        value(&before, &listings),
        1.0,
        "one listing at start: {before:?}"
    );

    // One instance readdressed: one change call, no listing.
    readdressed(&mut fleet, "10.0.2.10", "10.0.2.99");
    write_config(dir.path(), &proxy.url, &zone, &fleet);
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.99").await;
    let syncs = key("syncs_total", "result=\"ok\",");
    let after = scrape_until(server.admin(), "a change call", |m| {
        value(m, &changes) > value(&before, &changes)
    })
    .await;
    assert_eq!(value(&after, &listings), 1.0, "{after:?}");
    assert_eq!(
        value(&after, &listing),
        value(&before, &listing),
        "no listing: {after:?}"
    );
    let sent = value(&after, &changes) - value(&before, &changes);
    assert!(
        (1.0..=2.0).contains(&sent),
        "{sent} change calls for one instance"
    );

    // Someone edits our record by hand; Route 53 then refuses the DELETE planned from what we
    // last knew, and just that record set (and its ownership record) is read back and put
    // right: no listing of the zone.
    // An operator's UPSERT, as the console does.
    let edit = ("web.internal.", RrType::A, 60);
    change(&r53, &zone, ChangeAction::Upsert, edit, &["10.9.9.9"]).await;
    readdressed(&mut fleet, "10.0.2.99", "10.0.2.77");
    write_config(dir.path(), &proxy.url, &zone, &fleet);
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.77").await;
    let reconciled = scrape_until(server.admin(), "the refusal counted", |m| {
        value(m, &key("quarantined_total", "")) >= 1.0
    })
    .await;
    assert_eq!(
        value(&reconciled, &listings),
        1.0,
        "no second listing: {reconciled:?}"
    );
    assert_eq!(
        value(&reconciled, &listing) - value(&after, &listing),
        2.0,
        "the refused set and its ownership record read back: {reconciled:?}"
    );
    let zone_now = list(&r53, &zone).await;
    assert!(!has(&zone_now, "web.internal. A 10.9.9.9"), "{zone_now:#?}");
    assert!(
        has(&zone_now, "db1.internal. CNAME"),
        "the rest is untouched: {zone_now:#?}"
    );

    // An unchanged fleet: refreshes go on, and Route 53 hears nothing.
    let settled = scrape_until(server.admin(), "settled", |m| {
        value(m, &syncs) > value(&reconciled, &syncs) - 1.0
    })
    .await;
    let calls = proxy.r53_changes();
    let quiet = value(&settled, &listing);
    let refreshed = server.successes();
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.successes() < refreshed + 5 {
        assert!(Instant::now() < deadline, "the refresh loop stopped");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        proxy.r53_changes(),
        calls,
        "change calls for an unchanged fleet"
    );
    assert_eq!(
        value(&scrape(server.admin()).await, &listing),
        quiet,
        "listing calls"
    );
    server.stop().await;
}

/// Route 53's request limit is the account's: two zones stabledns keeps there draw from one
/// budget, so the calls of both together, as the proxy sees them arrive, are spaced at
/// `requests_per_second`. Each zone pacing alone (as before) sent the second zone's first
/// call right behind the first zone's last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_zones_in_one_account_share_its_request_budget() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let first = private_zone(&r53, "internal.").await;
    let second = crate::publish::private_zone_named(&r53, "internal.", "second").await;
    let proxy = Proxy::start(&moto.url).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = demo_fleet();
    write_config(dir.path(), &proxy.url, &first, &fleet);
    let path = dir.path().join("stabledns.toml");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("requests_per_second = 50", "requests_per_second = 1");
    let text = format!(
        "{text}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\n\
         hosted_zone_id = \"{second}\"\nowner_id = \"tests\"\nrequests_per_second = 1\n\
         endpoint_url = \"{}\"\n",
        proxy.url
    );
    let mut config = stabledns::Config::parse(&path, &text).expect("config");
    config.server.listen = crate::harness::demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    let server = crate::harness::TestServer::start(config).await;
    until_zone_has(&r53, &first, "web.internal. A 10.0.1.10 10.0.2.10").await;
    until_zone_has(&r53, &second, "web.internal. A 10.0.1.10 10.0.2.10").await;
    server.stop().await;

    let calls = proxy.r53_calls();
    let paths = |id: &str| calls.iter().filter(|(_, p)| p.contains(id)).count();
    assert!(
        paths(&first) >= 2 && paths(&second) >= 2,
        "both zones read and written: {calls:#?}"
    );
    // One a second is 1,000 ms apart; half of that is left for a busy machine's jitter between
    // the turn and the request's arrival.
    for pair in calls.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap >= Duration::from_millis(500),
            "{} then {} only {gap:?} apart",
            pair[0].1,
            pair[1].1
        );
    }
}

/// The zone's quota of record sets is read (GetHostedZoneLimit, answered by the proxy as moto
/// has no such call) and what the zone holds is counted with everyone's records and the
/// ownership records, as Route 53 counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zone_s_record_quota_is_read_and_its_use_counted() {
    let moto = Moto::start();
    let r53 = client(&moto);
    let zone = private_zone(&r53, "internal.").await;
    let proxy = Proxy::start(&moto.url).await;
    proxy.r53_record_limit(40);
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve_publishing(dir.path(), &proxy.url, &zone, &demo_fleet()).await;
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;
    let held = list(&r53, &zone).await.len();
    let key = |name: &str| format!("stabledns_publish_zone_record_{name}{{zone=\"{zone}\"}}");
    let metrics = scrape_until(server.admin(), "the quota counted", |m| {
        value(m, &key("sets")) > 0.0
    })
    .await;
    assert_eq!(value(&metrics, &key("limit")), 40.0, "{metrics:?}");
    #[allow(clippy::cast_precision_loss)]
    let held = held as f64;
    assert_eq!(
        value(&metrics, &key("sets")),
        held,
        "SOA, NS, our sets and their ownership records"
    );
    let (_, ready) = crate::admin::http_get(server.admin(), "/readyz").await;
    assert!(
        ready.contains(&format!("{held} of the zone's quota of 40 in use")),
        "{ready}"
    );
}

/// kill -9 after a snapshot is published (and written to the state file) but before Route 53
/// took its change: the change call is held at the proxy when the process dies. The next start
/// serves the state file's fleet, lists the zone and sends what is missing, so the zone
/// converges on the fleet, with nothing of the old answer left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_a_snapshot_and_its_sync_converges_after_restart() {
    let (_moto, r53, zone, proxy, dir) = route53().await;
    let mut fleet = demo_fleet();
    write_config(dir.path(), &proxy.url, &zone, &fleet);
    let path = dir.path().join("stabledns.toml");
    let state = dir.path().join("state.json");
    let text = std::fs::read_to_string(&path)
        .expect("config")
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"200ms\"")
        .replace(
            "[inventory]\n",
            &format!("[inventory]\nstate_file = \"{}\"\n", state.display()),
        );
    std::fs::write(&path, text).expect("config");
    let serve = || {
        crate::harness::Logged::spawn(
            std::process::Command::new(env!("CARGO_BIN_EXE_stabledns"))
                .arg("serve")
                .arg("--config")
                .arg(&path)
                .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
                .args(["--upstream", "127.0.0.1:9"])
                .env("RUST_LOG", "info"),
        )
    };
    let mut first = serve();
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.10").await;

    proxy.r53_hold(true);
    let calls = proxy.r53_changes();
    readdressed(&mut fleet, "10.0.2.10", "10.0.2.99");
    std::fs::write(dir.path().join("fleet.json"), fleet.to_string()).expect("fleet");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let saved = std::fs::read_to_string(&state).unwrap_or_default();
        if proxy.r53_changes() > calls && saved.contains("10.0.2.99") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no held change call and saved snapshot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.child.kill().expect("kill -9");
    first.child.wait().expect("reaped");
    assert!(
        has(
            &list(&r53, &zone).await,
            "web.internal. A 10.0.1.10 10.0.2.10"
        ),
        "the change never reached the zone"
    );

    proxy.r53_hold(false);
    let second = serve();
    until_zone_has(&r53, &zone, "web.internal. A 10.0.1.10 10.0.2.99").await;
    let now = list(&r53, &zone).await;
    assert!(
        !has(&now, "web.internal. A 10.0.1.10 10.0.2.10"),
        "{now:#?}"
    );
    let web: Vec<&String> = now
        .iter()
        .filter(|l| l.starts_with("web.internal. A "))
        .collect();
    assert_eq!(web.len(), 1, "{web:?}");
    second.stop();
}
