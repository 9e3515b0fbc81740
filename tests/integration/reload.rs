//! The real binary under signals: SIGHUP reloads the config without dropping a query (and keeps
//! the old one when the new one is broken); SIGTERM exits 0 after writing the state file.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hickory_server::proto::op::{Message, Query, ResponseCode};
use hickory_server::proto::rr::{Name, RecordType};
use hickory_server::proto::serialize::binary::{BinDecodable, BinEncodable};

use crate::harness::{Logged, root};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

/// The binary serving `config`, forwarding to `upstream`.
fn start(config: &Path, upstream: SocketAddr) -> Logged {
    Logged::spawn(
        Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(["--upstream", &upstream.to_string()])
            .env("RUST_LOG", "info"),
    )
}

fn addr_after(line: &str, key: &str) -> SocketAddr {
    let rest = line.split(key).nth(1).expect("key in line");
    let end = rest
        .find(|c: char| c == '/' || c.is_whitespace())
        .unwrap_or(rest.len());
    rest[..end].parse().expect("a socket address")
}

/// The demo config and its fleet in `dir`, with `record_ttl` set and a state file.
fn write_config(dir: &Path, ttl: &str) {
    let demo = std::fs::read_to_string(root().join("config/demo.toml")).expect("demo");
    let text = demo
        .replace("record_ttl = 60", &format!("record_ttl = {ttl}"))
        .replace(
            "[inventory]\n",
            &format!(
                "[inventory]\nstate_file = \"{}\"\n",
                dir.join("state.json").display()
            ),
        );
    assert!(text.contains(&format!("record_ttl = {ttl}")));
    std::fs::write(dir.join("stabledns.toml"), text).expect("write config");
}

/// Asks `name` A over UDP again and again until `stop`; counts answers and failures (no
/// answer within 2 s, or not NOERROR) and keeps the last TTL seen.
fn query_loop(
    server: SocketAddr,
    name: &str,
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    ttl: Arc<AtomicU32>,
) -> std::thread::JoinHandle<()> {
    let name = Name::from_ascii(name).expect("name");
    std::thread::spawn(move || {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut id: u16 = 0;
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            id = id.wrapping_add(1);
            let mut msg = Message::query();
            msg.metadata.id = id;
            msg.add_query(Query::query(name.clone(), RecordType::A));
            socket
                .send_to(&msg.to_bytes().expect("encode"), server)
                .expect("send");
            let reply = loop {
                match socket.recv(&mut buf) {
                    Ok(n) => match Message::from_bytes(&buf[..n]) {
                        Ok(m) if m.metadata.id == id => break Some(m),
                        _ => continue, // a late answer to an earlier query
                    },
                    Err(_) => break None,
                }
            };
            match reply {
                Some(m)
                    if m.metadata.response_code == ResponseCode::NoError
                        && !m.answers.is_empty() =>
                {
                    ttl.store(m.answers[0].ttl, Ordering::Relaxed);
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    })
}

#[test]
fn sighup_reloads_without_dropping_queries_and_sigterm_saves_the_state() {
    let nsd = crate::forwarding::vpc_resolver();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("config/demo-instances.json"),
        dir.path().join("demo-instances.json"),
    )
    .expect("copy the fleet");
    write_config(dir.path(), "60");
    let config = dir.path().join("stabledns.toml");
    let mut server = start(&config, nsd.addr);
    let dns = addr_after(&server.wait_log("listening on UDP and TCP"), "local=");
    let admin = addr_after(&server.wait_log("admin endpoints on"), "http://");

    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let ttl = Arc::new(AtomicU32::new(0));
    let looping = query_loop(
        dns,
        "1.worker.internal.",
        stop.clone(),
        answered.clone(),
        failed.clone(),
        ttl.clone(),
    );
    let wait_ttl = |want: u32| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while ttl.load(Ordering::Relaxed) != want {
            assert!(
                Instant::now() < deadline,
                "TTL still {} after 20 s, want {want}",
                ttl.load(Ordering::Relaxed)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_ttl(60);

    // A new TTL, applied while the loop runs.
    write_config(dir.path(), "17");
    server.signal("-HUP");
    server.wait_log("reloaded the config");
    wait_ttl(17);
    let at_reload = answered.load(Ordering::Relaxed);

    // A broken config is rejected and the last good one keeps serving.
    std::fs::write(&config, "[server\nlisten = ").expect("write");
    server.signal("-HUP");
    let rejected = server.wait_log("reload rejected");
    assert!(
        rejected.contains("stabledns.toml"),
        "names the file: {rejected}"
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        ttl.load(Ordering::Relaxed),
        17,
        "the old config still serves"
    );

    stop.store(true, Ordering::Relaxed);
    looping.join().expect("query loop");
    let (ok, bad) = (
        answered.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    assert!(ok > at_reload && ok > 100, "{ok} answers");
    assert_eq!(
        bad,
        0,
        "{bad} of {} queries failed across the reloads",
        ok + bad
    );

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let metrics = rt.block_on(crate::admin::http_get(admin, "/metrics")).1;
    assert!(
        metrics.contains("stabledns_config_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("stabledns_config_reloads_total{result=\"rejected\"} 1"));

    // SIGTERM: a clean exit that leaves the state file of what was served.
    let _ = std::fs::remove_file(dir.path().join("state.json"));
    server.signal("-TERM");
    let status = server.child.wait().expect("exits");
    assert!(status.success(), "exit status {status}");
    let saved = stabledns::state::load(&dir.path().join("state.json"))
        .expect("readable state file")
        .expect("a state file written at shutdown");
    assert_eq!(saved.instances.len(), 8);
}
