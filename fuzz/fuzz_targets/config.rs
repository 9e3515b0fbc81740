//! A config file from anywhere: it loads or gives an error naming the place, never a crash.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match stabledns::Config::parse(Path::new("/nonexistent/fuzz.toml"), text) {
        Ok(_) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
