//! Names that follow the fleet in seconds: EC2 state-change events from moto's SQS (in
//! EventBridge's exact shape), instance health from DescribeInstanceStatus (made impaired by
//! the fault proxy, as moto reports every instance ok), and the drain tag, all over DNS.

use std::time::Duration;

use aws_sdk_ec2::types::Tag;
use aws_sdk_sqs::types::QueueAttributeName;
use hickory_server::proto::rr::RecordType;

use crate::admin::{scrape, value};
use crate::harness::{TestServer, ask, dig, summary, wait_for};
use crate::moto::{Moto, Network, ec2_config, http, private_ip};
use crate::proxy::Proxy;

/// Far less than the poll interval these tests set (an hour), so only an event explains it.
const SOON: Duration = Duration::from_secs(15);

/// Polls `check` every 100 ms until it holds, or panics after [`SOON`] with `what`.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + SOON;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {SOON:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub(crate) fn sqs(moto: &Moto) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .http_client(http())
        .region(aws_sdk_sqs::config::Region::new("eu-west-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "tests",
        ))
        .endpoint_url(&moto.url)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

/// An "EC2 Instance State-change Notification" exactly as EventBridge delivers it to SQS.
pub fn state_change(id: &str, instance: &str, state: &str, time: jiff::Timestamp) -> String {
    let time = time.strftime("%Y-%m-%dT%H:%M:%SZ");
    format!(
        r#"{{"version":"0","id":"{id}","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"123456789012","time":"{time}","region":"eu-west-1","resources":["arn:aws:ec2:eu-west-1:123456789012:instance/{instance}"],"detail":{{"instance-id":"{instance}","state":"{state}"}}}}"#
    )
}

/// A queue by name (moto gives the same URL again for the same name).
pub(crate) async fn queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url
        .expect("queue url")
}

fn ips(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Terminates an instance in moto and puts its `terminated` event (id `event`) on the queue.
async fn terminate(
    ec2: &aws_sdk_ec2::Client,
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    instance: &str,
    event: &str,
    time: jiff::Timestamp,
) {
    ec2.terminate_instances()
        .instance_ids(instance)
        .send()
        .await
        .expect("terminate");
    send(
        sqs,
        queue,
        &state_change(event, instance, "terminated", time),
    )
    .await;
}

pub(crate) async fn send(sqs: &aws_sdk_sqs::Client, queue: &str, body: &str) {
    sqs.send_message()
        .queue_url(queue)
        .message_body(body)
        .send()
        .await
        .expect("send message");
}

async fn messages_left(sqs: &aws_sdk_sqs::Client, queue: &str) -> u64 {
    let attrs = sqs
        .get_queue_attributes()
        .queue_url(queue)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    attrs
        .attributes()
        .into_iter()
        .flat_map(|a| a.values())
        .filter_map(|v| v.parse::<u64>().ok())
        .sum()
}

/// An event's change is patched into the served snapshot (the demo's views, reverse zones
/// included): no full build, and the answers, the serial and the metrics move as with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_s_change_is_patched_into_the_served_snapshot() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let sqs = sqs(&moto);
    let queue = queue(&sqs, "stabledns-patch").await;
    let net = Network::create(&ec2).await;
    let api = [("Env", "prod"), ("Name", "api")];
    let first = net.launch(&ec2, 2, false, &api, &[]).await;
    let (ip0, ip1) = (
        private_ip(&ec2, &first[0]).await,
        private_ip(&ec2, &first[1]).await,
    );
    let extra = format!(
        "refresh_interval = \"1h\"\napi_timeout = \"2s\"\nmax_backoff = \"2s\"\n\
         [[inventory.filters]]\nname = \"tag:Env\"\nvalues = [\"prod\"]\n[inventory.events]\nqueues = {{ eu-west-1 = \"{queue}\" }}\n\
         endpoint_url = \"{}\"\nwait = \"1s\"\n",
        moto.url
    );
    let server = TestServer::start(ec2_config(&moto.url, &["eu-west-1"], &extra)).await;
    let addr = server.addr();
    wait_for(addr, "api.internal.", RecordType::A, &[&ip0, &ip1], SOON).await;
    let stats = server.refresh_stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let (builds, serial) = (count(&stats.builds), server.running_serial());
    let t0 = jiff::Timestamp::now();
    let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);

    // A launch joins the tier and gets its own name.
    let new = net.launch(&ec2, 1, true, &api, &[]).await[0].clone();
    let ip2 = private_ip(&ec2, &new).await;
    send(&sqs, &queue, &state_change("p1", &new, "running", at(1))).await;
    wait_for(
        addr,
        "api.internal.",
        RecordType::A,
        &[&ip0, &ip1, &ip2],
        SOON,
    )
    .await;
    let own = format!("{new}.internal.");
    assert_eq!(
        summary(&ask(addr, &own, RecordType::A).await).len(),
        2,
        "CNAME and address"
    );

    // A termination leaves the tier, and its name is gone.
    terminate(&ec2, &sqs, &queue, &first[0], "p2", at(2)).await;
    wait_for(addr, "api.internal.", RecordType::A, &[&ip1, &ip2], SOON).await;
    let gone = format!("{}.internal.", first[0]);
    wait_for(addr, &gone, RecordType::A, &["Non-Existent Domain"], SOON).await;

    assert_eq!(
        count(&stats.builds),
        builds,
        "no full build for either event"
    );
    assert_eq!(count(&stats.patches), 2);
    assert_ne!(
        server.running_serial(),
        serial,
        "a changed zone has a new serial"
    );
    let snapshot = server.snapshot();
    assert_eq!(
        snapshot.instance(&new).map(|i| i.id.as_str()),
        Some(new.as_str())
    );
    assert!(
        snapshot.instance(&first[0]).is_none(),
        "the terminated one is gone"
    );
    let samples = scrape(server.admin()).await;
    assert_eq!(value(&samples, "stabledns_snapshots_patched_total{}"), 2.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_move_names_within_seconds_of_a_launch_stop_and_termination() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let sqs = sqs(&moto);
    let queue = queue(&sqs, "stabledns-events").await;
    let net = Network::create(&ec2).await;
    let prod = [("Env", "prod")];
    let web = net.launch(&ec2, 1, false, &prod, &["SG-T-WEB"]).await;
    let ip0 = private_ip(&ec2, &web[0]).await;

    let extra = format!(
        "refresh_interval = \"1h\"\napi_timeout = \"2s\"\nmax_backoff = \"2s\"\n\
         [[inventory.filters]]\nname = \"tag:Env\"\nvalues = [\"prod\"]\n\
         [inventory.events]\nqueues = {{ eu-west-1 = \"{queue}\" }}\n\
         endpoint_url = \"{}\"\nwait = \"1s\"\n",
        moto.url
    );
    let server = TestServer::start(ec2_config(&moto.url, &["eu-west-1"], &extra)).await;
    let addr = server.addr();
    let events = server.event_stats();
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0], SOON).await;
    let t0 = jiff::Timestamp::now();
    let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);

    // A launch: the new member answers long before the hourly poll.
    let web2 = net.launch(&ec2, 1, false, &prod, &["SG-T-WEB"]).await[0].clone();
    let ip2 = private_ip(&ec2, &web2).await;
    send(&sqs, &queue, &state_change("e1", &web2, "running", at(1))).await;
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0, &ip2], SOON).await;

    // A stop: it leaves its tier and its own name.
    ec2.stop_instances()
        .instance_ids(&web2)
        .send()
        .await
        .expect("stop");
    send(&sqs, &queue, &state_change("e2", &web2, "stopped", at(2))).await;
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0], SOON).await;
    let own = format!("{web2}.internal.");
    wait_for(addr, &own, RecordType::A, &["Non-Existent Domain"], SOON).await;

    // The same event delivered again is a duplicate; nothing is read back for it.
    send(&sqs, &queue, &state_change("e2", &web2, "stopped", at(2))).await;
    until("the redelivery counted as a duplicate", || {
        count(&events.duplicate) == 1
    })
    .await;

    // Started again; then a `stopping` event older than the `running` one arrives late: it
    // is stale, and the instance stays.
    ec2.start_instances()
        .instance_ids(&web2)
        .send()
        .await
        .expect("start");
    send(&sqs, &queue, &state_change("e3", &web2, "running", at(10))).await;
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0, &ip2], SOON).await;
    send(&sqs, &queue, &state_change("e4", &web2, "stopping", at(5))).await;
    until("the late event counted as stale", || {
        count(&events.stale) == 1
    })
    .await;
    assert_eq!(summary(&ask(addr, "web.internal.", RecordType::A).await), {
        let mut both = vec![ip0.clone(), ip2.clone()];
        both.sort();
        both
    });

    // An instance the inventory's filters leave out is read back and stays out.
    let dev = net
        .launch(&ec2, 1, false, &[("Env", "dev")], &["SG-T-WEB"])
        .await[0]
        .clone();
    let applied = count(&events.applied);
    send(&sqs, &queue, &state_change("e5", &dev, "running", at(11))).await;
    until("the filtered-out launch applied", || {
        count(&events.applied) > applied
    })
    .await;
    wait_for(
        addr,
        &format!("{dev}.internal."),
        RecordType::A,
        &["Non-Existent Domain"],
        SOON,
    )
    .await;

    // A termination.
    terminate(&ec2, &sqs, &queue, &web[0], "e6", at(12)).await;
    wait_for(addr, "web.internal.", RecordType::A, &[&ip2], SOON).await;

    // A message that is no event is counted, logged and deleted; applied ones are deleted too.
    send(&sqs, &queue, "this is not an event").await;
    until("the malformed message counted", || {
        count(&events.malformed) == 1
    })
    .await;
    let deadline = tokio::time::Instant::now() + SOON;
    while messages_left(&sqs, &queue).await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "messages left on the queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(count(&events.failed), 0);

    // The queue is deleted under it: logged and retried, DNS goes on answering; a new queue
    // under the same name is read again.
    sqs.delete_queue()
        .queue_url(&queue)
        .send()
        .await
        .expect("delete queue");
    until("receive errors counted", || {
        count(&events.receive_errors) > 0
    })
    .await;
    wait_for(addr, "web.internal.", RecordType::A, &[&ip2], SOON).await;
    let again = self::queue(&sqs, "stabledns-events").await;
    assert_eq!(again, queue, "moto names queues by account and name");
    let web3 = net.launch(&ec2, 1, false, &prod, &["SG-T-WEB"]).await[0].clone();
    let ip3 = private_ip(&ec2, &web3).await;
    send(&sqs, &queue, &state_change("e7", &web3, "running", at(13))).await;
    wait_for(
        addr,
        "web.internal.",
        RecordType::A,
        &[&ip2, &ip3],
        Duration::from_secs(90),
    )
    .await;
    let metrics = scrape(server.admin()).await;
    assert_eq!(
        value(&metrics, "stabledns_events_total{outcome=\"malformed\"}"),
        1.0
    );
    assert!(
        value(
            &metrics,
            "stabledns_event_queue_errors_total{op=\"receive\"}"
        ) >= 1.0
    );
    assert_eq!(
        server.successes(),
        1,
        "one full refresh: the rest came from events"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_and_impaired_instances_leave_their_tiers_but_never_the_last() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let web = net
        .launch(
            &ec2,
            3,
            false,
            &[("stabledns:srv", "http:tcp:80")],
            &["SG-T-WEB"],
        )
        .await;
    let db = net.launch(&ec2, 2, false, &[], &["SG-T-DB"]).await;
    let mut web_ips = Vec::new();
    for id in &web {
        web_ips.push(private_ip(&ec2, id).await);
    }
    let mut db_ips = Vec::new();
    for id in &db {
        db_ips.push(private_ip(&ec2, id).await);
    }
    let proxy = Proxy::start(&moto.url).await;
    let server = TestServer::start(ec2_config(
        &proxy.url,
        &["eu-west-1"],
        "instance_status = true",
    ))
    .await;
    let addr = server.addr();
    wait_for(addr, "web.internal.", RecordType::A, &ips(&web_ips), SOON).await;

    // Drained by tag: out of the tier and its SRV records, but its own name answers.
    ec2.create_tags()
        .resources(&web[0])
        .tags(Tag::builder().key("stabledns:drain").value("true").build())
        .send()
        .await
        .expect("tag");
    wait_for(
        addr,
        "web.internal.",
        RecordType::A,
        &ips(&web_ips[1..]),
        SOON,
    )
    .await;
    let own = format!("{}.internal.", web[0]);
    wait_for(addr, &own, RecordType::A, &[&web_ips[0]], SOON).await;
    let srv = dig(addr, &["+short", "SRV", "_http._tcp.web.internal."]);
    assert_eq!(srv.lines().count(), 2, "{srv}");
    assert!(
        !srv.contains(&web[0]),
        "the drained member's SRV record left: {srv}"
    );

    // Impaired (EC2's status check failed): out too, leaving one.
    proxy.impaired(&[&web[1]]);
    wait_for(addr, "web.internal.", RecordType::A, &[&web_ips[2]], SOON).await;
    let explain = dig(addr, &["+short", "TXT", "_explain.web.internal."]);
    assert!(
        explain.contains(&format!(
            "out of rotation: {} (drained: tag stabledns:drain=true)",
            web[0]
        )),
        "{explain}"
    );
    assert!(
        explain.contains(&format!("out of rotation: {} (impaired", web[1])),
        "{explain}"
    );

    // Every db member impaired: the tier fails open and answers them all.
    proxy.impaired(&[&web[1], &db[0], &db[1]]);
    until("three impaired", || {
        server.snapshot().rotation.impaired == 3
    })
    .await;
    wait_for(addr, "db.internal.", RecordType::A, &ips(&db_ips), SOON).await;
    let metrics = scrape(server.admin()).await;
    let out = |reason: &str| {
        value(
            &metrics,
            &format!("stabledns_instances_out_of_rotation{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((out("drained"), out("impaired")), (1.0, 3.0));
    assert_eq!(value(&metrics, "stabledns_tiers_failing_open{}"), 1.0);
    let explain = dig(addr, &["+short", "TXT", "_explain.db.internal."]);
    assert!(explain.contains("fail open"), "{explain}");

    // Healthy and undrained again: back in.
    proxy.impaired(&[]);
    ec2.create_tags()
        .resources(&web[0])
        .tags(Tag::builder().key("stabledns:drain").value("false").build())
        .send()
        .await
        .expect("tag");
    wait_for(addr, "web.internal.", RecordType::A, &ips(&web_ips), SOON).await;
}

/// `tests/integration/py/events_stack.py` against moto: its stdout.
fn events_stack(moto: &Moto, args: &[&str]) -> String {
    let python = std::env::var("STABLEDNS_PYTHON")
        .expect("STABLEDNS_PYTHON: run scripts/test, which installs boto3 with moto");
    let script = crate::harness::root().join("tests/integration/py/events_stack.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .arg(&moto.url)
        .args(args)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "events_stack.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloudformation_stack_feeds_eventbridge_events_to_stabledns() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let web = net.launch(&ec2, 1, false, &[], &["SG-T-WEB"]).await;
    let ip0 = private_ip(&ec2, &web[0]).await;
    // The README's stack, as an operator deploys it: queue, rule, queue policy, IAM policy.
    let queue = events_stack(&moto, &["deploy"]);
    let extra = format!(
        "refresh_interval = \"1h\"\napi_timeout = \"2s\"\nmax_backoff = \"2s\"\n\
         [inventory.events]\nqueues = {{ eu-west-1 = \"{queue}\" }}\n\
         endpoint_url = \"{}\"\nwait = \"1s\"\n",
        moto.url
    );
    let server = TestServer::start(ec2_config(&moto.url, &["eu-west-1"], &extra)).await;
    let addr = server.addr();
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0], SOON).await;
    let web2 = net.launch(&ec2, 1, false, &[], &["SG-T-WEB"]).await[0].clone();
    let ip2 = private_ip(&ec2, &web2).await;
    events_stack(&moto, &["put", &web2, "running"]);
    wait_for(addr, "web.internal.", RecordType::A, &[&ip0, &ip2], SOON).await;
    assert_eq!(
        server
            .event_stats()
            .malformed
            .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "EventBridge's messages parse"
    );
}

/// Events for `instances`, ten to a SendMessageBatch call (as EventBridge fills a queue in a
/// burst), with ids from `first`.
async fn send_burst(
    sqs: &aws_sdk_sqs::Client,
    queue: &str,
    instances: &[(String, &str)],
    first: usize,
    time: jiff::Timestamp,
) {
    for (chunk_no, chunk) in instances.chunks(10).enumerate() {
        let entries = chunk.iter().enumerate().map(|(n, (instance, state))| {
            let id = format!("burst-{}", first + chunk_no * 10 + n);
            aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                .id(n.to_string())
                .message_body(state_change(&id, instance, state, time))
                .build()
                .expect("entry")
        });
        let sent = sqs
            .send_message_batch()
            .queue_url(queue)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .expect("send batch");
        assert!(sent.failed().is_empty(), "{:?}", sent.failed());
    }
}

/// An Auto Scaling group replaced in one go: 100 launches and 100 terminations reach the queue
/// within a moment. Applied a receive (ten messages) at a time, that was twenty builds and as
/// many Route 53 syncs; coalesced, it is at most three of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_events_is_a_few_builds_and_a_few_route53_batches() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let sqs = sqs(&moto);
    let r53 = crate::publish::client(&moto);
    let zone = crate::publish::private_zone(&r53, "internal.").await;
    let queue = queue(&sqs, "stabledns-burst").await;
    let net = Network::create(&ec2).await;
    let old = net.launch(&ec2, 100, false, &[], &["SG-T-WEB"]).await;
    // The window is wider than the default so that a busy machine's slow sends still land in
    // it; a lone event is never held (the first group below is applied at once).
    let extra = format!(
        "refresh_interval = \"1h\"\napi_timeout = \"2s\"\nmax_backoff = \"2s\"\n\
         [inventory.events]\nqueues = {{ eu-west-1 = \"{queue}\" }}\n\
         endpoint_url = \"{}\"\nwait = \"1s\"\ncoalesce = \"2s\"\n",
        moto.url
    );
    let text = format!(
        "{}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\nhosted_zone_id = \"{zone}\"\n\
         owner_id = \"tests\"\nrequests_per_second = 50\nendpoint_url = \"{}\"\n",
        crate::moto::ec2_config_text(&moto.url, &["eu-west-1"], &extra),
        moto.url
    );
    let mut config =
        stabledns::Config::parse(&crate::harness::root().join("config/test.toml"), &text)
            .expect("config");
    config.server.listen = crate::harness::demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    let server = TestServer::start(config).await;
    let own = |id: &str| format!("{id}.internal. A");
    crate::publish::until_zone_has(&r53, &zone, &own(&old[99])).await;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let changes_key =
        format!("stabledns_publish_calls_total{{purpose=\"changes\",zone=\"{zone}\"}}");
    let changes_before = value(&scrape(server.admin()).await, &changes_key);
    let builds_before = count(&server.refresh_stats().builds);
    let publishes_before = count(&server.refresh_stats().publishes);

    let new = net.launch(&ec2, 100, false, &[], &["SG-T-WEB"]).await;
    ec2.terminate_instances()
        .set_instance_ids(Some(old.clone()))
        .send()
        .await
        .expect("terminate");
    let t = jiff::Timestamp::now();
    let burst: Vec<(String, &str)> = (new.iter().map(|i| (i.clone(), "running")))
        .chain(old.iter().map(|i| (i.clone(), "terminated")))
        .collect();
    send_burst(&sqs, &queue, &burst, 0, t).await;

    let want: std::collections::BTreeSet<&str> = new.iter().map(String::as_str).collect();
    until("the new instances served, the old gone", || {
        let snapshot = server.snapshot();
        let ids: std::collections::BTreeSet<&str> =
            snapshot.fleet.iter().map(|i| i.id.as_str()).collect();
        ids == want
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let listed = crate::publish::list(&r53, &zone).await;
        let done = new.iter().all(|i| crate::publish::has(&listed, &own(i)))
            && !old.iter().any(|i| crate::publish::has(&listed, &own(i)));
        if done {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Route 53 never caught up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events = server.event_stats();
    assert_eq!(count(&events.applied), 200, "every event applied");
    let groups = count(&events.groups);
    let published = count(&server.refresh_stats().publishes) - publishes_before;
    let builds = count(&server.refresh_stats().builds) - builds_before;
    let changes = value(&scrape(server.admin()).await, &changes_key) - changes_before;
    eprintln!(
        "burst: {groups} groups, {published} published, {builds} built, {changes} change calls"
    );
    assert!(
        groups <= 3 && published <= 3,
        "{groups} groups applied and {published} snapshots published for one burst"
    );
    // A group that numbers new tier members builds again from the fleet with their slot tags
    // written, as every replica reads it: two builds, one published.
    assert!(
        builds <= 2 * groups,
        "{builds} snapshots built for {groups} groups"
    );
    assert!(
        changes <= 3.0,
        "{changes} Route 53 change calls for one burst"
    );
}
