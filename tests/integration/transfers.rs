//! Zone transfers to real secondaries: NSD follows the fleet by NOTIFY and IXFR, signed with
//! TSIG; dig checks the access rules and a signed transfer of many messages.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_server::proto::rr::rdata::tsig::TsigAlgorithm;
use hickory_server::proto::rr::{Name, RecordType};
use stabledns::Config;
use stabledns::config::TsigKeyConfig;

use crate::harness::{TestServer, dig, wait_for};
use crate::moto::{Moto, Network, ec2_config, public_dns};
use crate::nsd::{Nsd, free_port};

const SOON: Duration = Duration::from_secs(20);

/// A random 32-byte secret, base64.
fn secret() -> (Vec<u8>, String) {
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    let b64 = data_encoding::BASE64.encode(&bytes);
    (bytes, b64)
}

/// Lets 127.0.0.1 transfer the inside view (with `key` required, when given) and NOTIFYs
/// `notify`.
fn allow_transfers(config: &mut Config, key: Option<&[u8]>, notify: Option<SocketAddr>) {
    let name = Name::from_ascii("xfr-key.").expect("name");
    if let Some(secret) = key {
        config.tsig_keys = vec![TsigKeyConfig {
            name: name.clone(),
            algorithm: TsigAlgorithm::HmacSha256,
            secret: secret.to_vec(),
        }];
    }
    let inside = config
        .views
        .iter_mut()
        .find(|v| v.name == "inside")
        .expect("inside view");
    inside.transfer = vec!["127.0.0.1/32".parse().expect("cidr")];
    inside.transfer_keys = key.map(|_| name).into_iter().collect();
    inside.notify = notify.into_iter().collect();
}

/// dig, off the async worker: the server under test runs on the same runtime, and a worker
/// blocked in a child process would hold the tasks queued on it.
fn dig_now(addr: SocketAddr, args: &[&str]) -> String {
    tokio::task::block_in_place(|| dig(addr, args))
}

fn soa_serial(addr: SocketAddr) -> Option<u32> {
    dig_now(addr, &["+short", "internal.", "SOA"])
        .split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
}

/// Polls `check` every 100 ms until it holds, or panics with `what` after `within`.
async fn eventually(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "{what} (waited {within:?})");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nsd_secondary_follows_the_fleet_by_notify_and_signed_ixfr() {
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    // A tier of ten, so the zone is larger than the diffs that follow.
    net.launch(&ec2, 10, false, &[("team", "app")], &["SG-T-APP"])
        .await;
    let db = net
        .launch(&ec2, 1, true, &[("Name", "db-primary")], &["SG-I-DB1"])
        .await;
    let db_public = format!("{}.", public_dns(&ec2, &db[0]).await.expect("public name"));

    let (key, key_b64) = secret();
    let secondary_port = free_port();
    let secondary_addr = SocketAddr::from(([127, 0, 0, 1], secondary_port));
    let mut config = ec2_config(&moto.url, &["us-east-1"], "refresh_interval = \"500ms\"");
    allow_transfers(&mut config, Some(&key), Some(secondary_addr));
    let server = TestServer::start(config).await;
    let primary = server.addr();
    wait_for(
        primary,
        "db1.internal.",
        RecordType::CNAME,
        &[&db_public],
        SOON,
    )
    .await;

    // NSD starts, transfers the whole zone (TSIG-signed) and serves it.
    let nsd = tokio::task::spawn_blocking(move || {
        Nsd::secondary(
            "internal",
            primary,
            Some(("xfr-key", &key_b64)),
            secondary_port,
        )
    })
    .await
    .expect("nsd thread");
    let serial = server.running_serial();
    eventually("the secondary serves our serial", SOON, || {
        soa_serial(nsd.addr) == serial
    })
    .await;
    let db1 = dig_now(nsd.addr, &["+short", "db1.internal.", "CNAME"]);
    assert_eq!(db1.trim(), db_public, "{}", nsd.log());
    let full = |m: &stabledns::dns::Metrics| {
        let (a, ra) = m.transfers("inside", "axfr", "full");
        let (i, ri) = m.transfers("inside", "ixfr", "full");
        (a + i, ra + ri)
    };
    let (full_transfers, full_records) = full(server.metrics());
    assert!(full_transfers >= 1, "the first transfer is a full one");

    // The fleet changes: one refresh publishes a new serial, NOTIFY brings the secondary to
    // it, and the transfer is the difference only.
    let web = net
        .launch(&ec2, 1, true, &[("Name", "web9")], &["SG-T-WEB"])
        .await;
    let web_public = format!("{}.", public_dns(&ec2, &web[0]).await.expect("public name"));
    wait_for(
        primary,
        "web9.internal.",
        RecordType::CNAME,
        &[&web_public],
        SOON,
    )
    .await;
    let serial = server.running_serial();
    eventually(
        "NOTIFY makes the secondary take the new serial",
        SOON,
        || soa_serial(nsd.addr) == serial,
    )
    .await;
    let web9 = dig_now(nsd.addr, &["+short", "web9.internal.", "CNAME"]);
    assert_eq!(web9.trim(), web_public, "{}", nsd.log());
    let m = server.metrics();
    let (incremental, diff_records) = m.transfers("inside", "ixfr", "incremental");
    assert!(
        incremental >= 1,
        "an IXFR with diffs; NSD log:\n{}",
        nsd.log()
    );
    assert!(
        diff_records / incremental < full_records / full_transfers,
        "an IXFR sends fewer records ({diff_records} in {incremental}) than the zone \
         ({full_records} in {full_transfers})"
    );
    assert_eq!(
        full(m).0,
        full_transfers,
        "no full transfer after the first"
    );
    assert!(m.notifies("inside", "acked") >= 1);
    assert!(
        nsd.log().contains("TSIG verified with key xfr-key"),
        "{}",
        nsd.log()
    );
    server.stop().await;
}

/// `dig` from `source` (a loopback address of ours).
fn dig_from(server: SocketAddr, source: &str, args: &[&str]) -> String {
    let mut all = vec!["-b", source];
    all.extend_from_slice(args);
    dig_now(server, &all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_need_an_allowed_address_and_the_right_key() {
    // A fleet big enough that the zone takes many messages, each signed.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = crate::leaks::generated_config(dir.path(), 1200, 5);
    let (key, key_b64) = secret();
    allow_transfers(&mut config, Some(&key), None);
    let server = TestServer::start(config).await;
    let addr = server.addr();
    let good = format!("hmac-sha256:xfr-key:{key_b64}");

    let out = dig_from(addr, "127.0.0.1", &["-y", &good, "AXFR", "internal."]);
    let size = out
        .lines()
        .find(|l| l.starts_with(";; XFR size:"))
        .unwrap_or_else(|| panic!("no transfer: {out}"));
    let numbers: Vec<usize> = size
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    assert!(
        numbers[0] > 3000 && numbers[1] > 3,
        "many records in several messages: {size}"
    );
    assert!(!out.contains("failed") && !out.contains("tsig"), "{out}");
    // dig checked every message's MAC (and prints each TSIG); the zone ends with its SOA.
    let records: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty() && !l.contains("\tTSIG\t"))
        .collect();
    let signed = out.lines().filter(|l| l.contains("\tTSIG\t")).count();
    assert_eq!(signed, numbers[1], "one TSIG per message");
    assert!(records.first().is_some_and(|l| l.contains("\tSOA\t")));
    assert!(records.last().is_some_and(|l| l.contains("\tSOA\t")));

    // The wrong secret, no signature, an unknown key: NOTAUTH (BADSIG/BADKEY for the signed).
    let wrong = format!("hmac-sha256:xfr-key:{}", secret().1);
    let out = dig_from(addr, "127.0.0.1", &["-y", &wrong, "AXFR", "internal."]);
    assert!(
        out.contains("Transfer failed") && out.contains("BADSIG"),
        "{out}"
    );
    let out = dig_from(addr, "127.0.0.1", &["AXFR", "internal."]);
    assert!(out.contains("Transfer failed"), "{out}");
    let other = format!("hmac-sha256:other-key:{key_b64}");
    let out = dig_from(addr, "127.0.0.1", &["-y", &other, "AXFR", "internal."]);
    assert!(
        out.contains("Transfer failed") && out.contains("BADKEY"),
        "{out}"
    );
    // The key's name with another algorithm is another key: BADKEY (RFC 8945 5.2.1).
    let other_alg = format!("hmac-sha512:xfr-key:{key_b64}");
    let out = dig_from(addr, "127.0.0.1", &["-y", &other_alg, "AXFR", "internal."]);
    assert!(
        out.contains("Transfer failed") && out.contains("BADKEY"),
        "{out}"
    );
    // ... and the BADKEY names the request's algorithm, so dig reads it as BADKEY rather than
    // as a reply it cannot verify; a signed query outside a transfer gets the same.
    assert!(!out.contains("tsig verify failure"), "{out}");
    let out = dig_from(addr, "127.0.0.1", &["-y", &other_alg, "SOA", "internal."]);
    assert!(
        out.contains("BADKEY") && !out.contains("tsig verify failure"),
        "{out}"
    );
    // IXFR from a serial newer than ours: our SOA alone (RFC 1995 2), not the whole zone.
    let ahead = format!("IXFR={}", serial_of(&out_soa(addr)).wrapping_add(1000));
    let out = dig_from(addr, "127.0.0.1", &["-y", &good, &ahead, "internal."]);
    let answer: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty() && !l.contains("\tTSIG\t"))
        .collect();
    assert!(answer.len() == 1 && answer[0].contains("\tSOA\t"), "{out}");
    // The right key from an address the view does not list: REFUSED.
    let out = dig_from(addr, "127.0.0.3", &["-y", &good, "AXFR", "internal."]);
    assert!(out.contains("Transfer failed"), "{out}");
    // A zone the view does not serve.
    let out = dig_from(addr, "127.0.0.1", &["-y", &good, "AXFR", "other.internal."]);
    assert!(out.contains("Transfer failed"), "{out}");
    // IXFR over UDP: just the SOA (use TCP).
    let out = dig_from(
        addr,
        "127.0.0.1",
        &["-y", &good, "+notcp", "IXFR=1", "internal."],
    );
    let answer: Vec<&str> = out
        .lines()
        .filter(|l| !l.starts_with(';') && !l.is_empty() && !l.contains("\tTSIG\t"))
        .collect();
    assert!(answer.len() == 1 && answer[0].contains("\tSOA\t"), "{out}");

    let m = server.metrics();
    assert_eq!(m.transfers("inside", "axfr", "full").0, 1);
    // The wrong secret, the unsigned request, the unknown key, the other algorithm, the zone
    // the view does not serve.
    assert_eq!(m.transfers("inside", "axfr", "refused").0, 5);
    assert_eq!(m.transfers("outside", "axfr", "refused").0, 1);
    server.stop().await;
}

/// The zone's SOA as dig prints it (`+short`).
fn out_soa(addr: std::net::SocketAddr) -> String {
    crate::harness::dig(addr, &["+short", "SOA", "internal."])
}

/// The serial field of a `+short` SOA line.
fn serial_of(soa: &str) -> u32 {
    soa.split_whitespace()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {soa:?}"))
}
