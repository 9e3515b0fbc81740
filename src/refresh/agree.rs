//! A property test: the fleet that EC2 events leave in the served snapshot (instances replaced
//! in place, launches appended) builds the same snapshot as a full read of the same fleet in
//! any order, step after step of random changes, each step built after the last as `serve`
//! does (slot numbers kept from it). What is compared is everything a client or an operator
//! can see: every view's records and the instances and rules behind every name (`_explain`),
//! the names and slot numbers, the losing claims and the rotation.
//!
//! This is the check an incremental snapshot has to pass too: whatever way the next snapshot
//! is made, it must be the one a full build gives.

use crate::inventory::Fleet;
use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::rr::LowerName;
use serde_json::{Value, json};

use super::slots::remembers_slots;
use super::{build_next, events::read_back, same_answers};
use crate::config::Config;
use crate::inventory::Instance;
use crate::naming;
use crate::zone::Snapshot;

/// The demo's naming and views over an `ec2` inventory: slot numbers carry over from the
/// previous snapshot as in `serve`.
fn config() -> Config {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("config/demo.toml")).expect("demo config");
    let start = text.find("[inventory]").expect("inventory");
    let end = text.find("[naming]").expect("naming");
    let text = format!(
        "{}[inventory]\nsource = \"ec2\"\nregions = [\"eu-west-1\"]\nendpoint_url = \
         \"http://127.0.0.1:9\"\n\n{}",
        &text[..start],
        &text[end..]
    );
    Config::parse(&root.join("config/demo.toml"), &text).expect("config")
}

/// A fleet being changed at random: instances as `describe-instances` prints them.
struct World {
    rng: fastrand::Rng,
    next: u32,
    instances: BTreeMap<String, Value>,
}

// `1.web` and `2.q` are also slot names of the `web` and `q` tiers (the rule wins).
const NAMES: &[&str] = &[
    "web",
    "api",
    "db-primary",
    "Cache",
    "worker_1",
    "x",
    "1.web",
    "2.q",
];
const SLOT_TAGS: &[&str] = &["1", "2", "3", "9", "x"];
const GROUPS: &[&str] = &[
    "SG-T-WEB", "SG-T-DB", "SG-I-DB1", "SG-I-DB2", "SG-T-Q", "other",
];

impl World {
    fn new(seed: u64) -> Self {
        let mut world = Self {
            rng: fastrand::Rng::with_seed(seed),
            next: 0,
            instances: BTreeMap::new(),
        };
        for _ in 0..world.rng.usize(3..25) {
            world.launch();
        }
        world
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.rng.usize(..from.len())]
    }

    /// A new instance; launch times come from a few seconds, so ties happen.
    fn launch(&mut self) -> String {
        self.next += 1;
        let n = self.next;
        let id = format!("i-{:017x}", u64::from(n) * 7919);
        let mut tags = vec![json!({"Key": "Name", "Value": self.pick(NAMES)})];
        if self.rng.u8(..4) == 0 {
            tags.push(json!({"Key": "dns:names", "Value": "queue, jobs"}));
        }
        if self.rng.u8(..4) == 0 {
            tags.push(json!({"Key": "stabledns:srv", "Value": "http:tcp:80"}));
        }
        if self.rng.u8(..8) == 0 {
            tags.push(json!({"Key": "stabledns:inside-only", "Value": "true"}));
        }
        let groups: Vec<Value> = (0..self.rng.usize(0..3))
            .map(|k| {
                let name = self.pick(GROUPS);
                json!({"GroupId": format!("sg-{n}-{k}"), "GroupName": name})
            })
            .collect();
        let mut instance = json!({
            "InstanceId": id,
            "State": {"Name": "running"},
            "LaunchTime": format!("2026-11-01T10:00:0{}+00:00", self.rng.u8(..3)),
            "Placement": {"AvailabilityZone": "eu-west-1a"},
            "PrivateIpAddress": format!("10.0.{}.{}", n / 200, n % 200 + 1),
            "Tags": tags,
            "SecurityGroups": groups,
        });
        if self.rng.bool() {
            let public = format!("52.1.{}.{}", n / 200, n % 200 + 1);
            instance["PublicIpAddress"] = json!(public);
            instance["PublicDnsName"] = json!(format!(
                "ec2-{}.eu-west-1.compute.amazonaws.com",
                public.replace('.', "-")
            ));
        }
        self.instances.insert(id.clone(), instance);
        id
    }

    /// One random change; the ids of the instances it touched.
    fn change(&mut self) -> Vec<String> {
        let ids: Vec<String> = self.instances.keys().cloned().collect();
        if ids.is_empty() || self.rng.u8(..5) == 0 {
            return vec![self.launch()];
        }
        let id = ids[self.rng.usize(..ids.len())].clone();
        let op = self.rng.u8(..8);
        let (name, group) = (self.pick(NAMES), self.pick(GROUPS));
        let slot = self.pick(SLOT_TAGS);
        let drain = if self.rng.bool() { "true" } else { "false" };
        let Some(instance) = self.instances.get_mut(&id) else {
            return Vec::new();
        };
        match op {
            0 => {
                self.instances.remove(&id);
            }
            1 => instance["State"]["Name"] = json!("stopped"),
            2 => instance["State"]["Name"] = json!("running"),
            3 => set_tag(instance, "Name", name),
            4 => set_tag(instance, "stabledns:drain", drain),
            5 => set_tag(instance, "stabledns:slot:web", slot),
            6 => {
                let groups = instance["SecurityGroups"].as_array_mut().expect("groups");
                groups.push(json!({"GroupId": format!("sg-{id}-{group}"), "GroupName": group}));
            }
            _ => {
                // A replacement: the old one goes, a new one takes its name and groups.
                let old = self.instances.remove(&id).expect("present");
                let new = self.launch();
                let instance = self.instances.get_mut(&new).expect("launched");
                instance["Tags"] = old["Tags"].clone();
                instance["SecurityGroups"] = old["SecurityGroups"].clone();
                return vec![id, new];
            }
        }
        vec![id]
    }

    /// The instances with these ids, parsed as the inventory parses them.
    fn read(&self, ids: Option<&BTreeSet<String>>) -> Vec<Instance> {
        let listed: Vec<&Value> = (self.instances.iter())
            .filter(|(id, _)| ids.is_none_or(|ids| ids.contains(*id)))
            .map(|(_, i)| i)
            .collect();
        let dump = json!({"Reservations": [{"OwnerId": "123456789012", "Instances": listed}]});
        let bytes = serde_json::to_vec(&dump).expect("json");
        crate::inventory::file::parse(std::path::Path::new("world.json"), &bytes, None)
            .expect("parses")
            .instances
    }
}

fn set_tag(instance: &mut Value, key: &str, value: &str) {
    let tags = instance["Tags"].as_array_mut().expect("tags");
    tags.retain(|t| t["Key"] != key);
    tags.push(json!({"Key": key, "Value": value}));
}

/// What a snapshot shows, as text: every view's records, and for every name the instances
/// behind it with their rules (as `_explain` lists them) and its losing claims.
fn shown(snapshot: &Snapshot) -> Vec<String> {
    let mut lines = Vec::new();
    for view in &snapshot.views {
        let apexes: Vec<LowerName> = view.zone_apexes().cloned().collect();
        for apex in &apexes {
            for set in view.zone_sets(Some(apex)).unwrap_or_default() {
                let mut data: Vec<String> = set.rdata.iter().map(crate::zone::rdata_text).collect();
                data.sort();
                lines.push(format!(
                    "{} {} {} {}",
                    view.name,
                    set.text,
                    set.rtype,
                    data.join(" ")
                ));
                let name = LowerName::from(&set.name);
                for b in view.backing(&name).unwrap_or(&[]) {
                    let inst = &snapshot.fleet[b.instance as usize];
                    let vias =
                        crate::naming::vias_text(&b.via, inst, &set.text, &snapshot.rule_tags);
                    lines.push(format!(
                        "{} {} <- {} via {vias}",
                        view.name, set.text, inst.id
                    ));
                }
            }
        }
    }
    let contested: BTreeMap<String, &Vec<String>> = (snapshot.contested.iter())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    lines.push(format!("contested {contested:?}"));
    lines.push(format!("names {:?}", snapshot.names()));
    lines.push(format!("slots {:?}", snapshot.slots));
    lines.push(format!("rotation {:?}", snapshot.rotation));
    lines
}

/// Where two snapshots' texts first differ.
fn first_difference(a: &[String], b: &[String]) -> String {
    let at = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    format!(
        "line {at}: events {:?} / full read {:?}",
        a.get(at),
        b.get(at)
    )
}

/// A patched snapshot shows what the full build of its fleet shows, and says it changed an
/// answer exactly when the full build does.
fn patch_agrees(p: &Snapshot, says: bool, full: &Snapshot, changes: bool, at: &str) {
    let (a, b) = (shown(p), shown(full));
    assert!(a == b, "{at}: patched / full: {}", first_difference(&a, &b));
    assert!(same_answers(p, full) && same_answers(full, p), "{at}");
    assert_eq!(says, changes, "{at}: whether an answer changed");
    assert_eq!(p.own_names_by_id(), full.own_names_by_id(), "{at}");
    assert_eq!(p.name_total(), full.name_total(), "{at}");
    assert_eq!(p.names_fingerprint(), full.names_fingerprint(), "{at}");
    for inst in full.fleet.iter() {
        assert_eq!(
            p.instance(&inst.id),
            full.instance(&inst.id),
            "{at}: {}",
            inst.id
        );
        if let Some(public) = inst.public_dns_name.as_deref() {
            let name = hickory_proto::rr::Name::from_ascii(public).expect("name");
            let (x, y) = (p.by_public_name(&name), full.by_public_name(&name));
            assert_eq!(x.map(|i| &i.id), y.map(|i| &i.id), "{at}: {public}");
        }
    }
    for (x, y) in p.views.iter().zip(&full.views) {
        layered_reads_agree(x, y, at);
        assert_eq!(x.over_cap, y.over_cap, "{at}");
    }
}

/// A view of base and top layers answers every name, by lookup and by transfer, as `after`
/// (a full build) does.
fn layered_reads_agree(topped: &crate::zone::ViewZone, after: &crate::zone::ViewZone, at: &str) {
    use hickory_proto::rr::RecordType;
    assert!(topped.same_answers(after), "{at}: view {}", after.name);
    assert!(after.same_answers(topped), "{at}: view {}", after.name);
    assert_eq!(topped.name_count(), after.name_count(), "{at}");
    let mut names: BTreeSet<LowerName> = BTreeSet::new();
    for view in [topped, after] {
        for apex in view.zone_apexes() {
            assert_eq!(
                topped.zone_file(Some(apex)),
                after.zone_file(Some(apex)),
                "{at}: view {}",
                after.name
            );
            for set in view.zone_sets(Some(apex)).unwrap_or_default() {
                let name = LowerName::from(&set.name);
                // Parents too: empty non-terminals answer NODATA, not NXDOMAIN.
                names.insert(LowerName::from(set.name.base_name()));
                names.insert(name);
            }
        }
    }
    for name in &names {
        for rtype in [
            RecordType::A,
            RecordType::CNAME,
            RecordType::SRV,
            RecordType::PTR,
        ] {
            assert_eq!(
                topped.lookup(name, rtype),
                after.lookup(name, rtype),
                "{at}: view {} {name} {rtype}",
                after.name
            );
        }
        assert_eq!(topped.backing(name), after.backing(name), "{at}: {name}");
    }
}

/// Also the incremental naming: the names a change touches, named again from their claimants
/// alone ([`naming::delta`]), applied to the last naming, equal naming the whole fleet; and
/// the patched snapshots (see [`a_patched_snapshot_is_the_full_build`]) with the demo's
/// reverse zones, slots and SRV records.
#[test]
fn the_fleet_events_leave_builds_what_a_full_read_builds() {
    let patched = walk(&config(), 40);
    assert!(
        patched >= 600,
        "only {patched} of 1,200 changes were patched"
    );
}

/// Changes a patch covers ([`crate::zone::patch`]) are patched: the patched snapshot, with
/// top layers over top layers, equals the full build of the same fleet in everything shown,
/// and says whether an answer changed as comparing them does. Slot names and names with a
/// dot bring empty non-terminals that come and go; SRV records follow their tiers' names.
#[test]
fn a_patched_snapshot_is_the_full_build() {
    let mut config = config();
    for view in &mut config.views {
        view.reverse.clear();
    }
    let some = walk(&config, 20);
    assert!(some >= 350, "only {some} of 600 changes were patched");
    for rule in &mut config.naming.rules {
        rule.slots = false;
    }
    config.naming.srv_tag = "not-in-this-fleet".into();
    let most = walk(&config, 20);
    assert!(most >= 500, "only {most} of 600 changes were patched");
}

/// Random fleets changed step by step as EC2 events change them, each step checked against
/// full builds; how many steps a patch made.
fn walk(config: &Config, seeds: u64) -> usize {
    let config = config.clone();
    let mut patched = 0;
    for seed in 0..seeds {
        let mut world = World::new(seed);
        let first: Fleet = crate::inventory::fleet(world.read(None));
        let (mut served, _) = build_next(&config, &first, None);
        let limits = crate::zone::naming_limits(&config.zone);
        let mut index = naming::delta::ClaimIndex::new(&first, &config.naming, &limits);
        let mut addresses = crate::zone::AddressIndex::new(&first);
        let mut named = naming::assign(&first, &config.naming, &limits, &naming::Slots::new());
        for step in 0..30 {
            let touched: BTreeSet<String> = (0..world.rng.usize(1..4))
                .flat_map(|_| world.change())
                .collect();
            // The events path: what was touched, read back into the served fleet.
            let mut fleet = served.fleet.to_vec();
            let changed = read_back(
                &mut fleet,
                "eu-west-1",
                &touched,
                world.read(Some(&touched)),
            );
            // Naming only the change gives what naming the whole fleet gives.
            let previous = if remembers_slots(&config) {
                served.slots.clone()
            } else {
                naming::Slots::new()
            };
            let delta = naming::delta::rename(
                &mut index,
                &served.fleet,
                &fleet,
                &changed,
                &config.naming,
                &limits,
                &previous,
            );
            named.apply(&delta, &fleet);
            let mut full = naming::assign(&fleet, &config.naming, &limits, &previous);
            (named.warnings, full.warnings) = (Vec::new(), Vec::new());
            assert!(
                named == full,
                "seed {seed}, step {step} (touched {touched:?}, changed positions {changed:?}): \
                 naming the change gave\n{named:#?}\nnaming the fleet gave\n{full:#?}"
            );
            let fresh = naming::delta::ClaimIndex::new(&fleet, &config.naming, &limits);
            assert_eq!(index.entries(), fresh.entries(), "seed {seed}, step {step}");
            addresses.update(&served.fleet, &fleet, &changed);
            let fresh = crate::zone::AddressIndex::new(&fleet);
            assert_eq!(
                addresses.entries(),
                fresh.entries(),
                "seed {seed}, step {step}"
            );
            let fleet: Fleet = fleet.into();
            let (by_events, changes) = build_next(&config, &fleet, Some(&served));
            let at = format!("seed {seed}, step {step} (touched {touched:?})");
            let made = crate::zone::patch(
                &served,
                &config.zone,
                &config.views,
                &config.naming,
                &fleet,
                &delta,
                &changed,
                &addresses,
            );
            if let Some((p, says)) = &made {
                patched += 1;
                patch_agrees(p, *says, &by_events, changes, &at);
                // IXFR: the patched snapshot's diff from the served one is the full build's.
                p.link_history(&served);
                by_events.link_history(&served);
                for (x, y) in p.views.iter().zip(&by_events.views) {
                    let (x, y) = (x.history().0.last(), y.history().0.last());
                    let records = |d: Option<&std::sync::Arc<crate::zone::Diff>>| {
                        d.map(|d| (d.removed.clone(), d.added.clone()))
                    };
                    assert_eq!(records(x), records(y), "{at}: IXFR diff");
                }
            }
            // A full read of the same fleet, in another order.
            let mut listed = world.read(None);
            world.rng.shuffle(&mut listed);
            let (by_listing, _) =
                build_next(&config, &crate::inventory::fleet(listed), Some(&served));
            let (a, b) = (shown(&by_events), shown(&by_listing));
            assert!(
                a == b && same_answers(&by_events, &by_listing),
                "seed {seed}, step {step} (touched {touched:?}): {}",
                first_difference(&a, &b)
            );
            for (before, after) in served.views.iter().zip(&by_events.views) {
                layered_reads_agree(&before.topped_as(after), after, &at);
            }
            served = made.map_or(by_events, |(p, _)| p);
        }
    }
    patched
}
