//! The bodies of the fuzz targets: each takes the raw input, hands it to
//! the public entry point that sees it in production and checks the
//! invariants that are cheap and truly invariant. `fuzz_targets/*.rs` call
//! these; `gateway/tests/fuzz_seeds.rs` includes this file by path and runs
//! every committed seed and regression input through the same functions on
//! stable.
//!
//! Everything is deterministic: secrets are fixed, and "now" is
//! [`NOW_UNIX`], so a crash input reproduces exactly.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, Request, Uri};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use ossbridge_gateway::body::{self, MnsPolicy};
use ossbridge_gateway::config::{
    BodyFormat, DedupConfig, FilterConfig, HmacAlgorithm, MnsConfig, Secrets, SourceConfig,
    SqsConfig, VerifierConfig,
};
use ossbridge_gateway::dedup::Dedup;
use ossbridge_gateway::enqueue::Batcher;
use ossbridge_gateway::health::SqsHealth;
use ossbridge_gateway::normalize::Normalizer;
use ossbridge_gateway::pipeline::Pipeline;
use ossbridge_gateway::replay::{self, Document, InputFormat, Position};
use ossbridge_gateway::verify::mns::{CertUrlRule, string_to_sign};
use ossbridge_gateway::verify::{CertStore, Verified, Verifier, VerifyError};
use ossbridge_message::{CONTRACT_VERSION, OssEvent, QueueMessage};
use ossbridge_transfer::decode::{self, Decoded, Job, Shape};
use secrecy::SecretString;
use time::OffsetDateTime;

/// The clock every verifier sees: 2026-11-26T00:00:00Z.
pub const NOW_UNIX: i64 = 1_795_651_200;
/// Secrets of the verifiers under fuzz (seeds are signed with them).
pub const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
pub const HMAC_SECRET: &str = "fuzz-hmac-secret";
pub const API_KEY: &str = "fuzz-api-key";
pub const BASIC_USER: &str = "eventbridge";
pub const BASIC_PASSWORD: &str = "fuzz-password";
pub const MNS_URL_TOKEN: &str = "fuzz-url-token";
/// The TopicOwner the MNS body policy accepts (the fixtures' account).
pub const MNS_TOPIC_OWNER: &str = "1148930107246818";
/// The source id replayed archive records must name.
pub const SOURCE_ID: &str = "fuzz";

/// `{"events":[...]}` (Function Compute, webhooks): `body::oss_events`,
/// then normalization. Returns the number of events, or `None` if refused.
pub fn oss_events(data: &[u8]) -> Option<usize> {
    let events = body::oss_events(data).ok()?;
    check_events(&events);
    Some(events.len())
}

/// EventBridge CloudEvents (one event, or an array): `body::decode` with
/// the `cloudevents` format on a verified body.
pub fn cloudevents(data: &[u8]) -> Option<usize> {
    let f = fixtures();
    let verified = f.verified(data);
    let events = body::decode(BodyFormat::Cloudevents, &verified, None).ok()?;
    check_events(&events);
    Some(events.len())
}

/// What an MNS push body became on the two paths that decode one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MnsOutcome {
    /// Live traffic without a URL token (the policy lists
    /// [`MNS_TOPIC_OWNER`]): XML and JSON notifications; SIMPLIFIED is
    /// refused on this path by design.
    pub untrusted: Option<usize>,
    /// Operator replay of the body (counts as carrying the URL token, no
    /// owner list): all three formats, through normalization and dedup.
    pub trusted: Option<usize>,
}

/// MNS HTTP push bodies (XML, JSON, SIMPLIFIED; base64 OSS events inside):
/// `body::decode` with the `mns` format, and the replay path that decodes
/// the same body as trusted operator input.
pub fn mns_body(data: &[u8]) -> MnsOutcome {
    let f = fixtures();
    let verified = f.verified(data);
    let policy = MnsPolicy {
        topic_owners: vec![MNS_TOPIC_OWNER.to_owned()],
        topics: Vec::new(),
        format: None,
    };
    let untrusted = body::decode(BodyFormat::Mns, &verified, Some(&policy))
        .ok()
        .map(|events| {
            check_events(&events);
            events.len()
        });
    let trusted = std::str::from_utf8(data).ok().and_then(|text| {
        let document = Document {
            position: Position {
                line: 1,
                item: None,
            },
            text: text.to_owned(),
            json: None,
            object: None,
        };
        let summary = replay_documents(vec![document], BodyFormat::Mns, Some(InputFormat::Mns));
        (summary.rejected == 0).then_some(summary.events)
    });
    MnsOutcome { untrusted, trusted }
}

/// An SQS message body as the transfer worker gets it: `decode::decode`
/// (ossbridge messages, DTH `{"key","size"}`, S3 notifications direct or
/// wrapped by SNS / EventBridge, `s3:TestEvent`, raw OSS events) and
/// `QueueMessage::from_body`.
pub fn queue_message(data: &[u8]) -> Option<Decoded> {
    // SQS bodies are strings; the worker never sees anything else.
    let body = std::str::from_utf8(data).ok()?;
    let _ = decode::decode_s3_key(body);
    if let Ok(message) = QueueMessage::from_body(body) {
        check_round_trip(&message);
    }
    let decoded = decode::decode(body).ok()?;
    if let Decoded::Jobs(jobs) = &decoded {
        assert!(!jobs.is_empty(), "Decoded::Jobs with no job");
    }
    Some(decoded)
}

/// Every verifier's verdict on one request.
pub type Verdicts = Vec<(&'static str, Result<(), VerifyError>)>;

/// Signature and credential headers: the input is an HTTP request without
/// the version (`METHOD TARGET` line, `name: value` lines, an empty line,
/// the body), verified by every verifier kind through `Verifier::verify`
/// with fixed secrets (Standard Webhooks, HMAC-SHA256 / SHA1 / timestamped,
/// API key, basic auth, MNS). The MNS verifier's certificate allowlist is
/// empty, so nothing is ever fetched: a well-formed push gets as far as
/// `CertificateUrlRefused("not on the allowlist")`. The cert URL itself is
/// also checked against the default allowlist (`CertStore::check_url`) and
/// parsed as an allowlist rule, and the MNS string-to-sign is built.
pub fn signatures(data: &[u8]) -> Verdicts {
    let f = fixtures();
    let (parts, body) = parse_request(data);
    let now = now();
    let verdicts = f
        .verifiers
        .iter()
        .map(|(name, verifier)| {
            let result = now_or_never(verifier.verify(
                Arc::from(SOURCE_ID),
                &parts,
                body.clone(),
                now,
                true,
            ))
            .map(|verified| assert_eq!(verified.body(), &body[..]));
            (*name, result)
        })
        .collect();
    let _ = string_to_sign(&parts);
    for value in parts.headers.get_all("x-mns-signing-cert-url") {
        let Ok(text) = value.to_str() else { continue };
        let decoded = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok());
        for url in [Some(text.to_owned()), decoded].into_iter().flatten() {
            let _ = f.default_certs.check_url(&url);
            let _ = CertUrlRule::parse(&url);
        }
    }
    verdicts
}

/// What replaying an input did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayOutcome {
    pub documents: usize,
    pub rejected: usize,
    pub events: usize,
    pub enqueued: usize,
}

/// Replay input (files, stdin, the admin endpoint, archive records):
/// `replay::input::split` into documents, format detection and a dry-run
/// `Target::replay` (decode as trusted operator input, normalize, dedup).
/// Archive records are decoded with each source format in turn.
pub fn replay_input(data: &[u8]) -> Option<ReplayOutcome> {
    let text = std::str::from_utf8(data).ok()?;
    let documents = replay::input::split(text);
    let formats: Vec<Option<InputFormat>> = documents.iter().map(replay::input::detect).collect();
    let source_formats: &[BodyFormat] = if formats.contains(&Some(InputFormat::Archive)) {
        &[
            BodyFormat::OssEvents,
            BodyFormat::Cloudevents,
            BodyFormat::Mns,
        ]
    } else {
        &[BodyFormat::Mns]
    };
    let mut outcome = None;
    for &format in source_formats {
        let summary = replay_documents(documents.clone(), format, None);
        outcome.get_or_insert(summary);
    }
    outcome
}

// ---------------------------------------------------------------------------

/// Messages made from events: the counts add up, and every message passes
/// [`check_message`].
fn check_events(events: &[OssEvent]) {
    let f = fixtures();
    for normalizer in [&f.everything, &f.filtered] {
        let out = normalizer.normalize(events);
        assert_eq!(
            out.messages.len() + out.ignored + out.filtered,
            events.len(),
            "every event is a message, ignored or filtered"
        );
        for message in &out.messages {
            check_message(message);
        }
    }
}

/// A message the gateway built: written at the current contract version,
/// and [`check_round_trip`].
fn check_message(message: &QueueMessage) {
    assert_eq!(message.version, CONTRACT_VERSION);
    check_round_trip(message);
}

/// A queue message's body: free of what confuses DTH workers and SQS,
/// parsed back to the same message, and decoded by the transfer worker as
/// exactly the job it describes.
fn check_round_trip(message: &QueueMessage) {
    let body = message.to_body();
    assert!(!body.contains("\"s3:TestEvent\""), "{body}");
    assert!(!body.contains("\"eventSource\":"), "{body}");
    assert!(!body.contains(['\u{FFFE}', '\u{FFFF}']), "{body}");
    let parsed = QueueMessage::from_body(&body).expect("a written body parses");
    assert_eq!(&parsed, message, "queue message round trip");
    let job = Job {
        op: message.op,
        bucket: Some(message.bucket.clone()),
        key: message.key.clone(),
        size: Some(message.size),
        event_time: Some(message.event_time.clone()).filter(|t| !t.is_empty()),
        // OSS's names for a new object written by PUT or POST.
        new_object: matches!(
            message.event_name.as_str(),
            "ObjectCreated:PutObject" | "ObjectCreated:PostObject"
        ),
        shape: Shape::Ossbridge,
    };
    match decode::decode(&body) {
        Ok(decoded) => assert_eq!(decoded, Decoded::Jobs(vec![job]), "{body}"),
        Err(e) => panic!("the transfer worker refuses a gateway message: {e}: {body}"),
    }
}

fn replay_documents(
    documents: Vec<Document>,
    source_format: BodyFormat,
    forced: Option<InputFormat>,
) -> ReplayOutcome {
    let f = fixtures();
    let count = documents.len();
    let target = replay::Target {
        source_id: Arc::from(SOURCE_ID),
        format: source_format,
        mns_policy: MnsPolicy::default(),
        pipeline: Pipeline {
            normalizer: &f.everything,
            batcher: &f.batcher,
            dedup: &f.dedup,
            enqueue_timeout: Duration::from_secs(1),
        },
    };
    let options = replay::Options {
        format: forced,
        dry_run: true,
        since: None,
        until: None,
    };
    let mut sent = 0;
    let summary = f
        .runtime
        .block_on(target.replay(documents, &options, &mut |m| {
            check_message(m);
            sent += 1;
        }));
    assert_eq!(summary.documents, count);
    assert_eq!(
        summary.failed, 0,
        "a dry run sends nothing, so nothing fails"
    );
    assert_eq!(summary.enqueued, sent);
    ReplayOutcome {
        documents: summary.documents,
        rejected: summary.rejected,
        events: summary.events,
        enqueued: summary.enqueued,
    }
}

/// `METHOD TARGET\nname: value\n...\n\nBODY`; whatever does not parse
/// falls back to `POST /` and is skipped.
fn parse_request(data: &[u8]) -> (Parts, Bytes) {
    let mut rest = data;
    let mut lines: Vec<&[u8]> = Vec::new();
    while !rest.is_empty() {
        let (line, tail) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &rest[rest.len()..]),
        };
        rest = tail;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let mut lines = lines.into_iter();
    let (method, uri) = match lines.next() {
        Some(line) => {
            let (method, target) = match line.iter().position(|&b| b == b' ') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => (line, &b"/"[..]),
            };
            (
                Method::from_bytes(method).unwrap_or(Method::POST),
                Uri::try_from(target).unwrap_or_else(|_| Uri::from_static("/")),
            )
        }
        None => (Method::POST, Uri::from_static("/")),
    };
    let (mut parts, ()) = Request::new(()).into_parts();
    parts.method = method;
    parts.uri = uri;
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = HeaderName::from_bytes(line[..colon].trim_ascii());
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii());
        if let (Ok(name), Ok(value)) = (name, value) {
            parts.headers.append(name, value);
        }
    }
    (parts, Bytes::copy_from_slice(rest))
}

fn now() -> OffsetDateTime {
    match OffsetDateTime::from_unix_timestamp(NOW_UNIX) {
        Ok(now) => now,
        Err(e) => unreachable!("NOW_UNIX is in range: {e}"),
    }
}

/// Polls a future that never waits (no verifier here performs I/O).
fn now_or_never<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a verifier waited on I/O"),
    }
}

/// Built once per process.
struct Fixtures {
    verifiers: Vec<(&'static str, Verifier)>,
    /// `Verified` bodies come only from a verifier: this one accepts the
    /// request [`Fixtures::verified`] builds.
    api_key: Verifier,
    api_key_request: Parts,
    default_certs: CertStore,
    everything: Normalizer,
    filtered: Normalizer,
    runtime: tokio::runtime::Runtime,
    batcher: Batcher,
    dedup: Dedup,
}

impl Fixtures {
    fn verified(&self, body: &[u8]) -> Verified {
        now_or_never(self.api_key.verify(
            Arc::from(SOURCE_ID),
            &self.api_key_request,
            Bytes::copy_from_slice(body),
            now(),
            true,
        ))
        .expect("the API key request is accepted")
    }
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(build_fixtures)
}

fn secrets(values: &[&str]) -> Vec<SecretString> {
    values.iter().map(|s| SecretString::from(*s)).collect()
}

fn build_fixtures() -> Fixtures {
    let no_fetch = Arc::new(
        CertStore::new(&MnsConfig {
            cert_url_allowlist: Vec::new(),
            ..MnsConfig::default()
        })
        .expect("empty allowlist"),
    );
    let inline = || Secrets::Inline(Vec::new());
    let hmac =
        |algorithm, header: Option<&str>, timestamp_header: Option<&str>| VerifierConfig::Hmac {
            algorithm,
            secrets: inline(),
            header: header.map(str::to_owned),
            timestamp_header: timestamp_header.map(str::to_owned),
            tolerance_secs: 300,
        };
    let configs: Vec<(&'static str, VerifierConfig, Vec<SecretString>)> = vec![
        (
            "standard_webhooks",
            VerifierConfig::StandardWebhooks {
                secrets: inline(),
                tolerance_secs: 300,
            },
            secrets(&[WHSEC]),
        ),
        (
            "hmac_sha256",
            hmac(HmacAlgorithm::Sha256, None, None),
            secrets(&[HMAC_SECRET]),
        ),
        (
            "hmac_sha1",
            hmac(HmacAlgorithm::Sha1, None, None),
            secrets(&[HMAC_SECRET]),
        ),
        (
            "hmac_timestamped",
            hmac(
                HmacAlgorithm::Sha256,
                Some("X-Signature"),
                Some("X-Signature-Timestamp"),
            ),
            secrets(&[HMAC_SECRET]),
        ),
        (
            "api_key",
            VerifierConfig::ApiKey {
                header: "x-api-key".to_owned(),
                keys: inline(),
            },
            secrets(&[API_KEY]),
        ),
        (
            "basic_auth",
            VerifierConfig::BasicAuth {
                username: BASIC_USER.to_owned(),
                passwords: inline(),
            },
            secrets(&[BASIC_PASSWORD]),
        ),
        (
            "mns",
            VerifierConfig::Mns {
                topic_owners: Vec::new(),
                topics: Vec::new(),
                url_token: Some(inline()),
                notify_content_format: None,
                allow_plain_http: false,
            },
            secrets(&[MNS_URL_TOKEN]),
        ),
    ];
    let verifiers = configs
        .into_iter()
        .map(|(name, config, secrets)| {
            let verifier = Verifier::build(name, &config, secrets, &no_fetch).expect("verifier");
            (name, verifier)
        })
        .collect();
    let api_key = Verifier::build(
        "api_key",
        &VerifierConfig::ApiKey {
            header: "x-api-key".to_owned(),
            keys: inline(),
        },
        secrets(&[API_KEY]),
        &no_fetch,
    )
    .expect("api key verifier");
    let (mut api_key_request, ()) = Request::new(()).into_parts();
    api_key_request
        .headers
        .insert("x-api-key", HeaderValue::from_static(API_KEY));

    let source = |propagate_deletes, filter| SourceConfig {
        queue_url: "https://sqs.us-east-1.amazonaws.com/000000000000/fuzz".to_owned(),
        verifier: VerifierConfig::ApiKey {
            header: "x-api-key".to_owned(),
            keys: inline(),
        },
        format: None,
        propagate_deletes,
        filter,
    };
    let everything = Normalizer::new(Arc::from(SOURCE_ID), &source(true, FilterConfig::default()));
    let filtered = Normalizer::new(
        Arc::from(SOURCE_ID),
        &source(
            false,
            FilterConfig {
                buckets: vec!["media-prod".to_owned()],
                include_prefixes: vec!["photos/".to_owned(), "video/".to_owned()],
                exclude_prefixes: vec!["photos/tmp/".to_owned()],
                event_names: vec![
                    "oss:ObjectCreated:PutObject".to_owned(),
                    "ObjectRemoved:DeleteObject".to_owned(),
                ],
            },
        ),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    // The batcher is never sent to (replay runs dry), so its client never
    // connects anywhere.
    let batcher = {
        let _entered = runtime.enter();
        let sqs = aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::Config::builder()
                .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
                .region(aws_sdk_sqs::config::Region::new("us-east-1"))
                .build(),
        );
        let (batcher, _task) = Batcher::spawn(
            sqs,
            "https://sqs.us-east-1.amazonaws.com/000000000000/fuzz".to_owned(),
            &SqsConfig::default(),
            SqsHealth::new(),
        );
        batcher
    };
    Fixtures {
        verifiers,
        api_key,
        api_key_request,
        default_certs: CertStore::new(&MnsConfig::default()).expect("default allowlist"),
        everything,
        filtered,
        runtime,
        batcher,
        dedup: Dedup::new(&DedupConfig::default()),
    }
}
