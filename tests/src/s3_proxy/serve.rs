//! One request through the proxy: faults first, then addressing, counting,
//! per-key serialization of writes, conditions, the request rewritten for
//! the emulator, and its answer rewritten for the client (`answer.rs`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use super::errors::{self, Answerer};
use super::route::{self, Addressed};
use super::upstream::full;
use super::{Body, Mode, State, answer, append, conditions, listing, oss};
use crate::proxy::Dropped;

impl State {
    /// An error answer in this proxy's service's shape.
    pub(super) fn error(
        &self,
        who: &Answerer,
        status: StatusCode,
        code: &str,
        message: &str,
        head: bool,
    ) -> Response<Body> {
        match self.mode {
            Mode::Oss => errors::oss(who, status, code, message, &[], head),
            Mode::S3 => errors::s3(status, code, message, &[], &who.request_id),
        }
    }

    /// Headers every answer carries.
    fn stamp(&self, who: &Answerer, response: &mut Response<Body>) {
        let headers = response.headers_mut();
        let Ok(id) = HeaderValue::from_str(&who.request_id) else {
            return;
        };
        match self.mode {
            Mode::Oss => {
                headers.insert("x-oss-request-id", id);
                headers.insert("server", HeaderValue::from_static("AliyunOSS"));
            }
            Mode::S3 => {
                headers.entry("x-amz-request-id").or_insert(id);
            }
        }
    }
}

pub(super) async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Dropped> {
    let who = Answerer {
        request_id: state.next_request_id(),
        host: request
            .headers()
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_owned(),
    };
    let (latency, dropped, slow_down) = match state.faults.lock() {
        Ok(mut f) => (f.latency, f.take("dropped"), f.take("slow_down")),
        Err(_) => (Duration::ZERO, false, false),
    };
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if dropped {
        return Err(Dropped);
    }
    let head = request.method() == Method::HEAD;
    let mut response = if slow_down {
        state.error(
            &who,
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
            head,
        )
    } else {
        match serve(&state, &who, request).await {
            Ok(r) => r,
            Err(e) => {
                let mut r = Response::new(full(format!("proxy: {e:#}")));
                *r.status_mut() = StatusCode::BAD_GATEWAY;
                r
            }
        }
    };
    state.stamp(&who, &mut response);
    Ok(response)
}

async fn serve(
    state: &State,
    who: &Answerer,
    request: Request<Incoming>,
) -> Result<Response<Body>> {
    let oss = state.mode == Mode::Oss;
    let (mut parts, body) = request.into_parts();
    let head = parts.method == Method::HEAD;
    let query = parts.uri.query().unwrap_or("").to_owned();
    let addressed = route::address(&parts.uri, &parts.headers, oss);
    let path = match &addressed {
        Addressed::Path(path) => path.clone(),
        Addressed::PathStyle => parts.uri.path().to_owned(),
    };
    let op = route::operation(&parts.method, &path, &query, &parts.headers);
    state.count(op, route::access_key(&parts.headers));
    if addressed == Addressed::PathStyle {
        // What OSS answers a path-style request to its endpoint.
        return Ok(state.error(
            who,
            StatusCode::FORBIDDEN,
            "SecondLevelDomainForbidden",
            "The bucket you are attempting to access must be addressed using OSS third level domain.",
            head,
        ));
    }
    let (get_delay, revoked) = match state.faults.lock() {
        Ok(f) => (
            f.get_delay,
            route::access_key(&parts.headers).is_some_and(|k| f.revoked_keys.contains(&k)),
        ),
        Err(_) => (Duration::ZERO, false),
    };
    if revoked {
        let (code, message) = match state.mode {
            Mode::Oss => (
                "InvalidAccessKeyId",
                "The OSS Access Key Id you provided does not exist in our records.",
            ),
            Mode::S3 => ("AccessDenied", "Access Denied"),
        };
        return Ok(state.error(who, StatusCode::FORBIDDEN, code, message, head));
    }
    // Listing faults are decided as the listing arrives.
    let mut listing = listing::Plan::of(state, &parts.method, &path, &query);
    if let Some(refusal) = listing.as_ref().and_then(|l| l.refusal(state, who)) {
        return Ok(refusal);
    }
    if op == "GetObject" && !get_delay.is_zero() {
        tokio::time::sleep(get_delay).await;
    }
    // S3 decides a conditional write when the upload completes, not when
    // it starts: a slow PUT must not keep a fast one waiting, nor be
    // judged on what the key held when its first byte arrived. So a
    // write's body is received whole before the key's lock is taken.
    let body: Body = match route::is_write(op) {
        true => {
            let whole = body.collect().await?.to_bytes();
            state.count_sent(op, route::access_key(&parts.headers));
            full(whole)
        }
        false => body.boxed(),
    };
    // Held until the emulator has answered (and the answer's bookkeeping
    // is done), not while a body streams back to the client.
    let _write_lock = match route::is_write(op) {
        true => Some(state.locks.lock(&path).await),
        false => None,
    };
    if oss && op == "AppendObject" {
        return append::serve(state, who, &path, &query, &parts.headers, body).await;
    }
    if !oss && route::is_write(op) {
        if conditions::is_conditional(&parts.headers)
            && state.faults.lock().is_ok_and(|mut f| f.take("conflict"))
        {
            return Ok(conditions::conflict(&who.request_id));
        }
        let refusal =
            conditions::check_write(&state.upstream, op, &path, &parts.headers, &who.request_id)
                .await?;
        if let Some(refusal) = refusal {
            state.count_refused(op);
            return Ok(refusal);
        }
    }
    let body = match oss {
        true => to_emulator(state, op, &path, &mut parts.headers, body).await?,
        false => body,
    };
    if let Some(listing) = listing.as_mut() {
        listing.before_forwarding(state).await;
    }
    let upstream = state
        .upstream
        .send(
            Request::from_parts(parts, body),
            &route::with_query(&path, &query),
        )
        .await?;
    state.journal.record(op, &path, upstream.status());
    // moto checks PutObject's conditions itself (conditions.rs).
    if route::is_write(op) && upstream.status() == StatusCode::PRECONDITION_FAILED {
        state.count_refused(op);
    }
    let response = answer::answer(state, who, op, &path, head, upstream).await?;
    match listing {
        Some(listing) => listing.after_answer(state, response).await,
        None => Ok(response),
    }
}

/// An OSS client's request as the emulator understands it: conditions on
/// OSS ETags become conditions on the emulator's, and the part ETags of a
/// CompleteMultipartUpload (upper case, as OSS showed them) lower case.
async fn to_emulator(
    state: &State,
    op: &str,
    path: &str,
    headers: &mut HeaderMap,
    body: Body,
) -> Result<Body> {
    match op {
        "GetObject" | "HeadObject" => {
            for name in ["if-match", "if-none-match"] {
                if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
                    let translated = state.objects.condition_to_emulator(path, value);
                    headers.insert(name, translated.parse()?);
                }
            }
            Ok(body)
        }
        "CompleteMultipartUpload" => {
            let xml = body.collect().await?.to_bytes();
            let xml = oss::lower_part_etags(&String::from_utf8_lossy(&xml));
            headers.insert(hyper::header::CONTENT_LENGTH, xml.len().into());
            Ok(full(xml))
        }
        _ => Ok(body),
    }
}
