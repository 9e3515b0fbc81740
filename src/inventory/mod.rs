//! The fleet: what instances exist, as the EC2 API describes them.
//!
//! This module (and only it) knows AWS's shapes. Everything downstream sees [`Instance`], a plain
//! struct with every field the naming rules or the answers could want, whatever the source.
//! Sources are an enum rather than a trait object: there are few of them, and an enum keeps
//! `async fn` without boxing.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use place::{Place, Where};
use settings::{InventoryConfig, SourceConfig};

#[cfg(feature = "ec2")]
pub mod ec2;
pub mod events;
pub mod file;
mod place;
pub mod security;
pub mod settings;

/// One EC2 instance, with the fields stabledns names and answers from. Serialized (the state
/// file, `--json`) with its place's names as fields of their own, as they always were.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `i-0abc...`
    pub id: String,
    /// Lifecycle state.
    pub state: InstanceState,
    /// When it was launched; newest wins a contested single-instance name.
    pub launch_time: Option<jiff::Timestamp>,
    /// Its account, region, zone, VPC and subnet.
    pub place: Place,
    /// The primary private IPv4 address.
    pub private_ip: Option<Ipv4Addr>,
    /// e.g. `ip-10-0-1-10.eu-west-1.compute.internal`.
    pub private_dns_name: Option<Box<str>>,
    /// The public IPv4 address, when it has one.
    pub public_ip: Option<Ipv4Addr>,
    /// e.g. `ec2-79-125-3-243.eu-west-1.compute.amazonaws.com`: the CNAME target that AWS's
    /// resolver answers with the private address inside the VPC and the public one outside.
    pub public_dns_name: Option<Box<str>>,
    /// Every IPv6 address on its interfaces.
    pub ipv6: Box<[Ipv6Addr]>,
    /// Tag key → value.
    pub tags: Tags,
    /// Its security groups: one list shared by every instance of a read that has the same
    /// groups (a tier's members do).
    pub security_groups: Groups,
    /// EC2 reports its system or instance status `impaired` (read only when
    /// `inventory.instance_status` is on): it leaves its tiers' answers while a healthy member
    /// remains.
    pub impaired: bool,
}

impl Instance {
    /// The account that owns it (the reservation's owner), when known.
    pub fn account(&self) -> Option<&str> {
        self.place.names().account.as_deref()
    }

    /// e.g. `eu-west-1`.
    pub fn region(&self) -> Option<&str> {
        self.place.names().region.as_deref()
    }

    /// e.g. `eu-west-1a`.
    pub fn availability_zone(&self) -> Option<&str> {
        self.place.names().availability_zone.as_deref()
    }

    /// `vpc-...`
    pub fn vpc_id(&self) -> Option<&str> {
        self.place.names().vpc_id.as_deref()
    }

    /// `subnet-...`
    pub fn subnet_id(&self) -> Option<&str> {
        self.place.names().subnet_id.as_deref()
    }
}

/// An instance as it is written: every field flat, borrowed.
#[derive(Serialize)]
struct InstanceOut<'a> {
    id: &'a str,
    state: InstanceState,
    launch_time: Option<jiff::Timestamp>,
    account: Option<&'a str>,
    region: Option<&'a str>,
    availability_zone: Option<&'a str>,
    vpc_id: Option<&'a str>,
    subnet_id: Option<&'a str>,
    private_ip: Option<Ipv4Addr>,
    private_dns_name: Option<&'a str>,
    public_ip: Option<Ipv4Addr>,
    public_dns_name: Option<&'a str>,
    ipv6: &'a [Ipv6Addr],
    tags: &'a Tags,
    security_groups: &'a Groups,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    impaired: bool,
}

/// An instance as it is read.
#[derive(Deserialize)]
struct InstanceIn {
    id: String,
    state: InstanceState,
    launch_time: Option<jiff::Timestamp>,
    account: Option<Shared>,
    region: Option<Shared>,
    availability_zone: Option<Shared>,
    vpc_id: Option<Shared>,
    subnet_id: Option<Shared>,
    private_ip: Option<Ipv4Addr>,
    private_dns_name: Option<Box<str>>,
    public_ip: Option<Ipv4Addr>,
    public_dns_name: Option<Box<str>>,
    ipv6: Box<[Ipv6Addr]>,
    tags: Tags,
    security_groups: Groups,
    #[serde(default)]
    impaired: bool,
}

impl Serialize for Instance {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        InstanceOut {
            id: &self.id,
            state: self.state,
            launch_time: self.launch_time,
            account: self.account(),
            region: self.region(),
            availability_zone: self.availability_zone(),
            vpc_id: self.vpc_id(),
            subnet_id: self.subnet_id(),
            private_ip: self.private_ip,
            private_dns_name: self.private_dns_name.as_deref(),
            public_ip: self.public_ip,
            public_dns_name: self.public_dns_name.as_deref(),
            ipv6: &self.ipv6,
            tags: &self.tags,
            security_groups: &self.security_groups,
            impaired: self.impaired,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Instance {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let i = InstanceIn::deserialize(d)?;
        Ok(Self {
            id: i.id,
            state: i.state,
            launch_time: i.launch_time,
            place: Place::new(Where {
                account: i.account,
                region: i.region,
                availability_zone: i.availability_zone,
                vpc_id: i.vpc_id,
                subnet_id: i.subnet_id,
            }),
            private_ip: i.private_ip,
            private_dns_name: i.private_dns_name,
            public_ip: i.public_ip,
            public_dns_name: i.public_dns_name,
            ipv6: i.ipv6,
            tags: i.tags,
            security_groups: i.security_groups,
            impaired: i.impaired,
        })
    }
}

/// An instance's tags, key → value, sorted by key. A sorted vector rather than a `BTreeMap`:
/// an instance has a handful of tags, and a map's first node alone is ~550 bytes, which a
/// 100,000-instance fleet paid 55 MB for. Keys are shared (every instance has a `Name`).
/// Serialized as a map, as before.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Box<[(Shared, Box<str>)]>);

impl Tags {
    /// The value of a tag.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }

    /// Sets a tag, replacing its value if it has one.
    pub fn insert(&mut self, key: impl Into<Shared>, value: String) {
        let key = key.into();
        let mut tags = std::mem::take(&mut self.0).into_vec();
        match tags.binary_search_by(|(k, _)| k.as_str().cmp(key.as_str())) {
            Ok(i) => tags[i].1 = value.into(),
            Err(i) => tags.insert(i, (key, value.into())),
        }
        self.0 = tags.into();
    }

    /// Every tag, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), &**v))
    }

    /// How many tags there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Shared>> FromIterator<(K, String)> for Tags {
    /// A key given twice keeps its last value, as a map's `collect` does.
    fn from_iter<I: IntoIterator<Item = (K, String)>>(iter: I) -> Self {
        let mut tags: Vec<(Shared, Box<str>)> = iter
            .into_iter()
            .map(|(k, v)| (k.into(), v.into_boxed_str()))
            .collect();
        // Reversed, then stably sorted: of equal keys the last given comes first and stays.
        tags.reverse();
        tags.sort_by(|(a, _), (b, _)| a.cmp(b));
        tags.dedup_by(|later, kept| later.0 == kept.0);
        Self(tags.into())
    }
}

impl Serialize for Tags {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Tags {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(|m| m.into_iter().collect())
    }
}

/// A security group as attached to an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SecurityGroup {
    /// `sg-...`
    pub id: Shared,
    /// e.g. `SG-T-WEB`.
    pub name: Shared,
}

/// A string many instances hold alike (account, region, zone, VPC, subnet, group, tag key),
/// stored once per fleet by the [`Interner`] that read it: at 100,000 instances, a dozen
/// small allocations each were most of the fleet's memory. Reads as a `str`. One pointer wide
/// (the text is boxed behind the count): an instance holds a dozen of these, in its place,
/// tags and groups, and a fat `Arc<str>` cost 8 bytes more each, 8 MB at 100,000 instances.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Shared(std::sync::Arc<Box<str>>);

impl Shared {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Shared {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Shared {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Shared {
    fn from(s: &str) -> Self {
        Self(std::sync::Arc::new(s.into()))
    }
}

impl From<String> for Shared {
    fn from(s: String) -> Self {
        Self(std::sync::Arc::new(s.into_boxed_str()))
    }
}

impl PartialEq<str> for Shared {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Shared {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Shared {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Shared {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::from)
    }
}

/// An instance's security groups, in the order EC2 lists them. Shared: the members of a tier
/// have the same list, and one read of the fleet keeps one copy of each ([`Interner`]).
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Groups(std::sync::Arc<[SecurityGroup]>);

impl std::ops::Deref for Groups {
    type Target = [SecurityGroup];
    fn deref(&self) -> &[SecurityGroup] {
        &self.0
    }
}

impl From<Vec<SecurityGroup>> for Groups {
    fn from(groups: Vec<SecurityGroup>) -> Self {
        Self(groups.into())
    }
}

impl FromIterator<SecurityGroup> for Groups {
    fn from_iter<I: IntoIterator<Item = SecurityGroup>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

impl<'a> IntoIterator for &'a Groups {
    type Item = &'a SecurityGroup;
    type IntoIter = std::slice::Iter<'a, SecurityGroup>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for Groups {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl Serialize for Groups {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de> Deserialize<'de> for Groups {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<SecurityGroup>::deserialize(d).map(Self::from)
    }
}

/// Hands out one [`Shared`] per distinct string, and one [`Groups`] per distinct list, for
/// one read of the fleet.
#[derive(Debug, Default)]
pub struct Interner {
    strings: rustc_hash::FxHashSet<Shared>,
    groups: rustc_hash::FxHashSet<Groups>,
    places: rustc_hash::FxHashSet<Place>,
}

impl Interner {
    /// The shared copy of `s`.
    pub fn get(&mut self, s: &str) -> Shared {
        if let Some(shared) = self.strings.get(s) {
            return shared.clone();
        }
        let shared = Shared::from(s);
        self.strings.insert(shared.clone());
        shared
    }

    /// The shared copy of a place.
    pub fn place(&mut self, names: Where) -> Place {
        let place = Place::new(names);
        if let Some(shared) = self.places.get(&place) {
            return shared.clone();
        }
        self.places.insert(place.clone());
        place
    }

    /// `inst` holding this read's copies of its place and its groups: for instances read
    /// another way (the state file's), so that they share them as a fetched fleet does.
    pub fn share(&mut self, mut inst: Instance) -> Instance {
        let names = inst.place.names();
        let mut get = |s: &Option<Shared>| s.as_deref().map(|s| self.get(s));
        let names = Where {
            account: get(&names.account),
            region: get(&names.region),
            availability_zone: get(&names.availability_zone),
            vpc_id: get(&names.vpc_id),
            subnet_id: get(&names.subnet_id),
        };
        inst.place = self.place(names);
        let groups = (inst.security_groups.iter())
            .map(|g| SecurityGroup {
                id: self.get(&g.id),
                name: self.get(&g.name),
            })
            .collect();
        inst.security_groups = self.groups(groups);
        inst
    }

    /// The shared copy of a list of groups.
    pub fn groups(&mut self, groups: Vec<SecurityGroup>) -> Groups {
        let groups = Groups::from(groups);
        if let Some(shared) = self.groups.get(&groups) {
            return shared.clone();
        }
        self.groups.insert(groups.clone());
        groups
    }
}

/// EC2 instance states, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// `pending`
    Pending,
    /// `running`
    Running,
    /// `shutting-down`
    ShuttingDown,
    /// `terminated`
    Terminated,
    /// `stopping`
    Stopping,
    /// `stopped`
    Stopped,
}

impl InstanceState {
    /// Whether an instance in this state still holds its addresses: a terminated one (and one
    /// on its way there) has given them back, whatever the API still lists.
    pub fn holds_addresses(self) -> bool {
        !matches!(self, Self::ShuttingDown | Self::Terminated)
    }

    /// The API's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for InstanceState {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "shutting-down" => Self::ShuttingDown,
            "terminated" => Self::Terminated,
            "stopping" => Self::Stopping,
            "stopped" => Self::Stopped,
            other => {
                return Err(format!(
                    "unknown instance state `{other}`; expected one of pending, running, \
                     shutting-down, terminated, stopping, stopped"
                ));
            }
        })
    }
}

/// A tag to set on one instance (a slot number, written back so every replica reads it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagWrite {
    /// The instance.
    pub instance: String,
    /// Its region, to reach it through the walk that read it.
    pub region: Option<String>,
    /// The account that owns it.
    pub account: Option<String>,
    /// The tag key.
    pub key: String,
    /// The value.
    pub value: String,
}

/// Why the fleet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// The inventory file could not be read.
    #[error("failed to read inventory file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The EC2 API failed, or answered something unusable.
    #[error("failed to describe instances in {place}: {message}")]
    Api {
        /// Region (and role) of the walk that failed.
        place: String,
        /// The SDK's error with its causes, or what is wrong with the answer.
        message: String,
    },
    /// An SQS call on the events queue failed.
    #[error("failed to {op} SQS queue {queue}: {message}")]
    Queue {
        /// What was asked: `receive messages from`, `delete messages from`.
        op: &'static str,
        /// The queue URL and region.
        queue: String,
        /// The SDK's error with its causes.
        message: String,
    },
    /// The inventory file is not describe-instances JSON.
    #[error("failed to parse inventory file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where in the document and what is wrong.
        message: String,
    },
}

/// A fleet as a snapshot holds it: each instance shared, so a change to a few copies
/// pointers, not every instance's strings (a 100,000-instance fleet took 65 ms to copy).
pub type Fleet = std::sync::Arc<[std::sync::Arc<Instance>]>;

/// A fleet of owned instances, shared.
pub fn fleet(instances: impl IntoIterator<Item = Instance>) -> Fleet {
    instances.into_iter().map(std::sync::Arc::new).collect()
}

/// What one read of the inventory gave.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The usable instances.
    pub instances: Vec<Instance>,
    /// Instances left out, each with where it was and why: one bad instance must not keep
    /// every other change from being published.
    pub skipped: Vec<String>,
    /// The strings the instances share.
    pub strings: Interner,
    /// The newest change any instance read carries (launch, start, stop, termination), kept
    /// or not: what the zone's serial is made from, alike on every replica.
    pub changed_at: Option<jiff::Timestamp>,
}

impl Fetched {
    /// Keeps one entry per instance id (the later one: a dump written twice, two walks that
    /// reach one account), saying so in `skipped`: the same instance must not count twice.
    pub(crate) fn drop_duplicates(&mut self, place: &str) {
        let mut last: rustc_hash::FxHashMap<&str, usize> = Default::default();
        for (i, inst) in self.instances.iter().enumerate() {
            last.insert(inst.id.as_str(), i);
        }
        if last.len() == self.instances.len() {
            return;
        }
        let keep: Vec<bool> = (0..self.instances.len())
            .map(|i| last.get(self.instances[i].id.as_str()) == Some(&i))
            .collect();
        let mut said = std::collections::BTreeSet::new();
        for (inst, kept) in self.instances.iter().zip(&keep) {
            if !kept && said.insert(inst.id.clone()) {
                self.skipped.push(format!(
                    "{place}: instance {} is listed more than once; counted once, as its last entry",
                    inst.id
                ));
            }
        }
        let mut keep = keep.into_iter();
        self.instances.retain(|_| keep.next().unwrap_or(true));
    }

    /// Counts one instance's change time (see [`Fetched::changed_at`]).
    pub(crate) fn saw_change(&mut self, at: Option<jiff::Timestamp>) {
        self.changed_at = self.changed_at.max(at);
    }
}

/// Why one instance in an API answer or dump cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// A field every instance must have is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field has a value that cannot be right.
    #[error("invalid {0} `{1}`")]
    Invalid(&'static str, String),
}

/// A place the fleet is read from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A describe-instances JSON dump.
    File(file::FileSource),
    /// The EC2 API.
    #[cfg(feature = "ec2")]
    Ec2(ec2::Ec2Source),
    /// The EC2 API, in a build without it.
    #[cfg(not(feature = "ec2"))]
    Ec2Unavailable,
}

impl Source {
    /// The source the config asks for.
    pub async fn from_config(config: &InventoryConfig) -> Self {
        match &config.source {
            SourceConfig::File { path, region } => Source::File(file::FileSource {
                path: path.clone(),
                region: region.clone(),
            }),
            #[cfg(feature = "ec2")]
            SourceConfig::Ec2(ec2) => Source::Ec2(ec2::Ec2Source::new(ec2).await),
            #[cfg(not(feature = "ec2"))]
            SourceConfig::Ec2(_) => Source::Ec2Unavailable,
        }
    }

    /// Reads the whole fleet: every page or an error; instances that cannot be used are
    /// skipped and listed.
    pub async fn fetch(&self) -> Result<Fetched, InventoryError> {
        match self {
            Source::File(f) => f.fetch().await,
            #[cfg(feature = "ec2")]
            Source::Ec2(e) => e.fetch().await,
            #[cfg(not(feature = "ec2"))]
            Source::Ec2Unavailable => Err(InventoryError::Api {
                place: "EC2".into(),
                message: "this build has no EC2 support (the `ec2` feature is off)".into(),
            }),
        }
    }

    /// Whether this source can write slot tags back to the fleet (the EC2 API can; a dump
    /// cannot).
    pub fn writes_tags(&self) -> bool {
        match self {
            Source::File(_) => false,
            #[cfg(feature = "ec2")]
            Source::Ec2(_) => true,
            #[cfg(not(feature = "ec2"))]
            Source::Ec2Unavailable => false,
        }
    }

    /// Writes slot tags: the writes that succeeded, and what failed (see
    /// [`ec2::Ec2Source::write_tags`]). A source that cannot write writes nothing.
    pub async fn write_tags(&self, writes: &[TagWrite]) -> (Vec<TagWrite>, Vec<String>) {
        match self {
            #[cfg(feature = "ec2")]
            Source::Ec2(e) => e.write_tags(writes).await,
            _ => {
                let _ = writes;
                (Vec::new(), Vec::new())
            }
        }
    }

    /// For logs: where the fleet comes from.
    pub fn describe(&self) -> String {
        match self {
            Source::File(f) => format!("file {}", f.path.display()),
            #[cfg(feature = "ec2")]
            Source::Ec2(e) => e.describe(),
            #[cfg(not(feature = "ec2"))]
            Source::Ec2Unavailable => "EC2 (not in this build)".into(),
        }
    }
}

/// `eu-west-1` from `eu-west-1a`, and `us-west-2` from the local zone `us-west-2-lax-1a`.
pub fn region_of_zone(az: &str) -> Option<String> {
    // A region is `<geo>-<direction>-<n>` (optionally `-gov`/`-iso` style infixes); everything
    // after the first digit run is the zone.
    let mut parts = Vec::new();
    for part in az.split('-') {
        let digits = part.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && !parts.is_empty() {
            parts.push(&part[..digits]);
            return (parts.len() >= 3).then(|| parts.join("-"));
        }
        parts.push(part);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_keep_the_last_value_of_a_key_and_serialize_as_a_map() {
        let tags: Tags = [("b", "1"), ("a", "2"), ("b", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(tags.get("b"), Some("3"));
        assert_eq!(tags.get("a"), Some("2"));
        assert_eq!(tags.get("c"), None);
        assert_eq!(tags.len(), 2);
        let json = serde_json::to_string(&tags).expect("serialize");
        assert_eq!(json, r#"{"a":"2","b":"3"}"#);
        let back: Tags = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, tags);
    }

    #[test]
    fn an_instance_is_written_with_its_place_s_names_as_fields_as_before() {
        // The state file's shape from before places were shared: every name a field.
        let written = serde_json::json!({
            "id": "i-1", "state": "running", "launch_time": "2026-11-01T10:00:00Z",
            "account": "123456789012", "region": "eu-west-1", "availability_zone": "eu-west-1a",
            "vpc_id": "vpc-1", "subnet_id": "subnet-1", "private_ip": "10.0.0.1",
            "private_dns_name": null, "public_ip": null, "public_dns_name": null, "ipv6": [],
            "tags": {"Name": "db1"}, "security_groups": [{"id": "sg-1", "name": "SG-I-DB1"}]
        });
        let inst: Instance = serde_json::from_value(written.clone()).expect("reads");
        assert_eq!(inst.region(), Some("eu-west-1"));
        assert_eq!(inst.availability_zone(), Some("eu-west-1a"));
        assert_eq!(inst.account(), Some("123456789012"));
        assert_eq!(
            (inst.vpc_id(), inst.subnet_id()),
            (Some("vpc-1"), Some("subnet-1"))
        );
        assert!(!inst.impaired);
        assert_eq!(serde_json::to_value(&inst).expect("writes"), written);

        let mut nowhere = written;
        for key in [
            "account",
            "region",
            "availability_zone",
            "vpc_id",
            "subnet_id",
        ] {
            nowhere[key] = serde_json::Value::Null;
        }
        nowhere["impaired"] = true.into();
        let inst: Instance = serde_json::from_value(nowhere.clone()).expect("reads");
        assert_eq!(inst.place, Place::default());
        assert_eq!((inst.region(), inst.account()), (None, None));
        assert_eq!(serde_json::to_value(&inst).expect("writes"), nowhere);
    }

    #[test]
    fn one_read_holds_one_copy_of_each_place_and_group_list() {
        let mut strings = Interner::default();
        let place = |strings: &mut Interner, subnet: &str| {
            let names = Where {
                region: Some(strings.get("eu-west-1")),
                subnet_id: Some(strings.get(subnet)),
                ..Where::default()
            };
            strings.place(names)
        };
        let (a, b, c) = (
            place(&mut strings, "subnet-1"),
            place(&mut strings, "subnet-1"),
            place(&mut strings, "subnet-2"),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(strings.places.len(), 2);
        let group = || SecurityGroup {
            id: "sg-1".into(),
            name: "SG-T-WEB".into(),
        };
        strings.groups(vec![group()]);
        strings.groups(vec![group()]);
        assert_eq!(strings.groups.len(), 1);
        assert_eq!(strings.place(Where::default()), Place::default());
    }

    #[test]
    fn instances_read_from_the_state_file_share_their_places_and_groups() {
        let one = |id: &str| -> Instance {
            serde_json::from_value(serde_json::json!({
                "id": id, "state": "running", "region": "eu-west-1", "subnet_id": "subnet-1",
                "ipv6": [], "tags": {}, "security_groups": [{"id": "sg-1", "name": "SG-T-WEB"}]
            }))
            .expect("reads")
        };
        let mut strings = Interner::default();
        let (a, b) = (one("i-1"), one("i-2"));
        let shared = [strings.share(a.clone()), strings.share(b.clone())];
        assert_eq!(shared, [a, b], "the same instances");
        assert_eq!((strings.places.len(), strings.groups.len()), (1, 1));
    }

    #[test]
    fn a_queue_error_says_which_call_failed_on_which_queue() {
        let e = InventoryError::Queue {
            op: "receive messages from",
            queue: "http://127.0.0.1:1/123/q (eu-west-1)".into(),
            message: "AWS.SimpleQueueService.NonExistentQueue".into(),
        };
        assert_eq!(
            e.to_string(),
            "failed to receive messages from SQS queue http://127.0.0.1:1/123/q (eu-west-1): \
             AWS.SimpleQueueService.NonExistentQueue"
        );
    }

    #[test]
    fn only_settings_that_change_the_read_make_a_new_source() {
        let base = settings::Ec2Config {
            regions: vec!["eu-west-1".into()],
            endpoint_url: None,
            assume_roles: vec![],
            own_account: true,
            filters: vec![],
            page_size: 1000,
            api_timeout: std::time::Duration::from_secs(10),
            audit_interval: None,
            instance_status: false,
            events: None,
            keep_states: None,
        };
        let source = |c: &settings::Ec2Config| SourceConfig::Ec2(c.clone());
        let audited = settings::Ec2Config {
            audit_interval: Some(std::time::Duration::from_secs(60)),
            ..base.clone()
        };
        assert!(!source(&base).reads_differently(&source(&audited)));
        let moved = settings::Ec2Config {
            regions: vec!["eu-central-1".into()],
            ..base.clone()
        };
        assert!(source(&base).reads_differently(&source(&moved)));
    }

    #[test]
    fn regions_come_from_zones() {
        assert_eq!(region_of_zone("eu-west-1a").as_deref(), Some("eu-west-1"));
        assert_eq!(
            region_of_zone("us-west-2-lax-1a").as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            region_of_zone("us-gov-west-1b").as_deref(),
            Some("us-gov-west-1")
        );
        assert_eq!(
            region_of_zone("ap-southeast-2c").as_deref(),
            Some("ap-southeast-2")
        );
        assert_eq!(region_of_zone("nonsense"), None);
        assert_eq!(region_of_zone(""), None);
    }

    #[test]
    fn states_round_trip() {
        for s in [
            InstanceState::Pending,
            InstanceState::Running,
            InstanceState::ShuttingDown,
            InstanceState::Terminated,
            InstanceState::Stopping,
            InstanceState::Stopped,
        ] {
            assert_eq!(s.as_str().parse::<InstanceState>(), Ok(s));
        }
        assert!("Running".parse::<InstanceState>().is_err());
    }
}
