//! Views: which answers a client gets, chosen by its source address.
//!
//! Split horizon for EC2: clients in the VPC get private addresses and CNAMEs to the public
//! DNS names (which AWS's resolver turns into private addresses for them); peered VPCs, whose
//! resolvers cannot do that, get the private addresses directly; the outside world gets public
//! addresses only, and never a name that has none. Each view's answers are precomputed in the
//! snapshot, so choosing one is a prefix match on the source address and answering stays a
//! lookup. Views are tried in order and the first whose CIDRs contain the client wins; a view
//! without CIDRs matches everyone and must come last.

use std::net::IpAddr;

use ipnet::IpNet;

/// Which of an instance's addresses a view answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// Private IPv4 (and IPv6): for clients inside the VPC.
    Private,
    /// Public IPv4 (and global IPv6): for clients outside.
    Public,
}

/// Where a view's chased CNAME targets get their addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaseFrom {
    /// A target that is one of our instances' public DNS names gets the address this view
    /// shows, at once; other targets are asked of the upstreams. Inside the instance's own VPC
    /// that is what AWS's resolver answers too.
    Inventory,
    /// Every target is asked of the upstreams: for clients in other VPCs (or on premises),
    /// whose AWS resolver may answer an instance's public name with its public address.
    Upstream,
}

/// How a view answers a name backed by one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SingleMode {
    /// CNAME to the instance's public DNS name when it has one, so AWS's resolver picks the
    /// private or public address by where the client asks from.
    Cname,
    /// The address itself (for clients whose resolver cannot turn the AWS name into the
    /// private address, e.g. peered VPCs without DNS resolution).
    Address,
}

/// How a view answers a name backed by several instances (a tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TierMode {
    /// Every instance's address as one set, rotated per query so clients that take the first
    /// address spread over the tier.
    Addresses,
    /// A CNAME to one instance's public DNS name, picked per query (instances without one are
    /// left out; a tier where none has one answers addresses).
    Cname,
}

/// How one view answers, and whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewPolicy {
    /// Name, for logs and `stabledns names --view`.
    pub name: String,
    /// Client networks; empty matches every client.
    pub clients: Vec<IpNet>,
    /// Private or public addresses.
    pub addresses: AddressKind,
    /// Single-instance names as CNAME or address.
    pub single: SingleMode,
    /// Tiers as an address set or a CNAME to one member.
    pub tiers: TierMode,
    /// Names outside our zones are resolved through the upstreams (never for a catch-all view:
    /// that would be an open resolver).
    pub recursion: bool,
    /// A CNAME answer to an A/AAAA question also carries the target's addresses, resolved
    /// through the upstreams, so a stub resolver gets the address in one round trip.
    pub chase_cname: bool,
    /// Where chased addresses come from.
    pub chase_from: ChaseFrom,
    /// `_explain.<name>` TXT queries are answered (they name instances, tags and groups).
    pub explain: bool,
    /// Networks whose reverse (PTR) names this view answers.
    pub reverse: Vec<IpNet>,
    /// Networks that may transfer this view's zones.
    pub transfer: Vec<IpNet>,
    /// When not empty, a transfer must be signed with one of these TSIG keys.
    pub transfer_keys: Vec<hickory_proto::rr::Name>,
    /// Secondaries told of every new serial.
    pub notify: Vec<std::net::SocketAddr>,
    /// The address NOTIFY leaves from (the one the secondaries know as their primary).
    pub notify_source: Option<std::net::IpAddr>,
    /// UDP answers a second per client prefix (/24, /56); 0 is no limit.
    pub rate_limit: u32,
    /// Past the rate, every n-th answer is sent truncated (the client retries over TCP).
    pub rate_limit_slip: u32,
}

impl ViewPolicy {
    /// Whether this view faces the outside: it never sees private addresses or inside-only
    /// names.
    pub fn is_outside(&self) -> bool {
        self.addresses == AddressKind::Public
    }
}

impl ViewPolicy {
    /// The view used when none is configured: everyone is inside the VPC.
    pub fn inside() -> Self {
        Self {
            name: "inside".to_owned(),
            clients: Vec::new(),
            addresses: AddressKind::Private,
            single: SingleMode::Cname,
            tiers: TierMode::Addresses,
            recursion: false,
            chase_cname: false,
            chase_from: ChaseFrom::Inventory,
            explain: true,
            reverse: Vec::new(),
            transfer: Vec::new(),
            transfer_keys: Vec::new(),
            notify: Vec::new(),
            notify_source: None,
            rate_limit: 0,
            rate_limit_slip: 2,
        }
    }
}

/// Client address → view index, first match wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    rules: Vec<(IpNet, usize)>,
    fallback: Option<usize>,
}

impl Selector {
    /// The selector for views in this order.
    pub fn new(views: &[ViewPolicy]) -> Self {
        let mut rules = Vec::new();
        let mut fallback = None;
        for (i, v) in views.iter().enumerate() {
            if v.clients.is_empty() {
                fallback.get_or_insert(i);
            }
            rules.extend(v.clients.iter().map(|net| (*net, i)));
        }
        Self { rules, fallback }
    }

    /// The view for a client, or `None` when no view takes it (it is then refused).
    pub fn select(&self, client: IpAddr) -> Option<usize> {
        self.select_why(client).map(|(i, _)| i)
    }

    /// The view for a client and the network that matched it (`None`: the catch-all view).
    pub fn select_why(&self, client: IpAddr) -> Option<(usize, Option<IpNet>)> {
        // A v4 client on a dual-stack socket arrives as ::ffff:a.b.c.d.
        let client = client.to_canonical();
        self.rules
            .iter()
            .find(|(net, _)| net.contains(&client))
            .map(|(net, i)| (*i, Some(*net)))
            .or(self.fallback.map(|i| (i, None)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, clients: &[&str]) -> ViewPolicy {
        ViewPolicy {
            name: name.to_owned(),
            clients: clients.iter().map(|c| c.parse().expect("cidr")).collect(),
            ..ViewPolicy::inside()
        }
    }

    #[test]
    fn first_match_wins_and_the_default_catches_the_rest() {
        let s = Selector::new(&[
            view("inside", &["10.0.0.0/16", "127.0.0.1/32"]),
            view("peered", &["10.0.5.0/24", "127.0.0.2/32", "fd00::/8"]),
            view("outside", &[]),
        ]);
        let pick = |ip: &str| s.select(ip.parse().expect("ip"));
        assert_eq!(pick("10.0.5.1"), Some(0), "first match, not longest");
        assert_eq!(pick("127.0.0.1"), Some(0));
        assert_eq!(pick("127.0.0.2"), Some(1));
        assert_eq!(
            pick("::ffff:127.0.0.2"),
            Some(1),
            "v4-mapped clients match v4 CIDRs"
        );
        assert_eq!(pick("fd12::1"), Some(1));
        assert_eq!(pick("127.0.0.3"), Some(2));
        assert_eq!(pick("2001:db8::1"), Some(2));
    }

    #[test]
    fn without_a_default_unmatched_clients_get_no_view() {
        let s = Selector::new(&[view("inside", &["10.0.0.0/8"])]);
        assert_eq!(s.select("10.1.2.3".parse().expect("ip")), Some(0));
        assert_eq!(s.select("192.0.2.1".parse().expect("ip")), None);
    }
}
