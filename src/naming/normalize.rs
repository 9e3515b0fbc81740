//! Tag values and captures into DNS names: lower case, letters, digits and hyphens, IDNA
//! A-labels for the rest.

use std::borrow::Cow;

/// Longest DNS label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;

/// The name a value makes when it needs no more than ASCII lower-casing (not an alteration
/// worth a warning), without the general path's allocations.
pub(super) fn plain_name(value: &str) -> Option<Cow<'_, str>> {
    if is_normal(value) {
        return Some(Cow::Borrowed(value));
    }
    let lower = value.to_ascii_lowercase();
    is_normal(&lower).then_some(Cow::Owned(lower))
}

/// Whether `normalize` would give a value back unchanged: lower-case letters, digits and
/// hyphens in labels of at most 63, no hyphen at either end of a label or twice in a row
/// (which also leaves out A-labels, `xn--`, that `normalize` checks by decoding).
pub(super) fn is_normal(value: &str) -> bool {
    !value.is_empty()
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL
                && !label.starts_with('-')
                && !label.ends_with('-')
                && !label.contains("--")
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// Turns a tag value or capture into a relative DNS name: lower case, letters, digits and
/// hyphens, labels split on dots, each at most 63 long, no leading or trailing hyphens. A
/// label with letters outside ASCII becomes its IDNA A-label (UTS #46: `café` → `xn--caf-dma`),
/// so a Unicode value keeps its identity instead of losing letters.
pub fn normalize(value: &str) -> Result<String, &'static str> {
    let mut labels = Vec::new();
    // UTS #46 maps the ideographic and fullwidth full stops to dots as well.
    let value = value
        .trim()
        .replace(['\u{3002}', '\u{ff0e}', '\u{ff61}'], ".");
    for raw in value.split('.') {
        if let Some(label) = normalize_label(raw)? {
            labels.push(label);
        }
    }
    if labels.is_empty() {
        return Err("no letters or digits, so it cannot be a DNS name");
    }
    Ok(labels.join("."))
}

/// One label: `None` when nothing is left of it.
fn normalize_label(raw: &str) -> Result<Option<String>, &'static str> {
    let lower = raw.to_lowercase();
    // An A-label written as such (`xn--caf-dma`) is kept when it decodes: its `--` is part of it.
    if lower.starts_with("xn--") && idna::domain_to_ascii_strict(&lower).is_ok_and(|a| a == lower) {
        return Ok(Some(lower));
    }
    let mut label = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii() {
            match c.to_ascii_lowercase() {
                c @ ('a'..='z' | '0'..='9') => c,
                _ => '-',
            }
        } else {
            c
        };
        if !(c == '-' && (label.is_empty() || label.ends_with('-'))) {
            label.push(c);
        }
    }
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        return Ok(None);
    }
    if label.is_ascii() {
        let mut label = label.to_owned();
        label.truncate(MAX_LABEL);
        return Ok(Some(label.trim_end_matches('-').to_owned()));
    }
    match idna::domain_to_ascii_strict(label) {
        Ok(a) if !a.contains('.') && a.len() <= MAX_LABEL => Ok(Some(a)),
        Ok(_) => Err("its IDNA form (xn--…) is longer than the 63 characters of a DNS label"),
        Err(_) => Err("it has characters IDNA (UTS #46) does not allow in a name"),
    }
}
