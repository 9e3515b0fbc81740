//! The whole packet → response path: the fast path's parser and table, then the hickory
//! handler, for a datagram from a client in one of the demo's three views (the first byte
//! picks which). Beyond not crashing: every answer decodes, and no answer to the outside view
//! carries a private address.
#![no_main]

#[path = "common.rs"]
mod common;

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use hickory_proto::serialize::binary::BinDecodable;
use libfuzzer_sys::fuzz_target;
use stabledns::dns::Handler;
use stabledns::zone::{Snapshot, SnapshotCell};

struct World {
    runtime: tokio::runtime::Runtime,
    handler: Handler,
    cell: SnapshotCell,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let config = common::demo_config();
        let fleet = common::demo_fleet();
        let snapshot: Snapshot =
            stabledns::refresh::build_snapshot(config, &fleet, 2_000_000_000, &Default::default());
        let cell = SnapshotCell::default();
        cell.store(snapshot);
        World {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            handler: Handler::new(cell.clone()),
            cell,
        }
    })
}

fn is_private(ip: IpAddr) -> bool {
    !stabledns::zone::is_public(ip)
}

/// Decodes an answer; for the outside client, no private address may be in it.
fn check(bytes: &[u8], outside: bool) {
    let message = Message::from_bytes(bytes).expect("every answer decodes");
    if outside {
        for r in message
            .answers
            .iter()
            .chain(&message.authorities)
            .chain(&message.additionals)
        {
            let leaked = match &r.data {
                RData::A(a) => is_private(IpAddr::V4(a.0)),
                RData::AAAA(a) => is_private(IpAddr::V6(a.0)),
                _ => false,
            };
            assert!(!leaked, "a private address to an outside client: {r}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&who, packet)) = data.split_first() else {
        return;
    };
    let client: IpAddr = match who % 4 {
        0 => [127, 0, 0, 1].into(),
        1 => [127, 0, 0, 2].into(),
        2 => [127, 0, 0, 3].into(),
        _ => [198, 51, 100, 7].into(),
    };
    let outside = who % 4 >= 2;
    let w = world();
    let snapshot = w.cell.load().expect("published");
    let mut out = Vec::new();
    if stabledns::zone::fast::answer(&snapshot, client, packet, &mut out, false).is_some() {
        check(&out, outside);
    }
    let src = SocketAddr::new(client, 40000);
    let answers = w.runtime.block_on(stabledns::dns::udp::answer_datagram(
        &w.handler,
        packet.to_vec(),
        src,
    ));
    for answer in answers {
        check(&answer, outside);
    }
});
