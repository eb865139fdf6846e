//! The floor under the gateway's CPU per event: a server built from the
//! same parts as `ossbridge-gateway`'s public listener (tokio's
//! multi-threaded runtime, rustls with aws-lc-rs, hyper's HTTP/1 with the
//! gateway's builder settings, an axum router, mimalloc) that reads each
//! request's body and answers what the gateway answers, and does nothing
//! else: no verification, no parsing, no SQS. `bench/gateway-cpu.sh`
//! drives it with the same load as the gateway, so the difference between
//! the two is what ossbridge's own work costs per event.
//!
//! Usage: `ossbridge-floor CERT_PEM KEY_PEM`; prints its URL, serves until
//! killed.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

// The gateway's allocator, so the floor is not raised by a slower one.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The bytes the gateway answers for one accepted event.
const ACCEPTED: &str = r#"{"events":1,"enqueued":1,"ignored":0,"filtered":0,"duplicates":0}"#;

#[tokio::main]
async fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(cert), Some(key)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: ossbridge-floor CERT_PEM KEY_PEM");
    };
    let certs = CertificateDer::pem_file_iter(&cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("{cert}: certificate"))?;
    let key = PrivateKeyDer::from_pem_file(&key).with_context(|| format!("{key}: key"))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));

    let app = Router::new().route(
        "/v1/ingest/{source}",
        post(|body: Bytes| async move {
            std::hint::black_box(body);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                ACCEPTED,
            )
        }),
    );
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    println!("https://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let mut builder = auto::Builder::new(TokioExecutor::new());
            // As gateway/src/server/mod.rs sets it.
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(75))
                .writev(false);
            let _ = builder
                .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                .await;
        });
    }
}
