//! A real EC2-compatible API for the tests: `moto_server` on 127.0.0.1, one per test, and an
//! `aws-sdk-ec2` client to build fleets in it. No test reaches real AWS: every EC2 config the
//! tests build points at loopback, and [`ec2_config`] refuses anything else.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_ec2::types::{
    AttributeBooleanValue, InstanceType, ResourceType, Tag, TagSpecification,
};
use stabledns::Config;

use crate::harness::demo_config;

/// A `moto_server` process, killed on drop.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The moto_server binary `scripts/test` installed. Fails loudly without one: these tests never
/// skip.
fn moto_binary() -> String {
    std::env::var("STABLEDNS_MOTO_SERVER").unwrap_or_else(|_| {
        panic!(
            "STABLEDNS_MOTO_SERVER is not set: run the tests with scripts/test, which installs \
             moto[server] in a virtual environment and points this variable at moto_server"
        )
    })
}

/// The server under test reads credentials from the standard chain, so the environment must
/// hold dummy keys and no path to real ones; scripts/test sets them.
fn check_environment() {
    let get = |k: &str| std::env::var(k).unwrap_or_default();
    assert_eq!(
        get("AWS_ACCESS_KEY_ID"),
        "testing",
        "AWS_ACCESS_KEY_ID must be the dummy `testing` (run scripts/test)"
    );
    assert_eq!(get("AWS_EC2_METADATA_DISABLED"), "true", "run scripts/test");
}

impl Moto {
    /// Starts a fresh moto on an ephemeral loopback port and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts a fresh moto on `port` (0: any) and waits until it answers.
    pub fn start_on(port: u16) -> Self {
        check_environment();
        let mut child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server: {e}"));
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().expect("piped")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("piped")),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(url) = line.split("Running on ").nth(1) {
                        let _ = tx.send(url.trim().to_owned());
                    }
                }
            });
        }
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("moto_server did not report its address within 60 s");
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "moto is not on loopback: {url}"
        );
        Self { child, url }
    }

    /// An EC2 client for building fleets in `region`.
    pub fn client(&self, region: &str) -> Client {
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http())
            .region(Region::new(region.to_owned()))
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .endpoint_url(&self.url)
            .build();
        Client::from_conf(config)
    }
}

/// The SDK's plain-HTTP client, for moto on loopback (stabledns builds its own HTTPS one; the
/// SDK crates bring none).
pub fn http() -> aws_sdk_ec2::config::SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_http()
}

impl Moto {
    /// An EC2 client acting in another account through an assumed role (moto keeps a separate
    /// fleet per account).
    pub async fn assumed_client(&self, region: &str, role: &str) -> Client {
        use aws_config::sts::AssumeRoleProvider;
        let base = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http())
            .region(Region::new(region.to_owned()))
            .endpoint_url(&self.url)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "tests"))
            .load()
            .await;
        let provider = AssumeRoleProvider::builder(role)
            .session_name("tests")
            .configure(&base)
            .build()
            .await;
        let config = base
            .to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(
                provider,
            ))
            .build();
        Client::new(&config)
    }
}

/// The demo's zone and naming rules with an `ec2` inventory at `endpoint` (moto or a proxy in
/// front of it), refreshing every `interval`.
pub fn ec2_config(endpoint: &str, regions: &[&str], extra: &str) -> Config {
    let text = ec2_config_text(endpoint, regions, extra);
    let mut config = Config::parse(&crate::harness::root().join("config/test.toml"), &text)
        .expect("valid config");
    config.server.listen = demo_config().server.listen;
    crate::harness::ephemeral_admin(&mut config);
    config
}

/// The text of [`ec2_config`]'s file, for tests that run the binary.
pub fn ec2_config_text(endpoint: &str, regions: &[&str], extra: &str) -> String {
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "tests only talk to loopback, not {endpoint}"
    );
    let demo = std::fs::read_to_string(crate::harness::root().join("config/demo.toml"))
        .expect("demo config");
    let start = demo.find("[inventory]").expect("inventory table");
    let end = demo.find("[naming]").expect("naming table");
    let regions = regions
        .iter()
        .map(|r| format!("\"{r}\""))
        .collect::<Vec<_>>()
        .join(", ");
    // `extra` lines override these defaults key by key.
    let defaults = [
        ("refresh_interval", "\"300ms\""),
        ("api_timeout", "\"2s\""),
        ("max_backoff", "\"2s\""),
    ];
    let mut inventory = format!(
        "[inventory]\nsource = \"ec2\"\nendpoint_url = \"{endpoint}\"\nregions = [{regions}]\n{extra}\n"
    );
    for (key, value) in defaults {
        if !extra.lines().any(|l| l.trim_start().starts_with(key)) {
            inventory.push_str(&format!("{key} = {value}\n"));
        }
    }
    inventory.push('\n');
    format!("{}{inventory}{}", &demo[..start], &demo[end..])
}

/// A VPC with a subnet that maps public IPs and one that does not.
pub struct Network {
    /// Instances here get a public IP and an `ec2-…` public DNS name.
    pub public_subnet: String,
    /// Instances here are private only.
    pub private_subnet: String,
    vpc: String,
}

impl Network {
    /// Creates the VPC and subnets in 10.20.0.0/16.
    pub async fn create(ec2: &Client) -> Self {
        Self::create_in(ec2, 20).await
    }

    /// Creates the VPC and subnets in 10.`octet`.0.0/16.
    pub async fn create_in(ec2: &Client, octet: u8) -> Self {
        let vpc = ec2
            .create_vpc()
            .cidr_block(format!("10.{octet}.0.0/16"))
            .send()
            .await
            .expect("create vpc")
            .vpc
            .and_then(|v| v.vpc_id)
            .expect("vpc id");
        let subnet = |cidr: String| {
            let ec2 = ec2.clone();
            let vpc = vpc.clone();
            async move {
                ec2.create_subnet()
                    .vpc_id(vpc)
                    .cidr_block(cidr)
                    .send()
                    .await
                    .expect("create subnet")
                    .subnet
                    .and_then(|s| s.subnet_id)
                    .expect("subnet id")
            }
        };
        let public_subnet = subnet(format!("10.{octet}.1.0/24")).await;
        // Room for the 1,200-instance pagination fleet.
        let private_subnet = subnet(format!("10.{octet}.16.0/20")).await;
        ec2.modify_subnet_attribute()
            .subnet_id(&public_subnet)
            .map_public_ip_on_launch(AttributeBooleanValue::builder().value(true).build())
            .send()
            .await
            .expect("map public ip");
        Self {
            public_subnet,
            private_subnet,
            vpc,
        }
    }

    /// A security group by name (created once per name).
    pub async fn group(&self, ec2: &Client, name: &str) -> String {
        let existing = ec2
            .describe_security_groups()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("group-name")
                    .values(name)
                    .build(),
            )
            .send()
            .await
            .expect("describe groups");
        if let Some(id) = existing
            .security_groups()
            .iter()
            .find(|g| g.vpc_id() == Some(self.vpc.as_str()))
            .and_then(|g| g.group_id())
        {
            return id.to_owned();
        }
        ec2.create_security_group()
            .group_name(name)
            .description(name)
            .vpc_id(&self.vpc)
            .send()
            .await
            .expect("create group")
            .group_id
            .expect("group id")
    }

    /// Launches `count` instances with these tags and groups; returns their ids.
    pub async fn launch(
        &self,
        ec2: &Client,
        count: i32,
        public: bool,
        tags: &[(&str, &str)],
        groups: &[&str],
    ) -> Vec<String> {
        let mut group_ids = Vec::new();
        for g in groups {
            group_ids.push(self.group(ec2, g).await);
        }
        let mut spec = TagSpecification::builder().resource_type(ResourceType::Instance);
        for (k, v) in tags {
            spec = spec.tags(Tag::builder().key(*k).value(*v).build());
        }
        let out = ec2
            .run_instances()
            .image_id("ami-12c6146b")
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .subnet_id(if public {
                &self.public_subnet
            } else {
                &self.private_subnet
            })
            .set_security_group_ids(Some(group_ids))
            .set_tag_specifications((!tags.is_empty()).then(|| vec![spec.build()]))
            .send()
            .await
            .expect("run instances");
        out.instances()
            .iter()
            .filter_map(|i| i.instance_id().map(str::to_owned))
            .collect()
    }
}

/// One instance as moto describes it.
async fn describe_one(ec2: &Client, id: &str) -> aws_sdk_ec2::types::Instance {
    let out = ec2
        .describe_instances()
        .instance_ids(id)
        .send()
        .await
        .expect("describe");
    out.reservations()
        .iter()
        .flat_map(|r| r.instances())
        .next()
        .cloned()
        .unwrap_or_else(|| panic!("moto does not know {id}"))
}

/// The public DNS name moto gave an instance.
pub async fn public_dns(ec2: &Client, id: &str) -> Option<String> {
    describe_one(ec2, id)
        .await
        .public_dns_name()
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
}

/// The private IPv4 address moto gave an instance.
pub async fn private_ip(ec2: &Client, id: &str) -> String {
    describe_one(ec2, id)
        .await
        .private_ip_address()
        .expect("private ip")
        .to_owned()
}

/// The public IPv4 address an instance has now (auto-assigned, or an Elastic IP).
pub async fn public_ip(ec2: &Client, id: &str) -> String {
    describe_one(ec2, id)
        .await
        .public_ip_address()
        .expect("public ip")
        .to_owned()
}
