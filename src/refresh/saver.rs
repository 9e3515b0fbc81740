//! The state file, written beside the refresh loop rather than in it: a publish hands the new
//! state over and goes on. At 100,000 instances the file is about a quarter of a second of
//! JSON, which the next EC2 event used to wait for before it could be applied. One write at a
//! time, the newest state next, and at most one every [`SPACING`]: a state that a newer one
//! replaced before its turn is never written. Shutdown waits for the last one.

use crate::inventory::Fleet;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;
use tracing::error;

use crate::naming::Slots;
use crate::state;

/// The least time between two writes. The file is a cache for restarts (the next start serves
/// it, then reads the fleet): a crash loses at most this much of it, while events one after
/// another at 100,000 instances would otherwise write a quarter of a second of JSON each.
pub(super) const SPACING: std::time::Duration = std::time::Duration::from_secs(2);

/// One state to write.
#[derive(Debug)]
pub(super) struct Pending {
    /// Its place in the order of states handed over.
    pub(super) seq: u64,
    pub(super) path: PathBuf,
    pub(super) serial: u32,
    pub(super) instances: Fleet,
    pub(super) slots: Slots,
    pub(super) departed: Vec<state::Departed>,
}

/// The writer task's two ends.
#[derive(Debug)]
pub(super) struct Saver {
    next: watch::Sender<Option<Arc<Pending>>>,
    written: watch::Receiver<u64>,
    seq: u64,
    /// Cuts the pause between writes short: someone waits for the newest.
    hurry: Arc<tokio::sync::Notify>,
}

impl Saver {
    /// Starts the writer; it ends when this is dropped.
    pub(super) fn start() -> Self {
        let (next, mut pending) = watch::channel::<Option<Arc<Pending>>>(None);
        let (done, written) = watch::channel(0u64);
        let hurry = Arc::new(tokio::sync::Notify::new());
        let hurried = hurry.clone();
        tokio::spawn(async move {
            while pending.changed().await.is_ok() {
                let Some(p) = pending.borrow_and_update().clone() else {
                    continue;
                };
                let seq = p.seq;
                let result = tokio::task::spawn_blocking(move || {
                    state::save(&p.path, p.serial, &p.instances, &p.slots, &p.departed)
                })
                .await;
                match result {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => {
                        error!("{e}; the next start cannot serve before the API answers");
                    }
                    Err(e) => error!("failed to write the state file: {e}"),
                }
                let _ = done.send(seq);
                // A state handed over meanwhile is written after the pause, the newest then.
                tokio::select! {
                    () = tokio::time::sleep(SPACING) => {}
                    () = hurried.notified() => {}
                }
            }
        });
        Self {
            next,
            written,
            seq: 0,
            hurry,
        }
    }

    /// Hands a state over, to be written after the one being written now; the order it
    /// takes, for [`Saver::flush`].
    pub(super) fn save(&mut self, mut pending: Pending) -> u64 {
        self.seq += 1;
        pending.seq = self.seq;
        self.next.send_replace(Some(Arc::new(pending)));
        self.seq
    }

    /// Waits until the state `seq`, or a newer one, is written (or failed to be).
    pub(super) async fn flush(&mut self, seq: u64) {
        self.hurry.notify_one();
        let _ = self.written.wait_for(|w| *w >= seq).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// States handed over faster than they are written: the file ends with the newest, and
    /// flush returns only once it is there.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_newest_state_is_the_one_left_and_flush_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        let mut saver = Saver::start();
        let mut last = 0;
        for serial in 1..=20 {
            last = saver.save(Pending {
                seq: 0,
                path: path.clone(),
                serial,
                instances: Arc::from([]),
                slots: Slots::new(),
                departed: Vec::new(),
            });
        }
        saver.flush(last).await;
        let saved = state::load(&path).expect("reads").expect("written");
        assert_eq!(saved.serial, 20);
    }
}
