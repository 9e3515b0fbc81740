//! Integration tests: the real server on 127.0.0.1, queried by real clients.
//!
//! One test binary (one build) with a file per area; `harness` starts servers and clients.

mod admin;
mod answers;
mod audit;
mod baddata;
mod cache;
mod cli;
mod crash;
mod dashboard;
mod dig;
mod ec2;
mod events;
mod fastpath;
mod forwarding;
mod harness;
mod incremental;
mod leaks;
mod limits;
mod moto;
mod nsd;
mod proxy;
mod publish;
mod querylog;
mod records;
mod reload;
mod replacements;
mod replicas;
mod secondaries;
mod sockets;
mod stack;
mod structure;
mod transfers;
mod views;
mod wire;
