//! `/`: one page for a person. What is served (serial, age, instances and names per view),
//! how the refresh, publishing and the upstreams are doing, and a search box that shows for a
//! name what each view answers and why (`stabledns why`'s report). Plain HTML rendered here:
//! no script, no external asset, so it works from a bastion with no internet and a strict
//! browser shows no console error.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AdminState;

#[derive(Deserialize)]
pub(super) struct PageQuery {
    /// The name searched for, relative to the apex or fully qualified.
    name: Option<String>,
}

/// Text made safe for HTML element content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;\
padding:0 1em;color:#222}h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;\
text-align:left}td.n{text-align:right}pre{background:#f5f5f5;padding:.6em;overflow-x:auto}\
input{font:inherit;padding:.2em;width:20em}.bad{color:#a00}";

/// Seconds as a person reads them.
fn ago(secs: u64) -> String {
    match secs {
        0..120 => format!("{secs} s ago"),
        120..7200 => format!("{} min ago", secs / 60),
        _ => format!("{} h ago", secs / 3600),
    }
}

pub(super) async fn page(State(s): State<AdminState>, Query(q): Query<PageQuery>) -> Response {
    let now = SystemTime::now();
    // One config for the whole page, the search's included.
    let config = s.config.load_full();
    let mut html = String::with_capacity(4096);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <link rel=\"icon\" href=\"data:,\"><title>stabledns {apex}</title>\
         <style>{STYLE}</style></head><body><h1>stabledns: {apex}</h1>",
        apex = escape(&config.zone.apex.to_ascii()),
    );
    let snapshot = s.snapshot.load();
    match &snapshot {
        None => html.push_str(
            "<p class=\"bad\" id=\"snapshot\">No snapshot yet: the inventory has not answered.</p>",
        ),
        Some(snap) => {
            let built = now.duration_since(snap.built_at).unwrap_or_default();
            let _ = write!(
                html,
                "<p id=\"snapshot\">Serving serial <b>{}</b>, built {}, from {} instances.</p>\
                 <table><tr><th>view</th><th>names</th></tr>",
                snap.serial,
                ago(built.as_secs()),
                snap.instance_count
            );
            for view in &snap.views {
                let _ = write!(
                    html,
                    "<tr><td>{}</td><td class=\"n\">{}</td></tr>",
                    escape(&view.name),
                    view.name_count()
                );
            }
            html.push_str("</table>");
        }
    }
    html.push_str("<h2>Refresh</h2><p id=\"refresh\">");
    let r = &s.refresh;
    match r.age(now) {
        Some(age) => {
            let _ = write!(
                html,
                "The inventory confirmed the data {}.",
                ago(age.as_secs())
            );
        }
        None => html.push_str("The inventory has not confirmed the data yet."),
    }
    let failing = r.consecutive_failures.load(Ordering::Relaxed);
    if failing > 0 {
        let _ = write!(
            html,
            " <span class=\"bad\">The last {failing} refreshes failed; the last good \
             snapshot is served.</span>"
        );
    }
    let _ = write!(
        html,
        " Refreshes: {} ok, {} failed. Builds: {} full, {} patched.</p>",
        r.successes.load(Ordering::Relaxed),
        r.failures.load(Ordering::Relaxed),
        r.builds.load(Ordering::Relaxed),
        r.patches.load(Ordering::Relaxed)
    );
    let publish = s.publish.ready_lines();
    let upstreams = (s.forwarder.load().as_deref()).map(|f| f.ready_lines());
    for (title, id, lines) in [
        ("Route 53", "publish", Some(publish)),
        ("Upstreams", "upstreams", upstreams),
    ] {
        let lines = lines
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| format!("{title}: not configured."));
        let _ = write!(
            html,
            "<h2>{title}</h2><pre id=\"{id}\">{}</pre>",
            escape(lines.trim_end())
        );
    }
    let asked = q.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    let _ = write!(
        html,
        "<h2>Why</h2><form method=\"get\" action=\"/\">\
         <label>Name <input name=\"name\" id=\"name\" value=\"{}\" \
         placeholder=\"db1 or web.{}\"></label> <button type=\"submit\">Explain</button></form>",
        escape(asked.unwrap_or_default()),
        escape(config.zone.apex.to_ascii().trim_end_matches('.'))
    );
    if let (Some(name), Some(snap)) = (asked, snapshot.clone()) {
        // The claims on a name are found by a walk over the fleet: off the runtime.
        let (config, name) = (config.clone(), name.to_owned());
        let reports = tokio::task::spawn_blocking(move || {
            (snap.views.iter())
                .map(|view| {
                    let report = super::why(&config, &snap, view, &name);
                    (view.name.clone(), report.unwrap_or_else(|e| e.to_string()))
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        for (view, report) in reports {
            let _ = write!(
                html,
                "<h3>View {}</h3><pre class=\"why\">{}</pre>",
                escape(&view),
                escape(report.trim_end())
            );
        }
    }
    html.push_str("</body></html>\n");
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Inline style only, nothing fetched: a page that cannot load anything else.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'",
            ),
        ],
        html,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_a_name_is_shown_not_run() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
    }

    #[test]
    fn ages_read_as_a_person_says_them() {
        assert_eq!(ago(5), "5 s ago");
        assert_eq!(ago(600), "10 min ago");
        assert_eq!(ago(36_000), "10 h ago");
    }
}
