//! The Grafana dashboard (`contrib/grafana/stabledns.json`) against a real Prometheus server
//! (Debian's) scraping a live stabledns that serves, forwards, transfers, sends NOTIFY,
//! refreshes from EC2, applies an EC2 event, audits and publishes to Route 53 (moto): every
//! panel's query returns data through Prometheus's HTTP API, so no panel would show "No data",
//! and every metric the dashboard or the alert rules name exists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hickory_server::proto::rr::{DNSClass, RecordType};

use crate::admin::http_get;
use crate::harness::{TestServer, dig, query, udp_client};
use crate::moto::{Moto, Network, ec2_config_text};

/// A Prometheus server on loopback, scraping `targets` every second; killed when dropped.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: stabledns\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (scripts/test installs Debian's prometheus)");
        Self {
            child,
            addr,
            _dir: dir,
        }
    }

    /// An instant query's samples: (labels, value) each.
    async fn query(&self, expr: &str) -> Vec<(String, f64)> {
        let (status, body) =
            http_get(self.addr, &format!("/api/v1/query?query={}", encode(expr))).await;
        assert_eq!(status, 200, "{expr}: {body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("Prometheus JSON");
        (json["data"]["result"].as_array().into_iter().flatten())
            .filter_map(|r| {
                let value = r["value"][1].as_str()?.parse::<f64>().ok()?;
                Some((r["metric"].to_string(), value))
            })
            .collect()
    }

    /// Every metric name Prometheus holds.
    async fn names(&self) -> BTreeSet<String> {
        let (status, body) = http_get(self.addr, "/api/v1/label/__name__/values").await;
        assert_eq!(status, 200, "{body}");
        let json: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        (json["data"].as_array().into_iter().flatten())
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding for a query string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The dashboard's panels: title and PromQL of each target, with Grafana's variables as a
/// single-job install fills them in.
fn panels() -> Vec<(String, Vec<String>)> {
    let path = crate::harness::root().join("contrib/grafana/stabledns.json");
    let text = std::fs::read_to_string(path).expect("the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    (dashboard["panels"].as_array().expect("panels").iter())
        .map(|p| {
            let title = p["title"].as_str().expect("a title").to_owned();
            let exprs = (p["targets"].as_array().expect("targets").iter())
                .map(|t| {
                    (t["expr"].as_str().expect("an expr"))
                        .replace("$__rate_interval", "15s")
                        .replace("$job", "stabledns")
                })
                .collect();
            (title, exprs)
        })
        .collect()
}

/// Every `stabledns_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("stabledns_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        names.insert(name);
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_panel_has_data_from_a_live_server_through_prometheus() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let sqs = crate::events::sqs(&moto);
    let queue = crate::events::queue(&sqs, "stabledns-dashboard").await;
    let r53 = crate::publish::client(&moto);
    let zone = crate::publish::private_zone(&r53, "internal.").await;
    let net = Network::create(&ec2).await;
    net.launch(&ec2, 2, true, &[], &["SG-T-WEB"]).await;
    let upstream = crate::forwarding::vpc_resolver();
    // A NOTIFY target that never answers: the exchange is counted as failed.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let silent_addr = silent.local_addr().expect("addr");

    let extra = format!(
        "refresh_interval = \"1s\"\napi_timeout = \"2s\"\nmax_backoff = \"2s\"\n\
         audit_interval = \"2s\"\n[inventory.events]\nqueues = {{ eu-west-1 = \"{queue}\" }}\n\
         endpoint_url = \"{}\"\nwait = \"1s\"\n",
        moto.url
    );
    let text = ec2_config_text(&moto.url, &["eu-west-1"], &extra).replace(
        "# notify = [\"10.0.0.53\"]",
        &format!("notify = [\"{silent_addr}\"]"),
    );
    assert!(
        text.contains(&silent_addr.to_string()),
        "the demo's notify line"
    );
    let text = format!(
        "{text}\n[[publish]]\nkind = \"route53\"\nview = \"inside\"\nhosted_zone_id = \"{zone}\"\n\
         owner_id = \"tests\"\nrequests_per_second = 50\nendpoint_url = \"{}\"\n",
        moto.url
    );
    let path = crate::harness::root().join("config/test.toml");
    let mut config = stabledns::Config::parse(&path, &text).expect("config");
    config.server.listen = crate::harness::demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    config
        .set_upstreams(vec![upstream.addr])
        .expect("the demo forwards");
    let server = TestServer::start(config).await;
    let addr = server.addr();
    let prometheus = Prometheus::start(server.admin());

    // Traffic for every panel, kept up while Prometheus is asked: our names, a name that does
    // not exist, and a forwarded name (cached after its first answer).
    let traffic = tokio::spawn(async move {
        let mut client = udp_client(addr);
        loop {
            for (name, rtype) in [
                ("web.internal.", RecordType::A),
                ("nope.internal.", RecordType::A),
                ("www.example.test.", RecordType::A),
            ] {
                query(&mut client, name, DNSClass::IN, rtype).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // A transfer, once the inventory has answered.
    let axfr = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = dig(addr, &["+tcp", "AXFR", "internal."]);
            if out.contains("\tSOA\t") || Instant::now() > deadline {
                return out;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    })
    .await
    .expect("dig");
    assert!(axfr.contains("\tSOA\t"), "{axfr}");
    // An EC2 event: a launch, applied through a patch, with its lag.
    let launched = net.launch(&ec2, 1, true, &[], &["SG-T-WEB"]).await;
    let event =
        crate::events::state_change("dash-1", &launched[0], "running", jiff::Timestamp::now());
    crate::events::send(&sqs, &queue, &event).await;

    let deadline = Instant::now() + Duration::from_secs(90);
    let mut empty: BTreeMap<String, Vec<String>> = BTreeMap::new();
    loop {
        empty.clear();
        for (title, exprs) in panels() {
            let mut has_data = false;
            for expr in &exprs {
                has_data |= prometheus
                    .query(expr)
                    .await
                    .iter()
                    .any(|(_, v)| v.is_finite());
            }
            if !has_data {
                empty.insert(title, exprs);
            }
        }
        if empty.is_empty() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(empty.is_empty(), "panels with no data: {empty:#?}");

    let held = prometheus.names().await;
    let dashboard =
        std::fs::read_to_string(crate::harness::root().join("contrib/grafana/stabledns.json"))
            .expect("dashboard");
    let alerts =
        std::fs::read_to_string(crate::harness::root().join("contrib/prometheus/alerts.yml"))
            .expect("alerts");
    let named: BTreeSet<String> = metric_names(&dashboard)
        .into_iter()
        .chain(metric_names(&alerts))
        .collect();
    assert!(named.len() > 20, "{named:?}");
    let missing: Vec<&String> = named.iter().filter(|n| !held.contains(*n)).collect();
    assert!(missing.is_empty(), "named but not exposed: {missing:?}");
    traffic.abort();
    server.stop().await;
    drop(silent);
}
