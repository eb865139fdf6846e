//! How a request reached the gateway: over TLS or not.
//!
//! Behind an ALB the gateway's own listener is plain HTTP; the ALB says
//! what the client used in `X-Forwarded-Proto`, which is believed only from
//! `rate_limit.trusted_proxies`. MNS may push to plain `http://` endpoints
//! (docs/configuration.md, "Where MNS pushes"), so the stack forwards the
//! MNS source paths on port 80, and the gateway must know which requests
//! came that way: a URL token seen in clear proves nothing, and no other
//! source's secrets may travel in clear.

use axum::http::HeaderMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Our TLS listener, or a trusted proxy's HTTPS listener.
    Https,
    /// A trusted proxy says the client spoke plain HTTP.
    Http,
    /// A plain listener with no trusted proxy in front that says: the
    /// operator's own network (a local stack, a private TLS terminator).
    Unstated,
}

impl Scheme {
    /// How the request arrived. `from_trusted_proxy`: the peer is in
    /// `rate_limit.trusted_proxies`.
    pub fn of(listener_tls: bool, from_trusted_proxy: bool, headers: &HeaderMap) -> Scheme {
        if listener_tls {
            return Scheme::Https;
        }
        if !from_trusted_proxy {
            return Scheme::Unstated;
        }
        // The proxy nearest to us wrote the last value.
        let proto = headers
            .get_all("x-forwarded-proto")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .map(|p| p.trim().to_ascii_lowercase());
        match proto.as_deref() {
            Some("https") => Scheme::Https,
            Some(_) => Scheme::Http,
            None => Scheme::Unstated,
        }
    }

    /// Whether a secret in the request (a URL token) was protected in
    /// transit as far as the gateway can tell.
    pub fn confidential(self) -> bool {
        self != Scheme::Http
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(protos: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for p in protos {
            h.append("x-forwarded-proto", p.parse().expect("value"));
        }
        h
    }

    #[test]
    fn forwarded_proto_is_believed_only_from_trusted_proxies() {
        assert_eq!(Scheme::of(true, false, &headers(&["http"])), Scheme::Https);
        assert_eq!(
            Scheme::of(false, false, &headers(&["https"])),
            Scheme::Unstated
        );
        assert_eq!(
            Scheme::of(false, false, &headers(&["http"])),
            Scheme::Unstated
        );
        assert_eq!(Scheme::of(false, true, &headers(&["https"])), Scheme::Https);
        assert_eq!(Scheme::of(false, true, &headers(&["HTTP"])), Scheme::Http);
        assert_eq!(
            Scheme::of(false, true, &headers(&["https, http"])),
            Scheme::Http
        );
        assert_eq!(
            Scheme::of(false, true, &headers(&["http", "https"])),
            Scheme::Https
        );
        assert_eq!(Scheme::of(false, true, &headers(&[])), Scheme::Unstated);
        assert!(!Scheme::Http.confidential());
        assert!(Scheme::Unstated.confidential());
    }
}
