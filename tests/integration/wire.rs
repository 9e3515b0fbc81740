//! Every answer parses strictly in a real peer's parser (dnspython, no leniency): truncated
//! answers hold whole records only and counts that describe them, with OPT when the query had
//! one and the DO bit copied, on the fast path and the handler path alike.

use std::process::{Command, Stdio};

use crate::answers::tier_fleet;
use crate::harness::TestServer;

/// A server for a 100-member tier `big` plus the demo's views; `fast_path` as given.
async fn big_tier(dir: &std::path::Path, fast_path: bool) -> TestServer {
    std::fs::write(dir.join("fleet.json"), tier_fleet(100)).expect("write");
    let demo =
        std::fs::read_to_string(crate::harness::root().join("config/demo.toml")).expect("demo");
    let path = dir.join("big.toml");
    std::fs::write(&path, demo.replace("demo-instances.json", "fleet.json")).expect("write");
    let mut config = stabledns::Config::load(&path).expect("config");
    config.server.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    config.server.fast_path = fast_path;
    TestServer::start(config).await
}

/// Asks `cases` with dnspython and returns its findings, one JSON object each.
fn strict(cases: &serde_json::Value) -> Vec<serde_json::Value> {
    let python = std::env::var("STABLEDNS_PYTHON").unwrap_or_else(|_| {
        panic!(
            "STABLEDNS_PYTHON is not set: run the tests with scripts/test (it installs dnspython)"
        )
    });
    let script = crate::harness::root().join("tests/integration/py/strict_parse.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    let stdin = child.stdin.take().expect("stdin");
    serde_json::to_writer(stdin, cases).expect("write cases");
    let out = child.wait_with_output().expect("python finishes");
    assert!(
        out.status.success(),
        "strict_parse.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON findings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_and_edns_answers_parse_strictly_on_both_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    for fast_path in [true, false] {
        let sub = dir.path().join(format!("fast-{fast_path}"));
        std::fs::create_dir(&sub).expect("mkdir");
        let server = big_tier(&sub, fast_path).await;
        let port = server.addr().port();
        let case = |name: &str, rtype: &str, edns: Option<u16>, dnssec: bool| serde_json::json!({"port": port, "name": name, "type": rtype, "edns": edns, "do": dnssec});
        // (question, expect TC, expect OPT, expect DO)
        let cases = [
            (case("big.internal.", "A", None, false), true, false, false),
            (
                case("big.internal.", "A", Some(512), false),
                true,
                true,
                false,
            ),
            (
                case("big.internal.", "A", Some(1232), true),
                true,
                true,
                true,
            ),
            (
                case("big.internal.", "A", Some(4096), false),
                true,
                true,
                false,
            ),
            (
                case("1.big.internal.", "A", Some(1232), true),
                false,
                true,
                true,
            ),
            (
                case("1.big.internal.", "A", None, false),
                false,
                false,
                false,
            ),
            (
                case("nope.internal.", "A", Some(1232), true),
                false,
                true,
                true,
            ),
            (
                case("_explain.big.internal.", "TXT", None, false),
                true,
                false,
                false,
            ),
            (
                case("_explain.big.internal.", "TXT", Some(1232), true),
                true,
                true,
                true,
            ),
        ];
        let list = serde_json::Value::Array(cases.iter().map(|c| c.0.clone()).collect());
        let found = strict(&list);
        for ((q, tc, opt, dnssec), got) in cases.iter().zip(&found) {
            let what = format!("fast_path={fast_path} {q}: {got}");
            assert!(got.get("error").is_none(), "{what}");
            assert_eq!(got["tc"], *tc, "TC: {what}");
            assert_eq!(got["opt"], *opt, "OPT: {what}");
            assert_eq!(got["do"], *dnssec, "DO: {what}");
            let limit = q["edns"].as_u64().map_or(512, |p| p.clamp(512, 1232));
            assert!(got["len"].as_u64() <= Some(limit), "size: {what}");
            if *tc {
                // NSD's way: a truncated answer is empty, and the client asks over TCP.
                assert_eq!(got["answers"], 0, "{what}");
            }
        }
        // A malformed OPT is FORMERR on either path.
        let mut bad = case("1.big.internal.", "A", Some(1232), false);
        bad["bad_opt"] = true.into();
        let got = strict(&serde_json::Value::Array(vec![bad]));
        assert_eq!(
            got[0]["rcode"], "FORMERR",
            "fast_path={fast_path}: {}",
            got[0]
        );
        server.stop().await;
    }
}
