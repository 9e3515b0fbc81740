//! Crash safety: kill -9 at random moments while refreshes publish never leaves a state file
//! that cannot be read, and a restart answers the last published names from it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use crate::harness::{dig, root};

const BIN: &str = env!("CARGO_BIN_EXE_stabledns");
const KILLS: usize = 50;

/// The demo fleet with instance 1's Name tag set to `web-<n>`, written atomically.
fn write_fleet(dir: &Path, demo: &serde_json::Value, n: u32) {
    let mut fleet = demo.clone();
    let tags = &mut fleet["Reservations"][0]["Instances"][0]["Tags"];
    for tag in tags.as_array_mut().expect("tags") {
        if tag["Key"] == "Name" {
            tag["Value"] = serde_json::Value::String(format!("web-{n}"));
        }
    }
    let tmp = dir.join(".fleet.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&fleet).expect("json")).expect("write");
    std::fs::rename(&tmp, dir.join("fleet.json")).expect("rename");
}

/// The server; with `log`, its info log piped (to read its address), else no output at all.
fn start(config: &Path, log: bool) -> std::process::Child {
    Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(config)
        // Nothing forwards anywhere but a dead loopback port.
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--upstream", "127.0.0.1:9"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(if log { Stdio::piped() } else { Stdio::null() })
        .spawn()
        .expect("the binary starts")
}

#[test]
fn kill_9_during_refreshes_never_leaves_an_unreadable_state_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo: serde_json::Value = serde_json::from_slice(
        &std::fs::read(root().join("config/demo-instances.json")).expect("demo fleet"),
    )
    .expect("json");
    write_fleet(dir.path(), &demo, 0);
    let state = dir.path().join("state.json");
    let text = std::fs::read_to_string(root().join("config/demo.toml"))
        .expect("demo config")
        .replace("path = \"demo-instances.json\"", "path = \"fleet.json\"")
        .replace("refresh_interval = \"30s\"", "refresh_interval = \"50ms\"")
        .replace(
            "[inventory]\n",
            &format!("[inventory]\nstate_file = \"{}\"\n", state.display()),
        );
    assert!(text.contains("refresh_interval = \"50ms\""));
    let config = dir.path().join("stabledns.toml");
    std::fs::write(&config, text).expect("config");

    // The fleet changes all the time, so nearly every refresh publishes and writes the file.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU32::new(0));
    let changer = {
        let (stop, written, dir, demo) = (
            stop.clone(),
            written.clone(),
            dir.path().to_owned(),
            demo.clone(),
        );
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                write_fleet(&dir, &demo, n);
                written.store(n, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(7));
            }
        })
    };

    let mut serials = Vec::new();
    for round in 0..KILLS {
        let mut child = start(&config, false);
        std::thread::sleep(Duration::from_millis(60 + fastrand::u64(..340)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        match stabledns::state::load(&state) {
            Ok(Some(saved)) => serials.push(saved.serial),
            Ok(None) => assert!(round < 3, "no state file after {round} runs"),
            Err(e) => panic!("kill {round} left an unreadable state file: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    changer.join().expect("changer");
    assert!(serials.len() >= KILLS - 3);
    assert!(
        serials.windows(2).all(|w| w[0] <= w[1]),
        "serials never go back across kills: {serials:?}"
    );
    assert!(written.load(Ordering::Relaxed) > 100);

    // The inventory is gone now: the restarted server answers from the state file alone, the
    // names of the last fleet it published.
    let saved = stabledns::state::load(&state)
        .expect("readable")
        .expect("present");
    let last_name = saved
        .instances
        .iter()
        .find_map(|i| {
            i.tags
                .get("Name")
                .filter(|v| v.starts_with("web-"))
                .map(str::to_owned)
        })
        .expect("the changing name");
    std::fs::remove_file(dir.path().join("fleet.json")).expect("remove the fleet");
    let mut child = start(&config, true);
    let stderr = child.stderr.take().expect("piped");
    let _guard = Killer(child);
    let addr = listening_addr(stderr);
    let out = dig(addr, &["+short", &format!("{last_name}.internal"), "CNAME"]);
    assert_eq!(
        out.trim(),
        "ec2-34-240-10-11.eu-west-1.compute.amazonaws.com.",
        "{last_name} from the state file"
    );
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".state.json.tmp."))
        .collect();
    assert!(
        leftovers.len() <= 1,
        "stale temporary files are cleaned: {leftovers:?}"
    );
}

struct Killer(std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The DNS address from the `listening on UDP and TCP` log line.
fn listening_addr(stderr: std::process::ChildStderr) -> SocketAddr {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(addr) = line.split("local=").nth(1) {
                let _ = tx.send(addr.trim().to_owned());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address")
        .parse()
        .expect("a socket address")
}
