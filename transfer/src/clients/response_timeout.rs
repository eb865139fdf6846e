//! A read timeout that starts once the request has been sent, body and all.
//!
//! The SDK's own `read_timeout` is "the amount of time it takes to read the
//! first byte of a response from the time the request is initiated"
//! (aws-smithy-types `timeout.rs`; AWS SDK for Rust developer guide,
//! "Configuring timeouts"): aws-smithy-http-client's `HttpReadTimeout`
//! wraps the whole hyper call (`client/timeout.rs`, `client.rs`), which for
//! a PUT includes uploading the body. S3 answers a PutObject or UploadPart
//! only once the whole body has arrived, so that timeout would fail any
//! healthy upload of a part that takes longer than it; parts here are up to
//! 5 GiB. This one starts the clock when the last byte of the body has been
//! handed to the connection (at once for a request without a body, where
//! it means the same as the SDK's): it bounds how long the server takes to
//! answer. The upload itself is watched by stalled stream protection.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use aws_sdk_s3::config::http::HttpRequest;
use aws_sdk_s3::config::{ConfigBag, HttpClient, RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;

/// `inner`, failing any request whose answer has not begun `timeout`
/// after the request was sent.
pub fn wrap(inner: SharedHttpClient, timeout: Duration) -> SharedHttpClient {
    SharedHttpClient::new(ResponseTimeoutClient { inner, timeout })
}

#[derive(Debug, thiserror::Error)]
#[error("no answer within {0:?} of sending the request")]
struct NoAnswer(Duration);

#[derive(Debug)]
struct ResponseTimeoutClient {
    inner: SharedHttpClient,
    timeout: Duration,
}

impl HttpClient for ResponseTimeoutClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(ResponseTimeoutConnector {
            inner: self.inner.http_connector(settings, components),
            timeout: self.timeout,
        })
    }

    fn validate_base_client_config(
        &self,
        components: &RuntimeComponentsBuilder,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_base_client_config(components, cfg)
    }

    fn validate_final_config(
        &self,
        components: &RuntimeComponents,
        cfg: &ConfigBag,
    ) -> Result<(), BoxError> {
        self.inner.validate_final_config(components, cfg)
    }

    fn connector_metadata(
        &self,
    ) -> Option<aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata> {
        self.inner.connector_metadata()
    }
}

#[derive(Debug)]
struct ResponseTimeoutConnector {
    inner: SharedHttpConnector,
    timeout: Duration,
}

impl HttpConnector for ResponseTimeoutConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let (sent, mut is_sent) = watch::channel(false);
        let sent = Arc::new(sent);
        let body = std::mem::replace(request.body_mut(), SdkBody::taken());
        let length = body.content_length();
        if length == Some(0) {
            sent.send_replace(true);
        }
        *request.body_mut() = body.map_preserve_contents(move |body| {
            SdkBody::from_body_1_x(SignalEnd {
                inner: body,
                length,
                written: 0,
                polled: false,
                sent: sent.clone(),
            })
        });
        let response = self.inner.call(request);
        let timeout = self.timeout;
        HttpConnectorFuture::new(async move {
            let silence = async {
                // A dropped sender means the body never finished; the
                // connection's own error ends the request then.
                if is_sent.wait_for(|sent| *sent).await.is_err() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(timeout).await;
            };
            tokio::select! {
                biased;
                response = response => response,
                () = silence => Err(ConnectorError::timeout(Box::new(NoAnswer(timeout)))),
            }
        })
    }
}

/// A request body that reports when it has been sent in full.
struct SignalEnd {
    inner: SdkBody,
    /// Content-Length, when known: hyper stops polling once it has written
    /// that many bytes, without asking for the end of the stream.
    length: Option<u64>,
    written: u64,
    polled: bool,
    sent: Arc<watch::Sender<bool>>,
}

impl SignalEnd {
    fn signal(&self) {
        self.sent.send_replace(true);
    }
}

impl Body for SignalEnd {
    type Data = Bytes;
    type Error = aws_smithy_types::body::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        this.polled = true;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => this.signal(),
            Poll::Ready(Some(Ok(frame))) => {
                match frame.data_ref() {
                    Some(data) => this.written += data.len() as u64,
                    // Trailers come last.
                    None => this.signal(),
                }
                if this.inner.is_end_stream() || this.length.is_some_and(|n| this.written >= n) {
                    this.signal();
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for SignalEnd {
    /// hyper drops a body it is done with. If that was early, because the
    /// connection failed or the server answered first, the answer (or the
    /// error) is already on its way, so starting the clock costs nothing.
    /// A copy that was never polled (a retry's rebuild) says nothing.
    fn drop(&mut self) {
        if self.polled {
            self.signal();
        }
    }
}
