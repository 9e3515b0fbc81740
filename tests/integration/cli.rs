//! The real binary: `serve` with the demo config as the README runs it, `check` and `names`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::harness::{dig, root};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

/// Kills the child on drop so a failed assertion leaves no server behind.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `stabledns serve --config config/demo.toml` on an ephemeral port, forwarding to
/// `upstream` on loopback instead of the machine's resolver, and reads the bound address from
/// its log.
fn serve_demo(upstream: SocketAddr) -> (Server, SocketAddr, SocketAddr) {
    let (server, dns, admin, _) = serve_demo_with(&["--upstream", &upstream.to_string()]);
    (server, dns, admin)
}

/// As [`serve_demo`] with these extra flags; also every log line up to the listening ones.
fn serve_demo_with(flags: &[&str]) -> (Server, SocketAddr, SocketAddr, Vec<String>) {
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args([
            "serve",
            "--config",
            "config/demo.toml",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .args(flags)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped");
    let server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(("log", line.clone()));
            if let Some(addr) = line.split("local=").nth(1) {
                let _ = tx.send(("dns", addr.trim().to_owned()));
            }
            if let Some(rest) = line.split("admin endpoints on http://").nth(1) {
                let addr = rest.split('/').next().unwrap_or_default();
                let _ = tx.send(("admin", addr.to_owned()));
            }
        }
    });
    let (mut dns, mut admin, mut log) = (None, None, Vec::new());
    while dns.is_none() || admin.is_none() {
        let (what, addr) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server logs its addresses");
        if what == "log" {
            log.push(addr);
            continue;
        }
        let addr: SocketAddr = addr.parse().expect("a socket address");
        if what == "dns" {
            dns = Some(addr);
        } else {
            admin = Some(addr);
        }
    }
    // What the first refresh logs comes just after the listeners.
    while let Ok((what, line)) = rx.recv_timeout(Duration::from_millis(500)) {
        if what == "log" {
            log.push(line);
        }
    }
    (server, dns.expect("dns"), admin.expect("admin"), log)
}

#[test]
fn the_demo_is_offline_and_still_answers_the_chased_address() {
    let (_server, addr, _, log) = serve_demo_with(&[]);
    let log = log.join("\n");
    // No forwarder, so no loop probe and no query to the machine's resolver.
    assert!(!log.contains("forwarding through upstream"), "{log}");
    assert!(!log.contains("loop probe"), "{log}");
    let out = dig(addr, &["db1.internal"]);
    let words: Vec<&str> = out.split_whitespace().collect();
    assert!(
        words
            .windows(2)
            .any(|w| w == ["CNAME", "ec2-52-49-30-13.eu-west-1.compute.amazonaws.com."]),
        "{out}"
    );
    assert!(words.windows(2).any(|w| w == ["A", "10.0.1.20"]), "{out}");
    // A Unicode tag value is served under its IDNA name (UTS #46), not with letters dropped.
    let out = dig(addr, &["xn--ber-cache-p9a.internal"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(out.contains("ANSWER: 1,"), "{out}");
    // A name outside the zone is refused at once: nothing to forward it to.
    let out = dig(addr, &["example.com"]);
    assert!(out.contains("status: REFUSED"), "{out}");
}

#[test]
fn the_readme_serve_command_answers_db1_with_the_cname() {
    let nsd = crate::forwarding::vpc_resolver();
    let (mut server, addr, admin) = serve_demo(nsd.addr);
    let out = dig(addr, &["db1.internal"]);
    assert!(out.contains("status: NOERROR"), "{out}");
    assert!(
        out.contains("CNAME\tec2-52-49-30-13.eu-west-1.compute.amazonaws.com."),
        "{out}"
    );
    assert!(
        out.split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["A", "10.0.1.20"]),
        "the chased address: {out}"
    );
    // The demo allows transfers from 127.0.0.1 and serves its metrics.
    let axfr = dig(addr, &["AXFR", "internal."]);
    assert!(axfr.contains(";; XFR size:"), "{axfr}");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (status, metrics) = rt.block_on(crate::admin::http_get(admin, "/metrics"));
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "stabledns_zone_transfers_total{view=\"inside\",kind=\"axfr\",outcome=\"full\"} 1"
        ),
        "{metrics}"
    );
    // SIGTERM is a clean shutdown with exit status 0.
    let pid = server.0.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let status = server.0.wait().expect("exits");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}

#[test]
fn check_validates_and_names_lists_the_table() {
    let out = Command::new(BIN)
        .current_dir(root())
        .args(["check", "--config", "config/demo.toml"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OK: zone internal., 8 instances"),
        "{stdout}"
    );
    // The demo's odd tag values are reported, naming the instance, the value and the result.
    assert!(stdout.contains("warning: i-0a1b2c3d4e5f60007"), "{stdout}");
    assert!(
        stdout.contains("dns:names=\"ÜBER_cache\" became `xn--ber-cache-p9a`"),
        "{stdout}"
    );

    let out = Command::new(BIN)
        .current_dir(root())
        .args(["names", "--config", "config/demo.toml"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let db = stdout
        .lines()
        .find(|l| l.starts_with("db.internal."))
        .unwrap_or_else(|| panic!("no db row: {stdout}"));
    let f: Vec<&str> = db.split_whitespace().collect();
    assert_eq!(
        f,
        [
            "db.internal.",
            "A",
            "10.0.1.20",
            "10.0.2.20",
            "i-0a1b2c3d4e5f60003",
            "i-0a1b2c3d4e5f60004"
        ]
    );
}

#[test]
fn a_bad_config_fails_with_file_key_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace("apex = \"internal.\"", "apex = \"internal..\"");
    std::fs::write(&path, text).expect("write");
    for cmd in ["check", "serve", "names"] {
        let out = Command::new(BIN)
            .args([cmd, "--config"])
            .arg(&path)
            .output()
            .expect("runs");
        assert!(!out.status.success(), "{cmd} accepted a bad config");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("bad.toml:24: invalid `zone.apex`"),
            "{cmd}: {stderr}"
        );
    }
}

#[test]
fn version_and_json_logs() {
    let out = Command::new(BIN).arg("--version").output().expect("runs");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("stabledns {}", env!("CARGO_PKG_VERSION"))
    );

    let nsd = crate::forwarding::vpc_resolver();
    let mut child = Command::new(BIN)
        .current_dir(root())
        .args([
            "--log-format",
            "json",
            "serve",
            "--config",
            "config/demo.toml",
        ])
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", &nsd.addr.to_string()])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let stderr = child.stderr.take().expect("piped");
    let _server = Server(child);
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let listening = lines
        .by_ref()
        .take(50)
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .find(|v| v["fields"]["message"] == "listening on UDP and TCP")
        .expect("the listening line, as JSON");
    assert_eq!(listening["level"], "INFO");
    let local: SocketAddr = listening["fields"]["local"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("the bound address as a field");
    assert!(local.ip().is_loopback());
}

/// The unit file is valid systemd syntax and keeps the service's exposure low (systemd's own
/// scoring, 0 = locked down, 10 = root with everything).
#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("contrib/systemd/stabledns.service"))
        .expect("unit file");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stabledns.service");
    // The unit names the installed binary; verify it against the one just built.
    std::fs::write(&path, unit.replace("/usr/bin/stabledns", BIN)).expect("write");
    let analyze = |args: &[&str]| {
        Command::new("systemd-analyze")
            .args(args)
            .arg(&path)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run systemd-analyze ({e}): scripts/test installs systemd")
            })
    };
    let verify = analyze(&["verify"]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = analyze(&["security", "--offline=yes", "--threshold=20"]);
    assert!(
        security.status.success(),
        "exposure above 2.0:\n{}",
        String::from_utf8_lossy(&security.stdout)
    );

    // `systemctl reload` runs the ExecReload lines in order and stops at the first that fails:
    // the check refuses a broken config before any SIGHUP is sent.
    let check = unit
        .lines()
        .filter_map(|l| l.strip_prefix("ExecReload="))
        .next()
        .expect("an ExecReload line");
    assert!(check.contains("check --config-only"), "{check}");
    let good = root().join("config/stabledns.toml");
    let broken = dir.path().join("broken.toml");
    std::fs::write(&broken, "[server]\nlisten = [\"nowhere\"]\n").expect("write");
    let run = |config: &std::path::Path| {
        let line = check.replace("/usr/bin/stabledns", BIN).replace(
            "/etc/stabledns/stabledns.toml",
            &config.display().to_string(),
        );
        Command::new("sh")
            .args(["-c", &line])
            .output()
            .expect("sh runs")
    };
    let ok = run(&good);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = run(&broken);
    assert!(
        !refused.status.success(),
        "a broken config must fail the reload"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("broken.toml"));
}

#[test]
fn zone_prints_the_serial_the_server_serves() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("config/demo-instances.json"),
        dir.path().join("demo-instances.json"),
    )
    .expect("fleet");
    let demo = std::fs::read_to_string(root().join("config/demo.toml")).expect("demo");
    let text = demo.replace(
        "refresh_interval = \"30s\"",
        "refresh_interval = \"30s\"\nstate_file = \"state.json\"",
    );
    let path = dir.path().join("stabledns.toml");
    std::fs::write(&path, text).expect("config");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let serial = rt.block_on(async {
        let config = stabledns::Config::load(&path).expect("config");
        let server = crate::harness::TestServer::start(config).await;
        let serial = server.running_serial().expect("published");
        server.stop().await;
        serial
    });
    // A second later: a command of its own would stamp a newer serial.
    let second = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let started = second();
    while second() == started {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = Command::new(BIN)
        .args(["zone", "--config"])
        .arg(&path)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let zone = String::from_utf8_lossy(&out.stdout);
    let soa = zone.lines().next().expect("the SOA first");
    let printed: u32 = soa
        .split_whitespace()
        .nth(6)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no serial in {soa}"));
    assert_eq!(printed, serial, "{soa}");
}

/// `promtool`, the Prometheus project's checker, on the alert rules: they load, and each fires
/// on the series that should wake an operator and not on a healthy server
/// (`contrib/prometheus/alerts_test.yml`). Every metric they read is one the README lists.
#[test]
fn alert_rules_pass_promtool_and_name_real_metrics() {
    let dir = root().join("contrib/prometheus");
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| panic!("cannot run promtool ({e}): scripts/test installs it"));
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let rules = std::fs::read_to_string(dir.join("alerts.yml")).expect("alerts.yml");
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let mut names: Vec<&str> = rules
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("stabledns_"))
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() >= 8, "{names:?}");
    for name in names {
        assert!(
            readme.contains(&format!("`{name}`")),
            "{name} is not a metric the README lists"
        );
    }
}

/// A fatal error is one line that says each cause once; in JSON mode it is a JSON line too.
#[test]
fn fatal_errors_are_one_line_each_cause_once_and_json_when_asked() {
    let missing = "/nonexistent/stabledns.toml";
    let out = Command::new(BIN)
        .args(["check", "--config", missing])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("stabledns: failed to read config file"),
        "{text}"
    );
    assert_eq!(
        text.matches("No such file or directory").count(),
        1,
        "{text}"
    );

    let out = Command::new(BIN)
        .args(["--log-format", "json", "check", "--config", missing])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
    assert_eq!(line["level"], "ERROR", "{text}");
    let message = line["fields"]["message"].as_str().expect("message");
    assert!(message.contains("failed to read config file"), "{text}");
}

/// Without CAP_NET_BIND_SERVICE (here: as `nobody`), a port below 1024 is refused, and the
/// error says how to grant the capability.
#[test]
fn a_privileged_port_refused_says_how_to_grant_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace("127.0.0.1:5353", "127.0.0.1:53")
        .replace("[admin]\nlisten = \"127.0.0.1:8053\"\n", "")
        .replace(
            "path = \"demo-instances.json\"",
            &format!(
                "path = \"{}\"",
                root().join("config/demo-instances.json").display()
            ),
        );
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, text).expect("config");
    std::fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("setpriv runs");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("Permission denied"), "{text}");
    assert!(text.contains("CAP_NET_BIND_SERVICE"), "{text}");
}

/// Refreshes that fail (the fleet file gone) and then succeed again say so in the log.
#[test]
fn a_recovered_inventory_is_logged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fleet = dir.path().join("fleet.json");
    std::fs::copy(root().join("config/demo-instances.json"), &fleet).expect("fleet");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace("path = \"demo-instances.json\"", "path = \"fleet.json\"")
        .replace(
            "refresh_interval = \"30s\"",
            "refresh_interval = \"100ms\"\nmax_backoff = \"1s\"",
        );
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, text).expect("config");
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("piped");
    let _server = Server(child);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |needle: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no log line with `{needle}`"));
        if line.contains(needle) {
            return line;
        }
    };
    // The first line says what runs: version, config, zone, views and addresses.
    let start = wait_for("starting stabledns");
    for part in [
        env!("CARGO_PKG_VERSION"),
        "zone=internal.",
        "views=inside,peered,outside",
    ] {
        assert!(start.contains(part), "{part} missing: {start}");
    }
    assert!(start.contains("listen=127.0.0.1:0"), "{start}");
    wait_for("admin endpoints on");
    std::fs::rename(&fleet, dir.path().join("gone.json")).expect("move away");
    wait_for("failed to read inventory file");
    std::fs::rename(dir.path().join("gone.json"), &fleet).expect("move back");
    let line = wait_for("the inventory answers again after");
    assert!(line.contains("failed refreshes"), "{line}");
}

/// `check` says when the state file's directory is missing, rather than the server failing to
/// write it at every publish.
#[test]
fn check_reports_a_missing_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo")
        .replace(
            "path = \"demo-instances.json\"",
            &format!(
                "path = \"{}\"\nstate_file = \"no-such-dir/state.json\"",
                root().join("config/demo-instances.json").display()
            ),
        );
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, text).expect("config");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("inventory.state_file: the directory") && stdout.contains("no-such-dir"),
        "{stdout}"
    );
    // With --log-format json the warning is a JSON log line like every other.
    let out = Command::new(BIN)
        .args(["--log-format", "json", "check", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warned = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .any(|l| {
            l["level"] == "WARN"
                && l["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("inventory.state_file: the directory"))
        });
    assert!(warned, "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("warning:"));
}

/// `stabledns why` says why a name is missing: the stopped instance that would make it, the
/// view that does not show it, or that nothing in the inventory claims it.
#[test]
fn why_explains_missing_names() {
    let why = |args: &[&str]| {
        let out = Command::new(BIN)
            .current_dir(root())
            .args(["why", "--config", "config/demo.toml"])
            .args(args)
            .output()
            .expect("runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // A slot name says which slot of which tier, not that no rule makes it.
    let slot = why(&["1.web"]);
    assert!(
        slot.contains("i-0a1b2c3d4e5f60001: slot 1 of tier web"),
        "{slot}"
    );
    assert!(!slot.contains("No instance"), "{slot}");
    let stopped = why(&["web-old"]);
    assert!(
        stopped.contains("web-old.internal. does not exist in view inside"),
        "{stopped}"
    );
    assert!(
        stopped.contains(
            "i-0a1b2c3d4e5f60006 (stopped) via tag Name=\"web-old\": makes no name: it is stopped"
        ),
        "{stopped}"
    );
    let hidden = why(&["--view", "outside", "batch-worker.internal."]);
    assert!(hidden.contains("it has no public address"), "{hidden}");
    let served = why(&["db1"]);
    assert!(
        served.contains("db1.internal. exists in view inside"),
        "{served}"
    );
    assert!(served.contains("via security group SG-I-DB1"), "{served}");
    let nothing = why(&["nope"]);
    assert!(
        nothing.contains("No instance in the inventory"),
        "{nothing}"
    );
    assert!(nothing.contains("inventory.filters"), "{nothing}");
}

/// `zone --server` prints what the running server serves, reverse zones too: the serial a
/// client sees, a file `named-checkzone` loads, and a clear error for a view it does not have.
#[test]
fn zone_from_the_server_is_the_served_zone() {
    let (_server, dns, admin, _) = serve_demo_with(&[]);
    let zone = |extra: &[&str]| {
        Command::new(BIN)
            .current_dir(root())
            .args([
                "zone",
                "--config",
                "config/demo.toml",
                "--server",
                "--admin",
            ])
            .arg(admin.to_string())
            .args(extra)
            .output()
            .expect("runs")
    };
    let forward = zone(&[]);
    assert!(
        forward.status.success(),
        "{}",
        String::from_utf8_lossy(&forward.stderr)
    );
    let text = String::from_utf8_lossy(&forward.stdout).into_owned();
    let served = dig(dns, &["SOA", "internal.", "+short"]);
    let serial = served.split_whitespace().nth(2).expect("a serial");
    let soa = text.lines().next().expect("the SOA first");
    assert_eq!(
        soa.split_whitespace().nth(6),
        Some(serial),
        "{soa} vs {served}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    for (apex, extra) in [
        ("internal.", vec![]),
        ("10.in-addr.arpa.", vec!["--zone", "10.in-addr.arpa."]),
    ] {
        let out = zone(&extra);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.path().join("zone");
        std::fs::write(&file, &out.stdout).expect("write");
        let check = Command::new("named-checkzone")
            .args([apex, &file.display().to_string()])
            .output()
            .expect("named-checkzone runs");
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    let reverse =
        String::from_utf8_lossy(&zone(&["--zone", "10.in-addr.arpa."]).stdout).into_owned();
    assert!(reverse.contains("PTR"), "{reverse}");

    let missing = zone(&["--view", "nosuch"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("no such view; the views are: inside, peered, outside"),
        "{err}"
    );
}
