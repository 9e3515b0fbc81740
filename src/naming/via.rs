//! Why an instance has a name: [`Via`], compact for the snapshot, and its text for people
//! (`_explain`, `stabledns why`, logs).

use crate::inventory::Instance;

/// The vias of one instance behind one name: one, held inline, or rarely a few, in a box.
/// Reads as a slice. 16 bytes, against a small vector's 24: a 100,000-instance fleet keeps
/// hundreds of thousands in its snapshot's backings, most in blocks of one backing each.
#[derive(Clone, PartialEq, Eq)]
pub struct Vias(Inner);

/// `Many` holds none or two and more, so one list has one form and equality is the slice's.
#[derive(Clone, PartialEq, Eq)]
enum Inner {
    One(Via),
    // Boxed: a pointer where a vector would be three words, and the rare case pays the hop.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Via>>),
}

impl Vias {
    /// One via.
    pub fn one(via: Via) -> Self {
        Self(Inner::One(via))
    }

    /// The vias as a slice.
    pub fn as_slice(&self) -> &[Via] {
        match &self.0 {
            Inner::One(via) => std::slice::from_ref(via),
            Inner::Many(vias) => vias,
        }
    }
}

impl Default for Vias {
    fn default() -> Self {
        Self(Inner::Many(Box::default()))
    }
}

impl std::ops::Deref for Vias {
    type Target = [Via];
    fn deref(&self) -> &[Via] {
        self.as_slice()
    }
}

impl FromIterator<Via> for Vias {
    fn from_iter<I: IntoIterator<Item = Via>>(iter: I) -> Self {
        let mut iter = iter.into_iter();
        match (iter.next(), iter.next()) {
            (None, _) => Self::default(),
            (Some(via), None) => Self::one(via),
            (Some(a), Some(b)) => {
                let mut all = vec![a, b];
                all.extend(iter);
                Self(Inner::Many(Box::new(all)))
            }
        }
    }
}

impl std::fmt::Debug for Vias {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// Why an instance has a name: the logic reads these (PTR targets prefer names a rule made),
/// people read their text (`_explain`, logs) through [`Via::text`]. Indices, not text: the
/// text is made only when someone reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// Every instance is named by its id.
    InstanceId,
    /// A tag rule (by its index in [`Rules::rules`](super::Rules::rules)) read the instance's tag.
    Tag {
        /// The rule.
        rule: u16,
    },
    /// A security-group rule matched one of the instance's groups.
    SecurityGroup {
        /// The group's index in the instance's list.
        group: u16,
    },
    /// A tier member's number; the tier is the name without its first label.
    Slot {
        /// The number.
        n: u32,
    },
    /// An SRV record from the service tag; the name is its owner.
    Service {
        /// The port.
        port: u16,
    },
    /// A PTR record for the instance's address.
    Address,
}

impl Via {
    /// The via as people read it. `name` is the relative name it made (a slot's tier and a
    /// service's owner are read from it); `rule_tags` is [`Naming::rule_tags`](super::Naming::rule_tags).
    pub fn text(&self, inst: &Instance, name: &str, rule_tags: &[Option<String>]) -> String {
        match *self {
            Via::InstanceId => "instance id".to_owned(),
            Via::Tag { rule } => {
                let key = rule_tags.get(usize::from(rule)).and_then(Option::as_deref);
                let key = key.unwrap_or("(unknown)");
                match inst.tags.get(key) {
                    Some(value) => format!("tag {key}={}", quoted(value)),
                    None => format!("tag {key}"),
                }
            }
            Via::SecurityGroup { group } => match inst.security_groups.get(usize::from(group)) {
                Some(g) => format!("security group {} ({})", g.name, g.id),
                None => "a security group".to_owned(),
            },
            Via::Slot { n } => {
                let tier = name.split_once('.').map_or(name, |(_, tier)| tier);
                format!("slot {n} of tier {tier}")
            }
            Via::Service { port } => format!("tag service {name} port {port}"),
            Via::Address => format!("address of {}", inst.id),
        }
    }
}

/// The text of one instance's vias for one name, for `_explain` and logs.
pub fn vias_text(
    vias: &[Via],
    inst: &Instance,
    name: &str,
    rule_tags: &[Option<String>],
) -> String {
    vias.iter()
        .map(|v| v.text(inst, name, rule_tags))
        .collect::<Vec<_>>()
        .join("; ")
}

/// A claim as warnings and `stabledns why` name it: a tag rule's text shows the value (or part)
/// that was read, not the whole tag.
pub(super) fn claim_text(
    via: &Via,
    inst: &Instance,
    value: &str,
    rule_tags: &[Option<String>],
) -> String {
    match via {
        Via::Tag { rule } => format!(
            "tag {}={}",
            rule_tags
                .get(usize::from(*rule))
                .and_then(Option::as_deref)
                .unwrap_or_default(),
            quoted(value)
        ),
        _ => via.text(inst, value, rule_tags),
    }
}

/// A tag value for logs and `_explain`: quoted, and cut short when it is long (tags hold up
/// to 256 characters in AWS, more in a hand-made dump).
pub(super) fn quoted(s: &str) -> String {
    const SHOWN: usize = 80;
    match s.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{:?}… ({} bytes)", &s[..cut], s.len()),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vias_have_one_form_per_list_and_read_as_slices() {
        let tag = Via::Tag { rule: 1 };
        let slot = Via::Slot { n: 70_000 };
        assert_eq!(Vias::one(tag), [tag].into_iter().collect::<Vias>());
        assert_eq!(Vias::one(tag).as_slice(), [tag]);
        let two: Vias = [tag, slot].into_iter().collect();
        assert_eq!(&*two, [tag, slot]);
        assert_ne!(two, Vias::one(tag));
        let none: Vias = std::iter::empty().collect();
        assert!(none.is_empty());
        assert_eq!(none, Vias::default());
        // What keeps a backing at 24 bytes, and a block of one at 40.
        assert_eq!(std::mem::size_of::<Vias>(), 16);
        assert_eq!(std::mem::size_of::<super::super::Backing>(), 24);
    }
}
