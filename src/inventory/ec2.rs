//! The `ec2` source: DescribeInstances over every configured account and region.
//!
//! The only code that imports `aws-sdk-*`. Credentials come from `aws-config`'s standard chain
//! (environment, shared profile and SSO, web identity, ECS, IMDSv2); other accounts are reached
//! by assuming roles. A fetch is all or nothing: one failed page, region or account fails the
//! whole fetch, so the refresh loop never publishes part of a fleet.
//!
//! Each SDK instance is mapped onto the same raw shape the `file` source reads and converted by
//! the same code, so both sources validate instances identically.

use std::net::IpAddr;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{Region, SdkConfig};
use aws_sdk_ec2::types::Filter;
use tracing::{debug, warn};

use super::file::{RawGroup, RawInstance, RawInterface, RawIpv6, RawPlacement, RawState, RawTag};
use super::settings::Ec2Config;
use super::{Fetched, InventoryError};

/// One account × region to walk.
#[derive(Debug, Clone)]
struct Walk {
    region: String,
    /// The assumed role, or `None` for the credentials' own account.
    role: Option<String>,
    client: aws_sdk_ec2::Client,
}

/// Reads instances from the EC2 API.
#[derive(Debug, Clone)]
pub struct Ec2Source {
    walks: Vec<Walk>,
    filters: Vec<Filter>,
    page_size: i32,
    instance_status: bool,
    keep_states: Option<std::collections::BTreeSet<super::InstanceState>>,
}

impl Ec2Source {
    /// Prepares clients for every account and region; no network traffic yet.
    pub async fn new(config: &Ec2Config) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(config.api_timeout.min(Duration::from_secs(5)))
            .operation_attempt_timeout(config.api_timeout)
            .build();
        let mut loader = crate::aws::defaults().timeout_config(timeouts);
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let base = loader.load().await;
        let regions: Vec<String> = if config.regions.is_empty() {
            vec![
                base.region()
                    .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string()),
            ]
        } else {
            config.regions.clone()
        };
        let mut walks = Vec::new();
        for region in &regions {
            let regional = base
                .to_builder()
                .region(Region::new(region.clone()))
                .build();
            if config.own_account {
                walks.push(Walk {
                    region: region.clone(),
                    role: None,
                    client: client(&regional),
                });
            }
            for role in &config.assume_roles {
                let assumed = crate::aws::assume_role(&regional, role, "stabledns").await;
                walks.push(Walk {
                    region: region.clone(),
                    role: Some(role.clone()),
                    client: client(&assumed),
                });
            }
        }
        let filters = config
            .filters
            .iter()
            .map(|(name, values)| {
                Filter::builder()
                    .name(name)
                    .set_values(Some(values.clone()))
                    .build()
            })
            .collect();
        Self {
            walks,
            filters,
            page_size: config.page_size,
            instance_status: config.instance_status,
            keep_states: config.keep_states.clone(),
        }
    }

    /// For logs.
    pub fn describe(&self) -> String {
        let walks: Vec<String> = self
            .walks
            .iter()
            .map(|w| match &w.role {
                Some(role) => format!("{role}@{}", w.region),
                None => w.region.clone(),
            })
            .collect();
        format!("EC2 in {}", walks.join(", "))
    }

    /// Every instance in every walk, or the first error.
    pub async fn fetch(&self) -> Result<Fetched, InventoryError> {
        let mut out = Fetched::default();
        for walk in &self.walks {
            let before = out.instances.len();
            self.walk(walk, &mut out).await?;
            if self.instance_status {
                mark_impaired(walk, &mut out.instances[before..]).await;
            }
            debug!(region = %walk.region, role = ?walk.role, instances = out.instances.len() - before, "walked");
        }
        out.drop_duplicates("EC2 (two walks read one account?)");
        Ok(out)
    }

    /// Every instance in every walk whatever its state (within the operator's own filters):
    /// for the audit, to which a stopped instance's address is still its own, and a rule
    /// pinned to it breaks when it is replaced.
    pub async fn fetch_every_state(&self) -> Result<Fetched, InventoryError> {
        let every = Self {
            keep_states: None,
            ..self.clone()
        };
        every.fetch().await
    }

    /// The instances `ids` in `region`, in every account walked there, as a full refresh
    /// would see them (the configured filters apply, so an excluded or terminated instance
    /// is simply absent). An `instance-id` filter rather than `InstanceIds`: an id the API no
    /// longer knows is then absent too, instead of failing the whole call.
    pub async fn describe_ids(
        &self,
        region: &str,
        ids: &[String],
    ) -> Result<Fetched, InventoryError> {
        let mut out = Fetched::default();
        // The API takes up to 200 values per filter.
        for chunk in ids.chunks(200) {
            let mut filters = self.filters.clone();
            filters.push(
                Filter::builder()
                    .name("instance-id")
                    .set_values(Some(chunk.to_vec()))
                    .build(),
            );
            for walk in self.walks.iter().filter(|w| w.region == region) {
                self.walk_with(walk, &filters, &mut out).await?;
            }
        }
        Ok(out)
    }

    /// Writes slot tags (`ec2:CreateTags`, one call per tag and value for every instance
    /// that gets it), each through the walk that reads its instance. Returns the writes that
    /// succeeded and one line per call that failed; a failure leaves the number to the rule,
    /// which every replica applies alike, until a later write succeeds.
    pub async fn write_tags(
        &self,
        writes: &[super::TagWrite],
    ) -> (Vec<super::TagWrite>, Vec<String>) {
        use aws_sdk_ec2::types::Tag;
        let mut groups: std::collections::BTreeMap<(usize, &str, &str), Vec<&super::TagWrite>> =
            Default::default();
        let mut failed = Vec::new();
        for w in writes {
            match self.walk_of(w.region.as_deref(), w.account.as_deref()) {
                Some(walk) => groups
                    .entry((walk, w.key.as_str(), w.value.as_str()))
                    .or_default()
                    .push(w),
                None => failed.push(format!(
                    "{}: no walk reads its region {}",
                    w.instance,
                    w.region.as_deref().unwrap_or("(unknown)")
                )),
            }
        }
        let mut done = Vec::new();
        for ((walk, key, value), members) in groups {
            let walk = &self.walks[walk];
            // CreateTags takes up to 1,000 resources; fewer keep one bad id from failing many.
            for chunk in members.chunks(200) {
                let sent = walk
                    .client
                    .create_tags()
                    .set_resources(Some(chunk.iter().map(|w| w.instance.clone()).collect()))
                    .tags(Tag::builder().key(key).value(value).build())
                    .send()
                    .await;
                match sent {
                    Ok(_) => done.extend(chunk.iter().map(|w| (*w).clone())),
                    Err(e) => failed.push(format!(
                        "CreateTags {key}={value} on {} in {}: {}",
                        chunk
                            .iter()
                            .map(|w| w.instance.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                        walk.region,
                        crate::aws::error_line(&e)
                    )),
                }
            }
        }
        (done, failed)
    }

    /// The walk that reads instances of `region` in `account`: an assumed role in that
    /// account, else the credentials' own account.
    fn walk_of(&self, region: Option<&str>, account: Option<&str>) -> Option<usize> {
        let in_region = |w: &Walk| region.is_none_or(|r| w.region == r);
        fn role_account(w: &Walk) -> Option<&str> {
            w.role.as_deref().and_then(|arn| arn.split(':').nth(4))
        }
        self.walks
            .iter()
            .position(|w| in_region(w) && account.is_some() && role_account(w) == account)
            .or_else(|| {
                self.walks
                    .iter()
                    .position(|w| in_region(w) && w.role.is_none())
            })
            .or_else(|| self.walks.iter().position(in_region))
    }

    /// Whether any walk reads `region`.
    pub fn walks_region(&self, region: &str) -> bool {
        self.walks.iter().any(|w| w.region == region)
    }

    /// Every security group, rule, network interface, Elastic IP and VPC range in every walk
    /// (for the audit), paginated, read-only: DescribeSecurityGroups,
    /// DescribeSecurityGroupRules, DescribeNetworkInterfaces, DescribeAddresses and
    /// DescribeVpcs.
    pub async fn firewall(&self) -> Result<super::security::Firewall, InventoryError> {
        use super::security::{Group, Interface, Rule};
        let mut out = super::security::Firewall::default();
        for walk in &self.walks {
            let api = |e: String| InventoryError::Api {
                place: match &walk.role {
                    Some(role) => format!("{} as {role}", walk.region),
                    None => walk.region.clone(),
                },
                message: e,
            };
            let mut pages = walk
                .client
                .describe_security_groups()
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| api(crate::aws::error_line(&e)))?;
                for g in page.security_groups() {
                    out.groups.push(Group {
                        id: g.group_id().unwrap_or_default().to_owned(),
                        name: g.group_name().unwrap_or_default().to_owned(),
                        vpc_id: g.vpc_id().map(str::to_owned),
                    });
                }
            }
            let mut pages = walk
                .client
                .describe_security_group_rules()
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| api(crate::aws::error_line(&e)))?;
                for r in page.security_group_rules() {
                    let cidr = r.cidr_ipv4().or(r.cidr_ipv6()).and_then(|c| c.parse().ok());
                    out.rules.push(Rule {
                        id: r.security_group_rule_id().unwrap_or_default().to_owned(),
                        group_id: r.group_id().unwrap_or_default().to_owned(),
                        egress: r.is_egress().unwrap_or(false),
                        protocol: r.ip_protocol().unwrap_or("-1").to_owned(),
                        from_port: r.from_port(),
                        to_port: r.to_port(),
                        cidr,
                        group_ref: r
                            .referenced_group_info()
                            .and_then(|g| g.group_id())
                            .map(str::to_owned),
                        description: r.description().map(str::to_owned),
                    });
                }
            }
            let mut pages = walk
                .client
                .describe_network_interfaces()
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| api(crate::aws::error_line(&e)))?;
                for n in page.network_interfaces() {
                    let mut private = Vec::new();
                    let mut public = Vec::new();
                    for a in n.private_ip_addresses() {
                        if let Some(ip) = a.private_ip_address().and_then(|s| s.parse().ok()) {
                            private.push(ip);
                        }
                        if let Some(assoc) = a.association()
                            && let Some(ip) = assoc.public_ip().and_then(|s| s.parse().ok())
                        {
                            public.push((ip, assoc.allocation_id().is_some()));
                        }
                    }
                    if let Some(assoc) = n.association()
                        && let Some(ip) = assoc.public_ip().and_then(|s| s.parse().ok())
                        && !public.iter().any(|(p, _)| *p == ip)
                    {
                        public.push((ip, assoc.allocation_id().is_some()));
                    }
                    for a in n.ipv6_addresses() {
                        if let Some(ip) = a.ipv6_address().and_then(|s| s.parse().ok()) {
                            private.push(ip);
                        }
                    }
                    out.interfaces.push(Interface {
                        id: n.network_interface_id().unwrap_or_default().to_owned(),
                        kind: n
                            .interface_type()
                            .map_or_else(|| "interface".to_owned(), |t| t.as_str().to_owned()),
                        description: n.description().filter(|d| !d.is_empty()).map(str::to_owned),
                        instance_id: n
                            .attachment()
                            .and_then(|a| a.instance_id())
                            .map(str::to_owned),
                        private,
                        public,
                    });
                }
            }
            // Not paginated: an account holds a few Elastic IPs (five per region by default).
            let addresses = walk
                .client
                .describe_addresses()
                .send()
                .await
                .map_err(|e| api(crate::aws::error_line(&e)))?;
            out.elastic.extend(
                addresses
                    .addresses()
                    .iter()
                    .filter_map(|a| a.public_ip().and_then(|s| s.parse::<IpAddr>().ok())),
            );
            let mut pages = walk.client.describe_vpcs().into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| api(crate::aws::error_line(&e)))?;
                for vpc in page.vpcs() {
                    let v4 = vpc
                        .cidr_block_association_set()
                        .iter()
                        .filter_map(|c| c.cidr_block());
                    let v6 = vpc
                        .ipv6_cidr_block_association_set()
                        .iter()
                        .filter_map(|c| c.ipv6_cidr_block());
                    out.networks.extend(
                        vpc.cidr_block()
                            .into_iter()
                            .chain(v4)
                            .chain(v6)
                            .filter_map(|c| c.parse::<ipnet::IpNet>().ok()),
                    );
                }
            }
        }
        out.networks.sort();
        out.networks.dedup();
        Ok(out)
    }

    async fn walk(&self, walk: &Walk, out: &mut Fetched) -> Result<(), InventoryError> {
        self.walk_with(walk, &self.filters, out).await
    }

    async fn walk_with(
        &self,
        walk: &Walk,
        filters: &[Filter],
        out: &mut Fetched,
    ) -> Result<(), InventoryError> {
        let where_ = || match &walk.role {
            Some(role) => format!("{} as {role}", walk.region),
            None => walk.region.clone(),
        };
        let mut pages = walk
            .client
            .describe_instances()
            .set_filters((!filters.is_empty()).then(|| filters.to_vec()))
            .into_paginator()
            .page_size(self.page_size)
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| InventoryError::Api {
                place: where_(),
                message: crate::aws::error_line(&e),
            })?;
            for reservation in page.reservations() {
                for inst in reservation.instances() {
                    let raw = raw(inst);
                    out.saw_change(super::file::change_time(&raw));
                    let state = inst.state().and_then(|s| s.name()).map(|n| n.as_str());
                    if let Some(keep) = &self.keep_states
                        && state
                            .and_then(|s| s.parse::<super::InstanceState>().ok())
                            .is_some_and(|s| !keep.contains(&s))
                    {
                        continue; // read for its change time only
                    }
                    match super::file::convert(
                        raw,
                        reservation.owner_id(),
                        Some(walk.region.as_str()),
                        &mut out.strings,
                    ) {
                        Ok(instance) => out.instances.push(instance),
                        Err(e) => out.skipped.push(format!(
                            "EC2 in {}: instance {}: {e}; skipped",
                            where_(),
                            inst.instance_id().unwrap_or("(no id)")
                        )),
                    }
                }
            }
        }
        Ok(())
    }
}

/// Marks the instances EC2 reports impaired (system or instance status), with
/// DescribeInstanceStatus over the walk's running instances. Health only ever takes members
/// out of tiers, so when it cannot be read the instances count as healthy (fail open) and the
/// refresh goes on: a status outage must not stop names from following the fleet.
async fn mark_impaired(walk: &Walk, instances: &mut [crate::inventory::Instance]) {
    use aws_sdk_ec2::types::SummaryStatus;
    let mut impaired = std::collections::HashSet::new();
    let mut pages = walk
        .client
        .describe_instance_status()
        .into_paginator()
        .page_size(1000)
        .send();
    while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(e) => {
                warn!(
                    region = %walk.region,
                    role = ?walk.role,
                    error = %crate::aws::error_line(&e),
                    "cannot read instance status; counting every instance healthy"
                );
                return;
            }
        };
        for s in page.instance_statuses() {
            let bad = |d: Option<&aws_sdk_ec2::types::InstanceStatusSummary>| {
                d.and_then(|d| d.status()) == Some(&SummaryStatus::Impaired)
            };
            if bad(s.system_status()) || bad(s.instance_status()) {
                impaired.extend(s.instance_id().map(str::to_owned));
            }
        }
    }
    for inst in instances {
        inst.impaired = impaired.contains(&inst.id);
    }
}

fn client(config: &SdkConfig) -> aws_sdk_ec2::Client {
    let config = aws_sdk_ec2::config::Builder::from(config)
        .interceptor(WholeAnswer)
        .build();
    aws_sdk_ec2::Client::from_conf(config)
}

/// Refuses an answer whose XML stops before its root element closes. The SDK's parser reads
/// a cut document as far as it goes and calls it a success: a connection dropped mid-answer
/// would then look like a fleet that lost half its instances (and no `nextToken`, so no more
/// pages).
#[derive(Debug)]
struct WholeAnswer;

impl aws_sdk_ec2::config::Intercept for WholeAnswer {
    fn name(&self) -> &'static str {
        "stabledns::WholeAnswer"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_sdk_ec2::config::interceptors::AfterDeserializationInterceptorContextRef<'_>,
        _: &aws_sdk_ec2::config::RuntimeComponents,
        _: &mut aws_sdk_ec2::config::ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        let response = context.response();
        if !response.status().is_success() {
            return Ok(()); // the SDK turns error answers into errors itself
        }
        let Some(body) = response.body().bytes() else {
            return Ok(());
        };
        let end = body.trim_ascii_end();
        if end.ends_with(b"Response>") {
            Ok(())
        } else {
            Err(format!(
                "the answer ends before its XML does ({} bytes): cut off or not EC2's",
                body.len()
            )
            .into())
        }
    }
}

fn s(v: Option<&str>) -> super::file::Text<'_> {
    v.map(std::borrow::Cow::Borrowed)
}

/// The SDK's instance in the describe-instances JSON shape, borrowing its strings.
fn raw(i: &aws_sdk_ec2::types::Instance) -> RawInstance<'_> {
    RawInstance {
        instance_id: s(i.instance_id()),
        state: i.state().map(|st| RawState {
            name: st.name().map(|n| n.as_str().into()),
        }),
        launch_time: i.launch_time().and_then(|t| {
            t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                .ok()
                .map(std::borrow::Cow::Owned)
        }),
        state_transition_reason: s(i.state_transition_reason()),
        placement: i.placement().map(|p| RawPlacement {
            availability_zone: s(p.availability_zone()),
        }),
        vpc_id: s(i.vpc_id()),
        subnet_id: s(i.subnet_id()),
        private_ip_address: s(i.private_ip_address()),
        private_dns_name: s(i.private_dns_name()),
        public_ip_address: s(i.public_ip_address()),
        public_dns_name: s(i.public_dns_name()),
        ipv6_address: s(i.ipv6_address()),
        network_interfaces: i
            .network_interfaces()
            .iter()
            .map(|n| RawInterface {
                ipv6_addresses: n
                    .ipv6_addresses()
                    .iter()
                    .map(|a| RawIpv6 {
                        ipv6_address: s(a.ipv6_address()),
                    })
                    .collect(),
            })
            .collect(),
        tags: i
            .tags()
            .iter()
            .map(|t| RawTag {
                key: s(t.key()),
                value: s(t.value()),
            })
            .collect(),
        security_groups: i
            .security_groups()
            .iter()
            .map(|g| RawGroup {
                group_id: s(g.group_id()),
                group_name: s(g.group_name()),
            })
            .collect(),
    }
}
