//! MNS signing-certificate URLs from a hostile sender: redirects and URLs
//! built to confuse the allowlist.
//!
//! The gateway fetches the certificate a request names, so a URL that
//! slips past the allowlist turns every unauthenticated request into a
//! connection the gateway makes for the attacker. Every peer is on
//! loopback; the "must not be contacted" host is a listener of this test
//! that counts its accepts, so a zero proves no connection was even tried.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Gateway, reason};
use md5::{Digest, Md5};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An https server on loopback answering every request with `code` taken
/// from the path (`/r301/...`) and a Location on the trap port.
async fn redirect_server(trap: u16) -> Result<(u16, Arc<AtomicUsize>, tempfile::TempDir)> {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("ca.pem"), generated.cert.pem())?;
    let key = rustls_pki_types::PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![generated.cert.der().clone()], key.into())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, counter) = (acceptor.clone(), counter.clone());
            tokio::spawn(async move {
                let mut tls = acceptor.accept(tcp).await?;
                let (mut head, mut buf) = (Vec::new(), [0u8; 1024]);
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = tls.read(&mut buf).await?;
                    anyhow::ensure!(n > 0, "eof");
                    head.extend_from_slice(&buf[..n]);
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let head = String::from_utf8_lossy(&head);
                let code = head.get(6..9).unwrap_or("302");
                let answer = format!(
                    "HTTP/1.1 {code} Moved\r\nLocation: https://127.0.0.1:{trap}/cert.pem\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                tls.write_all(answer.as_bytes()).await?;
                tls.shutdown().await?;
                anyhow::Ok(())
            });
        }
    });
    Ok((port, requests, dir))
}

#[tokio::test]
async fn mns_certificate_redirects_and_confusing_urls_never_reach_another_port() -> Result<()> {
    let trap = TcpListener::bind("127.0.0.1:0").await?;
    let trap_port = trap.local_addr()?.port();
    let trapped = Arc::new(AtomicUsize::new(0));
    let counter = trapped.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = trap.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        }
    });
    let (port, fetched, dir) = redirect_server(trap_port).await?;
    let ca = dir.path().join("ca.pem");
    let gw = Gateway::start_custom(|queue_url, _| {
        format!(
            "[mns]\ncert_url_allowlist = [\"https://127.0.0.1:{port}/\"]\nextra_ca_file = \"{}\"\n\
             [sources.mns]\nqueue_url = \"{queue_url}\"\n[sources.mns.verifier]\ntype = \"mns\"\n\
             topic_owners = [\"1148930107246818\"]\nurl_token = [\"tok\"]\n",
            ca.display()
        )
    })
    .await?;

    let mut urls: Vec<String> = [301, 302, 303, 307, 308]
        .iter()
        .map(|code| format!("https://127.0.0.1:{port}/r{code}/cert.pem"))
        .collect();
    let redirects = urls.len();
    urls.extend([
        format!("https://127.0.0.1:{port}@127.0.0.1:{trap_port}/cert.pem"),
        format!("https://127.0.0.1:{trap_port}/cert.pem#https://127.0.0.1:{port}/"),
        format!("https://127.0.0.1:{trap_port}\\@127.0.0.1:{port}/cert.pem"),
        format!("https://[::ffff:127.0.0.1]:{trap_port}/cert.pem"),
        format!("http://127.0.0.1:{trap_port}/cert.pem"),
    ]);
    let body = "<Notification><Message>eA==</Message></Notification>";
    let md5 = STANDARD.encode(hex::encode(Md5::digest(body.as_bytes())));
    for url in &urls {
        let headers = [
            ("Content-Type", "text/xml;charset=utf-8".to_owned()),
            (
                "Date",
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
            ("Content-MD5", md5.clone()),
            ("x-mns-version", "2015-06-06".to_owned()),
            ("x-mns-signing-cert-url", STANDARD.encode(url)),
            // Never checked: the certificate is refused first.
            ("Authorization", STANDARD.encode("not a signature")),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let r = gw
            .post_to("/v1/ingest/mns?token=tok", body, &headers)
            .await?;
        let status = r.status().as_u16();
        let why = reason(r).await?;
        assert_eq!(status, 401, "{url}: {why}");
        assert!(
            why.starts_with("signing certificate URL refused"),
            "{url}: {why}"
        );
    }
    assert_eq!(
        fetched.load(Ordering::SeqCst),
        redirects,
        "the allowed host was asked"
    );
    assert_eq!(
        trapped.load(Ordering::SeqCst),
        0,
        "the trap port was contacted"
    );
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    Ok(())
}
