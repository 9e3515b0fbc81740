//! `[naming]` of the config file: validated into the settings the `naming` part of the server uses.

use super::*;

impl Validator<'_> {
    pub(super) fn naming(&self, raw: &raw::Naming) -> Result<Rules, ConfigError> {
        let mut states = BTreeSet::new();
        for (i, s) in raw.states.get_ref().iter().enumerate() {
            let state: InstanceState = s
                .get_ref()
                .parse()
                .map_err(|e: String| self.err(&format!("naming.states[{i}]"), s.span(), e))?;
            states.insert(state);
        }
        if states.is_empty() {
            return Err(self.err(
                "naming.states",
                raw.states.span(),
                "no state is named, so no instance would get a name".into(),
            ));
        }
        let mut rules = Vec::new();
        for (i, r) in raw.rules.iter().enumerate() {
            let key = format!("naming.rules[{i}]");
            let only = |field: &str, present: bool, span: Range<usize>| {
                if present {
                    Err(self.err(
                        &format!("{key}.{field}"),
                        span,
                        format!("`{field}` does not apply to kind \"{}\"", r.kind.get_ref()),
                    ))
                } else {
                    Ok(())
                }
            };
            let kind = match r.kind.get_ref().as_str() {
                "tag" => {
                    only(
                        "pattern",
                        r.pattern.is_some(),
                        r.pattern.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    let tag = match &r.tag {
                        Some(t) if t.get_ref().is_empty() => {
                            return Err(self.err(
                                &format!("{key}.tag"),
                                t.span(),
                                "must not be empty".into(),
                            ));
                        }
                        Some(t) => t.get_ref().clone(),
                        None => "Name".to_owned(),
                    };
                    let separator = match &r.separator {
                        Some(s) if s.get_ref().is_empty() => {
                            return Err(self.err(
                                &format!("{key}.separator"),
                                s.span(),
                                "must not be empty".into(),
                            ));
                        }
                        s => s.as_ref().map(|s| s.get_ref().clone()),
                    };
                    RuleKind::Tag {
                        key: tag,
                        separator,
                    }
                }
                "security_group" => {
                    only(
                        "tag",
                        r.tag.is_some(),
                        r.tag.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    only(
                        "separator",
                        r.separator.is_some(),
                        r.separator.as_ref().map_or(0..0, |p| p.span()),
                    )?;
                    let Some(p) = &r.pattern else {
                        return Err(self.err(
                            &format!("{key}.pattern"),
                            r.kind.span(),
                            "kind \"security_group\" needs `pattern`, a regex with a `name` capture"
                                .into(),
                        ));
                    };
                    let re = Regex::new(p.get_ref()).map_err(|e| {
                        self.err(
                            &format!("{key}.pattern"),
                            p.span(),
                            format!("bad regex: {e}"),
                        )
                    })?;
                    if !re.capture_names().any(|n| n == Some("name")) {
                        return Err(self.err(
                            &format!("{key}.pattern"),
                            p.span(),
                            "the regex needs a `(?P<name>...)` capture: it is the name".into(),
                        ));
                    }
                    RuleKind::SecurityGroup { pattern: re }
                }
                other => {
                    return Err(self.err(
                        &format!("{key}.kind"),
                        r.kind.span(),
                        format!("unknown kind `{other}`; expected \"tag\" or \"security_group\""),
                    ));
                }
            };
            if r.single && r.slots {
                return Err(self.err(
                    &format!("{key}.slots"),
                    r.kind.span(),
                    "a `single` rule names one instance: it has no tier to number".into(),
                ));
            }
            rules.push(Rule {
                kind,
                single: r.single,
                inside_only: r.inside_only,
                slots: r.slots,
            });
        }
        for (key, tag) in [
            ("naming.srv_tag", &raw.srv_tag),
            ("naming.inside_only_tag", &raw.inside_only_tag),
            ("naming.drain_tag", &raw.drain_tag),
        ] {
            if tag.get_ref().trim().is_empty() {
                return Err(self.err(key, tag.span(), "must not be empty".into()));
            }
        }
        let slot_store = match raw.slot_numbers.get_ref().as_str() {
            "tags" => SlotStore::Tags,
            "state-file" => SlotStore::StateFile,
            other => {
                return Err(self.err(
                    "naming.slot_numbers",
                    raw.slot_numbers.span(),
                    format!("unknown value `{other}`; expected \"tags\" or \"state-file\""),
                ));
            }
        };
        Ok(Rules {
            slot_store,
            states,
            instance_id_names: raw.instance_id_names,
            rules,
            srv_tag: raw.srv_tag.get_ref().clone(),
            inside_only_tag: raw.inside_only_tag.get_ref().clone(),
            drain_tag: raw.drain_tag.get_ref().clone(),
        })
    }
}
