//! Rate limits (governor token buckets): one per client IP, checked first,
//! before the body is read, and one for all clients, charged only for
//! requests that passed verification. So a client flooding the gateway
//! with bad signatures empties its own bucket and no one else's: the
//! shared budget is spent only on deliveries that were signed.
//!
//! The client IP is the peer address, or, when the peer is a trusted proxy
//! (the ALB), the right-most `X-Forwarded-For` entry that is not itself a
//! trusted proxy, so a client cannot pick its own bucket by sending the
//! header.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::config::RateLimitConfig;

#[derive(Debug)]
pub struct RateLimits {
    /// Built once: constructing the clock calibrates it (CPUID), far too
    /// slow for every request.
    clock: DefaultClock,
    global: Option<DefaultDirectRateLimiter>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    trusted_proxies: Vec<IpNet>,
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig) -> RateLimits {
        RateLimits {
            clock: DefaultClock::default(),
            global: quota(config.global_per_second, config.global_burst).map(RateLimiter::direct),
            per_ip: quota(config.per_ip_per_second, config.per_ip_burst).map(RateLimiter::keyed),
            trusted_proxies: config.trusted_proxies.clone(),
        }
    }

    /// Whether `ip` is one of `rate_limit.trusted_proxies`.
    pub fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The address the per-IP limit applies to.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusted(peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|entry| entry.trim().parse().ok())
            .collect();
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
    }

    /// The client's own limit, before anything is read: `Err(wait)` when
    /// the request must be refused, with the time until one would be
    /// allowed.
    pub fn check_client(&self, client: IpAddr) -> Result<(), Duration> {
        if let Some(per_ip) = &self.per_ip {
            per_ip
                .check_key(&client)
                .map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// The shared limit, for a request that passed verification.
    pub fn check_global(&self) -> Result<(), Duration> {
        if let Some(global) = &self.global {
            global
                .check()
                .map_err(|n| n.wait_time_from(self.clock.now()))?;
        }
        Ok(())
    }

    /// Forgets idle clients so the per-IP table stays small.
    pub fn forget_idle(&self) {
        if let Some(per_ip) = &self.per_ip {
            per_ip.retain_recent();
            per_ip.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn limits(trusted: &[&str]) -> RateLimits {
        RateLimits::new(&RateLimitConfig {
            global_per_second: 0,
            global_burst: 0,
            per_ip_per_second: 1,
            per_ip_burst: 2,
            trusted_proxies: trusted.iter().map(|t| t.parse().expect("cidr")).collect(),
        })
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let l = limits(&["10.0.0.0/8"]);
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.1.2"),
        );
        let alb: IpAddr = "10.0.0.5".parse().expect("ip");
        assert_eq!(
            l.client_ip(alb, &h),
            "203.0.113.9".parse::<IpAddr>().expect("ip")
        );
        let stranger: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(l.client_ip(stranger, &h), stranger);
    }

    #[test]
    fn per_ip_buckets_are_separate() {
        let l = limits(&[]);
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "::1".parse().expect("ip");
        assert!(l.check_client(a).is_ok());
        assert!(l.check_client(a).is_ok());
        let wait = l.check_client(a).expect_err("burst of 2 used up");
        assert!(wait > Duration::ZERO);
        assert!(l.check_client(b).is_ok());
    }
}
