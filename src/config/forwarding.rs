//! `[forwarding]` of the config file: validated into the settings the `forwarding` part of the server uses.

use super::*;

impl Validator<'_> {
    /// The upstreams, when a view needs them. An upstream that is one of our own sockets would
    /// send every forwarded query back to us until it timed out: refused here.
    pub(super) fn forwarding(
        &self,
        raw: Option<&raw::Forwarding>,
        views: &[ViewPolicy],
        listen: &[SocketAddr],
    ) -> Result<Option<ForwardConfig>, ConfigError> {
        if !views.iter().any(|v| v.recursion || v.chase_cname) {
            return Ok(None);
        }
        let absent = raw::Forwarding::default();
        let raw = raw.unwrap_or(&absent);
        let list = raw.upstreams.get_ref();
        let upstreams = if list.len() == 1 && list[0].get_ref().trim() == "system" {
            None
        } else {
            let mut addrs = Vec::new();
            for (i, u) in list.iter().enumerate() {
                let key = format!("forwarding.upstreams[{i}]");
                let text = u.get_ref().trim();
                let addr = text
                    .parse::<SocketAddr>()
                    .or_else(|_| text.parse::<IpAddr>().map(|ip| SocketAddr::new(ip, 53)))
                    .map_err(|_| {
                        self.err(
                            &key,
                            u.span(),
                            format!(
                                "`{text}` is not an address like \"169.254.169.253\" or \
                                 \"10.0.0.2:53\" (or the single word \"system\")"
                            ),
                        )
                    })?;
                if is_own_socket(listen, &addr) {
                    return Err(self.err(
                        &key,
                        u.span(),
                        format!("{addr} is this server itself: forwarding to it would loop"),
                    ));
                }
                addrs.push(addr);
            }
            // An empty list forwards nothing (the offline demo): names outside our zones are
            // refused and CNAME targets are chased from the inventory only.
            Some(addrs)
        };
        let timeout = self.duration("forwarding.timeout", &raw.timeout)?;
        let chase_timeout = self.duration("forwarding.chase_timeout", &raw.chase_timeout)?;
        if chase_timeout > timeout {
            return Err(self.err(
                "forwarding.chase_timeout",
                raw.chase_timeout.span(),
                format!(
                    "{chase_timeout:?} is longer than forwarding.timeout ({timeout:?}): our own \
                     answers must not wait longer than forwarded ones"
                ),
            ));
        }
        // "0s" turns serving stale off, where every other duration must be more than zero.
        let serve_stale = match raw.serve_stale.get_ref().trim() {
            "0" | "0s" => Duration::ZERO,
            _ => self.duration("forwarding.serve_stale", &raw.serve_stale)?,
        };
        Ok(Some(ForwardConfig {
            upstreams,
            timeout,
            chase_timeout,
            cache_size: raw.cache_size,
            serve_stale,
            max_in_flight: raw.max_in_flight.max(1),
        }))
    }
}
