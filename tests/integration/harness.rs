//! Starting servers on ephemeral loopback ports and talking to them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::time::Duration;

use hickory_server::net::client::{Client, ClientHandle};
use hickory_server::net::runtime::TokioRuntimeProvider;
use hickory_server::net::tcp::TcpClientStream;
use hickory_server::net::udp::UdpClientStream;
use hickory_server::proto::op::Message;
use hickory_server::proto::rr::{DNSClass, Name, RecordType};
use stabledns::{Config, Running};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// The demo config, listening on an ephemeral loopback port.
pub fn demo_config() -> Config {
    let mut config = Config::load(&root().join("config/demo.toml")).expect("demo config loads");
    config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    ephemeral_admin(&mut config);
    config
}

/// The admin listener, if configured, on a port of its own: tests run side by side.
pub fn ephemeral_admin(config: &mut Config) {
    if let Some(admin) = &mut config.admin {
        admin.listen = "127.0.0.1:0".parse().expect("addr");
    }
}

/// A server started in-process; stopped by [`TestServer::stop`], or told to stop when dropped
/// (a test that fails half-way leaves no UDP threads or sockets behind for the next).
pub struct TestServer {
    running: Option<Running>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(running) = &self.running {
            running.cancel();
        }
    }
}

impl TestServer {
    /// Starts the demo.
    pub async fn demo() -> Self {
        Self::start(demo_config()).await
    }

    /// Starts any config. A config that would forward to the machine's own resolver (the
    /// demo's `upstreams = ["system"]`) forwards nowhere here: tests talk only to loopback, and
    /// the forwarding tests give their own upstream on it.
    pub async fn start(config: Config) -> Self {
        Self::try_start(config).await.expect("server starts")
    }

    /// Starts `config` with the rate limits it has.
    pub async fn start_rate_limited(config: Config) -> Self {
        Self::try_start_rate_limited(config)
            .await
            .expect("server starts")
    }

    /// [`TestServer::start`], with the start-up error for the caller.
    pub async fn try_start(mut config: Config) -> Result<Self, stabledns::Error> {
        // Tests ask thousands of questions from one loopback address; the rate limit test
        // starts with `start_rate_limited`.
        for view in &mut config.views {
            view.rate_limit = 0;
        }
        Self::try_start_rate_limited(config).await
    }

    async fn try_start_rate_limited(mut config: Config) -> Result<Self, stabledns::Error> {
        ephemeral_admin(&mut config);
        if config
            .forwarding
            .as_ref()
            .is_some_and(|f| f.upstreams.is_none())
        {
            config.forwarding = None;
        }
        if let Some(f) = &config.forwarding {
            let upstreams = f.upstreams.as_deref().unwrap_or_default();
            assert!(
                upstreams.iter().all(|u| u.ip().is_loopback()),
                "tests forward only to loopback, not {upstreams:?}"
            );
        }
        let running = stabledns::start(config).await?;
        Ok(Self {
            running: Some(running),
        })
    }

    /// Applies a new config as SIGHUP does.
    pub async fn reload(&self, config: Config) {
        self.running().reload(config).await.expect("reload applies");
    }

    /// The one bound address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.running().addrs()[0]
    }

    /// A hickory client over UDP and one over TCP, labelled.
    pub async fn clients(&self) -> Vec<(&'static str, Client<TokioRuntimeProvider>)> {
        vec![
            ("udp", udp_client(self.addr())),
            ("tcp", tcp_client(self.addr()).await),
        ]
    }

    /// The serial of the published snapshot.
    pub fn running_serial(&self) -> Option<u32> {
        self.running().snapshot.load().map(|s| s.serial)
    }

    /// The published snapshot, if there is one yet.
    pub fn published(&self) -> Option<std::sync::Arc<stabledns::zone::Snapshot>> {
        self.running().snapshot.load()
    }

    /// The refresh loop's counters.
    pub fn refresh_stats(&self) -> &stabledns::refresh::RefreshStats {
        &self.running().stats
    }

    /// Successful inventory fetches so far.
    pub fn successes(&self) -> u64 {
        self.running()
            .stats
            .successes
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Failed inventory fetches so far.
    pub fn failures(&self) -> u64 {
        self.running()
            .stats
            .failures
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Instances the last inventory read skipped as unusable.
    pub fn skipped_instances(&self) -> u64 {
        self.running()
            .stats
            .skipped_instances
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Refreshes held back by the safety valve.
    pub fn valve_trips(&self) -> u64 {
        self.running()
            .stats
            .valve_trips
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// (consecutive failures, chosen backoff) at the last failure.
    pub fn last_backoff(&self) -> (u64, Duration) {
        self.running().stats.last_backoff()
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> std::sync::Arc<stabledns::zone::Snapshot> {
        self.running()
            .snapshot
            .load()
            .expect("a snapshot is published")
    }

    /// The TCP listener's counters.
    pub fn tcp_stats(&self) -> &stabledns::dns::tcp::TcpStats {
        self.running().tcp_stats()
    }

    /// Forwarding failures so far for this reason.
    pub fn forward_failures(&self, why: stabledns::dns::forward::Failure) -> u64 {
        self.running().forward_failures(why)
    }

    /// The DNS side's counters.
    pub fn metrics(&self) -> &stabledns::dns::Metrics {
        &self.running().metrics
    }

    /// What became of the EC2 events read from SQS.
    pub fn event_stats(&self) -> &stabledns::refresh::events::EventStats {
        &self.running().event_stats
    }

    /// Publishing's counts per hosted zone.
    pub fn publish_counts(
        &self,
    ) -> std::collections::BTreeMap<String, stabledns::publish::PublishCounts> {
        self.running().publish_stats.zones()
    }

    /// The admin listener's address.
    pub fn admin(&self) -> SocketAddr {
        self.running().admin_addr().expect("the config has [admin]")
    }

    /// UDP queries answered by the fast path and by the hickory handler.
    pub fn udp_counts(&self) -> (u64, u64) {
        self.running().udp_counts()
    }

    /// Whether the forwarding loop probe came back to us.
    pub fn forwarding_looped(&self) -> bool {
        self.running().forwarding_looped()
    }

    /// Stops the server.
    pub async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.stop().await.expect("clean stop");
        }
    }

    fn running(&self) -> &Running {
        self.running.as_ref().expect("running until stopped")
    }
}

/// A hickory client over UDP.
pub fn udp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let conn = UdpClientStream::builder(addr, TokioRuntimeProvider::default())
        .with_timeout(Some(Duration::from_secs(5)))
        .build();
    let (client, bg) = Client::<TokioRuntimeProvider>::from_sender(conn);
    tokio::spawn(bg);
    client
}

/// A hickory client over TCP.
pub async fn tcp_client(addr: SocketAddr) -> Client<TokioRuntimeProvider> {
    let (stream, sender) = TcpClientStream::new(addr, None, None, TokioRuntimeProvider::new());
    let (client, bg) =
        Client::<TokioRuntimeProvider>::new(stream.await.expect("tcp connects"), sender);
    tokio::spawn(bg);
    client
}

/// One query; the whole response message.
pub async fn query(
    client: &mut Client<TokioRuntimeProvider>,
    name: &str,
    class: DNSClass,
    rtype: RecordType,
) -> Message {
    let name = Name::from_str(name).expect("valid name");
    client
        .query(name, class, rtype)
        .await
        .unwrap_or_else(|e| panic!("query failed: {e}"))
        .into_message()
}

/// Sends raw bytes over UDP and returns the reply, or `None` after `wait`.
pub async fn raw_udp(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    sock.send_to(bytes, addr).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

/// Runs the real `dig` against `addr` and returns its output. Fails loudly without dig.
pub fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", addr.ip()))
        .args(["-p", &addr.port().to_string(), "+time=3", "+tries=1"])
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run dig ({e}): install dnsutils (scripts/test does) and run again")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks `name`/`rtype` over UDP with a fresh client.
pub async fn ask(addr: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut client = udp_client(addr);
    query(&mut client, name, DNSClass::IN, rtype).await
}

/// The answer's data in presentation form, sorted (`NXDOMAIN`/`SERVFAIL`… for errors).
pub fn summary(m: &Message) -> Vec<String> {
    use hickory_server::proto::op::ResponseCode;
    if m.metadata.response_code != ResponseCode::NoError {
        return vec![m.metadata.response_code.to_string()];
    }
    let mut out: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
    out.sort();
    out
}

/// Polls until `name` answers `want` (see [`summary`]), or panics after `within`.
pub async fn wait_for(
    addr: SocketAddr,
    name: &str,
    rtype: RecordType,
    want: &[&str],
    within: Duration,
) {
    let deadline = tokio::time::Instant::now() + within;
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    loop {
        let got = summary(&ask(addr, name, rtype).await);
        if got == want {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("{name} {rtype}: still {got:?} after {within:?}, want {want:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A process under test (the binary, or a peer such as `fstrm_capture`): killed on drop, its
/// stderr lines read as they come and kept, so a line that went by while the test waited for
/// another still counts.
pub struct Logged {
    /// The process.
    pub child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    log: Vec<String>,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Logged {
    /// Starts `cmd` with stdout discarded and stderr read.
    pub fn spawn(cmd: &mut Command) -> Self {
        use std::io::BufRead;
        let mut child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
        let stderr = child.stderr.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                let _ = tx.send(line);
            }
        });
        Self {
            child,
            lines,
            log: Vec::new(),
        }
    }

    /// The first log line containing `needle`, read already or waited for (30 s at most).
    pub fn wait_log(&mut self, needle: &str) -> String {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.log.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => break,
            }
        }
        panic!(
            "no log line with `{needle}` in 30 s; log so far:\n{}",
            self.log.join("\n")
        );
    }

    /// Every line it has written so far, without waiting for more.
    pub fn read_now(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.log.push(line);
        }
        &self.log
    }

    /// Every line read so far.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Sends `sig` (`-HUP`, `-TERM`, …).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig}");
    }

    /// SIGTERM, a clean exit, and every line it logged.
    pub fn stop(mut self) -> Vec<String> {
        self.signal("-TERM");
        let status = self.child.wait().expect("waits");
        assert!(status.success(), "stopped with {status}");
        let rest: Vec<String> = self.lines.try_iter().collect();
        self.log.extend(rest);
        std::mem::take(&mut self.log)
    }
}
