//! The split-horizon property, over the wire: an outside client never receives a private
//! address, an instance's private DNS name, anything of an inside-only instance, or a name an
//! inside-only rule made, in any section, for any name we serve and any record type. Checked
//! on the demo and on a generated fleet (seeded, so a failure reproduces).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hickory_server::proto::op::{Message, ResponseCode};
use hickory_server::proto::rr::{DNSClass, RecordType};
use serde_json::json;
use stabledns::Config;

use crate::harness::{TestServer, query, root};
use crate::views::client_from;

/// What no outside answer may contain, read from the fleet itself.
struct Secrets {
    /// Exact strings (addresses, names) in record data or owner names.
    strings: BTreeSet<String>,
}

impl Secrets {
    fn of(server: &TestServer, inside_only_names: &[&str]) -> Self {
        let snapshot = server.snapshot();
        let apex = snapshot.apex.to_string();
        let mut strings = BTreeSet::new();
        for inst in snapshot.fleet.iter() {
            strings.extend(inst.private_ip.map(|ip| ip.to_string()));
            strings.extend(inst.private_dns_name.iter().map(|n| format!("{n}.")));
            strings.extend(
                inst.ipv6
                    .iter()
                    .filter(|ip| ip.is_unique_local())
                    .map(ToString::to_string),
            );
            let hidden = inst
                .tags
                .get("stabledns:inside-only")
                .is_some_and(|v| v == "true");
            if hidden {
                strings.extend(inst.public_ip.map(|ip| ip.to_string()));
                strings.extend(inst.public_dns_name.iter().map(|n| format!("{n}.")));
                strings.insert(format!("{}.{apex}", inst.id));
                strings.extend(inst.ipv6.iter().map(ToString::to_string));
            }
        }
        strings.extend(inside_only_names.iter().map(|n| format!("{n}.{apex}")));
        Self { strings }
    }

    fn check(&self, m: &Message, asked: &str, rtype: RecordType) {
        let question = asked.trim_start_matches("_explain.").to_lowercase();
        if self.strings.contains(&question) {
            // A hidden name does not exist outside: its very existence is the leak.
            if asked.starts_with("_explain.") && m.metadata.response_code == ResponseCode::NoError {
                let text: Vec<String> = m.answers.iter().map(|r| r.data.to_string()).collect();
                assert!(
                    text.iter()
                        .any(|t| t.contains("does not exist in this view"))
                        && !text.iter().any(|t| t.contains(" via ")),
                    "outside explained hidden {question}: {text:?}"
                );
            } else {
                assert!(
                    m.answers.is_empty()
                        && matches!(
                            m.metadata.response_code,
                            ResponseCode::NXDomain | ResponseCode::Refused
                        ),
                    "outside got {:?} {:?} for hidden {asked} {rtype}",
                    m.metadata.response_code,
                    m.answers
                );
            }
        }
        let all = m.answers.iter().chain(&m.authorities).chain(&m.additionals);
        for record in all {
            let data = record.data.to_string();
            let owner = record.name.to_string().to_lowercase();
            let private = data.parse::<IpAddr>().is_ok_and(|ip| match ip {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unique_local() || v6.is_loopback(),
            });
            assert!(!private, "outside got {data} for {asked} {rtype}");
            // Echoing the question back (an owner, or an explanation saying it does not exist)
            // tells the client nothing it did not send.
            for word in data.split_whitespace().chain([owner.as_str()]) {
                let word = word.trim_matches('"').to_lowercase();
                if word == question || word == asked.to_lowercase() {
                    continue;
                }
                assert!(
                    !self.strings.contains(&word),
                    "outside got {word} (from {record}) for {asked} {rtype}"
                );
            }
        }
    }
}

/// Asks every name any view serves, with every type, from an outside address.
async fn assert_no_leak(server: &TestServer, inside_only_names: &[&str]) -> usize {
    let secrets = Secrets::of(server, inside_only_names);
    let snapshot = server.snapshot();
    let mut names = BTreeSet::new();
    for view in &snapshot.views {
        names.extend(view.rows().into_iter().map(|r| r.name));
    }
    // Reverse names of every address we know, whether or not a view serves them.
    for inst in snapshot.fleet.iter() {
        let ips = inst
            .private_ip
            .map(IpAddr::V4)
            .into_iter()
            .chain(inst.public_ip.map(IpAddr::V4))
            .chain(inst.ipv6.iter().copied().map(IpAddr::V6));
        names.extend(ips.map(|ip| hickory_server::proto::rr::Name::from(ip).to_string()));
    }
    let explains: Vec<String> = names.iter().map(|n| format!("_explain.{n}")).collect();
    let mut client = client_from(server.addr(), "127.0.0.3");
    let mut asked = 0;
    for name in names.iter().chain(&explains) {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::CNAME,
            RecordType::ANY,
            RecordType::SRV,
            RecordType::PTR,
            RecordType::TXT,
            RecordType::NS,
            RecordType::SOA,
        ] {
            let m = query(&mut client, name, DNSClass::IN, rtype).await;
            secrets.check(&m, name, rtype);
            asked += 1;
        }
    }
    asked
}

#[tokio::test]
async fn the_demo_leaks_nothing_to_outside_clients() {
    let server = TestServer::demo().await;
    let asked = assert_no_leak(&server, &[]).await;
    assert!(asked > 500, "asked only {asked}");
    server.stop().await;
}

/// A fleet of `n` instances with every shape the naming and views care about: tiers by group
/// and by tag, single names, public and private-only instances, IPv6 (global and unique
/// local), inside-only instances and names, SRV tags, odd tag values.
fn generated_fleet(n: usize, seed: u64) -> serde_json::Value {
    let mut rng = fastrand::Rng::with_seed(seed);
    let tiers = ["web", "api", "db", "cache", "queue"];
    let mut instances = Vec::new();
    for i in 0..n {
        let id = format!("i-{:017x}", 0x5eed_0000_u64 + i as u64);
        let private = Ipv4Addr::new(10, rng.u8(0..4), rng.u8(..), rng.u8(1..255));
        let public = rng
            .bool()
            .then(|| Ipv4Addr::new(52, 16 + rng.u8(0..16), rng.u8(..), rng.u8(1..255)));
        let tier = tiers[rng.usize(..tiers.len())];
        let mut tags = vec![json!({"Key": "Name", "Value": format!("{tier}-{i}")})];
        if rng.u8(..10) == 0 {
            tags.push(json!({"Key": "stabledns:inside-only", "Value": "true"}));
        }
        if rng.u8(..4) == 0 {
            tags.push(json!({"Key": "internal:name", "Value": format!("admin-{i}")}));
        }
        if rng.u8(..3) == 0 {
            tags.push(json!({"Key": "stabledns:srv", "Value": "http:tcp:80, grpc:tcp:9090"}));
        }
        if rng.u8(..8) == 0 {
            tags.push(json!({"Key": "dns:names", "Value": "!!!, shared-name, Ünïcode"}));
        }
        let mut groups = vec![json!({
            "GroupId": format!("sg-{tier}"),
            "GroupName": format!("SG-T-{}", tier.to_uppercase())
        })];
        if rng.u8(..5) == 0 {
            groups.push(
                json!({"GroupId": format!("sg-i{i}"), "GroupName": format!("SG-I-{tier}{i}")}),
            );
        }
        let mut v6 = Vec::new();
        if rng.u8(..3) == 0 {
            let global = Ipv6Addr::new(0x2a05, 0xd018, 0x1f2, rng.u16(..), 0, 0, 0, rng.u16(1..));
            v6.push(json!({"Ipv6Address": global.to_string()}));
        }
        if rng.u8(..6) == 0 {
            let ula = Ipv6Addr::new(0xfd00, 0, 0, rng.u16(..), 0, 0, 0, rng.u16(1..));
            v6.push(json!({"Ipv6Address": ula.to_string()}));
        }
        let o = private.octets();
        let mut instance = json!({
            "InstanceId": id,
            "State": {"Name": if rng.u8(..12) == 0 { "stopped" } else { "running" }},
            "LaunchTime": format!("2026-{:02}-{:02}T10:00:00+00:00", 1 + rng.u8(..12), 1 + rng.u8(..28)),
            "Placement": {"AvailabilityZone": "eu-west-1a"},
            "PrivateIpAddress": private.to_string(),
            "PrivateDnsName": format!("ip-{}-{}-{}-{}.eu-west-1.compute.internal", o[0], o[1], o[2], o[3]),
            "Tags": tags,
            "SecurityGroups": groups,
            "NetworkInterfaces": [{"Ipv6Addresses": v6}],
        });
        if let Some(p) = public {
            let q = p.octets();
            instance["PublicIpAddress"] = json!(p.to_string());
            instance["PublicDnsName"] = json!(format!(
                "ec2-{}-{}-{}-{}.eu-west-1.compute.amazonaws.com",
                q[0], q[1], q[2], q[3]
            ));
        }
        instances.push(instance);
    }
    json!({"Reservations": [{"OwnerId": "123456789012", "Instances": instances}]})
}

/// The demo's config serving `generated_fleet(n, seed)` (written into `dir`), with an extra
/// inside-only rule for the `internal:name` tag.
pub fn generated_config(dir: &std::path::Path, n: usize, seed: u64) -> Config {
    let fleet = dir.join("fleet.json");
    let fleet_json = generated_fleet(n, seed);
    std::fs::write(&fleet, serde_json::to_vec(&fleet_json).expect("json")).expect("write");
    let demo = std::fs::read_to_string(root().join("config/demo.toml")).expect("demo");
    let text = demo.replace(
        "path = \"demo-instances.json\"",
        &format!("path = \"{}\"", fleet.display()),
    ) + "\n[[naming.rules]]\nkind = \"tag\"\ntag = \"internal:name\"\ninside_only = true\n";
    let mut config = Config::parse(&dir.join("stabledns.toml"), &text).expect("valid config");
    config.server.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    config
}

#[tokio::test]
async fn a_generated_fleet_leaks_nothing_to_outside_clients() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = generated_config(dir.path(), 150, 0x5ab1_ed05);
    // The outside view also serves PTR for public networks, and every view explains: the
    // property must hold for those answers too.
    for view in &mut config.views {
        view.explain = true;
    }
    config.views[2].reverse = vec!["52.0.0.0/8".parse().expect("cidr")];
    let server = TestServer::start(config).await;

    let inside_only: Vec<String> = (0..150).map(|i| format!("admin-{i}")).collect();
    let inside_only: Vec<&str> = inside_only.iter().map(String::as_str).collect();
    let snapshot = server.snapshot();
    let inside = snapshot.view("inside").expect("inside").name_count();
    let outside = snapshot.view("outside").expect("outside").name_count();
    assert!(
        inside > outside && outside > 50,
        "the fleet should give both views plenty: inside {inside}, outside {outside}"
    );
    let asked = assert_no_leak(&server, &inside_only).await;
    assert!(asked > 5_000, "asked only {asked}");
    server.stop().await;
}
