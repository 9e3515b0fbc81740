//! NOTIFY (RFC 1996): tells each view's secondaries that its zones have a new serial, so they
//! transfer now instead of at their next SOA refresh.
//!
//! One task per (zone, secondary), over UDP from the view's `notify_source` (BIND and Knot
//! ignore a NOTIFY from any address but their primary's), retried with a doubling timeout
//! until the secondary acknowledges, the attempts run out (about half a minute in all), or a
//! newer serial is published (whose own NOTIFY supersedes it); the SOA refresh timer stays the
//! secondary's fallback.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::net::UdpSocket;
use tracing::{debug, info, warn};

use super::Metrics;
use crate::zone::{Snapshot, SnapshotCell};

/// Attempts per secondary; the first waits [`FIRST_WAIT`], each next one twice as long.
const ATTEMPTS: u32 = 5;
const FIRST_WAIT: Duration = Duration::from_secs(1);

/// Sends NOTIFY for every zone of every view that lists secondaries. Returns at once; `cell`
/// tells the tasks when a newer serial has been published.
pub(crate) fn announce(snapshot: &Snapshot, metrics: &Arc<Metrics>, cell: &SnapshotCell) {
    for view in &snapshot.views {
        if view.policy.notify.is_empty() {
            continue;
        }
        for apex in view.zone_apexes() {
            let Some(soa) = view.soa(apex).cloned() else {
                continue;
            };
            for &target in &view.policy.notify {
                let (soa, metrics, cell) = (soa.clone(), metrics.clone(), cell.clone());
                let (name, source) = (view.name.clone(), view.policy.notify_source);
                let zone = Name::from(apex);
                tokio::spawn(async move {
                    let serial = serial_of(&soa);
                    let current = || cell.load().is_some_and(|s| s.serial == serial);
                    let outcome = match notify(&zone, &soa, source, target, current).await {
                        Ok(()) => {
                            info!(%zone, %target, serial, "NOTIFY acknowledged");
                            "acked"
                        }
                        Err(Failed::Superseded) => {
                            debug!(%zone, %target, serial, "NOTIFY superseded by a newer serial");
                            "superseded"
                        }
                        Err(Failed::Other(why)) => {
                            warn!(%zone, %target, "NOTIFY failed: {why}; the secondary will notice at its next SOA refresh");
                            "failed"
                        }
                    };
                    metrics.count_notify(&name, outcome);
                });
            }
        }
    }
}

fn serial_of(soa: &Record) -> u32 {
    match &soa.data {
        hickory_proto::rr::RData::SOA(s) => s.serial,
        _ => 0,
    }
}

/// Why a NOTIFY exchange ended unacknowledged.
enum Failed {
    /// A newer serial was published while it was retried.
    Superseded,
    /// No answer, an error answer, or a socket error.
    Other(String),
}

impl From<String> for Failed {
    fn from(why: String) -> Self {
        Self::Other(why)
    }
}

/// One NOTIFY exchange from `source`, with retries while `current()` says its serial is still
/// the published one.
async fn notify(
    zone: &Name,
    soa: &Record,
    source: Option<IpAddr>,
    target: SocketAddr,
    current: impl Fn() -> bool,
) -> Result<(), Failed> {
    let local: SocketAddr = match source {
        Some(ip) => (ip, 0).into(),
        None if target.is_ipv4() => (Ipv4Addr::UNSPECIFIED, 0).into(),
        None => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("cannot send from {local}: {e}"))?;
    let id: u16 = fastrand::u16(..);
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.op_code = OpCode::Notify;
    message.metadata.authoritative = true;
    message.metadata.recursion_desired = false;
    message.add_query(Query::query(zone.clone(), RecordType::SOA));
    message.answers.push(soa.clone());
    let bytes = message.to_bytes().map_err(|e| e.to_string())?;
    let mut wait = FIRST_WAIT;
    let mut buf = [0u8; 4096];
    for attempt in 1..=ATTEMPTS {
        if !current() {
            return Err(Failed::Superseded);
        }
        socket
            .send_to(&bytes, target)
            .await
            .map_err(|e| e.to_string())?;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = received else {
                break; // timed out (or a socket error): send again
            };
            if from != target {
                continue;
            }
            let Ok(reply) = Message::from_bytes(&buf[..n]) else {
                continue;
            };
            if reply.metadata.id != id
                || reply.metadata.message_type != MessageType::Response
                || reply.metadata.op_code != OpCode::Notify
            {
                continue;
            }
            return match reply.metadata.response_code {
                ResponseCode::NoError => Ok(()),
                rcode => Err(format!("the secondary answered {rcode}").into()),
            };
        }
        debug!(%zone, %target, attempt, "no NOTIFY answer yet");
        wait *= 2;
    }
    Err(format!("no answer after {ATTEMPTS} attempts").into())
}
