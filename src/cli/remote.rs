//! Talking to a running server's admin endpoint: `zone --server` and `diff`.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

/// `GET /zone` from a running server's admin endpoint: the zone exactly as it serves it.
pub async fn served_zone(
    admin: SocketAddr,
    view: Option<&str>,
    zone: Option<&str>,
) -> anyhow::Result<String> {
    let mut query = Vec::new();
    for (key, value) in [("view", view), ("zone", zone)] {
        if let Some(v) = value {
            let escaped: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            query.push(format!("{key}={escaped}"));
        }
    }
    admin_get(admin, &format!("/zone?{}", query.join("&")), "the zone").await
}

/// `GET path` from a running server's admin endpoint; `what` names it in errors.
pub async fn admin_get(admin: SocketAddr, path: &str, what: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let failed = || format!("failed to read {what} from the server's admin endpoint {admin}");
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(admin).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    };
    let response = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within 10 s"))
        .and_then(|r| r.map_err(anyhow::Error::from))
        .with_context(failed)?;
    let text = String::from_utf8_lossy(&response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split_whitespace().nth(1).unwrap_or_default();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        anyhow::bail!(
            "{}: a chunked answer, which this client does not read",
            failed()
        );
    }
    match status {
        "200" => Ok(body.to_owned()),
        _ => anyhow::bail!("{}: {}", failed(), body.trim()),
    }
}

/// What `diff` found.
pub struct DiffReport {
    /// The report for people.
    pub text: String,
    /// Whether anything differs.
    pub differ: bool,
}

/// Compares every zone of every view that `a` and `b` serve, as their admin endpoints
/// render them (the master files a transfer carries, SOA first).
pub async fn diff_servers(
    a: SocketAddr,
    b: SocketAddr,
    limit: usize,
) -> anyhow::Result<DiffReport> {
    let list = |admin| async move {
        let text = admin_get(admin, "/zones", "the list of zones").await?;
        Ok::<_, anyhow::Error>(
            text.lines()
                .filter_map(|l| l.split_once(' '))
                .map(|(v, z)| (v.to_owned(), z.to_owned()))
                .collect::<std::collections::BTreeSet<_>>(),
        )
    };
    let (zones_a, zones_b) = (list(a).await?, list(b).await?);
    let mut out = String::new();
    let mut differ = false;
    let mut shown = 0usize;
    let mut more = 0usize;
    let mut same_zones = 0usize;
    let mut serials = std::collections::BTreeSet::new();
    for (view, zone) in zones_a.union(&zones_b) {
        let place = format!("view {view} zone {zone}");
        let key = (view.clone(), zone.clone());
        match (zones_a.contains(&key), zones_b.contains(&key)) {
            (true, true) => {}
            (in_a, _) => {
                let (has, lacks) = if in_a { (a, b) } else { (b, a) };
                out.push_str(&format!("{place}: served by {has}, not by {lacks}\n"));
                differ = true;
                continue;
            }
        }
        let text_a = served_zone(a, Some(view), Some(zone)).await?;
        let text_b = served_zone(b, Some(view), Some(zone)).await?;
        let (soa_a, records_a) = by_owner(&text_a);
        let (soa_b, records_b) = by_owner(&text_b);
        let (serial_a, serial_b) = (soa_serial(soa_a), soa_serial(soa_b));
        serials.insert(serial_a.clone());
        serials.insert(serial_b.clone());
        let mut zone_differs = false;
        if serial_a != serial_b {
            out.push_str(&format!(
                "{place}: serial {serial_a} on {a}, {serial_b} on {b}\n"
            ));
            zone_differs = true;
        }
        let owners: std::collections::BTreeSet<&str> =
            records_a.keys().chain(records_b.keys()).copied().collect();
        for owner in owners {
            let (ra, rb) = (records_a.get(owner), records_b.get(owner));
            if ra == rb {
                continue;
            }
            zone_differs = true;
            if shown >= limit {
                more += 1;
                continue;
            }
            shown += 1;
            let show = |r: Option<&Vec<&str>>| match r {
                None => "nothing".to_owned(),
                Some(lines) => lines
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            out.push_str(&format!(
                "{place}: {owner}: {a} has {}; {b} has {}\n",
                show(ra),
                show(rb)
            ));
        }
        if zone_differs {
            differ = true;
        } else {
            same_zones += 1;
        }
    }
    if more > 0 {
        out.push_str(&format!("... and {more} more names differ\n"));
    }
    if !differ {
        let serials: Vec<String> = serials.into_iter().collect();
        out.push_str(&format!(
            "same: {a} and {b} serve the same {same_zones} zones (serial {})\n",
            serials.join(", ")
        ));
    }
    Ok(DiffReport { text: out, differ })
}

/// A master file's SOA line and its other records by owner, each owner's lines sorted.
fn by_owner(text: &str) -> (&str, std::collections::BTreeMap<&str, Vec<&str>>) {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let soa = lines.next().unwrap_or_default();
    let mut owners: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for line in lines {
        let owner = line.split_whitespace().next().unwrap_or_default();
        owners.entry(owner).or_default().push(line);
    }
    for lines in owners.values_mut() {
        lines.sort_unstable();
    }
    (soa, owners)
}

/// The serial field of an SOA line (`name ttl class SOA mname rname serial ...`).
fn soa_serial(line: &str) -> String {
    line.split_whitespace()
        .nth(6)
        .unwrap_or("(none)")
        .to_owned()
}
