use super::*;

pub(super) fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

fn toml_files() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(config_dir())
        .expect("config/ exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "config/ holds no .toml file");
    files
}

#[test]
fn every_config_file_loads() {
    for file in toml_files() {
        let config = Config::load(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(!config.server.listen.is_empty());
    }
}

/// Adds `bogus_key = 1` to every table (and array-of-tables entry) of every example and
/// expects the parse to fail naming that key, so no table silently accepts typos.
#[test]
fn unknown_keys_are_rejected_in_every_table() {
    for file in toml_files() {
        let text = std::fs::read_to_string(&file).expect("readable");
        let doc: toml::Table = toml::from_str(&text).expect("valid toml");
        let mut paths = Vec::new();
        collect_tables(
            &toml::Value::Table(doc.clone()),
            &mut Vec::new(),
            &mut paths,
        );
        assert!(
            paths.len() >= 4,
            "{}: expected several tables",
            file.display()
        );
        for path in paths {
            let mut doc = toml::Value::Table(doc.clone());
            insert_at(&mut doc, &path, "bogus_key");
            let text = toml::to_string(&doc).expect("serialisable");
            let err = Config::parse(&file, &text).expect_err(&format!(
                "{}: unknown key at {path:?} was accepted",
                file.display()
            ));
            assert!(
                err.to_string().contains("bogus_key"),
                "{}: error does not name the key: {err}",
                file.display()
            );
        }
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn collect_tables(v: &toml::Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match v {
        toml::Value::Table(t) => {
            out.push(here.clone());
            for (k, v) in t {
                here.push(Step::Key(k.clone()));
                collect_tables(v, here, out);
                here.pop();
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                here.push(Step::Index(i));
                collect_tables(v, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn insert_at(v: &mut toml::Value, path: &[Step], key: &str) {
    let mut cur = v;
    for step in path {
        cur = match (step, cur) {
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k).expect("path exists"),
            (Step::Index(i), toml::Value::Array(a)) => &mut a[*i],
            _ => panic!("path does not fit"),
        };
    }
    match cur {
        toml::Value::Table(t) => {
            t.insert(key.to_owned(), toml::Value::Integer(1));
        }
        _ => panic!("not a table"),
    }
}

pub(super) const GOOD: &str = r#"
[server]
listen = ["127.0.0.1:5353"]

[zone]
apex = "internal."

[zone.soa]
hostmaster = "hostmaster"

[[zone.nameservers]]
name = "ns1"
addresses = ["127.0.0.1"]
public_addresses = ["192.0.2.53"]
[inventory]
source = "file"
path = "x.json"

[[naming.rules]]
kind = "security_group"
pattern = "^SG-T-(?P<name>.+)$"
"#;

pub(super) fn invalid(text: &str) -> (usize, String, String) {
    match Config::parse(Path::new("/etc/stabledns.toml"), text) {
        Err(ConfigError::Invalid {
            line, key, message, ..
        }) => (line, key, message),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[test]
fn the_minimal_config_is_valid_and_defaults_apply() {
    let c = Config::parse(Path::new("/etc/stabledns/stabledns.toml"), GOOD).expect("valid");
    assert_eq!(c.zone.apex.to_ascii(), "internal.");
    assert_eq!(c.zone.primary_ns.to_ascii(), "ns1.internal.");
    assert_eq!(c.zone.hostmaster.to_ascii(), "hostmaster.internal.");
    assert_eq!(c.zone.record_ttl, 60);
    assert_eq!(c.inventory.refresh_interval, Duration::from_secs(30));
    assert_eq!(c.server.tcp_idle_timeout, Duration::from_secs(10));
    assert!(c.naming.states.contains(&InstanceState::Running));
    let SourceConfig::File { path, .. } = &c.inventory.source else {
        panic!("file source expected");
    };
    assert_eq!(path, Path::new("/etc/stabledns/x.json"));
}

#[test]
fn the_ec2_example_filters_on_tags_and_named_states() {
    let c = Config::load(&config_dir().join("stabledns.toml")).expect("loads");
    let SourceConfig::Ec2(ec2) = &c.inventory.source else {
        panic!("ec2 source expected");
    };
    assert_eq!(ec2.regions, ["eu-west-1", "eu-central-1"]);
    // States are kept on our side: the others are read for their change times.
    assert_eq!(
        ec2.filters,
        [("tag:stabledns".to_owned(), vec!["on".to_owned()])]
    );
    assert_eq!(
        ec2.keep_states,
        Some([InstanceState::Running].into_iter().collect())
    );
    assert_eq!(
        c.inventory.state_file.as_deref(),
        Some(Path::new("/var/lib/stabledns/state.json"))
    );
    assert_eq!(c.inventory.max_stale, Some(Duration::from_secs(600)));
}

#[test]
fn admin_allowlists_default_to_loopback_and_name_a_bad_entry() {
    let c = Config::parse(Path::new("x.toml"), &format!("{GOOD}\n[admin]\n")).expect("valid");
    let admin = c.admin.expect("[admin]");
    let loopback: Vec<String> = vec!["127.0.0.0/8".into(), "::1/128".into()];
    let shown = |l: &[IpNet]| l.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert_eq!(shown(&admin.metrics_clients), loopback);
    assert_eq!(shown(&admin.names_clients), loopback);
    let c = Config::parse(
        Path::new("x.toml"),
        &format!("{GOOD}\n[admin]\nmetrics_clients = [\"10.0.9.7/24\", \"10.1.0.1\"]\n"),
    )
    .expect("valid");
    let admin = c.admin.expect("[admin]");
    assert_eq!(
        shown(&admin.metrics_clients),
        ["10.0.9.0/24", "10.1.0.1/32"]
    );
    assert_eq!(
        shown(&admin.names_clients),
        loopback,
        "the other list keeps its default"
    );
    let (_, key, msg) = invalid(&format!(
        "{GOOD}\n[admin]\nnames_clients = [\"127.0.0.1\", \"everyone\"]\n"
    ));
    assert_eq!(key, "admin.names_clients[1]");
    assert!(msg.contains("everyone"), "{msg}");
}

#[test]
fn views_are_validated() {
    let with = |views: &str| format!("{GOOD}\n{views}");
    let ok = Config::parse(
        Path::new("x.toml"),
        &with("[[views]]\nname = \"a\"\nclients = [\"10.0.0.1\", \"10.1.2.3/16\"]\n"),
    )
    .expect("valid");
    assert_eq!(ok.views[0].clients[0].to_string(), "10.0.0.1/32");
    assert_eq!(
        ok.views[0].clients[1].to_string(),
        "10.1.0.0/16",
        "host bits are dropped"
    );

    let (line, key, _) = invalid(&with(
        "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/33\"]\n",
    ));
    assert_eq!((line, key.as_str()), (25, "views[0].clients[0]"));
    let (_, key, msg) = invalid(&with(
        "[[views]]\nname = \"all\"\n[[views]]\nname = \"b\"\nclients = [\"10.0.0.0/8\"]\n",
    ));
    assert_eq!(key, "views[1].name");
    assert!(msg.contains("last"), "{msg}");
    let (_, key, _) = invalid(&with(
        "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\n[[views]]\nname = \"a\"\n",
    ));
    assert_eq!(key, "views[1].name");
    let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\naddresses = \"secret\"\n"));
    assert_eq!(key, "views[0].addresses");
    let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\nsingle = \"alias\"\n"));
    assert_eq!(key, "views[0].single");
}

#[test]
fn a_public_view_needs_an_address_it_may_show_for_in_zone_nameservers() {
    let public = "[[views]]\nname = \"out\"\naddresses = \"public\"\n";
    let ok = Config::parse(Path::new("x.toml"), &format!("{GOOD}\n{public}")).expect("valid");
    assert_eq!(
        ok.zone.nameservers[0].public_addresses[0].to_string(),
        "192.0.2.53"
    );
    let bare = GOOD.replace("public_addresses = [\"192.0.2.53\"]\n", "");
    let (_, key, msg) = invalid(&format!("{bare}\n{public}"));
    assert_eq!(key, "zone.nameservers[0].public_addresses");
    assert!(msg.contains("view `out` is public"), "{msg}");
    // Without a public view, private glue alone is fine.
    Config::parse(Path::new("x.toml"), &bare).expect("valid");
    // A "public" address that is private is refused: it would leak to outside clients.
    let (_, key, _) = invalid(&GOOD.replace("192.0.2.53", "10.0.0.53"));
    assert_eq!(key, "zone.nameservers[0].public_addresses[0]");
    // A nameserver outside the zone has no glue of ours, public or not.
    let outside = bare.replace(
        "name = \"ns1\"\naddresses = [\"127.0.0.1\"]",
        "name = \"ns.example.\"",
    );
    Config::parse(Path::new("x.toml"), &format!("{outside}\n{public}")).expect("valid");
}

#[test]
fn aws_own_domains_are_passed_through_and_warned_about() {
    let ok = Config::parse(Path::new("x.toml"), GOOD).expect("valid");
    assert!(
        ok.warnings.iter().any(|w| w.contains("ec2.internal.")),
        "{:?}",
        ok.warnings
    );
    let names: Vec<String> = ok.zone.passthrough.iter().map(Name::to_ascii).collect();
    assert_eq!(names, ["ec2.internal.", "compute.internal."]);
    // An apex of one's own is not a parent of AWS's domains: no warning.
    let own = GOOD.replace("apex = \"internal.\"", "apex = \"corp.internal.\"");
    let ok = Config::parse(Path::new("x.toml"), &own).expect("valid");
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
    // Configured subtrees are relative to the apex, and must lie below it.
    let with = |p: &str| GOOD.replace("[zone.soa]", &format!("passthrough = [{p}]\n\n[zone.soa]"));
    let ok = Config::parse(Path::new("x.toml"), &with("\"legacy\"")).expect("valid");
    assert_eq!(ok.zone.passthrough[2].to_ascii(), "legacy.internal.");
    let (_, key, _) = invalid(&with("\"example.com.\""));
    assert_eq!(key, "zone.passthrough[0]");
}

#[test]
fn recursion_is_never_open_and_never_loops() {
    let with = |views: &str| format!("{GOOD}\n{views}");
    let inside = "[[views]]\nname = \"in\"\nclients = [\"10.0.0.0/8\"]\nrecursion = true\n";
    let ok = Config::parse(Path::new("x.toml"), &with(inside)).expect("valid");
    assert!(ok.views[0].recursion && ok.views[0].chase_cname);
    assert!(ok.views[0].explain, "private views explain by default");
    let f = ok.forwarding.expect("forwarding defaults");
    assert_eq!(f.upstreams, None, "the system resolver by default");
    assert_eq!(f.timeout, Duration::from_secs(2));

    let (_, key, msg) = invalid(&with("[[views]]\nname = \"everyone\"\nrecursion = true\n"));
    assert_eq!(key, "views[0].recursion");
    assert!(msg.contains("open resolver"), "{msg}");
    let (_, key, _) = invalid(&with(
        "[[views]]\nname = \"everyone\"\nchase_cname = true\n",
    ));
    assert_eq!(key, "views[0].chase_cname");

    let upstream = |u: &str| with(&format!("{inside}[forwarding]\nupstreams = [\"{u}\"]\n"));
    let ok = Config::parse(Path::new("x.toml"), &upstream("169.254.169.253")).expect("valid");
    let f = ok.forwarding.expect("forwarding");
    assert_eq!(
        f.upstreams,
        Some(vec!["169.254.169.253:53".parse().expect("addr")]),
        "port 53 by default"
    );
    for own in ["127.0.0.1:5353", "0.0.0.0:53", "[::]:5353"] {
        let (_, key, msg) = invalid(&upstream(own));
        assert_eq!(key, "forwarding.upstreams[0]");
        assert!(msg.contains("loop"), "{msg}");
    }
    let (_, key, _) = invalid(&upstream("resolver.example"));
    assert_eq!(key, "forwarding.upstreams[0]");
    let mut ok = Config::parse(Path::new("x.toml"), &with(inside)).expect("valid");
    let own = "127.0.0.1:5353".parse().expect("addr");
    assert!(
        ok.set_upstreams(vec![own]).is_err(),
        "--upstream is checked too"
    );

    let (_, key, _) = invalid(&with(
        "[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\nreverse = [\"10.0.0.0/12\"]\n",
    ));
    assert_eq!(key, "views[0].reverse[0]");
    let (_, key, _) = invalid(&with("[[views]]\nname = \"a\"\ntiers = \"some\"\n"));
    assert_eq!(key, "views[0].tiers");
    let public = Config::parse(
        Path::new("x.toml"),
        &with("[[views]]\nname = \"out\"\naddresses = \"public\"\n"),
    )
    .expect("valid");
    assert!(
        !public.views[0].explain,
        "public views do not explain by default"
    );
    assert!(
        public.forwarding.is_none(),
        "nothing recurses, nothing forwards"
    );
}

#[test]
fn keys_of_one_source_are_rejected_for_the_other() {
    let (_, key, msg) =
        invalid(&GOOD.replace("path = \"x.json\"", "path = \"x.json\"\npage_size = 100"));
    assert_eq!(key, "inventory.page_size");
    assert!(msg.contains("does not apply to source \"file\""), "{msg}");
    // The audit reads security groups from the API; a file has none.
    let (_, key, _) = invalid(&GOOD.replace(
        "path = \"x.json\"",
        "path = \"x.json\"\naudit_interval = \"1h\"",
    ));
    assert_eq!(key, "inventory.audit_interval");
    let ec2 = GOOD.replace("source = \"file\"", "source = \"ec2\"");
    let (_, key, _) = invalid(&ec2);
    assert_eq!(key, "inventory.path");
    let ec2 = ec2.replace("path = \"x.json\"", "regions = [\"eu-west\"]");
    let (line, key, _) = invalid(&ec2);
    assert_eq!((line, key.as_str()), (17, "inventory.regions[0]"));
    // Health and events are the EC2 API's; a file has neither.
    let (_, key, _) = invalid(&GOOD.replace(
        "path = \"x.json\"",
        "path = \"x.json\"\ninstance_status = true",
    ));
    assert_eq!(key, "inventory.instance_status");
}

#[test]
fn event_queues_are_checked() {
    let ec2 = GOOD.replace("source = \"file\"", "source = \"ec2\"");
    let with = |events: &str| {
        ec2.replace(
            "path = \"x.json\"",
            &format!("regions = [\"eu-west-1\"]\n[inventory.events]\n{events}"),
        )
    };
    let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/stabledns";
    let config = Config::parse(
        Path::new("/etc/stabledns.toml"),
        &with(&format!("queues = {{ eu-west-1 = \"{url}\" }}")),
    )
    .expect("valid");
    let crate::config::SourceConfig::Ec2(e) = &config.inventory.source else {
        panic!("an ec2 source");
    };
    let events = e.events.as_ref().expect("events");
    assert_eq!(events.queues, [("eu-west-1".to_owned(), url.to_owned())]);
    assert_eq!(events.wait, Duration::from_secs(20));
    assert_eq!(events.coalesce, Duration::from_millis(50));
    for (text, want) in [("0s", Duration::ZERO), ("1s", Duration::from_secs(1))] {
        let config = Config::parse(
            Path::new("/etc/stabledns.toml"),
            &with(&format!(
                "queues = {{ eu-west-1 = \"{url}\" }}\ncoalesce = \"{text}\""
            )),
        )
        .expect("valid");
        let crate::config::SourceConfig::Ec2(e) = &config.inventory.source else {
            panic!("an ec2 source");
        };
        assert_eq!(e.events.as_ref().map(|e| e.coalesce), Some(want), "{text}");
    }
    for (events, key, why) in [
        ("queues = {}", "inventory.events.queues", "at least one"),
        (
            &format!("queues = {{ us-east-1 = \"{url}\" }}") as &str,
            "inventory.events.queues.us-east-1",
            "does not walk",
        ),
        (
            "queues = { eu-west-1 = \"sqs/stabledns\" }",
            "inventory.events.queues.eu-west-1",
            "URL",
        ),
        (
            &format!("queues = {{ eu-west-1 = \"{url}\" }}\nwait = \"30s\""),
            "inventory.events.wait",
            "20 seconds",
        ),
        (
            &format!("queues = {{ eu-west-1 = \"{url}\" }}\ncoalesce = \"1m\""),
            "inventory.events.coalesce",
            "10 seconds",
        ),
        (
            &format!("queues = {{ eu-west-1 = \"{url}\" }}\ncoalesce = \"soon\""),
            "inventory.events.coalesce",
            "duration",
        ),
    ] {
        let (_, k, msg) = invalid(&with(events));
        assert_eq!(k, key, "{events}");
        assert!(msg.contains(why), "{events}: {msg}");
    }
}

#[test]
fn bad_values_name_the_key_and_line() {
    let (line, key, msg) = invalid(&GOOD.replace("127.0.0.1:5353", "localhost"));
    assert_eq!((line, key.as_str()), (3, "server.listen[0]"));
    assert!(msg.contains("localhost"), "{msg}");

    let (line, key, msg) = invalid(&GOOD.replace("(?P<name>.+)", "(.+)"));
    assert_eq!((line, key.as_str()), (21, "naming.rules[0].pattern"));
    assert!(msg.contains("name"), "{msg}");

    let (line, key, _) = invalid(&GOOD.replace("^SG-T-(?P<name>.+)$", "(?P<name>[a-"));
    assert_eq!((line, key.as_str()), (21, "naming.rules[0].pattern"));

    let (line, key, _) = invalid(&GOOD.replace("source = \"file\"", "source = \"ftp\""));
    assert_eq!((line, key.as_str()), (16, "inventory.source"));

    let (line, key, _) = invalid(&GOOD.replace("addresses = [\"127.0.0.1\"]", ""));
    assert_eq!((line, key.as_str()), (12, "zone.nameservers[0].addresses"));

    let (line, key, _) = invalid(&GOOD.replace("apex = \"internal.\"", "apex = \"internal\""));
    assert_eq!((line, key.as_str()), (6, "zone.apex"));

    let (line, key, _) = invalid(&GOOD.replace(
        "path = \"x.json\"",
        "path = \"x.json\"\nrefresh_interval = \"soon\"",
    ));
    assert_eq!((line, key.as_str()), (18, "inventory.refresh_interval"));

    let (line, key, _) = invalid(&GOOD.replace(
        "[[naming.rules]]",
        "[naming]\nstates = [\"runing\"]\n\n[[naming.rules]]",
    ));
    assert_eq!((line, key.as_str()), (20, "naming.states[0]"));

    let (_, key, _) = invalid(&GOOD.replace("kind = \"security_group\"", "kind = \"tag\""));
    assert_eq!(key, "naming.rules[0].pattern");
}

/// Every TOML snippet in the README is valid where it is meant to go (its tables in place
/// of a minimal config's), so the documentation cannot drift from the parser.
#[test]
fn readme_toml_snippets_load() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"))
        .expect("README.md");
    // Files the snippets name, beside the README as the parser sees it.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("xfr.key");
    std::fs::write(&key, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").expect("key");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let readme_path = dir.path().join("README.md");
    let mut blocks = 0;
    let mut rest = readme.as_str();
    while let Some(start) = rest.find("```toml\n") {
        let body = &rest[start + 8..];
        let end = body.find("```").expect("closed block");
        // Each top-level table of the snippet replaces the minimal config's.
        let mut doc: toml::Table = toml::from_str(GOOD).expect("GOOD parses");
        let snippet: toml::Table = toml::from_str(&body[..end])
            .unwrap_or_else(|e| panic!("README snippet is not TOML: {e}\n{}", &body[..end]));
        doc.extend(snippet);
        let text = toml::to_string(&doc).expect("serialisable");
        if let Err(e) = Config::parse(&readme_path, &text) {
            panic!("README snippet does not load: {e}\n{}", &body[..end]);
        }
        blocks += 1;
        rest = &body[end..];
    }
    assert!(blocks >= 1, "no toml block found in README.md");
}

#[test]
fn parse_errors_name_the_file_key_and_line() {
    let err = Config::parse(
        Path::new("/etc/stabledns.toml"),
        &GOOD.replace("[zone]\n", "[zone]\nrecord_ttl = \"sixty\"\n"),
    )
    .expect_err("wrong type");
    let text = err.to_string();
    assert!(text.contains("/etc/stabledns.toml"), "{text}");
    assert!(text.contains("line 6"), "{text}");
    assert!(text.contains("record_ttl"), "{text}");
}

#[test]
fn transfer_keys_are_read_from_files_and_checked() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("stabledns.toml");
    let key_file = dir.path().join("xfr.key");
    std::fs::write(&key_file, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==\n").expect("write");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let with = |view: &str, keys: &str| {
        format!("{GOOD}\n[[views]]\nname = \"a\"\nclients = [\"10.0.0.0/8\"]\n{view}\n{keys}")
    };
    let key = "[[tsig_keys]]\nname = \"xfr-key\"\nsecret_file = \"xfr.key\"\n";
    let ok = Config::parse(
        &path,
        &with(
            "allow_transfer = [\"10.0.0.53\"]\ntransfer_keys = [\"xfr-key\"]\nnotify = [\"10.0.0.53\"]",
            key,
        ),
    )
    .expect("valid");
    assert_eq!(ok.tsig_keys[0].name.to_ascii(), "xfr-key.");
    assert_eq!(ok.tsig_keys[0].secret, b"secret-secret-secret-secret!");
    assert!(
        !format!("{ok:?}").contains("secret-secret"),
        "Debug hides secrets"
    );
    assert_eq!(ok.views[0].notify[0].to_string(), "10.0.0.53:53");
    assert!(
        !ok.warnings.iter().any(|w| w.contains("secret")),
        "{:?}",
        ok.warnings
    );

    let err = |view: &str, keys: &str| match Config::parse(&path, &with(view, keys)) {
        Err(ConfigError::Invalid { key, message, .. }) => (key, message),
        other => panic!("expected an error, got {other:?}"),
    };
    let (k, m) = err(
        "allow_transfer = [\"10.0.0.53\"]\ntransfer_keys = [\"nope\"]",
        key,
    );
    assert_eq!(k, "views[0].transfer_keys[0]", "{m}");
    let (k, _) = err("transfer_keys = [\"xfr-key\"]", key);
    assert_eq!(k, "views[0].transfer_keys");
    let (k, _) = err("notify = [\"not-an-address\"]", "");
    assert_eq!(k, "views[0].notify[0]");
    std::fs::write(&key_file, "not base64!").expect("write");
    let (k, m) = err("", key);
    assert_eq!(k, "tsig_keys[0].secret_file");
    assert!(m.contains("base64"), "{m}");

    // A world-readable secret and a NOTIFY target that may not transfer are warnings.
    std::fs::write(&key_file, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").expect("write");
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let warned = Config::parse(&path, &with("notify = [\"10.0.0.9:5300\"]", key)).expect("valid");
    // (The third is the apex `internal.` holding AWS's own domains.)
    assert_eq!(warned.warnings.len(), 3, "{:?}", warned.warnings);
    assert!(warned.warnings.iter().any(|w| w.contains("world-readable")));
}

#[test]
fn publish_entries_are_checked() {
    let with = |table: &str| format!("{GOOD}\n[[publish]]\nkind = \"route53\"\n{table}\n");
    let ok = Config::parse(
        Path::new("/etc/stabledns.toml"),
        &with("view = \"inside\"\nhosted_zone_id = \"/hostedzone/Z0ABC\""),
    )
    .expect("valid");
    let p = &ok.publish[0];
    assert_eq!(p.hosted_zone_id, "Z0ABC");
    assert_eq!(
        (p.owner_id.as_str(), p.max_changes_per_batch),
        ("stabledns", 500)
    );
    let cases = [
        (
            "view = \"nope\"\nhosted_zone_id = \"Z1\"",
            "publish[0].view",
        ),
        (
            "view = \"inside\"\nhosted_zone_id = \"internal.\"",
            "publish[0].hosted_zone_id",
        ),
        (
            "view = \"inside\"\nhosted_zone_id = \"Z1\"\nowner_id = \"a,b\"",
            "publish[0].owner_id",
        ),
        (
            "view = \"inside\"\nhosted_zone_id = \"Z1\"\nmax_changes_per_batch = 1001",
            "publish[0].max_changes_per_batch",
        ),
        (
            "view = \"inside\"\nhosted_zone_id = \"Z1\"\npolicy = \"yolo\"",
            "publish[0].policy",
        ),
    ];
    for (table, want) in cases {
        let (_, key, message) = invalid(&with(table));
        assert_eq!(key, want, "{message}");
    }
}

#[test]
fn the_log_table_is_validated() {
    use crate::dns::querylog::Queries;
    let with = |log: &str| format!("{GOOD}\n[log]\n{log}");
    let ok = Config::parse(
        Path::new("/etc/stabledns/stabledns.toml"),
        &with("queries = \"errors\"\nsample = 10\ndnstap_socket = \"dnstap.sock\"\n"),
    )
    .expect("valid");
    assert_eq!((ok.log.queries, ok.log.sample), (Queries::Errors, 10));
    let tap = ok.log.dnstap.expect("dnstap");
    assert_eq!(tap.socket, Path::new("/etc/stabledns/dnstap.sock"));
    assert!(tap.identity.version.starts_with("stabledns "));
    assert!(!tap.identity.identity.is_empty());

    let (_, key, msg) = invalid(&with("queries = \"some\"\n"));
    assert_eq!(key, "log.queries");
    assert!(msg.contains("\"all\""), "{msg}");
    let (_, key, _) = invalid(&with("sample = 0\n"));
    assert_eq!(key, "log.sample");
    let (_, key, msg) = invalid(&with("dnstap_identity = \"ns1\"\n"));
    assert_eq!(key, "log.dnstap_identity");
    assert!(msg.contains("dnstap_socket"), "{msg}");
    let long = format!("dnstap_socket = \"/{}\"\n", "s".repeat(120));
    let (_, key, _) = invalid(&with(&long));
    assert_eq!(key, "log.dnstap_socket");
}

#[test]
fn a_misspelt_key_is_named_with_its_table_and_the_key_it_meant() {
    let text = GOOD.replace(
        "[inventory]\n",
        "[inventory]\nrefresh_intervall = \"30s\"\n",
    );
    let err = Config::parse(Path::new("/etc/stabledns.toml"), &text).expect_err("unknown key");
    let text = err.to_string();
    assert!(
        text.contains(
            "unknown key `inventory.refresh_intervall`: did you mean `refresh_interval`?"
        ),
        "{text}"
    );
    assert!(text.contains("line "), "toml's line is kept: {text}");
    // Nothing close: no guess.
    let text = GOOD.replace("[inventory]\n", "[inventory]\nbanana = 1\n");
    let err = Config::parse(Path::new("x.toml"), &text).expect_err("unknown key");
    assert!(
        err.to_string().contains("unknown key `inventory.banana`\n"),
        "{err}"
    );
    assert!(!err.to_string().contains("did you mean"), "{err}");
}

#[test]
fn zone_soa_defaults_from_the_apex() {
    let text = GOOD.replace("[zone.soa]\nhostmaster = \"hostmaster\"\n", "");
    assert!(!text.contains("[zone.soa]"));
    let c = Config::parse(Path::new("x.toml"), &text).expect("no [zone.soa] is fine");
    assert_eq!(c.zone.hostmaster.to_ascii(), "hostmaster.internal.");
    assert_eq!(c.zone.primary_ns.to_ascii(), "ns1.internal.");
}

#[test]
fn edit_distance_counts_single_edits() {
    assert_eq!(edit_distance("refresh_intervall", "refresh_interval"), 1);
    assert_eq!(edit_distance("adress", "address"), 1);
    assert_eq!(edit_distance("", "abc"), 3);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}
