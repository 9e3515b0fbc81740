//! A real NSD (Debian's `nsd`) on a loopback port, serving zones a test writes: the upstream
//! resolver for forwarding and CNAME chasing (it plays AWS's VPC resolver, answering the
//! instances' public DNS names with their private addresses).

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// A running NSD; killed on drop.
pub struct Nsd {
    child: Child,
    /// Where it answers, UDP and TCP.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        // SIGTERM lets NSD stop its server and xfrd children too; SIGKILL if it dawdles.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port free on both UDP and TCP right now.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = udp.local_addr().expect("addr").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port");
}

impl Nsd {
    /// Starts NSD serving `zones` (origin without the trailing dot, zone file text), and waits
    /// until it answers the first zone's SOA.
    pub fn start(zones: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let mut conf = server_conf(dir.path(), port);
        for (origin, text) in zones {
            std::fs::write(dir.path().join(format!("{origin}.zone")), text).expect("zone file");
            conf.push_str(&format!(
                "zone:\n  name: \"{origin}\"\n  zonefile: \"{origin}.zone\"\n"
            ));
        }
        Self::run(dir, port, &conf, zones.first().map_or(".", |z| z.0))
    }

    /// Starts NSD on `port` as a secondary for `origin`: it transfers the zone from `primary`
    /// (signed with `key`, a name and base64 secret, when given) and takes NOTIFY from
    /// loopback. Waits until it serves the zone.
    pub fn secondary(
        origin: &str,
        primary: SocketAddr,
        key: Option<(&str, &str)>,
        port: u16,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut conf = server_conf(dir.path(), port);
        let key_name = match key {
            Some((name, secret)) => {
                conf.push_str(&format!(
                    "key:\n  name: \"{name}\"\n  algorithm: hmac-sha256\n  secret: \"{secret}\"\n"
                ));
                name
            }
            None => "NOKEY",
        };
        let primary = format!("{}@{}", primary.ip(), primary.port());
        conf.push_str(&format!(
            "zone:\n  name: \"{origin}\"\n  zonefile: \"{origin}.zone\"\n  \
             request-xfr: {primary} {key_name}\n  allow-notify: 127.0.0.0/8 NOKEY\n"
        ));
        Self::run(dir, port, &conf, origin)
    }

    /// What NSD logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nsd.log")).unwrap_or_default()
    }

    fn run(dir: TempDir, port: u16, conf: &str, origin: &str) -> Self {
        let conf_path = dir.path().join("nsd.conf");
        std::fs::write(&conf_path, conf).expect("nsd.conf");
        let child = Command::new("nsd")
            .arg("-d")
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run nsd ({e}): install it (scripts/test does) and run again")
            });
        let nsd = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        nsd.wait_ready(origin);
        nsd
    }

    fn wait_ready(&self, origin: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let out = crate::harness::dig(self.addr, &["+short", origin, "SOA"]);
            if !out.trim().is_empty() {
                return;
            }
            if Instant::now() > deadline {
                let log =
                    std::fs::read_to_string(self.dir.path().join("nsd.log")).unwrap_or_default();
                panic!(
                    "nsd did not answer on {} within 15 s; its log:\n{log}",
                    self.addr
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// NSD's `server:` section on a loopback port, everything in `dir`, verbosity 2 (transfers
/// are logged).
fn server_conf(dir: &std::path::Path, port: u16) -> String {
    let d = dir.display();
    format!(
        "server:\n  ip-address: 127.0.0.1@{port}\n  port: {port}\n  username: \"\"\n  \
         chroot: \"\"\n  zonesdir: \"{d}\"\n  pidfile: \"{d}/nsd.pid\"\n  database: \"\"\n  \
         xfrdfile: \"{d}/xfrd.state\"\n  zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  \
         logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 2\n  rrl-ratelimit: 0\n  \
         rrl-whitelist-ratelimit: 0\nremote-control:\n  control-enable: no\n"
    )
}

/// A zone file with an SOA and NS at `origin` and the given records (relative or absolute).
pub fn zone(origin: &str, records: &[&str]) -> String {
    let mut text = format!(
        "$ORIGIN {origin}.\n$TTL 300\n@ IN SOA ns.{origin}. hostmaster.{origin}. 1 3600 600 86400 30\n\
         @ IN NS ns.{origin}.\nns IN A 127.0.0.1\n"
    );
    for r in records {
        text.push_str(r);
        text.push('\n');
    }
    text
}
