//! Tests on the demo config with one key changed: what a reload applies and what only a
//! restart does, key by key, and forwarding's `serve_stale`.

use super::tests::{GOOD, config_dir, invalid};
use super::*;

/// The demo config with `key = value` (TOML) set in `[table]`, and a dnstap socket in
/// `[log]`, so each dnstap key alone changes a live setting.
fn demo_with(table: &str, key: &str, value: &str) -> String {
    let text = std::fs::read_to_string(config_dir().join("demo.toml")).expect("demo");
    let mut doc: toml::Table = toml::from_str(&text).expect("valid toml");
    let mut set = |table: &str, key: &str, value: &str| {
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .expect("a TOML value")
            .remove("v")
            .expect("v");
        let entry = doc
            .entry(table)
            .or_insert_with(|| toml::Value::Table(Default::default()));
        if let toml::Value::Table(t) = entry {
            t.insert(key.to_owned(), value);
        }
    };
    set("log", "dnstap_socket", "\"/run/d.sock\"");
    set(table, key, value);
    toml::to_string(&doc).expect("serialisable")
}

/// The keys a table takes, from the parser's own list: an unknown key's error names them all.
fn keys_of(table: &str) -> Vec<String> {
    let text = demo_with(table, "bogus_key", "1");
    let err = Config::parse(&config_dir().join("demo.toml"), &text).expect_err("unknown key");
    let message = err.to_string();
    let (_, expected) = (message.split_once("expected one of "))
        .or_else(|| message.split_once(", expected "))
        .unwrap_or_else(|| panic!("no list of keys in: {message}"));
    let line = expected.lines().next().unwrap_or_default();
    let mut keys: Vec<String> = line
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    keys.sort();
    keys
}

/// A reload keeps what only a restart applies, and says so. With whole sections compared, a
/// key added to `[server]`, `[admin]` or dnstap cannot be forgotten: every key the parser
/// takes there must be listed below with another value, and changing it alone must be seen.
#[test]
fn every_key_bound_at_start_is_seen_by_a_reload() {
    /// A table, each of its keys with another value, and the section a reload names.
    type Changes<'a> = [(&'a str, &'a [(&'a str, &'a str)], &'a str)];
    let changes: &Changes = &[
        (
            "server",
            &[
                ("fast_path", "false"),
                ("identity", "\"ns-b\""),
                ("listen", "[\"127.0.0.1:5354\"]"),
                ("max_tcp_connections", "7"),
                ("max_tcp_connections_per_client", "3"),
                ("tcp_idle_timeout", "\"11s\""),
                ("version", "\"9\""),
            ],
            "[server]",
        ),
        (
            "admin",
            &[
                ("listen", "\"127.0.0.1:8054\""),
                ("metrics_clients", "[\"10.0.9.0/24\"]"),
                ("names_clients", "[\"10.0.9.20\"]"),
            ],
            "[admin]",
        ),
        (
            "log",
            &[
                ("dnstap_identity", "\"ns-b\""),
                ("dnstap_socket", "\"/run/other.sock\""),
                ("dnstap_version", "\"9\""),
            ],
            "[log] dnstap",
        ),
    ];
    let path = config_dir().join("demo.toml");
    let base = Config::parse(&path, &demo_with("log", "sample", "1")).expect("base");
    for (table, keys, section) in changes {
        let listed: Vec<String> = keys.iter().map(|(k, _)| (*k).to_owned()).collect();
        let taken: Vec<String> = keys_of(table)
            .into_iter()
            .filter(|k| *table != "log" || k.starts_with("dnstap"))
            .collect();
        assert_eq!(listed, taken, "[{table}]: list every key a reload must see");
        for (key, value) in *keys {
            let new = Config::parse(&path, &demo_with(table, key, value))
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                base.restart_needed(&new),
                [*section],
                "[{table}] {key} changed alone"
            );
        }
    }
    assert!(base.restart_needed(&base).is_empty());
    // What a reload applies is no restart.
    let sampled = Config::parse(&path, &demo_with("log", "sample", "10")).expect("sampled");
    assert!(base.restart_needed(&sampled).is_empty());
}

#[test]
fn serving_stale_is_a_day_by_default_and_can_be_turned_off() {
    let inside = "[[views]]\nname = \"in\"\nclients = [\"10.0.0.0/8\"]\nrecursion = true\n";
    let with = |forwarding: &str| format!("{GOOD}\n{forwarding}\n{inside}");
    let f = (Config::parse(Path::new("x.toml"), &with(""))
        .expect("valid")
        .forwarding)
        .expect("forwarding defaults");
    assert_eq!(f.serve_stale, Duration::from_secs(86_400));
    let off = Config::parse(
        Path::new("x.toml"),
        &with("[forwarding]\nserve_stale = \"0s\"\n"),
    )
    .expect("valid");
    assert_eq!(
        off.forwarding.expect("forwarding").serve_stale,
        Duration::ZERO
    );
    let (_, key, msg) = invalid(&with("[forwarding]\nserve_stale = \"a while\"\n"));
    assert_eq!(key, "forwarding.serve_stale");
    assert!(msg.contains("not a duration"), "{msg}");
}
