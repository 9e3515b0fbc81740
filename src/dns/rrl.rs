//! Response rate limiting for views that face the outside (NSD's and Knot's RRL, simplified):
//! each client prefix (/24 for IPv4, /56 for IPv6) gets `rate` UDP answers a second; past it,
//! every `slip`-th answer goes out truncated and empty (a real client retries over TCP, which
//! a spoofed source cannot) and the rest are dropped. This blunts reflection and amplification
//! through us without shutting out a real resolver behind a busy prefix.
//!
//! The table is a fixed array of atomic buckets (second, count) indexed by a hash of the
//! prefix: no lock and no allocation per query; prefixes that collide share a budget, which
//! only ever limits more.
//!
//! The tables are runtime state, not zone data: [`Tables`] keeps one per view name beside the
//! handler, so a publish neither resets the counts nor makes the snapshot mutable.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use arc_swap::ArcSwap;

/// One limiter per view name, kept across snapshots.
#[derive(Debug, Default)]
pub(crate) struct Tables(ArcSwap<HashMap<String, Arc<RateLimiter>>>);

impl Tables {
    /// Counts one answer to `client` in `view`, limited to `rate` a second with `slip`. A
    /// view's limiter is made the first time it is asked for (and again when its settings
    /// change): after that this is one lock-free load and one hash lookup.
    pub(crate) fn check(&self, view: &str, rate: u32, slip: u32, client: IpAddr) -> Verdict {
        if let Some(limiter) = self.0.load().get(view).filter(|l| l.is(rate, slip)) {
            return limiter.check(client);
        }
        let fresh = Arc::new(RateLimiter::new(rate, slip));
        let mut installed = fresh.clone();
        self.0.rcu(|tables| {
            let mut tables = HashMap::clone(tables);
            match tables.get(view).filter(|l| l.is(rate, slip)) {
                // Another thread got there first: use its limiter.
                Some(theirs) => installed = theirs.clone(),
                None => {
                    tables.insert(view.to_owned(), fresh.clone());
                    installed = fresh.clone();
                }
            }
            tables
        });
        installed.check(client)
    }
}

/// Buckets per view (512 KiB).
const BUCKETS: usize = 1 << 16;

/// What to do with one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the rate: answer.
    Allow,
    /// Over it: send a truncated empty answer.
    Slip,
    /// Over it: send nothing.
    Drop,
}

/// One view's limiter.
pub(crate) struct RateLimiter {
    rate: u32,
    slip: u32,
    epoch: Instant,
    buckets: Box<[AtomicU64]>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("slip", &self.slip)
            .finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// `rate` answers a second per prefix; every `slip`-th limited one truncated (0: none).
    pub(crate) fn new(rate: u32, slip: u32) -> Self {
        Self {
            rate,
            slip,
            epoch: Instant::now(),
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Whether this limiter has these settings.
    fn is(&self, rate: u32, slip: u32) -> bool {
        self.rate == rate && self.slip == slip
    }

    /// Counts one answer to `client` and says whether it may go.
    pub(crate) fn check(&self, client: IpAddr) -> Verdict {
        let now = u32::try_from(self.epoch.elapsed().as_secs()).unwrap_or(u32::MAX);
        let bucket = &self.buckets[index(client)];
        let mut current = bucket.load(Ordering::Relaxed);
        let count = loop {
            let (second, count) = (current >> 32, current & 0xffff_ffff);
            let next = if second == u64::from(now) {
                (u64::from(now) << 32) | (count + 1).min(0xffff_ffff)
            } else {
                (u64::from(now) << 32) | 1
            };
            match bucket.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break next & 0xffff_ffff,
                Err(seen) => current = seen,
            }
        };
        let over = count.saturating_sub(u64::from(self.rate));
        if over == 0 {
            Verdict::Allow
        } else if self.slip > 0 && over % u64::from(self.slip) == 0 {
            Verdict::Slip
        } else {
            Verdict::Drop
        }
    }
}

/// The bucket of a client's prefix.
fn index(client: IpAddr) -> usize {
    let prefix: u64 = match client.to_canonical() {
        IpAddr::V4(v4) => u64::from(u32::from(v4) >> 8),
        IpAddr::V6(v6) => (u128::from(v6) >> 72) as u64 | (1 << 63),
    };
    // Fibonacci hashing spreads neighbouring prefixes over the table.
    (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 48) as usize % BUCKETS
}

/// A truncated, empty answer to `query` (header and question echoed, QR and TC set), or `None`
/// if the question cannot be found.
pub(crate) fn truncated(query: &[u8], out: &mut Vec<u8>) -> bool {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return false;
    }
    let mut at = 12;
    loop {
        let Some(&len) = query.get(at) else {
            return false;
        };
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return false;
        }
        at += 1 + usize::from(len);
    }
    let end = at + 4;
    if end > query.len() {
        return false;
    }
    // A query with OPT gets OPT back (RFC 6891 7); a malformed one gets nothing here.
    let arcount = u16::from_be_bytes([query[10], query[11]]);
    let opt = match crate::zone::fast::Opt::parse(query, end, arcount) {
        Some(Ok(opt)) => opt,
        Some(Err(_)) | None => return false,
    };
    out.clear();
    out.extend_from_slice(&query[..2]);
    out.push(0x80 | (query[2] & 0x79) | 0x02); // QR, opcode and RD as asked, TC
    out.push(query[3] & 0x10); // CD as asked, RCODE 0
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    out.extend_from_slice(&query[12..end]);
    if let Some(opt) = opt {
        out.extend_from_slice(&opt.answer());
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_rate_every_slip_th_answer_is_truncated_the_rest_dropped() {
        let rrl = RateLimiter::new(5, 2);
        let a: IpAddr = "192.0.2.7".parse().expect("ip");
        let same_prefix: IpAddr = "192.0.2.200".parse().expect("ip");
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        let verdicts: Vec<Verdict> = (0..9)
            .map(|i| rrl.check(if i % 2 == 0 { a } else { same_prefix }))
            .collect();
        assert_eq!(&verdicts[..5], &[Verdict::Allow; 5]);
        assert_eq!(
            &verdicts[5..],
            &[Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        assert_eq!(
            rrl.check(other),
            Verdict::Allow,
            "another prefix has its own budget"
        );
        assert_eq!(RateLimiter::new(1, 0).check(a), Verdict::Allow);
    }

    #[test]
    fn a_truncated_answer_echoes_the_question() {
        let query = [
            0xab, 0xcd, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 0, 0, 1, 0, 1,
        ];
        let mut out = Vec::new();
        assert!(truncated(&query, &mut out));
        assert_eq!(&out[..4], &[0xab, 0xcd, 0x83, 0x00]);
        assert_eq!(&out[12..], &query[12..]);
        assert!(!truncated(&query[..15], &mut out), "a cut question");

        // With OPT (payload 4096, DO): OPT comes back, clamped, DO copied (RFC 6891 7).
        let mut with_opt = query.to_vec();
        with_opt[11] = 1;
        with_opt.extend_from_slice(&[0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0]);
        assert!(truncated(&with_opt, &mut out));
        assert_eq!(&out[10..12], &[0, 1], "ARCOUNT");
        assert_eq!(
            &out[out.len() - 11..],
            &[0, 0, 41, 0x04, 0xd0, 0, 0, 0x80, 0, 0, 0]
        );
        // A malformed OPT (an option past its RDATA) gets no slip answer.
        let mut bad = with_opt.clone();
        let at = bad.len() - 2;
        bad[at..].copy_from_slice(&[0, 4]);
        bad.extend_from_slice(&[0, 10, 0, 10]);
        assert!(!truncated(&bad, &mut out));
    }
}
