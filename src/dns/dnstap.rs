//! dnstap: the binary query log NSD, Knot, BIND, Unbound and CoreDNS emit, so the collectors
//! operators already run (`fstrm_capture`, `dnstap-read`, dnscollector, …) read ours too.
//!
//! Two layers, both written out here because each is a page of code and no well-kept crate
//! covers them without a protobuf compiler at build time:
//! - the `dnstap.Dnstap` protobuf message (<https://dnstap.info>, `dnstap.proto`), of which we
//!   emit the fields a server fills: identity, version, type, and the message's type, socket
//!   family and protocol, addresses, ports, times and the DNS messages as sent;
//! - Frame Streams, the framing that carries them over a unix socket: the bidirectional
//!   handshake (READY → ACCEPT → START), then one length-prefixed frame per message, and STOP →
//!   FINISH at the end.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The content type every dnstap reader asks for.
pub(crate) const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

/// `Message.Type` values we emit (dnstap.proto).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A query to an authoritative server, as received.
    AuthQuery = 1,
    /// Its answer, as sent.
    AuthResponse = 2,
    /// A query a client sent us for recursion (forwarded), as received.
    ClientQuery = 5,
    /// Its answer, as sent.
    ClientResponse = 6,
    /// A query we sent an upstream resolver for a forwarded name.
    ForwarderQuery = 7,
    /// The upstream's answer, as received.
    ForwarderResponse = 8,
}

/// One exchange with a client: the query and the answer, each written as its own dnstap
/// message, as NSD and Knot do.
#[derive(Debug)]
pub(crate) struct Exchange<'a> {
    /// Whether we answered it from our data (AUTH_*) or through the upstreams (CLIENT_*).
    pub forwarded: bool,
    /// Over TCP rather than UDP.
    pub tcp: bool,
    /// The client.
    pub client: SocketAddr,
    /// Where the query arrived.
    pub server: SocketAddr,
    /// When the query arrived.
    pub received: SystemTime,
    /// When the answer left.
    pub answered: SystemTime,
    /// The query, as received.
    pub query: &'a [u8],
    /// The answer, as sent.
    pub response: &'a [u8],
}

/// Who we are in every message: `identity` and `version` fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The server's name (default: the host name).
    pub identity: String,
    /// The software (default: `stabledns <version>`).
    pub version: String,
}

impl Exchange<'_> {
    /// Appends the two frames (query, then response) to `out`.
    pub(crate) fn frames(&self, who: &Identity, out: &mut Vec<u8>) {
        let (q, r) = if self.forwarded {
            (Kind::ClientQuery, Kind::ClientResponse)
        } else {
            (Kind::AuthQuery, Kind::AuthResponse)
        };
        let message = |kind, response: bool| Message {
            kind,
            tcp: self.tcp,
            querier: self.client,
            responder: self.server,
            query_time: Some(self.received),
            response_time: response.then_some(self.answered),
            query: (!response).then_some(self.query),
            response: response.then_some(self.response),
        };
        message(q, false).frame(who, out);
        message(r, true).frame(who, out);
    }
}

/// One message sent to or received from an upstream resolver (UDP).
#[derive(Debug)]
pub(crate) struct Upstream<'a> {
    /// Sent by us (FORWARDER_QUERY) or received (FORWARDER_RESPONSE).
    pub sent: bool,
    /// Our socket.
    pub local: SocketAddr,
    /// The upstream.
    pub upstream: SocketAddr,
    /// When it was sent or received.
    pub at: SystemTime,
    /// The DNS message.
    pub bytes: &'a [u8],
}

impl Upstream<'_> {
    /// Appends its frame to `out`.
    pub(crate) fn frame(&self, who: &Identity, out: &mut Vec<u8>) {
        Message {
            kind: if self.sent {
                Kind::ForwarderQuery
            } else {
                Kind::ForwarderResponse
            },
            tcp: false,
            querier: self.local,
            responder: self.upstream,
            query_time: self.sent.then_some(self.at),
            response_time: (!self.sent).then_some(self.at),
            query: self.sent.then_some(self.bytes),
            response: (!self.sent).then_some(self.bytes),
        }
        .frame(who, out);
    }
}

/// One `dnstap.Message`: who asked whom, when, and the DNS message as it went over the wire.
struct Message<'a> {
    kind: Kind,
    tcp: bool,
    /// The side that sent the query (`query_address`).
    querier: SocketAddr,
    /// The side that answers it (`response_address`).
    responder: SocketAddr,
    query_time: Option<SystemTime>,
    response_time: Option<SystemTime>,
    query: Option<&'a [u8]>,
    response: Option<&'a [u8]>,
}

impl Message<'_> {
    fn frame(&self, who: &Identity, out: &mut Vec<u8>) {
        let size = self.query.map_or(0, <[u8]>::len) + self.response.map_or(0, <[u8]>::len);
        let mut message = Vec::with_capacity(64 + size);
        varint_field(&mut message, 1, self.kind as u64);
        let family = match self.querier.ip().to_canonical() {
            IpAddr::V4(_) => 1,
            IpAddr::V6(_) => 2,
        };
        varint_field(&mut message, 2, family);
        varint_field(&mut message, 3, if self.tcp { 2 } else { 1 });
        bytes_field(&mut message, 4, &ip_bytes(self.querier.ip(), family));
        bytes_field(&mut message, 5, &ip_bytes(self.responder.ip(), family));
        varint_field(&mut message, 6, u64::from(self.querier.port()));
        varint_field(&mut message, 7, u64::from(self.responder.port()));
        if let Some(t) = self.query_time {
            let (secs, nanos) = unix(t);
            varint_field(&mut message, 8, secs);
            fixed32_field(&mut message, 9, nanos);
        }
        if let Some(q) = self.query {
            bytes_field(&mut message, 10, q);
        }
        if let Some(t) = self.response_time {
            let (secs, nanos) = unix(t);
            varint_field(&mut message, 12, secs);
            fixed32_field(&mut message, 13, nanos);
        }
        if let Some(r) = self.response {
            bytes_field(&mut message, 14, r);
        }
        let mut dnstap = Vec::with_capacity(message.len() + who.identity.len() + 32);
        bytes_field(&mut dnstap, 1, who.identity.as_bytes());
        bytes_field(&mut dnstap, 2, who.version.as_bytes());
        bytes_field(&mut dnstap, 14, &message);
        varint_field(&mut dnstap, 15, 1); // Dnstap.Type MESSAGE
        let len = u32::try_from(dnstap.len()).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&dnstap);
    }
}

/// An address in the message's family: a v4 client on a dual-stack socket is v4 on both ends.
fn ip_bytes(ip: IpAddr, family: u64) -> Vec<u8> {
    match (ip.to_canonical(), family) {
        (IpAddr::V4(v4), 1) => v4.octets().to_vec(),
        (IpAddr::V4(v4), _) => v4.to_ipv6_mapped().octets().to_vec(),
        (IpAddr::V6(v6), _) => v6.octets().to_vec(),
    }
}

fn unix(t: SystemTime) -> (u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    varint(out, field << 3);
    varint(out, v);
}

fn fixed32_field(out: &mut Vec<u8>, field: u64, v: u32) {
    varint(out, (field << 3) | 5);
    out.extend_from_slice(&v.to_le_bytes());
}

fn bytes_field(out: &mut Vec<u8>, field: u64, v: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// Frame Streams control frame types.
const ACCEPT: u32 = 1;
const START: u32 = 2;
const STOP: u32 = 3;
const READY: u32 = 4;
const FINISH: u32 = 5;
/// The one control field: a content type.
const FIELD_CONTENT_TYPE: u32 = 1;
/// A reader's control frame is a few dozen bytes; anything larger is not one.
const MAX_CONTROL: u32 = 512;

fn control(kind: u32, content_type: bool) -> Vec<u8> {
    let mut body = kind.to_be_bytes().to_vec();
    if content_type {
        body.extend_from_slice(&FIELD_CONTENT_TYPE.to_be_bytes());
        body.extend_from_slice(&(CONTENT_TYPE.len() as u32).to_be_bytes());
        body.extend_from_slice(CONTENT_TYPE);
    }
    let mut frame = 0u32.to_be_bytes().to_vec();
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Reads one control frame and returns its type, checking that any content type it names is
/// ours.
fn read_control(stream: &mut UnixStream) -> io::Result<u32> {
    let mut word = [0u8; 4];
    stream.read_exact(&mut word)?;
    if word != [0; 4] {
        return Err(io::Error::other(
            "the reader sent data, not a control frame",
        ));
    }
    stream.read_exact(&mut word)?;
    let len = u32::from_be_bytes(word);
    if !(4..=MAX_CONTROL).contains(&len) {
        return Err(io::Error::other(format!("a control frame of {len} bytes")));
    }
    let mut body = vec![0u8; len as usize];
    stream.read_exact(&mut body)?;
    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut at = 4;
    while at + 8 <= body.len() {
        let field = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let n = u32::from_be_bytes([body[at + 4], body[at + 5], body[at + 6], body[at + 7]]);
        let value = body.get(at + 8..at + 8 + n as usize).unwrap_or_default();
        if field == FIELD_CONTENT_TYPE && kind == ACCEPT && value != CONTENT_TYPE {
            return Err(io::Error::other(format!(
                "the reader accepts {}, not dnstap",
                String::from_utf8_lossy(value)
            )));
        }
        at += 8 + n as usize;
    }
    Ok(kind)
}

/// A connected, started Frame Streams writer.
pub(crate) struct Writer {
    stream: UnixStream,
}

/// How long the handshake and each write may take: a reader that stops reading must not
/// hold the writer (whose queue then drops, and counts, what it cannot send).
const IO_TIMEOUT: Duration = Duration::from_secs(2);

impl Writer {
    /// Connects to the reader at `path` and does the bidirectional handshake.
    pub(crate) fn connect(path: &Path) -> io::Result<Self> {
        let mut stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        stream.write_all(&control(READY, true))?;
        match read_control(&mut stream)? {
            ACCEPT => {}
            other => {
                return Err(io::Error::other(format!(
                    "the reader answered READY with control frame {other}, not ACCEPT"
                )));
            }
        }
        stream.write_all(&control(START, true))?;
        Ok(Self { stream })
    }

    /// Writes frames made by [`Exchange::frames`].
    pub(crate) fn write(&mut self, frames: &[u8]) -> io::Result<()> {
        self.stream.write_all(frames)
    }

    /// STOP, then waits for the reader's FINISH (briefly), so it has every frame.
    pub(crate) fn finish(mut self) {
        if self.stream.write_all(&control(STOP, false)).is_ok() {
            let _ = read_control(&mut self.stream).map(|k| k == FINISH);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_the_fields_a_reader_expects_in_protobuf_order() {
        let who = Identity {
            identity: "ns1".into(),
            version: "stabledns 1".into(),
        };
        let at = UNIX_EPOCH + Duration::new(1_609_664_398, 355_231_260);
        let e = Exchange {
            forwarded: true,
            tcp: false,
            client: "10.0.0.210:55142".parse().unwrap(),
            server: "10.0.0.210:53".parse().unwrap(),
            received: at,
            answered: at,
            query: b"Q",
            response: b"R",
        };
        let mut out = Vec::new();
        e.frames(&who, &mut out);
        let len = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        let first = &out[4..4 + len];
        // identity, version, then the message: CLIENT_QUERY, INET, UDP, addresses, ports,
        // time, the query; then Dnstap.Type MESSAGE.
        let mut want = vec![10, 3, b'n', b's', b'1', 18, 11];
        want.extend_from_slice(b"stabledns 1");
        let message = [
            &[
                8u8, 5, 16, 1, 24, 1, 34, 4, 10, 0, 0, 210, 42, 4, 10, 0, 0, 210,
            ][..],
            &[48, 230, 174, 3, 56, 53, 64, 142, 143, 198, 255, 5, 77][..],
            &355_231_260u32.to_le_bytes(),
            &[82, 1, b'Q'],
        ]
        .concat();
        want.push(114);
        want.push(message.len() as u8);
        want.extend_from_slice(&message);
        want.extend_from_slice(&[120, 1]);
        assert_eq!(first, &want[..]);
        // The second frame is the response, with its own time and message.
        let second = &out[4 + len + 4..];
        // CLIENT_RESPONSE, then the family.
        assert!(second.windows(3).any(|w| w == [8, 6, 16]));
        assert!(second.ends_with(&[120, 1]));
    }

    #[test]
    fn control_frames_are_escaped_and_carry_the_content_type() {
        let f = control(READY, true);
        assert_eq!(&f[..4], &[0; 4]);
        assert_eq!(
            u32::from_be_bytes(f[4..8].try_into().unwrap()) as usize,
            f.len() - 8
        );
        assert_eq!(&f[8..12], &READY.to_be_bytes());
        assert!(f.ends_with(CONTENT_TYPE));
        assert_eq!(control(STOP, false).len(), 12);
    }
}
