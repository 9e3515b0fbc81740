//! `stabledns audit` against a moto VPC seeded the way the convention says, with the rules
//! that break on replacement mixed in: the real binary, its JSON and SARIF (checked against
//! the SARIF 2.1.0 schema), its exit codes, and the fix it suggests applied through the API.

use std::collections::HashMap;
use std::process::Command;

use hickory_server::proto::rr::RecordType;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

use crate::harness::{TestServer, ask, summary, wait_for};
use crate::moto::{Moto, Network, ec2_config, ec2_config_text, private_ip, public_ip};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

/// Long enough for a few refreshes under a loaded machine.
const SOON: std::time::Duration = std::time::Duration::from_secs(15);

fn permission(port: i32, cidr: Option<&str>, peer: Option<&str>) -> IpPermission {
    let mut perm = IpPermission::builder()
        .ip_protocol("tcp")
        .from_port(port)
        .to_port(port);
    if let Some(cidr) = cidr {
        perm = perm.ip_ranges(IpRange::builder().cidr_ip(cidr).build());
    }
    if let Some(peer) = peer {
        perm = perm.user_id_group_pairs(UserIdGroupPair::builder().group_id(peer).build());
    }
    perm.build()
}

async fn allow(ec2: &Client, group: &str, port: i32, cidr: Option<&str>, peer: Option<&str>) {
    ec2.authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(permission(port, cidr, peer))
        .send()
        .await
        .expect("authorize");
}

/// Runs `command` (one or more `aws ec2 …` joined by `&&`, as a finding's fix gives them) in a
/// shell with the AWS CLI `scripts/test` installed, against the moto at `url`.
fn aws_cli(url: &str, command: &str) {
    let aws = std::env::var("STABLEDNS_AWS_CLI")
        .expect("STABLEDNS_AWS_CLI: run scripts/test, which installs the AWS CLI");
    let bin = std::path::Path::new(&aws)
        .parent()
        .expect("the CLI's directory")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", command])
        .env("PATH", path)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{command}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `stabledns audit` with `args`: its exit code and stdout.
fn audit(config: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("audit")
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code().is_some(),
        "killed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn findings(config: &std::path::Path) -> Vec<serde_json::Value> {
    let (code, json) = audit(config, &["--format", "json"]);
    assert_eq!(code, 0, "no --fail-on: exit 0 whatever it finds\n{json}");
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("not JSON ({e}): {json}"))
}

#[tokio::test]
async fn the_audit_finds_pinned_stale_and_open_rules_but_not_group_references() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let web = net
        .launch(
            &ec2,
            1,
            false,
            &[("Name", "web1")],
            &["SG-T-WEB", "SG-T-ADMIN", "SG-I-WEB1"],
        )
        .await;
    net.launch(
        &ec2,
        1,
        false,
        &[("Name", "db1")],
        &["SG-T-DB", "SG-T-ADMIN", "SG-I-DB1"],
    )
    .await;
    let web_ip = private_ip(&ec2, &web[0]).await;
    let (sg_db, sg_web1, sg_admin) = (
        net.group(&ec2, "SG-T-DB").await,
        net.group(&ec2, "SG-I-WEB1").await,
        net.group(&ec2, "SG-T-ADMIN").await,
    );
    let sg_web = net.group(&ec2, "SG-T-WEB").await;
    // Against the convention: a worker in its tier only, an instance group nobody is in, and
    // a tier group with no members.
    let worker = net
        .launch(&ec2, 1, false, &[("Name", "worker1")], &["SG-T-WORKER"])
        .await;
    let sg_spare = net.group(&ec2, "SG-I-SPARE").await;
    let sg_empty = net.group(&ec2, "SG-T-EMPTY").await;
    // The database lets web1 in by its address (breaks when web1 is replaced), and also
    // 10.20.9.9, which nothing holds; the admin group has SSH open to the world; the web tier
    // reaching PostgreSQL by group is how it should be.
    allow(&ec2, &sg_db, 3306, Some(&format!("{web_ip}/32")), None).await;
    allow(&ec2, &sg_db, 3306, Some("10.20.9.9/32"), None).await;
    allow(&ec2, &sg_admin, 22, Some("0.0.0.0/0"), None).await;
    allow(&ec2, &sg_db, 5432, None, Some(&sg_web)).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, ec2_config_text(&moto.url, &["eu-west-1"], "")).expect("config");

    let all = findings(&config);
    let (convention, found): (Vec<_>, Vec<_>) =
        all.into_iter().partition(|f| f["kind"] == "convention");
    let kinds: Vec<&str> = found.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert_eq!(kinds, ["open-admin", "stale", "pinned"], "{found:#?}");
    let mut ids: Vec<String> = convention
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    ids.sort();
    let mut want = vec![
        format!("convention:{}:no-admin", worker[0]),
        format!("convention:{}:no-own", worker[0]),
        format!("convention:{sg_spare}:members"),
        format!("convention:{sg_empty}:members"),
    ];
    want.sort();
    assert_eq!(ids, want, "{convention:#?}");
    assert!(convention.iter().all(|f| f["severity"] == "low"));

    let open = &found[0];
    assert_eq!(
        (&open["severity"], &open["group_name"]),
        (&"high".into(), &"SG-T-ADMIN".into())
    );
    assert_eq!(
        (&open["ports"], &open["peer"]),
        (&"tcp 22".into(), &"0.0.0.0/0".into())
    );
    assert!(open["fix"].as_str().is_some_and(|f| f.contains("SSH")));

    let stale = &found[1];
    assert_eq!(
        (&stale["peer"], &stale["group_id"]),
        (&"10.20.9.9/32".into(), &sg_db.clone().into())
    );
    assert!(
        stale["rule_id"]
            .as_str()
            .is_some_and(|r| r.starts_with("sgr-"))
    );

    let pinned = &found[2];
    assert_eq!(pinned["severity"], "medium");
    assert_eq!(pinned["instance"], web[0].as_str());
    assert_eq!(pinned["name"], "web1.internal.");
    assert_eq!(pinned["peer"], format!("{web_ip}/32"));
    assert_eq!(pinned["direction"], "ingress");
    let fix = pinned["fix"].as_str().unwrap_or_default();
    assert!(
        fix.contains(&format!("GroupId={sg_web1}")),
        "the instance's own group: {fix}"
    );
    assert!(fix.contains("revoke-security-group-ingress"), "{fix}");
    assert!(pinned["note"].is_null(), "a private address");

    // Exit codes: findings at or above --fail-on give 1; a config the audit cannot use, 2.
    assert_eq!(audit(&config, &["--fail-on", "high"]).0, 1);
    assert_eq!(audit(&config, &["--fail-on", "medium"]).0, 1);
    let demo = crate::harness::root().join("config/demo.toml");
    let (code, _) = audit(&demo, &[]);
    assert_eq!(code, 2, "a file inventory has no security groups");
    let table = audit(&config, &[]).1;
    assert!(
        table.contains("pinned") && table.contains("web1.internal."),
        "{table}"
    );

    // The suggested fix, run as written by the AWS CLI against moto, clears the finding on the
    // next audit: the command's grammar and quoting are what is tested, not a paraphrase.
    let command = fix
        .split_once("instead: ")
        .map(|(_, c)| c)
        .expect("a fix that names the command");
    aws_cli(&moto.url, command);
    let after = findings(&config);
    let kinds: Vec<&str> = after
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .filter(|k| *k != "convention")
        .collect();
    assert_eq!(kinds, ["open-admin", "stale"], "{after:#?}");
}

/// Whether `document` is valid SARIF 2.1.0, by the `jsonschema` package against OASIS's
/// schema (which `scripts/test` fetches); the validator's complaints when it is not.
fn sarif_errors(document: &str) -> Result<(), String> {
    let schema = std::env::var("STABLEDNS_SARIF_SCHEMA")
        .expect("STABLEDNS_SARIF_SCHEMA: run scripts/test, which fetches the SARIF 2.1.0 schema");
    let python = std::env::var("STABLEDNS_PYTHON")
        .expect("STABLEDNS_PYTHON: run scripts/test, which installs jsonschema");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("audit.sarif");
    std::fs::write(&path, document).expect("write");
    let check = "import json, sys, jsonschema\n\
        schema = json.load(open(sys.argv[1]))\n\
        jsonschema.Draft7Validator.check_schema(schema)\n\
        errors = list(jsonschema.Draft7Validator(schema).iter_errors(json.load(open(sys.argv[2]))))\n\
        for e in errors: print(e.json_path, e.message)\n\
        sys.exit(1 if errors else 0)\n";
    let out = Command::new(python)
        .args(["-c", check, &schema])
        .arg(&path)
        .output()
        .expect("python runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(()),
        Some(1) if !said.contains("Traceback") => Err(said),
        _ => panic!("the validator failed to run: {said}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_names_replaced_instances_and_public_addresses_and_writes_valid_sarif() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let db = async || {
        net.launch(&ec2, 1, false, &[("Name", "db1")], &["SG-T-DB", "SG-I-DB1"])
            .await
            .remove(0)
    };
    let old_db = db().await;
    let old_ip = private_ip(&ec2, &old_db).await;
    // web1 has an auto-assigned public address; api1 an Elastic IP, and one more is held.
    let web = net
        .launch(
            &ec2,
            1,
            true,
            &[("Name", "web1")],
            &["SG-T-WEB", "SG-I-WEB1"],
        )
        .await
        .remove(0);
    let api = net
        .launch(
            &ec2,
            1,
            true,
            &[("Name", "api1")],
            &["SG-T-API", "SG-I-API1"],
        )
        .await
        .remove(0);
    let eip = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .expect("allocate");
    ec2.associate_address()
        .instance_id(&api)
        .allocation_id(eip.allocation_id().expect("allocation"))
        .send()
        .await
        .expect("associate");
    let spare = ec2
        .allocate_address()
        .domain(aws_sdk_ec2::types::DomainType::Vpc)
        .send()
        .await
        .expect("allocate")
        .public_ip()
        .expect("spare EIP")
        .to_owned();
    let (web_public, api_public) = (public_ip(&ec2, &web).await, public_ip(&ec2, &api).await);
    assert_eq!(Some(api_public.as_str()), eip.public_ip());

    // The server sees db1 replaced, and its state file remembers who had the old address.
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let extra = format!("state_file = \"{}\"", state.display());
    let server = TestServer::start(ec2_config(&moto.url, &["eu-west-1"], &extra)).await;
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &[&old_ip],
        SOON,
    )
    .await;
    ec2.terminate_instances()
        .instance_ids(&old_db)
        .send()
        .await
        .expect("terminate");
    // AWS deletes a terminated instance's primary interface (DeleteOnTermination); moto keeps
    // it, still holding the address.
    let lingering = ec2
        .describe_network_interfaces()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("attachment.instance-id")
                .values(&old_db)
                .build(),
        )
        .send()
        .await
        .expect("describe interfaces");
    for n in lingering.network_interfaces() {
        ec2.delete_network_interface()
            .network_interface_id(n.network_interface_id().expect("eni id"))
            .send()
            .await
            .expect("delete interface");
    }
    let new_db = db().await;
    let new_ip = private_ip(&ec2, &new_db).await;
    wait_for(
        server.addr(),
        "db1.internal.",
        RecordType::A,
        &[&new_ip],
        SOON,
    )
    .await;
    server.stop().await;
    let saved = stabledns::state::load(&state)
        .expect("readable")
        .expect("written");
    let departed: Vec<&str> = saved
        .departed
        .iter()
        .map(|d| d.instance.id.as_str())
        .collect();
    assert_eq!(departed, [old_db.as_str()]);

    let (sg_api, sg_web, sg_db) = (
        net.group(&ec2, "SG-T-API").await,
        net.group(&ec2, "SG-T-WEB").await,
        net.group(&ec2, "SG-T-DB").await,
    );
    // The API lets the old db1 in by address (stale, and the state file knows whose); the
    // database lets web1 in by its auto-assigned public address (ephemeral); the web tier
    // lets api1 in by its Elastic IP (pinned, with the public-address note), and SSH from the
    // account's spare Elastic IP and from an office outside the VPC (neither is a finding).
    allow(&ec2, &sg_api, 8080, Some(&format!("{old_ip}/32")), None).await;
    allow(&ec2, &sg_db, 3306, Some(&format!("{web_public}/32")), None).await;
    allow(&ec2, &sg_web, 443, Some(&format!("{api_public}/32")), None).await;
    allow(&ec2, &sg_web, 22, Some(&format!("{spare}/32")), None).await;
    allow(&ec2, &sg_web, 22, Some("198.51.100.7/32"), None).await;
    // Egress is audited like ingress: the web tier reaching the new db1 by address.
    ec2.authorize_security_group_egress()
        .group_id(&sg_web)
        .ip_permissions(permission(5432, Some(&format!("{new_ip}/32")), None))
        .send()
        .await
        .expect("authorize egress");

    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, ec2_config_text(&moto.url, &["eu-west-1"], &extra)).expect("config");
    let all = findings(&config);
    let found: Vec<&serde_json::Value> = all.iter().filter(|f| f["kind"] != "convention").collect();
    let kinds: Vec<&str> = found.iter().filter_map(|f| f["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ephemeral-public", "stale", "pinned", "pinned"],
        "{found:#?}"
    );

    let ephemeral = found[0];
    assert_eq!(ephemeral["severity"], "high");
    assert_eq!(ephemeral["instance"], web.as_str());
    assert_eq!(ephemeral["name"], "web1.internal.");
    assert_eq!(ephemeral["peer"], format!("{web_public}/32"));
    assert!(
        ephemeral["fix"]
            .as_str()
            .is_some_and(|f| f.contains(&format!("associate-address --instance-id {web}"))),
        "{ephemeral:#?}"
    );

    let stale = found[1];
    assert_eq!(stale["peer"], format!("{old_ip}/32"));
    assert_eq!(stale["instance"], old_db.as_str(), "the state file knows");
    assert_eq!(stale["name"], "db1.internal.");
    assert_eq!(stale["replaced_by"], new_db.as_str());
    let sg_db1 = net.group(&ec2, "SG-I-DB1").await;
    assert!(
        stale["fix"]
            .as_str()
            .is_some_and(|f| f.contains(&format!("GroupId={sg_db1}"))),
        "references the replacement's own group: {stale:#?}"
    );

    let (egress, eip_pinned): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        found[2..].iter().partition(|f| f["direction"] == "egress");
    let (egress, eip_pinned) = (egress[0], eip_pinned[0]);
    assert_eq!(egress["instance"], new_db.as_str());
    assert_eq!(egress["peer"], format!("{new_ip}/32"));
    assert!(
        egress["fix"]
            .as_str()
            .is_some_and(|f| f.contains("authorize-security-group-egress")
                && f.contains("revoke-security-group-egress")),
        "{egress:#?}"
    );
    assert_eq!(eip_pinned["instance"], api.as_str());
    assert!(
        eip_pinned["note"]
            .as_str()
            .is_some_and(|n| n.contains("public address")),
        "{eip_pinned:#?}"
    );

    // SARIF: valid by the schema, one result per finding, each with its kind's rule.
    let (code, sarif) = audit(&config, &["--format", "sarif"]);
    assert_eq!(code, 0);
    if let Err(e) = sarif_errors(&sarif) {
        panic!("invalid SARIF: {e}\n{sarif}");
    }
    let log: serde_json::Value = serde_json::from_str(&sarif).expect("JSON");
    let results = log["runs"][0]["results"].as_array().expect("results");
    assert_eq!(results.len(), all.len());
    let rules = log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .expect("rules");
    for (r, f) in results.iter().zip(&all) {
        assert_eq!(r["ruleId"], f["kind"]);
        let index = r["ruleIndex"].as_u64().expect("index") as usize;
        assert_eq!(rules[index]["id"], f["kind"]);
        assert_eq!(r["partialFingerprints"]["stablednsFinding/v1"], f["id"]);
    }
    assert_eq!(results[0]["level"], "error");
    // The validator does reject what the schema does not allow.
    let mut broken = log.clone();
    broken["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(sarif_errors(&broken.to_string()).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_interval_exports_the_finding_counts_while_serving() {
    use crate::admin::{scrape, value};
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let web = net
        .launch(
            &ec2,
            1,
            false,
            &[("Name", "web1")],
            &["SG-T-WEB", "SG-I-WEB1"],
        )
        .await;
    let web_ip = private_ip(&ec2, &web[0]).await;
    let sg_db = net.group(&ec2, "SG-T-DB").await;
    allow(&ec2, &sg_db, 3306, Some(&format!("{web_ip}/32")), None).await;

    let config = ec2_config(&moto.url, &["eu-west-1"], "audit_interval = \"1s\"");
    let server = TestServer::start(config).await;
    let pinned = r#"stabledns_audit_findings{kind="pinned",severity="medium"}"#;
    let stale = r#"stabledns_audit_findings{kind="stale",severity="high"}"#;
    let runs = r#"stabledns_audit_runs_total{result="ok"}"#;
    let until = |want: f64| {
        let admin = server.admin();
        async move {
            let deadline = tokio::time::Instant::now() + SOON;
            loop {
                let samples = scrape(admin).await;
                if value(&samples, runs) >= 1.0 && value(&samples, pinned) == want {
                    return samples;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{pinned} never became {want}: {samples:#?}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    };
    let samples = until(1.0).await;
    // Every kind is listed, at 0 when there is none, so an alert on one resolves.
    assert_eq!(samples.get(stale), Some(&0.0), "{samples:#?}");
    assert!(value(&samples, "stabledns_audit_last_success_timestamp_seconds{}") > 1.7e9);
    // An unlabelled sample is written without braces, as every exposition format expects.
    let (_, raw) = crate::admin::http_get(server.admin(), "/metrics").await;
    assert!(
        raw.lines()
            .any(|l| l.starts_with("stabledns_audit_last_success_timestamp_seconds ")),
        "{raw}"
    );
    assert!(!raw.contains("{}"), "empty label braces in:\n{raw}");

    // Fixed in the API: the next audit counts it gone.
    let rules = ec2
        .describe_security_group_rules()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("group-id")
                .values(&sg_db)
                .build(),
        )
        .send()
        .await
        .expect("rules");
    let rule = rules
        .security_group_rules()
        .iter()
        .find(|r| r.cidr_ipv4() == Some(&format!("{web_ip}/32")))
        .and_then(|r| r.security_group_rule_id())
        .expect("the pinned rule")
        .to_owned();
    ec2.revoke_security_group_ingress()
        .group_id(&sg_db)
        .security_group_rule_ids(rule)
        .send()
        .await
        .expect("revoke");
    until(0.0).await;
    server.stop().await;
}

/// A stopped instance keeps its private address, and a rule pinned to it breaks when it is
/// replaced: pinned, as for a running one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_pinned_to_a_stopped_instance_is_reported() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let batch = net
        .launch(
            &ec2,
            1,
            false,
            &[("Name", "batch1")],
            &["SG-T-BATCH", "SG-I-BATCH1"],
        )
        .await
        .remove(0);
    let ip = private_ip(&ec2, &batch).await;
    let sg_db = net.group(&ec2, "SG-T-DB").await;
    allow(&ec2, &sg_db, 5432, Some(&format!("{ip}/32")), None).await;
    ec2.stop_instances()
        .instance_ids(&batch)
        .send()
        .await
        .expect("stop");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, ec2_config_text(&moto.url, &["eu-west-1"], "")).expect("config");
    let found = findings(&config);
    let pinned: Vec<&serde_json::Value> = found
        .iter()
        .filter(|f| f["kind"] == "pinned" && f["peer"] == format!("{ip}/32").as_str())
        .collect();
    assert_eq!(pinned.len(), 1, "{found:#?}");
    assert_eq!(pinned[0]["instance"], batch.as_str());
    assert!(
        pinned[0]["fix"]
            .as_str()
            .is_some_and(|f| f.contains("SG-I-BATCH1")),
        "{:#?}",
        pinned[0]
    );
}

/// Two members of one tier pinned on one port: both fixes reference the tier, which can be
/// added once. Every command printed runs as written, in order, through the AWS CLI, and
/// leaves the reference and no pinned rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fix_runs_as_written_when_two_pins_share_one_reference() {
    let moto = Moto::start();
    let ec2 = moto.client("eu-west-1");
    let net = Network::create(&ec2).await;
    let web = net.launch(&ec2, 2, false, &[], &["SG-T-WEB"]).await;
    let sg_db = net.group(&ec2, "SG-T-DB").await;
    for id in &web {
        let ip = private_ip(&ec2, id).await;
        allow(&ec2, &sg_db, 3306, Some(&format!("{ip}/32")), None).await;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, ec2_config_text(&moto.url, &["eu-west-1"], "")).expect("config");
    let pinned: Vec<String> = findings(&config)
        .iter()
        .filter(|f| f["kind"] == "pinned")
        .map(|f| f["fix"].as_str().expect("fix").to_owned())
        .collect();
    assert_eq!(pinned.len(), 2, "{pinned:#?}");
    for fix in &pinned {
        let command = fix
            .split_once("instead: ")
            .map(|(_, c)| c)
            .expect("a command");
        aws_cli(&moto.url, command);
    }
    let after = findings(&config);
    assert!(after.iter().all(|f| f["kind"] != "pinned"), "{after:#?}");
    let groups = ec2
        .describe_security_groups()
        .group_ids(&sg_db)
        .send()
        .await
        .expect("describe");
    let perms = groups.security_groups()[0].ip_permissions();
    assert!(
        perms
            .iter()
            .any(|p| p.user_id_group_pairs().len() == 1 && p.ip_ranges().is_empty()),
        "the tier reference is there: {perms:#?}"
    );
}

/// The audit reads its names from the snapshot the server serves: after a launch-first
/// replacement in a slotted tier (numbers kept in the state file, which a fresh numbering by
/// launch order would not reproduce), each instance it reports, in text, JSON and SARIF, is
/// called by a name the server answers with that instance; and a group named outside ASCII
/// gets the label DNS gives it (the fullwidth `ＡＤＭＩＮ` is the admin tier, `ÜBER` an A-label).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_calls_each_instance_by_the_name_the_server_answers_for_it() {
    use crate::replicas::{replace_slot_two_launch_first, slots, test_config};
    let moto = Moto::start();
    let ec2 = moto.client("us-east-1");
    let net = Network::create(&ec2).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let state = dir.path().join("state.json");
    let text = ec2_config_text(
        &moto.url,
        &["us-east-1"],
        &format!("state_file = \"{}\"", state.display()),
    )
    .replace("[naming]\n", "[naming]\nslot_numbers = \"state-file\"\n");
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, &text).expect("config");

    net.launch(&ec2, 3, false, &[], &["SG-T-SVC"]).await;
    let uber = net
        .launch(&ec2, 1, false, &[], &["SG-T-ＡＤＭＩＮ", "SG-I-ÜBER"])
        .await
        .remove(0);
    let uber_name = format!(
        "{}.internal.",
        stabledns::naming::normalize("ÜBER").expect("a label")
    );
    assert!(uber_name.starts_with("xn--"), "{uber_name}");
    let server = TestServer::start(test_config(&text)).await;
    let uber_ip = private_ip(&ec2, &uber).await;
    wait_for(server.addr(), &uber_name, RecordType::A, &[&uber_ip], SOON).await;
    wait_for(
        server.addr(),
        "admin.internal.",
        RecordType::A,
        &[&uber_ip],
        SOON,
    )
    .await;
    let newcomer = replace_slot_two_launch_first(&ec2, &net, &server).await;
    // The state file holds the numbers served (the audit starts from it, as `serve` does).
    let served = slots(&server, "svc");
    crate::ec2::until("the state file has the replacement", SOON, || {
        stabledns::state::load(&state)
            .ok()
            .flatten()
            .and_then(|s| s.slots.get("svc").and_then(|t| t.get(&newcomer)).copied())
            == Some(2)
    })
    .await;

    // Every member of the tier, and the ÜBER instance, let in by its address.
    let sg = net.group(&ec2, "SG-I-ÜBER").await;
    let mut ips = HashMap::new();
    for (_, id) in &served {
        ips.insert(id.clone(), private_ip(&ec2, id).await);
    }
    ips.insert(uber.clone(), uber_ip.clone());
    for ip in ips.values() {
        allow(&ec2, &sg, 443, Some(&format!("{ip}/32")), None).await;
    }

    let found = findings(&config);
    let pinned: Vec<&serde_json::Value> = found.iter().filter(|f| f["kind"] == "pinned").collect();
    assert_eq!(pinned.len(), ips.len(), "{found:#?}");
    let (_, table) = audit(&config, &[]);
    let (_, sarif) = audit(&config, &["--format", "sarif"]);
    let sarif: serde_json::Value = serde_json::from_str(&sarif).expect("SARIF is JSON");
    let results = sarif["runs"][0]["results"].as_array().expect("results");
    for f in &pinned {
        let (id, name) = (
            f["instance"].as_str().expect("id"),
            f["name"].as_str().expect("name"),
        );
        assert_eq!(
            summary(&ask(server.addr(), name, RecordType::A).await),
            [ips[id].clone()],
            "the audit calls {id} {name}: the server must answer that name with it"
        );
        assert!(table.contains(&format!("{id} ({name})")), "{table}");
        let sarif_name = results
            .iter()
            .find(|r| r["properties"]["id"] == f["id"])
            .map(|r| &r["properties"]["name"]);
        assert_eq!(sarif_name, Some(&f["name"]), "SARIF agrees for {id}");
    }
    let names: Vec<&str> = pinned.iter().filter_map(|f| f["name"].as_str()).collect();
    assert!(names.contains(&uber_name.as_str()), "{names:?}");
    assert!(names.contains(&"2.svc.internal."), "{names:?}");
    // `SG-T-ＡＤＭＩＮ` is the admin tier DNS serves, so the tier's members are not in it.
    for (_, id) in &served {
        assert!(
            found
                .iter()
                .any(|f| f["id"] == format!("convention:{id}:no-admin")),
            "{id} is outside the admin group: {found:#?}"
        );
    }
    server.stop().await;
}
