//! The accept loop behind both listeners: optional TLS (with a handshake
//! deadline), a cap on open connections, HTTP/1.1 and HTTP/2 with the
//! deadlines of `idle.rs` (a connection that does not do its part frees its
//! slot), and a graceful stop: on shutdown the listener closes, open
//! connections finish their requests and are closed, and whatever is still
//! open after the grace period is dropped.

mod idle;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry;

#[derive(Clone)]
pub struct ServeOptions {
    pub tls: Option<TlsAcceptor>,
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    /// How long a connection with nothing in flight stays open; above
    /// the load balancer's idle timeout.
    pub keep_alive_timeout: Duration,
    pub tls_handshake_timeout: Duration,
    pub grace: Duration,
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("tls", &self.tls.is_some())
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("keep_alive_timeout", &self.keep_alive_timeout)
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
    let connections = TaskTracker::new();
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
        let stop = shutdown.clone();
        let app = app.clone();
        let options = options.clone();
        connections.spawn(async move {
            telemetry::connection_opened();
            match &options.tls {
                None => serve_connection(stream, peer, app, &options, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(
                        options.tls_handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(tls)) => serve_connection(tls, peer, app, &options, stop).await,
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
    connections.close();
    if tokio::time::timeout(options.grace, connections.wait())
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
    shutdown: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = idle::Activity::new();
    let requests = activity.clone();
    let service = tower::ServiceBuilder::new()
        .map_request(move |mut request: axum::http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        })
        .service(app);
    // The request counts as in flight from its head until its response
    // future ends.
    let service = tower::service_fn(move |request: axum::http::Request<Incoming>| {
        let in_flight = requests.request();
        let response = tower::ServiceExt::oneshot(service.clone(), request);
        async move {
            let response = response.await;
            drop(in_flight);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a head, so it is
        // also the HTTP/1 keep-alive limit; `idle.rs` enforces the shorter
        // head deadline itself.
        .header_read_timeout(options.keep_alive_timeout)
        // One buffer per response, so rustls seals one record for head
        // and body instead of one per slice; hyper's own advice for TLS
        // transports (`http1::Builder::writev`).
        .writev(false);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256);
    let io = idle::Watched::new(io, activity.clone());
    let connection = builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        let deadline = match closing {
            // Closing: what is in flight gets the grace period elsewhere;
            // an idle connection goes now.
            true => None,
            false => activity.deadline(options.header_read_timeout, options.keep_alive_timeout),
        };
        let wake = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                // Re-check a busy connection now and then.
                None => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        };
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(event = "connection_error", peer = %peer, error = %e);
                }
                return;
            }
            () = shutdown.cancelled(), if !closing => {
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
            () = wake => {
                let expired = activity
                    .deadline(options.header_read_timeout, options.keep_alive_timeout)
                    .is_some_and(|at| at <= tokio::time::Instant::now());
                if expired && !closing {
                    tracing::debug!(event = "connection_idle_closed", peer = %peer);
                    telemetry::connection_timed_out();
                    connection.as_mut().graceful_shutdown();
                    // A stalled head never lets a graceful close finish.
                    let _ = tokio::time::timeout(Duration::from_secs(1), connection.as_mut()).await;
                    return;
                }
            }
        }
    }
}
