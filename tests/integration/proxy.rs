//! A small fault-injecting HTTP proxy between stabledns and moto.
//!
//! It forwards each request to moto (one request per connection) unless told to fail it: a 500,
//! throttling, a connection that hangs, an empty but successful fleet, or a failure of every
//! page after the first. It also paginates DescribeInstances, which moto does not (it ignores
//! MaxResults): it asks moto for the whole fleet and hands it out in pages of whole
//! reservations with a NextToken. moto reports every running instance's status as ok, so the
//! proxy also rewrites DescribeInstanceStatus to call the instances it is told of impaired.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Forward (and paginate).
    Pass,
    /// HTTP 500 InternalError.
    ServerError,
    /// HTTP 503 RequestLimitExceeded.
    Throttle,
    /// Accept and never answer.
    Hang,
    /// A successful DescribeInstances with no reservations.
    Empty,
    /// The first page forwards; any request with a NextToken gets a 500.
    FailLaterPages,
    /// 200 OK whose body is not XML.
    Garbage,
    /// moto's answer cut in half (with a matching length: the XML just ends).
    Truncated,
    /// moto's answer without this instance's `instanceId` element.
    StripInstanceId(String),
}

/// A Route 53 answer the proxy gives instead of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum R53Fault {
    /// 400 Throttling.
    Throttling,
    /// 400 PriorRequestNotComplete.
    PriorRequestNotComplete,
    /// 500 InternalFailure.
    ServerError,
}

struct Shared {
    mode: Mutex<Mode>,
    upstream: String,
    describe_calls: AtomicU64,
    /// Answers for the next ChangeResourceRecordSets calls, in order.
    r53_script: Mutex<std::collections::VecDeque<R53Fault>>,
    /// A change batch naming this record set is refused as InvalidChangeBatch.
    r53_reject: Mutex<Option<String>>,
    /// Route 53's rule that a DELETE must match the record set exactly, which moto lacks (it
    /// deletes whatever it is given): a batch with a DELETE that does not is refused whole.
    r53_exact_deletes: std::sync::atomic::AtomicBool,
    /// ChangeResourceRecordSets calls seen.
    r53_changes: AtomicU64,
    /// Instances whose instance status DescribeInstanceStatus answers as impaired.
    impaired: Mutex<Vec<String>>,
    /// When each Route 53 request arrived, and its path.
    r53_calls: Mutex<Vec<(std::time::Instant, String)>>,
    /// The record quota GetHostedZoneLimit answers with (moto has no such call).
    r53_record_limit: Mutex<Option<u64>>,
    /// ChangeResourceRecordSets calls are accepted and never answered (nor forwarded).
    r53_hold: std::sync::atomic::AtomicBool,
}

/// A running proxy; its task ends with the test's runtime.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Starts a proxy in front of `moto_url` (`http://127.0.0.1:PORT`).
    pub async fn start(moto_url: &str) -> Self {
        let upstream = moto_url
            .strip_prefix("http://")
            .expect("http url")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Pass),
            upstream,
            describe_calls: AtomicU64::new(0),
            r53_script: Mutex::new(Default::default()),
            r53_reject: Mutex::new(None),
            r53_exact_deletes: std::sync::atomic::AtomicBool::new(false),
            r53_changes: AtomicU64::new(0),
            impaired: Mutex::new(Vec::new()),
            r53_calls: Mutex::new(Vec::new()),
            r53_record_limit: Mutex::new(None),
            r53_hold: std::sync::atomic::AtomicBool::new(false),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, s.clone()));
            }
        });
        Self { url, shared }
    }

    /// Switches what the next requests get.
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    /// Route 53: the next ChangeResourceRecordSets calls get these answers, in order.
    pub fn r53_faults(&self, faults: &[R53Fault]) {
        (self.shared.r53_script.lock().expect("script lock")).extend(faults.iter().copied());
    }

    /// Route 53: every change batch with a record set named `name` is refused as invalid.
    pub fn r53_reject(&self, name: &str) {
        *self.shared.r53_reject.lock().expect("reject lock") = Some(name.to_owned());
    }

    /// Plays Route 53's exact-match DELETE rule from now on: a change batch holding a DELETE
    /// whose values are not the zone's current ones is refused whole, as InvalidChangeBatch.
    pub fn r53_exact_deletes(&self) {
        (self.shared.r53_exact_deletes).store(true, Ordering::Relaxed);
    }

    /// ChangeResourceRecordSets calls seen (faults included).
    pub fn r53_changes(&self) -> u64 {
        self.shared.r53_changes.load(Ordering::Relaxed)
    }

    /// DescribeInstanceStatus answers call these instances impaired (and no others).
    pub fn impaired(&self, ids: &[&str]) {
        *self.shared.impaired.lock().expect("impaired lock") =
            ids.iter().map(|s| (*s).to_owned()).collect();
    }

    /// DescribeInstances requests seen (each page is one).
    pub fn describe_calls(&self) -> u64 {
        self.shared.describe_calls.load(Ordering::Relaxed)
    }

    /// Holds every ChangeResourceRecordSets call from now on (`true`): counted, never
    /// answered, never applied; `false` lets the next ones through.
    pub fn r53_hold(&self, hold: bool) {
        self.shared.r53_hold.store(hold, Ordering::Relaxed);
    }

    /// Answers GetHostedZoneLimit with this quota of record sets for every zone.
    pub fn r53_record_limit(&self, limit: u64) {
        *self.shared.r53_record_limit.lock().expect("limit lock") = Some(limit);
    }

    /// Every Route 53 request so far, whichever zone: when it arrived, and its path.
    pub fn r53_calls(&self) -> Vec<(std::time::Instant, String)> {
        self.shared.r53_calls.lock().expect("calls lock").clone()
    }
}

struct Request {
    head: String,
    body: String,
}

async fn read_request(conn: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length = header(&head, "content-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).into_owned();
    Some(Request { head, body })
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn param<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

async fn respond(conn: &mut TcpStream, status: &str, body: &str) {
    let msg = format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(msg.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Route 53's error document (REST-XML).
fn r53_error_xml(code: &str, message: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\">\
         <Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>\
         <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    )
}

/// The DELETEs of a change batch document: (name, type, values sorted).
fn deletes(body: &str) -> Vec<(String, String, Vec<String>)> {
    let tag = |text: &str, name: &str| -> Option<String> {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].to_owned())
    };
    body.split("<Change>")
        .skip(1)
        .filter(|c| c.contains("<Action>DELETE</Action>"))
        .filter_map(|c| {
            let mut values: Vec<String> = (c.split("<Value>").skip(1))
                .filter_map(|v| v.split_once("</Value>").map(|(v, _)| v.to_owned()))
                .collect();
            values.sort();
            Some((tag(c, "Name")?, tag(c, "Type")?, values))
        })
        .collect()
}

/// The values of record set (`name`, `rtype`) in the zone at `path` (`/2013-04-01/hostedzone/
/// ID/rrset`), as moto holds them; `None` when there is no such set. `auth` is the change's
/// own Authorization header: moto tells services apart by the signature's scope.
async fn current_values(
    upstream: &str,
    (path, auth): (&str, &str),
    name: &str,
    rtype: &str,
) -> Option<Vec<String>> {
    let path = path.trim_end_matches('/');
    let request = format!(
        "GET {path}?name={name}&type={rtype}&maxitems=1 HTTP/1.1\r\nhost: {upstream}\r\n\
         authorization: {auth}\r\nconnection: close\r\n\r\n"
    );
    let mut up = TcpStream::connect(upstream).await.ok()?;
    up.write_all(request.as_bytes()).await.ok()?;
    let mut response = Vec::new();
    up.read_to_end(&mut response).await.ok()?;
    let text = String::from_utf8_lossy(&response).into_owned();
    let set = text.split("<ResourceRecordSet>").nth(1)?;
    let same = set.contains(&format!("<Name>{name}</Name>"))
        && set.contains(&format!("<Type>{rtype}</Type>"));
    if !same {
        return None;
    }
    let mut values: Vec<String> = (set.split("<Value>").skip(1))
        .filter_map(|v| v.split_once("</Value>").map(|(v, _)| v.to_owned()))
        .collect();
    values.sort();
    Some(values)
}

/// Route 53's answer to a batch whose DELETE does not match the zone, if this one has one.
async fn stale_delete(req: &Request, shared: &Shared) -> Option<String> {
    if !shared.r53_exact_deletes.load(Ordering::Relaxed) {
        return None;
    }
    let line = req.head.lines().next().unwrap_or_default();
    let path = line.split(' ').nth(1)?;
    if !(line.starts_with("POST ") && path.contains("/rrset")) {
        return None;
    }
    for (name, rtype, values) in deletes(&req.body) {
        let auth = header(&req.head, "authorization").unwrap_or_default();
        let now = current_values(&shared.upstream, (path, auth), &name, &rtype).await;
        if now.as_ref() != Some(&values) {
            let why = if now.is_some() {
                "the values provided do not match the current values"
            } else {
                "it was not found"
            };
            return Some(format!(
                "<?xml version=\"1.0\"?><InvalidChangeBatch \
                 xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Messages><Message>\
                 Tried to delete resource record set [name='{name}', type='{rtype}'] but \
                 {why}</Message></Messages>\
                 <RequestId>00000000-0000-0000-0000-000000000000</RequestId></InvalidChangeBatch>"
            ));
        }
    }
    None
}

/// What the Route 53 faults say about a request, if it is a ChangeResourceRecordSets call
/// they answer: (status, body).
fn r53_fault(req: &Request, shared: &Shared) -> Option<(&'static str, String)> {
    let line = req.head.lines().next().unwrap_or_default();
    if !(line.starts_with("POST ") && line.contains("/rrset")) {
        return None;
    }
    shared.r53_changes.fetch_add(1, Ordering::Relaxed);
    let scripted = shared.r53_script.lock().expect("script lock").pop_front();
    match scripted {
        Some(R53Fault::Throttling) => {
            return Some((
                "400 Bad Request",
                r53_error_xml("Throttling", "Rate exceeded"),
            ));
        }
        Some(R53Fault::PriorRequestNotComplete) => {
            let message = "The request was rejected because Route 53 was still processing a \
                           prior request.";
            return Some((
                "400 Bad Request",
                r53_error_xml("PriorRequestNotComplete", message),
            ));
        }
        Some(R53Fault::ServerError) => {
            return Some((
                "500 Internal Server Error",
                r53_error_xml("InternalFailure", "injected by the test proxy"),
            ));
        }
        None => {}
    }
    let reject = shared.r53_reject.lock().expect("reject lock").clone()?;
    if !req.body.contains(&format!("<Name>{reject}</Name>")) {
        return None;
    }
    // Route 53's own shape for this error.
    let body = format!(
        "<?xml version=\"1.0\"?><InvalidChangeBatch \
         xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Messages><Message>\
         RRSet with DNS name {reject} is not permitted in zone (injected)</Message></Messages>\
         <RequestId>00000000-0000-0000-0000-000000000000</RequestId></InvalidChangeBatch>"
    );
    Some(("400 Bad Request", body))
}

fn error_xml(code: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Errors><Error><Code>{code}</Code>\
         <Message>injected by the test proxy</Message></Error></Errors>\
         <RequestID>00000000-0000-0000-0000-000000000000</RequestID></Response>"
    )
}

async fn serve(mut conn: TcpStream, shared: Arc<Shared>) {
    let Some(req) = read_request(&mut conn).await else {
        return;
    };
    let line = req.head.lines().next().unwrap_or_default();
    if let Some(path) = line
        .split(' ')
        .nth(1)
        .filter(|p| p.starts_with("/2013-04-01/"))
    {
        let at = std::time::Instant::now();
        (shared.r53_calls.lock().expect("calls lock")).push((at, path.to_owned()));
    }
    let describe = param(&req.body, "Action") == Some("DescribeInstances");
    if describe {
        shared.describe_calls.fetch_add(1, Ordering::Relaxed);
    }
    let limit = *shared.r53_record_limit.lock().expect("limit lock");
    if let Some(limit) = limit
        && line.contains("/hostedzonelimit/")
    {
        // Route 53's own shape; Count is what the zone holds, which stabledns counts itself.
        let body = format!(
            "<?xml version=\"1.0\"?><GetHostedZoneLimitResponse \
             xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Limit>\
             <Type>MAX_RRSETS_BY_ZONE</Type><Value>{limit}</Value></Limit><Count>0</Count>\
             </GetHostedZoneLimitResponse>"
        );
        return respond(&mut conn, "200 OK", &body).await;
    }
    if let Some((status, body)) = r53_fault(&req, &shared) {
        return respond(&mut conn, status, &body).await;
    }
    if line.starts_with("POST ")
        && line.contains("/rrset")
        && shared.r53_hold.load(Ordering::Relaxed)
    {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        return;
    }
    if let Some(body) = stale_delete(&req, &shared).await {
        return respond(&mut conn, "400 Bad Request", &body).await;
    }
    let mode = shared.mode.lock().expect("mode lock").clone();
    let next_token = param(&req.body, "NextToken").map(str::to_owned);
    match mode {
        Mode::ServerError => {
            return respond(
                &mut conn,
                "500 Internal Server Error",
                &error_xml("InternalError"),
            )
            .await;
        }
        Mode::Throttle => {
            return respond(
                &mut conn,
                "503 Service Unavailable",
                &error_xml("RequestLimitExceeded"),
            )
            .await;
        }
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return;
        }
        Mode::Empty if describe => {
            let body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\
                <DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
                <requestId>empty</requestId><reservationSet/></DescribeInstancesResponse>";
            return respond(&mut conn, "200 OK", body).await;
        }
        Mode::Garbage if describe => {
            return respond(&mut conn, "200 OK", "<<<this is not XML at all & never was").await;
        }
        Mode::FailLaterPages if describe && next_token.is_some() => {
            return respond(
                &mut conn,
                "500 Internal Server Error",
                &error_xml("InternalError"),
            )
            .await;
        }
        _ => {}
    }
    // Forward: moto gets the request without paging parameters and answers everything.
    let body = if describe {
        req.body
            .split('&')
            .filter(|kv| !kv.starts_with("NextToken=") && !kv.starts_with("MaxResults="))
            .collect::<Vec<_>>()
            .join("&")
    } else {
        req.body.clone()
    };
    let mut head: Vec<&str> = req
        .head
        .split("\r\n")
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            !l.is_empty()
                && !lower.starts_with("content-length:")
                && !lower.starts_with("connection:")
        })
        .collect();
    let length = format!("content-length: {}", body.len());
    head.push(&length);
    head.push("connection: close");
    let forwarded = format!("{}\r\n\r\n{body}", head.join("\r\n"));
    let Ok(mut up) = TcpStream::connect(&shared.upstream).await else {
        return respond(
            &mut conn,
            "502 Bad Gateway",
            &error_xml("ProxyUpstreamDown"),
        )
        .await;
    };
    if up.write_all(forwarded.as_bytes()).await.is_err() {
        return;
    }
    let mut response = Vec::new();
    if up.read_to_end(&mut response).await.is_err() {
        return;
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let Some((resp_head, resp_body)) = text.split_once("\r\n\r\n") else {
        return;
    };
    let status = resp_head
        .lines()
        .next()
        .and_then(|l| l.split_once(' ').map(|(_, s)| s.to_owned()))
        .unwrap_or_else(|| "200 OK".to_owned());
    let max = param(&req.body, "MaxResults").and_then(|m| m.parse::<usize>().ok());
    let body = match (describe, max) {
        (true, Some(max)) if status.starts_with("200") => {
            let page = next_token
                .as_deref()
                .and_then(|t| t.strip_prefix("page-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            paginate(resp_body, max, page)
        }
        _ => resp_body.to_owned(),
    };
    let body = match &mode {
        Mode::Truncated if describe => body[..body.len() / 2].to_owned(),
        Mode::StripInstanceId(id) if describe => {
            body.replace(&format!("<instanceId>{id}</instanceId>"), "")
        }
        _ if param(&req.body, "Action") == Some("DescribeInstanceStatus") => {
            let impaired = shared.impaired.lock().expect("impaired lock").clone();
            impaired.iter().fold(body, |body, id| impair(&body, id))
        }
        _ => body,
    };
    respond(&mut conn, &status, &body).await;
}

/// `id`'s instance status in a DescribeInstanceStatus answer, from ok to impaired (its
/// reachability check failed), as EC2 reports an instance whose OS stopped answering.
fn impair(xml: &str, id: &str) -> String {
    let Some(at) = xml.find(&format!("<instanceId>{id}</instanceId>")) else {
        return xml.to_owned();
    };
    let item_end = xml[at..]
        .find("</instanceStatus>")
        .map_or(xml.len(), |e| at + e);
    let Some(start) = xml[at..item_end].find("<instanceStatus>").map(|s| at + s) else {
        return xml.to_owned();
    };
    let status = xml[start..item_end]
        .replace("<status>passed</status>", "<status>failed</status>")
        .replace("<status>ok</status>", "<status>impaired</status>");
    format!("{}{status}{}", &xml[..start], &xml[item_end..])
}

/// Cuts moto's full answer down to page `page` of whole reservations holding at most `max`
/// instances each (at least one reservation per page), adding a nextToken when more follow.
fn paginate(xml: &str, max: usize, page: usize) -> String {
    let (Some(open), Some(close)) = (xml.find("<reservationSet>"), xml.rfind("</reservationSet>"))
    else {
        return xml.to_owned();
    };
    let inner = &xml[open + "<reservationSet>".len()..close];
    let mut items = Vec::new();
    let (mut depth, mut start, mut i) = (0usize, 0usize, 0usize);
    while i < inner.len() {
        if inner[i..].starts_with("<item>") {
            if depth == 0 {
                start = i;
            }
            depth += 1;
            i += "<item>".len();
        } else if inner[i..].starts_with("</item>") {
            depth -= 1;
            i += "</item>".len();
            if depth == 0 {
                items.push(&inner[start..i]);
            }
        } else {
            i += inner[i..].chars().next().map_or(1, char::len_utf8);
        }
    }
    let mut pages: Vec<Vec<&str>> = vec![Vec::new()];
    let mut count = 0;
    for item in items {
        let n = item.matches("<instanceState>").count();
        let current = pages.last_mut().expect("a page");
        if !current.is_empty() && count + n > max {
            pages.push(Vec::new());
            count = 0;
        }
        pages.last_mut().expect("a page").push(item);
        count += n;
    }
    let chosen = pages.get(page).cloned().unwrap_or_default().concat();
    let token = if page + 1 < pages.len() {
        format!("<nextToken>page-{}</nextToken>", page + 1)
    } else {
        String::new()
    };
    let rest = &xml[close + "</reservationSet>".len()..];
    format!(
        "{}<reservationSet>{chosen}</reservationSet>{token}{rest}",
        &xml[..open]
    )
}
