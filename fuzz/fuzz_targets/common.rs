//! What the targets share: the demo config and its snapshot, built once per process.
#![allow(dead_code)] // each target uses part of it

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use stabledns::Config;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn demo_config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| Config::load(&root().join("config/demo.toml")).expect("demo config"))
}

pub fn demo_fleet() -> stabledns::inventory::Fleet {
    let path = root().join("config/demo-instances.json");
    let bytes = std::fs::read(&path).expect("demo fleet");
    let parsed = stabledns::inventory::file::parse(&path, &bytes, None).expect("demo fleet parses");
    stabledns::inventory::fleet(parsed.instances)
}
