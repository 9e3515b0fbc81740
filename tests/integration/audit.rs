//! `stabledns audit` against a moto VPC seeded the way the convention says, with the rules
//! that break on replacement mixed in: the real binary, its JSON, its exit codes, and the fix
//! it suggests applied through the API.

use std::process::Command;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::types::{IpPermission, IpRange, UserIdGroupPair};

use crate::moto::{Moto, Network, ec2_config_text, private_ip};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");

async fn allow(ec2: &Client, group: &str, port: i32, cidr: Option<&str>, peer: Option<&str>) {
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
    ec2.authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(perm.build())
        .send()
        .await
        .expect("authorize");
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

    // The suggested fix, applied through the API, clears the finding on the next audit.
    allow(&ec2, &sg_db, 3306, None, Some(&sg_web1)).await;
    let rule = pinned["rule_id"].as_str().expect("rule id");
    ec2.revoke_security_group_ingress()
        .group_id(&sg_db)
        .security_group_rule_ids(rule)
        .send()
        .await
        .expect("revoke");
    let after = findings(&config);
    let kinds: Vec<&str> = after
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .filter(|k| *k != "convention")
        .collect();
    assert_eq!(kinds, ["open-admin", "stale"], "{after:#?}");
}
