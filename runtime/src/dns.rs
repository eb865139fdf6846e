//! Name resolution for the AWS SDK clients: `localhost` and every name
//! under `.localhost` are loopback, as RFC 6761 §6.3 asks of resolution
//! APIs (browsers and curl do the same); every other name goes to the
//! system resolver.
//!
//! Aliyun OSS answers only virtual-hosted-style requests
//! (`BUCKET.ENDPOINT`), so a client pointed at a local OSS stand-in on
//! `http://localhost:PORT` asks for `BUCKET.localhost`, which glibc does
//! not resolve. With this resolver such a stand-in is reachable without
//! touching `/etc/hosts`, and nothing outside loopback is ever contacted
//! for those names. Real endpoints resolve exactly as before.

use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

use aws_smithy_http_client::tls;
use aws_smithy_runtime_api::client::dns::{DnsFuture, ResolveDns, ResolveDnsError};
use aws_smithy_runtime_api::client::http::SharedHttpClient;

/// `localhost` and `*.localhost` → 127.0.0.1; anything else through the
/// system resolver (on a blocking thread, as the SDK's own resolver does).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopbackAwareResolver;

/// Whether RFC 6761 reserves `name` for loopback.
pub fn is_localhost(name: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

impl ResolveDns for LoopbackAwareResolver {
    fn resolve_dns<'a>(&'a self, name: &'a str) -> DnsFuture<'a> {
        if is_localhost(name) {
            return DnsFuture::ready(Ok(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]));
        }
        let name = name.to_owned();
        DnsFuture::new(async move {
            match tokio::task::spawn_blocking(move || (name.as_str(), 0).to_socket_addrs()).await {
                Ok(Ok(addrs)) => Ok(addrs.map(|a| a.ip()).collect()),
                Ok(Err(e)) => Err(ResolveDnsError::new(e)),
                Err(e) => Err(ResolveDnsError::new(std::io::Error::other(e))),
            }
        })
    }
}

/// The SDK's default HTTPS client (rustls with aws-lc, the default trust
/// store), resolving names with [`LoopbackAwareResolver`].
pub fn http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .build_with_resolver(LoopbackAwareResolver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_localhost_names_are_loopback() {
        for name in [
            "localhost",
            "LOCALHOST",
            "bucket.localhost",
            "a.b.localhost.",
        ] {
            assert!(is_localhost(name), "{name}");
        }
        for name in [
            "localhost.example",
            "notlocalhost",
            "s3.oss-cn-hangzhou.aliyuncs.com",
        ] {
            assert!(!is_localhost(name), "{name}");
        }
    }

    #[tokio::test]
    async fn bucket_names_under_localhost_resolve_to_loopback() {
        let addrs = LoopbackAwareResolver
            .resolve_dns("media-1.localhost")
            .await
            .expect("resolves");
        assert_eq!(addrs, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        let plain = LoopbackAwareResolver
            .resolve_dns("127.0.0.1")
            .await
            .expect("an address literal resolves to itself");
        assert_eq!(plain, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    }
}
