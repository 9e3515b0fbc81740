//! The `file` source: exactly the JSON `aws ec2 describe-instances` prints.
//!
//! So an operator can serve (or debug against) a real dump offline:
//! `aws ec2 describe-instances > fleet.json`. AWS field names, unknown fields ignored (the API
//! grows), empty strings treated as absent (the CLI prints `"PublicDnsName": ""` for instances
//! without one). A malformed document is an error that says where, never a partial fleet.

use std::borrow::Cow;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    Fetched, Instance, InstanceError, Interner, InventoryError, SecurityGroup, region_of_zone,
};

/// Reads a describe-instances dump.
#[derive(Debug, Clone)]
pub struct FileSource {
    /// The JSON file.
    pub path: PathBuf,
    /// Region for every instance; derived from its availability zone when absent.
    pub region: Option<String>,
}

impl FileSource {
    /// Reads and parses the file.
    pub async fn fetch(&self) -> Result<Fetched, InventoryError> {
        let bytes = tokio::fs::read(&self.path)
            .await
            .map_err(|source| InventoryError::Read {
                path: self.path.clone(),
                source,
            })?;
        parse(&self.path, &bytes, self.region.as_deref())
    }
}

/// Parses describe-instances JSON (`aws ec2 describe-instances`, awscli 1 or 2), or the
/// flattened listing operators keep (`--query 'Reservations[].Instances[]'`, an array of
/// instances, or `'Reservations[].Instances'`, an array of arrays); `path` only labels
/// errors. A document of another shape is an error; an instance in it that cannot be used (a
/// field of the wrong type, a missing id, a bad address) is skipped with a warning that says
/// where, and an instance listed twice is counted once.
pub fn parse(path: &Path, bytes: &[u8], region: Option<&str>) -> Result<Fetched, InventoryError> {
    let parse_err = |message: String| InventoryError::Parse {
        path: path.to_owned(),
        message,
    };
    let flat = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    // Each instance is kept as its raw JSON text and read on its own, so that one instance
    // of the wrong shape is skipped instead of failing the whole file.
    let reservations: Vec<Listed<'_>> = if flat {
        let items: Vec<&RawValue> = serde_path_to_error::deserialize(de).map_err(|e| {
            parse_err(format!(
                "{}{} (expected a list of instances, as `aws ec2 describe-instances --query \
                 'Reservations[].Instances[]'` prints)",
                e.inner(),
                at(e.path())
            ))
        })?;
        let mut instances = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            if item.get().trim_start().starts_with('[') {
                let inner: Vec<&RawValue> = serde_json::from_str(item.get())
                    .map_err(|e| parse_err(format!("[{i}]: {e} (expected a list of instances)")))?;
                instances.extend(
                    (0..)
                        .zip(inner)
                        .map(|(j, raw)| (Position::Nested(i, j), raw)),
                );
            } else {
                instances.push((Position::Flat(i), item));
            }
        }
        vec![(None, instances)]
    } else {
        let doc: Document = serde_path_to_error::deserialize(de).map_err(|e| {
            parse_err(format!(
                "{}{} (expected the JSON that `aws ec2 describe-instances` prints)",
                e.inner(),
                at(e.path())
            ))
        })?;
        (0..)
            .zip(doc.reservations)
            .map(|(r, res)| {
                let instances = (0..)
                    .zip(res.instances)
                    .map(|(i, raw)| (Position::Reservation(r, i), raw))
                    .collect();
                (res.owner_id, instances)
            })
            .collect()
    };
    let mut out = Fetched::default();
    for (owner, instances) in reservations {
        for (position, text) in instances {
            // Where it is and its id are written out only for an instance that is skipped.
            let skip = |e: &dyn std::fmt::Display| {
                let id = serde_json::from_str::<IdOnly>(text.get())
                    .ok()
                    .and_then(|i| i.instance_id)
                    .unwrap_or_else(|| "(no id)".into());
                format!("{}: {} {id}: {e}; skipped", path.display(), position.text())
            };
            let raw = match read_instance(text) {
                Ok(raw) => raw,
                Err(e) => {
                    out.skipped.push(skip(&e));
                    continue;
                }
            };
            out.saw_change(change_time(&raw));
            match convert(raw, owner.as_deref(), region, &mut out.strings) {
                Ok(instance) => out.instances.push(instance),
                Err(e) => out.skipped.push(skip(&e)),
            }
        }
    }
    out.drop_duplicates(&path.display().to_string());
    Ok(out)
}

/// A reservation's owner and its instances, each with where it is in the document and its
/// raw JSON.
type Listed<'a> = (Option<String>, Vec<(Position, &'a RawValue)>);

/// Where an instance is in the document, for the warning that skips it.
#[derive(Clone, Copy)]
enum Position {
    Flat(usize),
    Nested(usize, usize),
    Reservation(usize, usize),
}

impl Position {
    fn text(self) -> String {
        match self {
            Self::Flat(i) => format!("[{i}]"),
            Self::Nested(i, j) => format!("[{i}][{j}]"),
            Self::Reservation(r, i) => format!("Reservations[{r}].Instances[{i}]"),
        }
    }
}

/// ` at Reservations[0]...` for an error inside the document, nothing at its top.
fn at(path: &serde_path_to_error::Path) -> String {
    match path.to_string().as_str() {
        "." => String::new(),
        p => format!(" at {p}"),
    }
}

/// One instance's JSON, its errors saying which field (`invalid State.Name: …`).
fn read_instance(text: &RawValue) -> Result<RawInstance<'_>, String> {
    let de = &mut serde_json::Deserializer::from_str(text.get());
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.inner().to_string();
        // serde_json's position is in the instance's own text, which helps nobody.
        let inner = inner.split(" at line ").next().unwrap_or(&inner).to_owned();
        if field == "." {
            inner
        } else {
            format!("invalid {field}: {inner}")
        }
    })
}

/// Just the id, to name an instance that could not be read.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IdOnly {
    instance_id: Option<String>,
}

/// When an instance last changed, as far as the API says: its launch (or last start), or the
/// time in its state transition reason (`User initiated (2026-12-04 01:23:45 GMT)`) for a
/// stop or termination, whichever is later. Malformed values count as no time.
pub(super) fn change_time(raw: &RawInstance<'_>) -> Option<jiff::Timestamp> {
    let launched = (raw.launch_time.as_deref()).and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let transition = raw
        .state_transition_reason
        .as_deref()
        .and_then(transition_time);
    launched.max(transition)
}

/// The time in a state transition reason: `... (YYYY-MM-DD HH:MM:SS GMT)` (AWS) or `UTC`.
fn transition_time(reason: &str) -> Option<jiff::Timestamp> {
    let open = reason.rfind('(')?;
    let inner = reason[open + 1..].strip_suffix(')')?;
    let stamp = inner
        .strip_suffix(" GMT")
        .or_else(|| inner.strip_suffix(" UTC"))?;
    let civil: jiff::civil::DateTime = stamp.trim().parse().ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

pub(super) fn convert(
    raw: RawInstance<'_>,
    owner: Option<&str>,
    region: Option<&str>,
    strings: &mut Interner,
) -> Result<Instance, InstanceError> {
    let id = non_empty(raw.instance_id).ok_or(InstanceError::Missing("InstanceId"))?;
    let state_name = raw
        .state
        .and_then(|s| non_empty(s.name))
        .ok_or(InstanceError::Missing("State.Name"))?;
    let state = state_name
        .parse()
        .map_err(|_| InstanceError::Invalid("State.Name", state_name.into_owned()))?;
    let launch_time = match non_empty(raw.launch_time) {
        Some(t) => Some(
            t.parse::<jiff::Timestamp>()
                .map_err(|_| InstanceError::Invalid("LaunchTime", t.into_owned()))?,
        ),
        None => None,
    };
    let ipv4 = |field: &'static str, v: Text<'_>| -> Result<Option<Ipv4Addr>, InstanceError> {
        match non_empty(v) {
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| InstanceError::Invalid(field, s.into_owned())),
            None => Ok(None),
        }
    };
    let private_ip = ipv4("PrivateIpAddress", raw.private_ip_address)?;
    let public_ip = ipv4("PublicIpAddress", raw.public_ip_address)?;

    let mut ipv6: Vec<Ipv6Addr> = Vec::new();
    let v6_strings = raw.ipv6_address.into_iter().chain(
        raw.network_interfaces
            .into_iter()
            .flat_map(|n| n.ipv6_addresses)
            .filter_map(|a| a.ipv6_address),
    );
    for s in v6_strings.filter(|s| !s.is_empty()) {
        let addr: Ipv6Addr = s
            .parse()
            .map_err(|_| InstanceError::Invalid("Ipv6Address", s.into_owned()))?;
        if !ipv6.contains(&addr) {
            ipv6.push(addr);
        }
    }

    let tags = raw
        .tags
        .into_iter()
        .filter_map(|tag| {
            let key = strings.get(&non_empty(tag.key)?);
            Some((key, tag.value.map(Cow::into_owned).unwrap_or_default()))
        })
        .collect();
    let security_groups: Vec<SecurityGroup> = raw
        .security_groups
        .into_iter()
        .filter_map(|g| {
            Some(SecurityGroup {
                id: strings.get(&non_empty(g.group_id)?),
                name: strings.get(g.group_name.as_deref().unwrap_or_default()),
            })
        })
        .collect();
    let security_groups = strings.groups(security_groups);
    let availability_zone = raw.placement.and_then(|p| non_empty(p.availability_zone));
    let region = match region {
        Some(r) => Some(strings.get(r)),
        None => availability_zone
            .as_deref()
            .and_then(region_of_zone)
            .map(|r| strings.get(&r)),
    };
    let account = owner.map(|o| strings.get(o));
    let availability_zone = shared(strings, availability_zone);
    let vpc_id = shared(strings, raw.vpc_id);
    let subnet_id = shared(strings, raw.subnet_id);
    let place = strings.place(super::Where {
        account,
        region,
        availability_zone,
        vpc_id,
        subnet_id,
    });
    let boxed = |s: Text<'_>| non_empty(s).map(|s| s.into_owned().into_boxed_str());

    Ok(Instance {
        id: id.into_owned(),
        state,
        launch_time,
        place,
        private_ip,
        private_dns_name: boxed(raw.private_dns_name),
        public_ip,
        public_dns_name: boxed(raw.public_dns_name),
        ipv6: ipv6.into(),
        tags,
        security_groups,
        impaired: false,
    })
}

fn non_empty(s: Text<'_>) -> Text<'_> {
    s.filter(|s| !s.trim().is_empty())
}

/// A field many instances hold alike, stored once.
fn shared(strings: &mut Interner, s: Text<'_>) -> Option<super::Shared> {
    non_empty(s).map(|s| strings.get(&s))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Document<'a> {
    #[serde(borrow)]
    reservations: Vec<Reservation<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Reservation<'a> {
    owner_id: Option<String>,
    #[serde(default, borrow)]
    instances: Vec<&'a RawValue>,
}

/// Text from the document: borrowed where the JSON string has no escapes (nearly always), so
/// the values that are interned or parsed (tag keys, groups, zones, addresses, states, times)
/// are never copied, and the ones an instance keeps are copied once, to their exact size.
pub(super) type Text<'a> = Option<Cow<'a, str>>;

/// serde borrows a `Cow<str>` only as a field of its own, never inside an `Option` (there it
/// always copies): a `Text` field is read through a newtype that borrows.
fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Text<'de>, D::Error> {
    #[derive(Deserialize)]
    struct Borrowed<'a>(#[serde(borrow)] Cow<'a, str>);
    Ok(Option::<Borrowed<'de>>::deserialize(d)?.map(|b| b.0))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawInstance<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) instance_id: Text<'a>,
    #[serde(borrow)]
    pub(super) state: Option<RawState<'a>>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) launch_time: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) state_transition_reason: Text<'a>,
    #[serde(borrow)]
    pub(super) placement: Option<RawPlacement<'a>>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) vpc_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) subnet_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) private_ip_address: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) private_dns_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) public_ip_address: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) public_dns_name: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) ipv6_address: Text<'a>,
    #[serde(default, borrow)]
    pub(super) network_interfaces: Vec<RawInterface<'a>>,
    #[serde(default, borrow)]
    pub(super) tags: Vec<RawTag<'a>>,
    #[serde(default, borrow)]
    pub(super) security_groups: Vec<RawGroup<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawState<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) name: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawPlacement<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) availability_zone: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawInterface<'a> {
    #[serde(default, borrow)]
    pub(super) ipv6_addresses: Vec<RawIpv6<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawIpv6<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) ipv6_address: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawTag<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) key: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) value: Text<'a>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct RawGroup<'a> {
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) group_id: Text<'a>,
    #[serde(borrow, default, deserialize_with = "text")]
    pub(super) group_name: Text<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::InstanceState;

    /// A document's strings are borrowed, not copied, unless they have escapes.
    #[test]
    fn text_is_borrowed_from_the_document() {
        use std::borrow::Cow;
        let doc = r#"{"InstanceId":"i-0123","PublicDnsName":"ec2-\u0031.example","VpcId":null}"#;
        let raw: Box<RawValue> = serde_json::from_str(doc).expect("json");
        let inst = read_instance(&raw).expect("an instance");
        assert!(matches!(inst.instance_id, Some(Cow::Borrowed("i-0123"))));
        assert!(matches!(inst.public_dns_name, Some(Cow::Owned(ref s)) if s == "ec2-1.example"));
        assert!(inst.vpc_id.is_none() && inst.subnet_id.is_none());
    }

    #[test]
    fn an_instance_of_the_wrong_shape_is_skipped_not_the_file() {
        let doc = br#"{"Reservations": [{"Instances": [
            {"InstanceId": "i-1", "State": {"Name": 42}},
            {"InstanceId": "i-2", "State": {"Name": "running"}, "Tags": null},
            {"InstanceId": "i-3", "State": {"Name": "running"}},
            {"InstanceId": "i-3", "State": {"Name": "stopped"}},
            "not an instance"
        ]}]}"#;
        let f = parse(Path::new("x.json"), doc, Some("eu-west-1")).expect("parses");
        let ids: Vec<(&str, InstanceState)> = f
            .instances
            .iter()
            .map(|i| (i.id.as_str(), i.state))
            .collect();
        assert_eq!(
            ids,
            [("i-3", InstanceState::Stopped)],
            "the later i-3 is kept"
        );
        assert_eq!(f.skipped.len(), 4, "{:?}", f.skipped);
        assert!(
            f.skipped[0].contains(
                "Reservations[0].Instances[0] i-1: invalid State.Name: invalid type: integer `42`"
            ),
            "{:?}",
            f.skipped
        );
        assert!(
            f.skipped[1].contains("Instances[1] i-2: invalid Tags"),
            "{:?}",
            f.skipped
        );
        assert!(
            f.skipped[2].contains("Instances[4] (no id)"),
            "{:?}",
            f.skipped
        );
        assert!(
            f.skipped[3].contains("instance i-3 is listed more than once"),
            "{:?}",
            f.skipped
        );
    }

    #[test]
    fn the_flattened_listings_operators_keep_are_read_too() {
        let one = r#"{"InstanceId": "i-1", "State": {"Name": "running"}, "PrivateIpAddress": "10.0.0.1"}"#;
        let two = r#"{"InstanceId": "i-2", "State": {"Name": "running"}}"#;
        // --query 'Reservations[].Instances[]' and --query 'Reservations[].Instances'.
        for doc in [format!("[{one}, {two}]"), format!(" [[{one}], [{two}]]\n")] {
            let f = parse(Path::new("x.json"), doc.as_bytes(), Some("eu-west-1")).expect("parses");
            assert_eq!(f.instances.len(), 2, "{doc}");
            assert!(f.skipped.is_empty(), "{:?}", f.skipped);
        }
        let err = parse(Path::new("x.json"), b"[1, 2]", None).map(|f| f.skipped);
        assert_eq!(err.expect("a list of odd items").len(), 2);
        let err =
            parse(Path::new("x.json"), b"{\"Instances\": []}", None).expect_err("no Reservations");
        assert!(err.to_string().contains("describe-instances"), "{err}");
    }

    #[test]
    fn a_stop_or_termination_counts_as_a_change_at_its_time() {
        let doc = br#"{"Reservations": [{"Instances": [
            {"InstanceId": "i-1", "State": {"Name": "running"},
             "LaunchTime": "2026-12-01T10:00:00+00:00", "StateTransitionReason": ""},
            {"InstanceId": "i-2", "State": {"Name": "terminated"},
             "LaunchTime": "2026-11-01T10:00:00+00:00",
             "StateTransitionReason": "User initiated (2026-12-02 08:30:05 GMT)"},
            {"InstanceId": "i-3", "State": {"Name": "stopped"},
             "StateTransitionReason": "User initiated (2026-12-01 09:00:00 UTC)"},
            {"InstanceId": "i-4", "State": {"Name": "stopped"},
             "StateTransitionReason": "User initiated (yesterday)"}
        ]}]}"#;
        let fetched = parse(Path::new("x.json"), doc, Some("eu-west-1")).expect("parses");
        assert_eq!(
            fetched.changed_at,
            Some("2026-12-02T08:30:05Z".parse().expect("time")),
            "the termination is the newest change"
        );
        assert_eq!(transition_time("Service initiated"), None);
        assert_eq!(
            transition_time("User initiated (2026-13-40 99:00:00 GMT)"),
            None
        );
        assert_eq!(
            transition_time("Server.SpotInstanceTermination (2026-12-01 09:00:00 UTC)"),
            Some("2026-12-01T09:00:00Z".parse().expect("time"))
        );
    }

    fn demo() -> Vec<Instance> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/demo-instances.json");
        let bytes = std::fs::read(&path).expect("demo inventory exists");
        let fetched = parse(&path, &bytes, None).expect("demo inventory parses");
        assert!(fetched.skipped.is_empty(), "{:?}", fetched.skipped);
        fetched.instances
    }

    #[test]
    fn the_demo_dump_has_every_field() {
        let fleet = demo();
        let db1 = fleet
            .iter()
            .find(|i| i.tags.get("Name") == Some("db1"))
            .expect("db1 in demo");
        assert_eq!(db1.state, InstanceState::Running);
        assert_eq!(db1.region(), Some("eu-west-1"));
        assert!(
            db1.availability_zone()
                .is_some_and(|z| z.starts_with("eu-west-1"))
        );
        assert!(db1.vpc_id().is_some() && db1.subnet_id().is_some() && db1.account().is_some());
        assert!(db1.private_ip.is_some() && db1.private_dns_name.is_some());
        assert!(db1.public_ip.is_some());
        assert!(
            db1.public_dns_name
                .as_deref()
                .is_some_and(|n| n.ends_with(".amazonaws.com"))
        );
        assert!(db1.launch_time.is_some());
        assert!(db1.security_groups.iter().any(|g| g.name == "SG-I-DB1"));
        // The worker has no public name: the CLI prints "" and that must read as absent.
        let worker = fleet
            .iter()
            .find(|i| i.tags.get("Name").is_some_and(|n| n.contains("worker")))
            .expect("worker in demo");
        assert_eq!(worker.public_dns_name, None);
        assert_eq!(worker.public_ip, None);
        assert!(fleet.iter().any(|i| !i.ipv6.is_empty()), "demo shows IPv6");
        assert!(fleet.iter().any(|i| i.state == InstanceState::Stopped));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let json = br#"{"Reservations":[{"Future":1,"Instances":[
            {"InstanceId":"i-1","State":{"Code":16,"Name":"running"},"Shiny":{"a":[1]}}]}],
            "NextToken":null}"#;
        let fleet = parse(Path::new("f.json"), json, Some("eu-west-1"))
            .expect("parses")
            .instances;
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet[0].region(), Some("eu-west-1"));
    }

    fn parse_error(json: &str) -> String {
        parse(Path::new("fleet.json"), json.as_bytes(), None)
            .expect_err("must fail")
            .to_string()
    }

    #[test]
    fn malformed_files_say_where() {
        let e = parse_error("not json");
        assert!(e.contains("fleet.json") && e.contains("line 1"), "{e}");

        let e = parse_error(r#"{"Instances":[]}"#);
        assert!(e.contains("Reservations"), "{e}");

        // A wrong-typed field is the instance's problem, not the file's: skipped, said where.
        let f = parse(
            Path::new("fleet.json"),
            br#"{"Reservations":[{"Instances":[{"InstanceId":5}]}]}"#,
            None,
        )
        .expect("parses");
        assert!(f.instances.is_empty());
        assert!(
            f.skipped[0].contains("Reservations[0].Instances[0] (no id): invalid InstanceId"),
            "{:?}",
            f.skipped
        );
    }

    #[test]
    fn unusable_instances_are_skipped_and_said_where() {
        let json = br#"{"Reservations":[{"Instances":[
            {"InstanceId":"i-good","State":{"Name":"running"}},
            {"InstanceId":"i-nostate"},
            {"State":{"Name":"running"}},
            {"InstanceId":"i-badip","State":{"Name":"running"},"PrivateIpAddress":"10.0.0.300"}]},
            {"Instances":[{"InstanceId":"i-odd","State":{"Name":"exploded"}}]}]}"#;
        let fetched = parse(Path::new("fleet.json"), json, None).expect("parses");
        let ids: Vec<&str> = fetched.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["i-good"]);
        let why = fetched.skipped.join("\n");
        assert_eq!(fetched.skipped.len(), 4, "{why}");
        assert!(
            why.contains("Reservations[0].Instances[1] i-nostate: missing State.Name"),
            "{why}"
        );
        assert!(
            why.contains("Instances[2] (no id): missing InstanceId"),
            "{why}"
        );
        assert!(
            why.contains("i-badip") && why.contains("10.0.0.300"),
            "{why}"
        );
        assert!(why.contains("Reservations[1].Instances[0] i-odd") && why.contains("exploded"));
    }
}
