//! The query log: a line per answer (text or JSON, as every other log line), and dnstap frames
//! to a collector's unix socket.
//!
//! Both are written by a thread of their own. A serving thread only decides whether an answer
//! is logged and, if so, copies the query and the answer into a bounded queue; with both off it
//! does one atomic load and nothing else. A slow disk or a stalled collector costs log entries,
//! which are counted, never a slower answer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use tracing::{info, warn};

pub use super::dnstap::Identity;
use super::dnstap::{Exchange, Upstream as Frame, Writer};

/// Which answers get a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Queries {
    /// None.
    #[default]
    Off = 0,
    /// Every answer.
    All = 1,
    /// Answers whose RCODE is neither NOERROR nor NXDOMAIN: what went wrong.
    Errors = 2,
}

/// `[log]`: what the query log writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryLogConfig {
    /// Which answers get a line.
    pub queries: Queries,
    /// One line for every `sample` answers that `queries` selects (1: each).
    pub sample: u32,
    /// Where dnstap frames go, when anywhere.
    pub dnstap: Option<DnstapConfig>,
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        Self {
            queries: Queries::Off,
            sample: 1,
            dnstap: None,
        }
    }
}

/// A dnstap collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnstapConfig {
    /// Its Frame Streams unix socket (the collector listens, we connect).
    pub socket: PathBuf,
    /// What each message says of us.
    pub identity: Identity,
}

/// How an answer was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// From precomputed bytes on the UDP thread.
    Fast,
    /// Truncated by the rate limit (RRL slip), on the UDP thread.
    Slip,
    /// By the handler, from the snapshot (or refused, or an error).
    Handler,
    /// By the handler, through the upstream resolvers.
    Forwarded,
    /// A forwarded answer from the cache, on the UDP thread.
    Cached,
}

impl Path {
    fn as_str(self) -> &'static str {
        match self {
            Path::Fast => "fast",
            Path::Slip => "slip",
            Path::Handler => "handler",
            Path::Forwarded => "forwarded",
            Path::Cached => "cached",
        }
    }
}

/// One answer, copied for the writer thread.
#[derive(Debug)]
pub(crate) struct Answered {
    pub received: SystemTime,
    /// From the query's arrival (or decoding) to its answer's encoding.
    pub latency: Duration,
    pub client: SocketAddr,
    pub server: SocketAddr,
    pub tcp: bool,
    pub path: Path,
    pub view: Option<String>,
    pub query: Vec<u8>,
    pub response: Vec<u8>,
}

/// An answer and where it goes: a line (sampled in) and dnstap frames.
#[derive(Debug)]
struct Entry {
    answer: Answered,
    line: bool,
    tap: bool,
}

/// A message exchanged with an upstream resolver, for dnstap only.
#[derive(Debug)]
struct Upstream {
    sent: bool,
    local: SocketAddr,
    upstream: SocketAddr,
    at: SystemTime,
    bytes: Vec<u8>,
}

enum Msg {
    Entry(Box<Entry>),
    Upstream(Box<Upstream>),
    Stop,
}

/// What the query log did, for the metrics.
#[derive(Debug, Default)]
pub struct QueryLogStats {
    /// Lines written.
    pub lines: AtomicU64,
    /// Lines lost to a full queue.
    pub lines_dropped: AtomicU64,
    /// dnstap messages written.
    pub dnstap_sent: AtomicU64,
    /// dnstap messages lost: a full queue, or no collector connected.
    pub dnstap_dropped: AtomicU64,
    /// Whether a collector is connected now.
    pub dnstap_connected: AtomicBool,
}

impl crate::telemetry::Report for QueryLogStats {
    fn report(&self, out: &mut crate::telemetry::Families) {
        use crate::telemetry::Kind;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.by(
            Kind::Counter,
            "stabledns_query_log_lines",
            "Query log lines, by outcome (dropped: the writer's queue was full)",
            "outcome",
            [
                ("written", load(&self.lines)),
                ("dropped", load(&self.lines_dropped)),
            ],
        );
        out.by(
            Kind::Counter,
            "stabledns_dnstap_messages",
            "dnstap messages, by outcome (dropped: a full queue or no collector)",
            "outcome",
            [
                ("sent", load(&self.dnstap_sent)),
                ("dropped", load(&self.dnstap_dropped)),
            ],
        );
        out.gauge(
            "stabledns_dnstap_connected",
            "1 while a dnstap collector is connected",
            u64::from(self.dnstap_connected.load(Ordering::Relaxed)),
        );
    }
}

/// Entries waiting for the writer; past this, new ones are dropped and counted.
const QUEUE: usize = 16_384;
/// How often a lost collector is tried again.
const RECONNECT: Duration = Duration::from_secs(2);

/// The query log, shared by every serving thread.
pub struct QueryLog {
    /// [`Queries`] as a number: reloads change it.
    lines: AtomicU8,
    sample: AtomicU32,
    /// Answers selected so far, for sampling.
    seen: AtomicU64,
    /// dnstap is configured (fixed until restart: the socket is the writer's).
    tap: bool,
    /// The configuration it started with, for reloads to compare.
    dnstap: Option<DnstapConfig>,
    tx: SyncSender<Msg>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Counters.
    pub stats: Arc<QueryLogStats>,
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLog")
            .field("lines", &self.lines)
            .field("dnstap", &self.dnstap)
            .finish_non_exhaustive()
    }
}

impl QueryLog {
    /// Starts the writer thread for `config`.
    pub fn start(config: &QueryLogConfig) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let stats = Arc::new(QueryLogStats::default());
        let (dnstap, s) = (config.dnstap.clone(), stats.clone());
        let writer = std::thread::Builder::new()
            .name("query-log".into())
            .spawn(move || write_loop(&rx, dnstap.as_ref(), &s))?;
        let log = Self {
            lines: AtomicU8::new(0),
            sample: AtomicU32::new(1),
            seen: AtomicU64::new(0),
            tap: config.dnstap.is_some(),
            dnstap: config.dnstap.clone(),
            tx,
            writer: Mutex::new(Some(writer)),
            stats,
        };
        log.set(config);
        Ok(log)
    }

    /// Applies a reload's `queries` and `sample` (its dnstap settings need a restart:
    /// [`Config::restart_needed`](crate::Config::restart_needed)).
    pub fn set(&self, config: &QueryLogConfig) {
        self.lines.store(config.queries as u8, Ordering::Relaxed);
        self.sample.store(config.sample.max(1), Ordering::Relaxed);
    }

    /// Whether anything is logged at all: the one check a serving thread makes when off.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.tap || self.lines.load(Ordering::Relaxed) != 0
    }

    /// Logs an answer with RCODE `rcode` as the settings say; `answer` copies it only when it
    /// is logged at all.
    pub(crate) fn offer(&self, rcode: u16, answer: impl FnOnce() -> Answered) {
        let (line, tap) = self.wants(rcode);
        if line || tap {
            self.push(Entry {
                answer: answer(),
                line,
                tap,
            });
        }
    }

    /// For an answer with RCODE `rcode`: whether it gets a line and dnstap frames.
    fn wants(&self, rcode: u16) -> (bool, bool) {
        let selected = match self.lines.load(Ordering::Relaxed) {
            1 => true,
            2 => !matches!(rcode, 0 | 3),
            _ => false,
        };
        let line = selected && {
            let sample = u64::from(self.sample.load(Ordering::Relaxed).max(1));
            self.seen
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(sample)
        };
        (line, self.tap)
    }

    /// A message sent to (`sent`) or received from an upstream resolver: a FORWARDER_* dnstap
    /// message when dnstap is on.
    pub(crate) fn upstream(
        &self,
        sent: bool,
        local: SocketAddr,
        upstream: SocketAddr,
        bytes: &[u8],
    ) {
        if !self.tap {
            return;
        }
        let msg = Msg::Upstream(Box::new(Upstream {
            sent,
            local,
            upstream,
            at: SystemTime::now(),
            bytes: bytes.to_vec(),
        }));
        if self.tx.try_send(msg).is_err() {
            self.stats.dnstap_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queues an entry for the writer, or counts it lost.
    fn push(&self, entry: Entry) {
        let (line, tap) = (entry.line, entry.tap);
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.tx.try_send(Msg::Entry(Box::new(entry)))
        {
            if line {
                self.stats.lines_dropped.fetch_add(1, Ordering::Relaxed);
            }
            if tap {
                self.stats.dnstap_dropped.fetch_add(2, Ordering::Relaxed);
            }
        }
    }

    /// Writes what is queued, says STOP to the collector, and ends the writer thread.
    pub fn close(&self) {
        let handle = self.writer.lock().ok().and_then(|mut w| w.take());
        if let Some(handle) = handle {
            let _ = self.tx.send(Msg::Stop);
            let _ = handle.join();
        }
    }
}

/// The writer thread: lines through `tracing`, frames to the collector, until [`Msg::Stop`].
fn write_loop(rx: &Receiver<Msg>, dnstap: Option<&DnstapConfig>, stats: &QueryLogStats) {
    let mut tap = dnstap.map(Collector::new);
    let mut frames = Vec::new();
    loop {
        let first = match rx.recv_timeout(RECONNECT) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        // One write to the collector per batch of what is queued.
        let mut stop = false;
        for msg in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            let (entry, wants_line, wants_tap) = match msg {
                Msg::Entry(e) => (e.answer, e.line, e.tap),
                Msg::Upstream(u) => {
                    if let Some(c) = &tap {
                        Frame {
                            sent: u.sent,
                            local: u.local,
                            upstream: u.upstream,
                            at: u.at,
                            bytes: &u.bytes,
                        }
                        .frame(&c.config.identity, &mut frames);
                    }
                    continue;
                }
                Msg::Stop => {
                    stop = true;
                    break;
                }
            };
            if wants_line {
                line(&entry);
                stats.lines.fetch_add(1, Ordering::Relaxed);
            }
            if let Some(c) = tap.as_ref().filter(|_| wants_tap) {
                Exchange {
                    forwarded: entry.path == Path::Forwarded,
                    tcp: entry.tcp,
                    client: entry.client,
                    server: entry.server,
                    received: entry.received,
                    answered: entry.received + entry.latency,
                    query: &entry.query,
                    response: &entry.response,
                }
                .frames(&c.config.identity, &mut frames);
            }
            if frames.len() >= 64 << 10 {
                break;
            }
        }
        if let Some(c) = tap.as_mut() {
            c.send(&mut frames, stats);
        }
        if stop {
            break;
        }
    }
    if let Some(c) = tap {
        c.finish();
    }
}

/// The dnstap collector's connection, tried again every [`RECONNECT`] while it is down.
struct Collector<'a> {
    config: &'a DnstapConfig,
    writer: Option<Writer>,
    next_try: Instant,
    /// Whether the last attempt failed, so a collector that stays away is logged once.
    failing: bool,
}

impl<'a> Collector<'a> {
    fn new(config: &'a DnstapConfig) -> Self {
        Self {
            config,
            writer: None,
            next_try: Instant::now(),
            failing: false,
        }
    }

    /// Sends `frames` (two per exchange) and empties it; counted lost when no collector is
    /// there.
    fn send(&mut self, frames: &mut Vec<u8>, stats: &QueryLogStats) {
        let count = count_frames(frames);
        if self.writer.is_none() && Instant::now() >= self.next_try {
            self.connect(stats);
        }
        let sent = match &mut self.writer {
            Some(w) if !frames.is_empty() => match w.write(frames) {
                Ok(()) => true,
                Err(error) => {
                    warn!(socket = %self.config.socket.display(), %error, "dnstap: lost the collector; reconnecting");
                    self.writer = None;
                    self.next_try = Instant::now() + RECONNECT;
                    stats.dnstap_connected.store(false, Ordering::Relaxed);
                    false
                }
            },
            _ => frames.is_empty(),
        };
        let counter = if sent {
            &stats.dnstap_sent
        } else {
            &stats.dnstap_dropped
        };
        counter.fetch_add(count, Ordering::Relaxed);
        frames.clear();
    }

    fn connect(&mut self, stats: &QueryLogStats) {
        let socket = &self.config.socket;
        match Writer::connect(socket) {
            Ok(w) => {
                info!(socket = %socket.display(), "dnstap: connected to the collector");
                self.writer = Some(w);
                self.failing = false;
                stats.dnstap_connected.store(true, Ordering::Relaxed);
            }
            Err(error) => {
                if !self.failing {
                    warn!(socket = %socket.display(), %error, "dnstap: cannot reach the collector; trying again every {RECONNECT:?}, dropping messages meanwhile");
                }
                self.failing = true;
                self.next_try = Instant::now() + RECONNECT;
            }
        }
    }

    fn finish(self) {
        if let Some(w) = self.writer {
            w.finish();
        }
    }
}

fn count_frames(frames: &[u8]) -> u64 {
    let mut at = 0;
    let mut n = 0;
    while let Some(len) = frames.get(at..at + 4) {
        at += 4 + u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        n += 1;
    }
    n
}

/// One line: the question from the answer (or the query, for an answer without one), the
/// header's RCODE and flags.
fn line(e: &Answered) {
    let response = Message::from_vec(&e.response).ok();
    let question = response
        .as_ref()
        .and_then(|m| m.queries.first().cloned())
        .or_else(|| {
            Message::from_vec(&e.query)
                .ok()
                .and_then(|m| m.queries.first().cloned())
        });
    let (qname, qtype) = question.map_or_else(
        || ("-".to_owned(), "-".to_owned()),
        |q| (q.name().to_string(), type_text(q.query_type())),
    );
    let (rcode, flags) = response.as_ref().map_or_else(
        || {
            (
                rcode_text(u16::from(e.response.get(3).map_or(0, |b| b & 0x0f))),
                String::new(),
            )
        },
        |m| {
            let h = &m.metadata;
            let flags = [
                ("qr", true),
                ("aa", h.authoritative),
                ("tc", h.truncation),
                ("rd", h.recursion_desired),
                ("ra", h.recursion_available),
                ("ad", h.authentic_data),
                ("cd", h.checking_disabled),
            ]
            .iter()
            .filter(|(_, on)| *on)
            .map(|(f, _)| *f)
            .collect::<Vec<_>>()
            .join(",");
            (rcode_text(h.response_code.into()), flags)
        },
    );
    info!(
        target: "stabledns::query",
        client = %e.client,
        proto = %if e.tcp { "tcp" } else { "udp" },
        view = %e.view.as_deref().unwrap_or("-"),
        qname = %qname,
        qtype = %qtype,
        rcode = %rcode,
        flags = %flags,
        size = e.response.len(),
        path = %e.path.as_str(),
        latency_us = u64::try_from(e.latency.as_micros()).unwrap_or(u64::MAX),
        "query"
    );
}

/// As dig and the RFCs write them.
fn rcode_text(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        9 => "NOTAUTH".into(),
        16 => "BADVERS".into(),
        n => format!("RCODE{n}"),
    }
}

fn type_text(t: RecordType) -> String {
    match t {
        RecordType::Unknown(n) => format!("TYPE{n}"),
        t => t.to_string(),
    }
}
