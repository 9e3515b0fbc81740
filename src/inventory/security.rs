//! The firewall around the fleet, as the EC2 API reports it: security groups, their rules, and
//! every network interface's addresses (instances' and everything else's: load balancers,
//! databases, Lambda), the Elastic IPs the accounts hold and the VPCs' address ranges. Read
//! for `stabledns audit`; nothing here changes anything.

use std::net::IpAddr;

use ipnet::IpNet;

/// A security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `sg-…`
    pub id: String,
    /// Its name (`SG-T-WEB`).
    pub name: String,
    /// Its VPC, when it has one.
    pub vpc_id: Option<String>,
}

/// One rule of a security group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `sgr-…`
    pub id: String,
    /// The group it belongs to.
    pub group_id: String,
    /// Outbound rather than inbound.
    pub egress: bool,
    /// `tcp`, `udp`, `icmp`, `-1` (all), or a protocol number.
    pub protocol: String,
    /// The port range (-1 for all), when the protocol has ports.
    pub from_port: Option<i32>,
    /// The port range's end.
    pub to_port: Option<i32>,
    /// The peer, when it is an address range.
    pub cidr: Option<IpNet>,
    /// The peer, when it is another group.
    pub group_ref: Option<String>,
    /// The operator's description.
    pub description: Option<String>,
}

impl Rule {
    /// Whether the rule lets in `port` over TCP (all protocols and all ports count).
    pub fn allows_tcp(&self, port: i32) -> bool {
        let proto = matches!(self.protocol.as_str(), "tcp" | "6" | "-1");
        let all = self.protocol == "-1" || self.from_port == Some(-1);
        proto
            && (all
                || matches!((self.from_port, self.to_port), (Some(a), Some(b)) if a <= port && port <= b))
    }

    /// `tcp 3306`, `tcp 8000-8100`, `all`.
    pub fn ports_text(&self) -> String {
        match (self.protocol.as_str(), self.from_port, self.to_port) {
            ("-1", _, _) => "all".into(),
            (p, Some(a), Some(b)) if a == b => format!("{p} {a}"),
            (p, Some(-1), _) | (p, None, _) => format!("{p} all"),
            (p, Some(a), Some(b)) => format!("{p} {a}-{b}"),
            (p, Some(a), None) => format!("{p} {a}"),
        }
    }
}

/// A network interface and the addresses it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `eni-…`
    pub id: String,
    /// `interface`, `network_load_balancer`, `lambda`, … (the API's `InterfaceType`).
    pub kind: String,
    /// What AWS says it is for (`ELB app/web/…`, `RDSNetworkInterface`).
    pub description: Option<String>,
    /// The instance it is attached to.
    pub instance_id: Option<String>,
    /// Its private addresses, the primary first, IPv6 too.
    pub private: Vec<IpAddr>,
    /// Its public addresses, each with whether it is an Elastic IP.
    pub public: Vec<(IpAddr, bool)>,
}

/// Everything the audit reads besides the instances.
#[derive(Debug, Clone, Default)]
pub struct Firewall {
    /// Every group.
    pub groups: Vec<Group>,
    /// Every rule of every group.
    pub rules: Vec<Rule>,
    /// Every interface.
    pub interfaces: Vec<Interface>,
    /// Every Elastic IP the accounts hold, associated or not (DescribeAddresses): an address
    /// that survives stop, start and replacement, and stays the account's until released.
    pub elastic: Vec<IpAddr>,
    /// The VPCs' address ranges, IPv4 and IPv6: an address inside one that no interface
    /// holds was ours and is free for the next interface; one outside (an office, a partner)
    /// is not ours to judge.
    pub networks: Vec<IpNet>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>) -> Rule {
        Rule {
            id: "sgr-1".into(),
            group_id: "sg-1".into(),
            egress: false,
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidr: None,
            group_ref: None,
            description: None,
        }
    }

    #[test]
    fn port_ranges_and_all_protocols_count_as_open() {
        assert!(rule("tcp", Some(22), Some(22)).allows_tcp(22));
        assert!(rule("tcp", Some(1), Some(1024)).allows_tcp(22));
        assert!(!rule("tcp", Some(80), Some(443)).allows_tcp(22));
        assert!(!rule("udp", Some(22), Some(22)).allows_tcp(22));
        assert!(rule("-1", None, None).allows_tcp(3389));
        assert!(rule("6", Some(-1), Some(-1)).allows_tcp(5432));
        assert_eq!(rule("tcp", Some(22), Some(22)).ports_text(), "tcp 22");
        assert_eq!(
            rule("tcp", Some(8000), Some(8100)).ports_text(),
            "tcp 8000-8100"
        );
        assert_eq!(rule("-1", None, None).ports_text(), "all");
    }
}
