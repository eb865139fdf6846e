//! The accept loop behind both listeners: optional TLS (with a handshake
//! deadline), a cap on open connections, HTTP/1.1 with a header-read
//! deadline (slowloris) and HTTP/2, and a graceful stop: on shutdown the
//! listener closes, open connections finish their requests and are closed,
//! and whatever is still open after the grace period is dropped.

pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::telemetry;

#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Option<TlsAcceptor>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub grace: Duration,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("tls_handshake_timeout", &self.tls_handshake_timeout)
            .field("grace", &self.grace)
            .finish()
    }
}

/// Serves `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    options: ServeOptions,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections));
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep
                    // serving the connections we have.
                    tracing::warn!(event = "accept_failed", error = %e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let app = app.clone();
        let options = options.clone();
        tokio::spawn(async move {
            telemetry::connection_opened();
            match &options.tls {
                None => serve_connection(stream, peer, app, &options, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        options.tls_handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, peer, app, &options, watcher).await,
                        Ok(Err(e)) => {
                            tracing::debug!(event = "tls_handshake_failed", peer = %peer, error = %e)
                        }
                        Err(_) => tracing::debug!(event = "tls_handshake_timeout", peer = %peer),
                    }
                }
            }
            telemetry::connection_closed();
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            event = "shutdown_grace_elapsed",
            "dropping connections still open"
        );
    }
}

async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    app: Router,
    options: &ServeOptions,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        })
        .service(app);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    if let Err(e) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(event = "connection_error", peer = %peer, error = %e);
    }
}
