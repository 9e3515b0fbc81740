//! BIND and Knot as TSIG secondaries of stabledns, on loopback: the initial transfer, then a
//! fleet change that NOTIFY (from the configured source address) and IXFR bring to both. They
//! accept NOTIFY only from their primary's address: stabledns listens on 127.83.61.21 (an
//! address of 127/8 nobody configures, so a server someone runs on this machine is not in the
//! way), while the kernel would send from 127.0.0.1.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_server::proto::rr::Name;
use hickory_server::proto::rr::rdata::tsig::TsigAlgorithm;
use stabledns::config::TsigKeyConfig;

use crate::harness::{TestServer, dig};
use crate::nsd::free_port;

/// A secondary's process, killed on drop, and where it logs.
pub struct Secondary {
    child: Child,
    dir: tempfile::TempDir,
    /// Where it answers.
    pub addr: SocketAddr,
    log: &'static str,
    what: &'static str,
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Secondary {
    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }

    /// BIND 9 (`named`) on `port` as a secondary of `internal.` from `primary`, signed with
    /// `key`.
    pub fn bind(primary: SocketAddr, key_b64: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        let conf = format!(
            r#"options {{
  directory "{d}";
  pid-file "{d}/named.pid";
  session-keyfile "{d}/session.key";
  managed-keys-directory "{d}";
  listen-on port {port} {{ 127.0.0.1; }};
  listen-on-v6 {{ none; }};
  recursion no;
  dnssec-validation no;
  notify no;
}};
key "xfr-key" {{ algorithm hmac-sha256; secret "{key_b64}"; }};
controls {{ }};
logging {{
  channel file {{ file "{d}/named.log"; severity info; print-time yes; }};
  category default {{ file; }};
  category xfer-in {{ file; }};
  category notify {{ file; }};
  category general {{ file; }};
}};
zone "internal" {{
  type secondary;
  file "{d}/internal.db";
  primaries {{ {ip} port {pport} key "xfr-key"; }};
}};
"#,
            ip = primary.ip(),
            pport = primary.port(),
        );
        let path = dir.path().join("named.conf");
        std::fs::write(&path, conf).expect("named.conf");
        let check = Command::new("named-checkconf")
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run named-checkconf ({e}): install bind9 (scripts/test does)")
            });
        assert!(
            check.status.success(),
            "named.conf: {}",
            String::from_utf8_lossy(&check.stdout)
        );
        let child = Command::new("named")
            .args(["-f", "-4", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run named ({e}): install bind9 (scripts/test does)")
            });
        Self::ready(child, dir, port, "named.log", "BIND")
    }

    /// Knot on `port` as a secondary of `internal.` from `primary`, signed with `key`.
    pub fn knot(primary: SocketAddr, key_b64: &str, port: u16) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("db")).expect("storage");
        let conf = format!(
            r#"server:
    rundir: "{d}"
    listen: 127.0.0.1@{port}
log:
  - target: "{d}/knot.log"
    any: info
database:
    storage: "{d}/db"
key:
  - id: xfr-key
    algorithm: hmac-sha256
    secret: {key_b64}
remote:
  - id: primary
    address: {ip}@{pport}
    key: xfr-key
acl:
  - id: notify-from-primary
    address: {ip}
    action: notify
template:
  - id: default
    storage: "{d}"
zone:
  - domain: internal
    master: primary
    acl: notify-from-primary
    file: "internal.zone"
"#,
            ip = primary.ip(),
            pport = primary.port(),
        );
        let path = dir.path().join("knot.conf");
        std::fs::write(&path, conf).expect("knot.conf");
        let child = Command::new("knotd")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run knotd ({e}): install knot (scripts/test does)"));
        Self::ready(child, dir, port, "knot.log", "Knot")
    }

    fn ready(
        child: Child,
        dir: tempfile::TempDir,
        port: u16,
        log: &'static str,
        what: &'static str,
    ) -> Self {
        let s = Self {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
            what,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while dig(s.addr, &["+short", "CH", "TXT", "version.bind"])
            .trim()
            .is_empty()
            && dig(s.addr, &["+short", "internal.", "SOA"])
                .trim()
                .is_empty()
        {
            assert!(
                Instant::now() < deadline,
                "{what} did not start; its log:\n{}",
                s.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    /// The serial it serves for `internal.`, if any.
    pub fn serial(&self) -> Option<u32> {
        dig(self.addr, &["+short", "internal.", "SOA"])
            .split_whitespace()
            .nth(2)
            .and_then(|s| s.parse().ok())
    }

    /// Waits until it serves `serial`, or panics with its log after `within`.
    pub async fn wait_serial(&self, serial: Option<u32>, within: Duration, why: &str) {
        let deadline = Instant::now() + within;
        loop {
            let now = tokio::task::block_in_place(|| self.serial());
            if now == serial {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: {why}: serves {now:?}, want {serial:?} after {within:?}; its log:\n{}",
                self.what,
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A fleet of `n` instances in the tier `app` (private addresses), plus `extra` named ones.
fn fleet(n: usize, extra: &[&str]) -> String {
    crate::answers::fleet_json("APP", n, extra)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_knot_follow_the_fleet_by_notify_from_the_configured_source() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet_path = dir.path().join("fleet.json");
    // A tier of 150: more than BIND takes in one RRset (max-records-per-type 100).
    std::fs::write(&fleet_path, fleet(150, &["db1"])).expect("fleet");
    let demo =
        std::fs::read_to_string(crate::harness::root().join("config/demo.toml")).expect("demo");
    let text = demo
        .replace("demo-instances.json", "fleet.json")
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"300ms\"")
        .replace(
            "listen = [\"127.0.0.1:5353\"]",
            "listen = [\"127.83.61.21:0\"]",
        );
    let config_path = dir.path().join("stabledns.toml");
    std::fs::write(&config_path, text).expect("config");
    let mut config = stabledns::Config::load(&config_path).expect("config");
    assert_eq!(
        config.views[0].notify_source,
        Some("127.83.61.21".parse().expect("ip")),
        "the one listen address is the NOTIFY source"
    );

    let secret: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    let key_b64 = data_encoding::BASE64.encode(&secret);
    let key = Name::from_ascii("xfr-key.").expect("name");
    config.tsig_keys = vec![TsigKeyConfig {
        name: key.clone(),
        algorithm: TsigAlgorithm::HmacSha256,
        secret,
    }];
    // The secondaries connect from 127.0.0.1 (the kernel's choice), inside the inside view.
    // Their ports are picked before stabledns starts, so NOTIFY knows where to go.
    let bind_port = free_port();
    let knot_port = free_port();
    let inside = &mut config.views[0];
    inside.transfer = vec!["127.0.0.1/32".parse().expect("cidr")];
    inside.transfer_keys = vec![key];
    inside.notify = vec![
        SocketAddr::from(([127, 0, 0, 1], bind_port)),
        SocketAddr::from(([127, 0, 0, 1], knot_port)),
    ];
    let server = TestServer::start(config).await;
    let primary = server.addr();
    assert_eq!(primary.ip().to_string(), "127.83.61.21");

    let (b64, p) = (key_b64.clone(), primary);
    let bind = tokio::task::spawn_blocking(move || Secondary::bind(p, &b64, bind_port))
        .await
        .expect("bind thread");
    let (b64, p) = (key_b64.clone(), primary);
    let knot = tokio::task::spawn_blocking(move || Secondary::knot(p, &b64, knot_port))
        .await
        .expect("knot thread");
    let serial = server.running_serial();
    bind.wait_serial(serial, Duration::from_secs(20), "the first transfer")
        .await;
    knot.wait_serial(serial, Duration::from_secs(20), "the first transfer")
        .await;

    // The fleet changes: one refresh, one new serial, NOTIFY to both from 127.83.61.21 (their
    // SOA refresh is an hour away), and each takes the difference by IXFR.
    std::fs::write(&fleet_path, fleet(150, &["db1", "web9"])).expect("fleet");
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.running_serial() == serial {
        assert!(
            Instant::now() < deadline,
            "the fleet change was not published"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let serial = server.running_serial();
    bind.wait_serial(serial, Duration::from_secs(20), "NOTIFY and IXFR")
        .await;
    knot.wait_serial(serial, Duration::from_secs(20), "NOTIFY and IXFR")
        .await;
    for s in [&bind, &knot] {
        let web9 = tokio::task::block_in_place(|| dig(s.addr, &["+short", "web9.internal.", "A"]));
        assert_eq!(web9.trim(), "10.8.0.2", "{}: {}", s.what, s.log());
    }
    // The tier is capped at max_records_per_rrset (100) in the zone: BIND loads it and serves
    // 100; stabledns hands out all 150 over its answers, 100 at a time.
    for s in [&bind, &knot] {
        let app =
            tokio::task::block_in_place(|| dig(s.addr, &["+tcp", "+short", "app.internal.", "A"]));
        assert_eq!(app.lines().count(), 100, "{}: {}", s.what, s.log());
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let app =
            tokio::task::block_in_place(|| dig(primary, &["+tcp", "+short", "app.internal.", "A"]));
        assert_eq!(app.lines().count(), 100, "{app}");
        seen.extend(app.lines().map(str::to_owned));
    }
    assert_eq!(
        seen.len(),
        150,
        "every member is handed out over the queries"
    );
    let bind_log = bind.log();
    assert!(!bind_log.contains("too many records"), "{bind_log}");
    // BIND's second transfer is the difference (IXFR), far smaller than the first.
    let records: Vec<u64> = bind_log
        .lines()
        .filter_map(|l| l.split("Transfer completed: ").nth(1))
        .filter_map(|l| {
            l.split(" messages, ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse()
                .ok()
        })
        .collect();
    assert!(
        records.len() >= 2 && records[records.len() - 1] * 10 < records[0],
        "{records:?}: {bind_log}"
    );
    assert!(!bind_log.contains("refused notify"), "{bind_log}");
    assert!(bind_log.contains("received notify"), "{bind_log}");
    assert!(
        bind_log.contains(&format!("from {}#{}", primary.ip(), primary.port())),
        "{bind_log}"
    );
    let knot_log = knot.log();
    assert!(!knot_log.contains("denied"), "{knot_log}");
    assert!(knot_log.contains("IXFR, incoming"), "{knot_log}");
    let m = server.metrics();
    assert!(
        m.notifies("inside", "acked") >= 2,
        "both acknowledged NOTIFY"
    );
    server.stop().await;
}

#[test]
fn every_zone_of_every_view_passes_named_checkzone_and_kzonecheck() {
    let bin = env!("CARGO_BIN_EXE_stabledns");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .current_dir(crate::harness::root())
            .args(["zone", "--config", "config/demo.toml"])
            .args(args)
            .output()
            .expect("stabledns zone runs");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let mut checked = 0;
    for view in ["inside", "peered", "outside"] {
        let zones = run(&["--view", view, "--zone", "list"]);
        for apex in zones.lines() {
            let text = run(&["--view", view, "--zone", apex]);
            let file = dir.path().join(format!("{view}-{apex}zone"));
            std::fs::write(&file, &text).expect("zone file");
            // `-i local`: integrity checks of in-zone names only; nothing is looked up.
            let bind = Command::new("named-checkzone")
                .args(["-i", "local", apex])
                .arg(&file)
                .output()
                .unwrap_or_else(|e| {
                    panic!("cannot run named-checkzone ({e}): install bind9-utils")
                });
            assert!(
                bind.status.success(),
                "named-checkzone refuses view {view} zone {apex}:\n{}\n{text}",
                String::from_utf8_lossy(&bind.stdout)
            );
            let knot = Command::new("kzonecheck")
                .args(["-o", apex])
                .arg(&file)
                .output()
                .unwrap_or_else(|e| panic!("cannot run kzonecheck ({e}): install knot"));
            assert!(
                knot.status.success(),
                "kzonecheck refuses view {view} zone {apex}:\n{}{}\n{text}",
                String::from_utf8_lossy(&knot.stdout),
                String::from_utf8_lossy(&knot.stderr)
            );
            checked += 1;
        }
    }
    // The forward zone in each view, and the reverse zone of the two private ones.
    assert_eq!(checked, 5);
}

/// A secondary that, the moment a NOTIFY arrives, connects to the primary over TCP to
/// transfer, as Knot does: the listener must be up by then, or Knot backs off for its whole
/// retry interval (10 minutes) and stays on the old serial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_goes_out_only_once_the_tcp_listener_is_up() {
    let secondary = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    secondary
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let port = free_port();
    let primary: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut config = crate::harness::demo_config();
    config.server.listen = vec![primary];
    config.views[0].notify = vec![secondary.local_addr().expect("addr")];
    config.views[0].notify_source = Some(primary.ip());
    let reached = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        let (n, _) = secondary.recv_from(&mut buf).expect("a NOTIFY within 30 s");
        assert!(n >= 12, "a DNS message");
        std::net::TcpStream::connect(primary).map(|_| ())
    });
    let server = TestServer::start(config).await;
    let reached = tokio::task::spawn_blocking(move || reached.join())
        .await
        .expect("joins")
        .expect("the secondary thread");
    assert!(
        reached.is_ok(),
        "NOTIFY came before the TCP listener: {reached:?}"
    );
    server.stop().await;
}
