//! describe-instances JSON from anywhere: parsing it never crashes, and whatever parses is
//! named and built into a snapshot (tags, groups and addresses all come from the input).
#![no_main]

#[path = "common.rs"]
mod common;

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Past a few instances a bigger input only repeats the same code, slower.
    if data.len() > 32 * 1024 {
        return;
    }
    let Ok(fetched) = stabledns::inventory::file::parse(Path::new("fuzz.json"), data, None) else {
        return;
    };
    let fleet = stabledns::inventory::fleet(fetched.instances.into_iter().take(16));
    let snapshot =
        stabledns::refresh::build_snapshot(common::demo_config(), &fleet, 1, &Default::default());
    for view in &snapshot.views {
        for apex in view.zone_apexes() {
            let _ = view.zone_file(Some(apex));
        }
    }
});
