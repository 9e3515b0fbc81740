//! The zone's settings, as the config file's `[zone]` table gives them.

use std::net::IpAddr;

use hickory_proto::rr::Name;

/// The authoritative zone.
#[derive(Debug, Clone)]
pub struct ZoneConfig {
    /// Fully qualified, lower case.
    pub apex: Name,
    /// TTL of host records.
    pub record_ttl: u32,
    /// TTL of SOA and NS.
    pub apex_ttl: u32,
    /// SOA MNAME.
    pub primary_ns: Name,
    /// SOA RNAME.
    pub hostmaster: Name,
    /// SOA REFRESH.
    pub refresh: u32,
    /// SOA RETRY.
    pub retry: u32,
    /// SOA EXPIRE.
    pub expire: u32,
    /// SOA MINIMUM: the negative-caching TTL.
    pub minimum: u32,
    /// NS records at the apex, with glue for in-zone ones.
    pub nameservers: Vec<NameserverConfig>,
    /// The most records an RRset has in one answer and in transfers (BIND 9.18.28+ refuses
    /// more than 100 by default, as a secondary and as a resolver); larger sets rotate.
    pub max_records_per_rrset: u16,
    /// Subtrees under the apex that are not ours: AWS's private DNS domains
    /// ([`AWS_PRIVATE_DOMAINS`]) and the configured ones. Names there are forwarded in views
    /// that recurse and refused elsewhere, and never served or transferred.
    pub passthrough: Vec<Name>,
}

/// AWS's own private DNS domains: `ip-10-0-1-5.ec2.internal` (us-east-1) and
/// `ip-10-0-1-5.<region>.compute.internal`. The VPC resolver answers them; an apex such as
/// `internal.` contains them, and answering NXDOMAIN there breaks `hostname -f`, sudo and
/// Kubernetes node names.
pub const AWS_PRIVATE_DOMAINS: [&str; 2] = ["ec2.internal.", "compute.internal."];

/// One apex NS record.
#[derive(Debug, Clone)]
pub struct NameserverConfig {
    /// Fully qualified.
    pub name: Name,
    /// Glue addresses (only for names inside the zone).
    pub addresses: Vec<IpAddr>,
    /// Glue for public views (an outside view never shows `addresses` that are private).
    pub public_addresses: Vec<IpAddr>,
}
