//! The admin HTTP endpoints: health, readiness, Prometheus metrics (read by the Prometheus
//! project's own parser) and the name table.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::time::Duration;

use hickory_server::proto::rr::{DNSClass, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{TestServer, query, tcp_client, udp_client};
use crate::moto::{Moto, ec2_config};

/// One HTTP/1.1 GET: (status, body).
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to the admin listener {addr}: {e}"));
    get_on(stream, addr, path).await
}

/// One HTTP/1.1 GET from the source address `from` (another loopback address, say).
pub async fn http_get_from(from: IpAddr, addr: SocketAddr, path: &str) -> (u16, String) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(from, 0))
        .expect("bind the source address");
    let stream = (socket.connect(addr).await)
        .unwrap_or_else(|e| panic!("connect from {from} to the admin listener {addr}: {e}"));
    get_on(stream, addr, path).await
}

async fn get_on(mut stream: tokio::net::TcpStream, addr: SocketAddr, path: &str) -> (u16, String) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("the admin listener answers within 10 s")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// Parses an exposition with the Prometheus Python client's OpenMetrics parser (strict: it
/// rejects anything a Prometheus server would) and returns every sample as
/// `name{label="value",...}` → value, labels sorted.
fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    let python = std::env::var("STABLEDNS_PYTHON").unwrap_or_else(|_| {
        panic!("STABLEDNS_PYTHON is not set: run the tests with scripts/test, which installs prometheus-client")
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, text).expect("write");
    let script = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(open(sys.argv[1]).read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let out = Command::new(&python)
        .args(["-c", script])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        out.status.success(),
        "the Prometheus parser rejects /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

pub async fn scrape(admin: SocketAddr) -> BTreeMap<String, f64> {
    let (status, body) = http_get(admin, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    tokio::task::spawn_blocking(move || parse_metrics(&body))
        .await
        .expect("parser thread")
}

pub fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    samples.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_count_queries_by_view_type_and_rcode() {
    let server = TestServer::demo().await;
    let admin = server.admin();
    let before = scrape(admin).await;
    assert_eq!(value(&before, "stabledns_instances{}"), 8.0, "{before:?}");
    assert!(value(&before, "stabledns_serial{}") > 0.0);
    assert!(value(&before, "stabledns_names{view=\"inside\"}") > 5.0);
    assert_eq!(value(&before, "stabledns_refresh_successes_total{}"), 1.0);
    assert!(
        value(
            &before,
            "stabledns_refresh_last_success_timestamp_seconds{}"
        ) > 1.7e9
    );

    // 5 UDP (fast path) and 3 TCP (handler) answers, 2 NXDOMAIN, from the inside view.
    let mut udp = udp_client(server.addr());
    for _ in 0..5 {
        query(&mut udp, "1.worker.internal.", DNSClass::IN, RecordType::A).await;
    }
    let mut tcp = tcp_client(server.addr()).await;
    for _ in 0..3 {
        query(&mut tcp, "1.worker.internal.", DNSClass::IN, RecordType::A).await;
    }
    for _ in 0..2 {
        query(&mut udp, "nope.internal.", DNSClass::IN, RecordType::AAAA).await;
    }
    // Queries are counted before their answer leaves; a batch's latency right after.
    let mut after = scrape(admin).await;
    let fast_count = "stabledns_answer_duration_seconds_count{path=\"fast\"}";
    for _ in 0..20 {
        if value(&after, fast_count) - value(&before, fast_count) >= 7.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = scrape(admin).await;
    }
    let delta = |key: &str| value(&after, key) - value(&before, key);
    let a_ok = "stabledns_queries_total{qtype=\"A\",rcode=\"NOERROR\",view=\"inside\"}";
    assert_eq!(delta(a_ok), 8.0, "{after:?}");
    let nx = "stabledns_queries_total{qtype=\"AAAA\",rcode=\"NXDOMAIN\",view=\"inside\"}";
    assert_eq!(delta(nx), 2.0);
    assert_eq!(delta("stabledns_udp_queries_total{path=\"fast\"}"), 7.0);
    assert_eq!(
        delta("stabledns_answer_duration_seconds_count{path=\"fast\"}"),
        7.0
    );
    assert_eq!(
        delta("stabledns_answer_duration_seconds_count{path=\"handler\"}"),
        3.0
    );
    assert!(delta("stabledns_answer_duration_seconds_sum{path=\"handler\"}") > 0.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_names_endpoints() {
    let server = TestServer::demo().await;
    let admin = server.admin();
    assert_eq!(http_get(admin, "/healthz").await, (200, "ok\n".to_owned()));
    let (status, body) = http_get(admin, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("ready: serial "), "{body}");

    let (status, body) = http_get(admin, "/names?view=inside").await;
    assert_eq!(status, 200, "{body}");
    let table: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(table["view"], "inside");
    let db1 = table["names"]
        .as_array()
        .expect("names")
        .iter()
        .find(|r| r["name"] == "db1.internal.")
        .expect("db1 is listed");
    assert_eq!(db1["type"], "CNAME");
    assert_eq!(
        db1["targets"][0],
        "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com."
    );
    assert_eq!(db1["instances"].as_array().map(Vec::len), Some(1));
    let (status, body) = http_get(admin, "/names?view=nope").await;
    assert_eq!(status, 404);
    assert!(body.contains("inside"), "{body}");
    assert_eq!(http_get(admin, "/nope").await.0, 404);
    server.stop().await;
}

/// The pages that show names and the metrics endpoints each answer only their allowlist:
/// three loopback source addresses, one on both lists, one on the metrics list only, one on
/// neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_reads_only_what_its_allowlist_lets_it() {
    let demo = crate::harness::root().join("config/demo.toml");
    let text = std::fs::read_to_string(&demo)
        .expect("demo config")
        .replace(
            "[admin]\n",
            "[admin]\nmetrics_clients = [\"127.0.0.1\", \"127.0.0.2/32\"]\n\
             names_clients = [\"127.0.0.1/32\"]\n",
        );
    assert!(
        text.contains("names_clients"),
        "the demo config has an [admin] table"
    );
    // Parsed as the demo's own file, so its fleet file is found beside it.
    let mut config = stabledns::Config::parse(&demo, &text).expect("config loads");
    config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    crate::harness::ephemeral_admin(&mut config);
    let server = TestServer::start(config).await;
    let admin = server.admin();
    let operator: IpAddr = "127.0.0.1".parse().expect("ip");
    let monitoring: IpAddr = "127.0.0.2".parse().expect("ip");
    let stranger: IpAddr = "127.0.0.3".parse().expect("ip");
    let metrics_paths = ["/metrics", "/healthz", "/readyz"];
    let names_paths = ["/", "/names", "/zone", "/zones"];
    for path in metrics_paths.iter().chain(&names_paths) {
        let (status, body) = http_get_from(operator, admin, path).await;
        assert_eq!(status, 200, "the operator reads {path}: {body}");
    }
    for path in metrics_paths {
        let (status, body) = http_get_from(monitoring, admin, path).await;
        assert_eq!(status, 200, "the monitoring host reads {path}: {body}");
    }
    for path in names_paths {
        let (status, body) = http_get_from(monitoring, admin, path).await;
        assert_eq!(
            status, 403,
            "the monitoring host may not read {path}: {body}"
        );
        assert!(!body.contains("db1"), "a refusal shows no name: {body}");
        assert!(body.contains("admin.names_clients"), "{body}");
    }
    for path in metrics_paths.iter().chain(&names_paths) {
        let (status, _) = http_get_from(stranger, admin, path).await;
        assert_eq!(status, 403, "a client on neither list may not read {path}");
    }
    let samples = scrape(admin).await;
    assert_eq!(
        value(
            &samples,
            "stabledns_admin_refused_total{endpoints=\"names\"}"
        ),
        8.0
    );
    assert_eq!(
        value(
            &samples,
            "stabledns_admin_refused_total{endpoints=\"metrics\"}"
        ),
        3.0
    );
    server.stop().await;
}

/// The status page in a real browser (Debian's Chromium, headless): it loads with no console
/// message, the search form finds `db1` in every view, and the screenshot is what the README
/// shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_finds_a_name_in_a_real_browser_without_a_console_error() {
    let server = TestServer::demo().await;
    let admin = server.admin();
    let python = std::env::var("STABLEDNS_PYTHON")
        .expect("STABLEDNS_PYTHON: run scripts/test, which installs selenium");
    let dir = tempfile::tempdir().expect("tempdir");
    let shot = dir.path().join("status-page.png");
    let script = crate::harness::root().join("tests/integration/py/status_page.py");
    let url = format!("http://{admin}/");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .arg(url)
            .arg("db1")
            .arg(&shot)
            .output()
            .map(|out| (out, std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0)))
    })
    .await
    .expect("join")
    .expect("run the browser");
    let (out, shot_len) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "status_page.py: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for view in ["inside", "peered", "outside"] {
        assert!(
            stdout.contains(&format!("{view}\tdb1.internal. exists in view {view}")),
            "{stdout}"
        );
    }
    assert!(stdout.contains("console: 0"), "{stdout}");
    assert!(
        shot_len > 10_000,
        "a screenshot of the page was saved ({shot_len} bytes)"
    );
    server.stop().await;
}

/// The page shows a searched name as text, never as markup.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_escapes_what_it_is_asked() {
    let server = TestServer::demo().await;
    let admin = server.admin();
    let (status, body) = http_get(admin, "/?name=%3Cscript%3Ealert(1)%3C/script%3E").await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.contains("<script>"), "{body}");
    assert!(body.contains("&lt;script&gt;"), "{body}");
    let (status, body) = http_get(admin, "/?name=db1").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("db1.internal. exists in view inside"),
        "{body}"
    );
    server.stop().await;
}

/// A port nothing listens on yet.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_is_503_until_the_first_snapshot_and_when_stale() {
    // The EC2 API is not there yet: the server starts and is alive, not ready.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // moto starts with no instances: allowed here, or readiness would fail for that.
    let extra = "max_stale = \"2s\"\nallow_empty_fleet = true";
    let mut config = ec2_config(&url, &["eu-west-1"], extra);
    config.inventory.state_file = None;
    let server = TestServer::start(config).await;
    let admin = server.admin();
    assert_eq!(http_get(admin, "/healthz").await.0, 200);
    let (status, body) = http_get(admin, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("no snapshot yet"), "{body}");

    let moto = Moto::start_on(port);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = http_get(admin, "/readyz").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still not ready 30 s after the API came up: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The API goes away: after max_stale the data is too old to be ready.
    drop(moto);
    // Waited for, not slept: on a busy machine the refreshes that age the data may be late.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // The data can pass max_stale while the SDK still retries the first failed refresh.
    loop {
        let (status, body) = http_get(admin, "/readyz").await;
        let samples = scrape(admin).await;
        if status == 503
            && body.contains("past max_stale")
            && value(&samples, "stabledns_refresh_failures_total{}") >= 1.0
        {
            assert!(value(&samples, "stabledns_data_age_seconds{}") >= 2.0);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready, or no failure counted, 60 s after the API went away: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    server.stop().await;
}
