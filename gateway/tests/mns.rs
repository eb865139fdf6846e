//! MNS HTTP push, end to end against the gateway and SQS (moto): requests
//! signed by an independent signer (Python `cryptography`) with a locally
//! generated key whose certificate is served over HTTPS on loopback.

mod common;

use std::time::{Duration, SystemTime};

use anyhow::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use common::{Gateway, reason};
use md5::{Digest, Md5};
use ossbridge_testkit::tools::{self, CertServer};
use ossbridge_testkit::{fixtures, unique_name};

const OWNER: &str = "1148930107246818";
const TOKEN: &str = "url-token-for-tests";
const PATH: &str = "/v1/ingest/mns?token=url-token-for-tests";

struct Rig {
    gw: Gateway,
    certs: CertServer,
}

/// A gateway with an `mns` source trusting the local certificate host.
async fn rig(extra_mns: &str) -> Result<Rig> {
    let certs = tokio::task::spawn_blocking(CertServer::start).await??;
    let allow = certs.url("/");
    let ca = certs.ca.display().to_string();
    let gw = Gateway::start_custom(|queue_url, _| {
        format!(
            "[mns]\ncert_url_allowlist = [\"{allow}\"]\nextra_ca_file = \"{ca}\"\n{extra_mns}\n\
             [sources.mns]\nqueue_url = \"{queue_url}\"\n\
             [sources.mns.verifier]\ntype = \"mns\"\ntopic_owners = [\"{OWNER}\"]\nurl_token = [\"{TOKEN}\"]\n\
             [sources.mns_owner_only]\nqueue_url = \"{queue_url}\"\n\
             [sources.mns_owner_only.verifier]\ntype = \"mns\"\ntopic_owners = [\"{OWNER}\"]\n\
             [sources.mns_plain]\nqueue_url = \"{queue_url}\"\n\
             [sources.mns_plain.verifier]\ntype = \"mns\"\ntopic_owners = [\"{OWNER}\"]\nallow_plain_http = true\n\
             [sources.mns_token_only]\nqueue_url = \"{queue_url}\"\n\
             [sources.mns_token_only.verifier]\ntype = \"mns\"\nurl_token = [\"{TOKEN}\"]\n\
             [rate_limit]\ntrusted_proxies = [\"127.0.0.1/32\"]\n"
        )
    })
    .await?;
    Ok(Rig { gw, certs })
}

/// An OSS event notification for one fresh object.
fn oss_body(key: &str) -> Result<String> {
    fixtures::oss_event(
        "oss-events/put-object.json",
        "media-prod",
        &[(key, b"hello")],
    )
}

/// The MNS XML / JSON notification around `message`, as MNS writes it.
fn notification(format: &str, owner: &str, message: &str) -> String {
    let md5 = hex::encode_upper(Md5::digest(message.as_bytes()));
    let id = unique_name("mid");
    match format {
        "xml" => format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification xmlns=\"http://mns.aliyuncs.com/doc/v1/\">\
             <TopicOwner>{owner}</TopicOwner><TopicName>oss-events</TopicName><Subscriber>{owner}</Subscriber>\
             <SubscriptionName>ossbridge</SubscriptionName><MessageId>{id}</MessageId><MessageMD5>{md5}</MessageMD5>\
             <Message>{message}</Message><PublishTime>1795767342000</PublishTime></Notification>"
        ),
        "json" => serde_json::json!({
            "TopicOwner": owner, "TopicName": "oss-events", "Subscriber": owner,
            "SubscriptionName": "ossbridge", "MessageId": id, "MessageMD5": md5,
            "Message": message, "MessageTag": "", "PublishTime": "1795767342000"
        })
        .to_string(),
        _ => message.to_owned(),
    }
}

struct Push {
    path: String,
    body: String,
    cert_url: String,
    key: std::path::PathBuf,
    date: SystemTime,
    content_md5: Option<String>,
    content_type: &'static str,
    /// Signed `x-mns-*` headers beyond the version, request id and
    /// certificate URL (`x-mns-topic-owner`, ...).
    signed: Vec<(String, String)>,
    /// Unsigned headers a proxy adds (`X-Forwarded-Proto`).
    unsigned: Vec<(String, String)>,
}

impl Push {
    fn new(rig: &Rig, body: String) -> Push {
        Push {
            path: PATH.to_owned(),
            body,
            cert_url: rig.certs.url("/cert.pem"),
            key: rig.certs.signing_key.clone(),
            date: SystemTime::now(),
            content_md5: None,
            content_type: "text/xml;charset=utf-8",
            signed: Vec::new(),
            unsigned: Vec::new(),
        }
    }

    /// A SIMPLIFIED push as MNS sends one (the real push of 2023): plain
    /// text, with the topic it came from in signed headers.
    fn simplified(rig: &Rig, body: String, owner: &str) -> Push {
        let mut push = Push::new(rig, body);
        push.content_type = "text/plain;charset=utf-8";
        push.signed = topic_headers(owner, "oss-events");
        push
    }

    /// Signs (with the independent signer) and sends.
    async fn send(&self, rig: &Rig) -> Result<reqwest::Response> {
        self.send_body(rig, &self.body).await
    }

    /// Signs for `self.body` but sends `body` (tampering in transit).
    async fn send_body(&self, rig: &Rig, body: &str) -> Result<reqwest::Response> {
        let md5 = self
            .content_md5
            .clone()
            .unwrap_or_else(|| STANDARD.encode(hex::encode(Md5::digest(self.body.as_bytes()))));
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), self.content_type.into()),
            ("Date".into(), httpdate::fmt_http_date(self.date)),
            ("x-mns-version".into(), "2015-06-06".into()),
            ("x-mns-request-id".into(), unique_name("rid")),
            (
                "x-mns-signing-cert-url".into(),
                STANDARD.encode(&self.cert_url),
            ),
        ];
        if !md5.is_empty() {
            headers.push(("Content-MD5".into(), md5));
        }
        headers.extend(self.signed.iter().cloned());
        let signature = tools::mns_signature(&self.key, "POST", &self.path, &headers).await?;
        headers.push(("Authorization".into(), signature));
        headers.extend(self.unsigned.iter().cloned());
        rig.gw.post_to(&self.path, body, &headers).await
    }
}

/// The signed headers naming the topic a push came from, as on the real
/// push of 2023.
fn topic_headers(owner: &str, topic: &str) -> Vec<(String, String)> {
    vec![
        ("x-mns-topic-owner".into(), owner.into()),
        ("x-mns-topic-name".into(), topic.into()),
        ("x-mns-subscriber".into(), owner.into()),
        ("x-mns-subscription-name".into(), "ossbridge".into()),
        ("x-mns-message-id".into(), unique_name("mid")),
        ("x-mns-publish-time".into(), "1680079287576".into()),
    ]
}

fn base64_event(key: &str) -> Result<String> {
    Ok(STANDARD.encode(oss_body(key)?))
}

#[tokio::test]
async fn xml_json_and_simplified_pushes_are_enqueued_and_the_certificate_is_cached() -> Result<()> {
    let rig = rig("").await?;
    for format in ["xml", "json", "simplified"] {
        let key = format!("photos/{format}.jpg");
        let body = notification(format, OWNER, &base64_event(&key)?);
        let push = if format == "simplified" {
            Push::simplified(&rig, body, OWNER)
        } else {
            Push::new(&rig, body)
        };
        let response = push.send(&rig).await?;
        assert_eq!(
            response.status(),
            204,
            "{format}: {:?}",
            response.text().await
        );
    }
    let keys = rig.gw.drained_keys().await?;
    assert_eq!(
        keys,
        ["photos/json.jpg", "photos/simplified.jpg", "photos/xml.jpg"]
    );
    assert_eq!(
        rig.certs.stats().await?.fetches,
        1,
        "the certificate is fetched once"
    );
    Ok(())
}

#[tokio::test]
async fn forged_tampered_and_stale_pushes_get_401() -> Result<()> {
    let rig = rig("").await?;
    let body = notification("xml", OWNER, &base64_event("photos/a.jpg")?);

    let mut wrong_key = Push::new(&rig, body.clone());
    wrong_key.key = rig.certs.other_signing_key.clone();
    let r = wrong_key.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "signature mismatch")
    );

    let push = Push::new(&rig, body.clone());
    let tampered = body.replace("oss-events", "oss-evil");
    let r = push.send_body(&rig, &tampered).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "Content-MD5 does not match the body")
    );

    for skew in [-20 * 60, 20 * 60] {
        let mut stale = Push::new(&rig, body.clone());
        stale.date = if skew < 0 {
            SystemTime::now() - Duration::from_secs(20 * 60)
        } else {
            SystemTime::now() + Duration::from_secs(20 * 60)
        };
        let r = stale.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (401, "timestamp outside the allowed window"),
            "skew {skew}"
        );
    }

    let mut no_md5 = Push::new(&rig, body.clone());
    no_md5.content_md5 = Some(String::new());
    let r = no_md5.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "missing content-md5 header")
    );

    let mut wrong_token = Push::new(&rig, body);
    wrong_token.path = "/v1/ingest/mns?token=guess".into();
    let r = wrong_token.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "missing or wrong url token")
    );

    assert!(rig.gw.drain().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn certificate_urls_off_the_allowlist_are_refused_before_any_connection() -> Result<()> {
    let rig = rig("upgrade_http_cert_urls = false").await?;
    let body = notification("xml", OWNER, &base64_event("photos/a.jpg")?);
    let cases = [
        (
            rig.certs.other_url("/cert.pem"),
            401,
            "signing certificate URL refused: not on the allowlist",
        ),
        (
            format!("http://127.0.0.1:{}/cert.pem", rig.certs.port),
            401,
            "signing certificate URL refused: plain http",
        ),
        (
            rig.certs.url("/redirect"),
            401,
            "signing certificate URL refused: redirects are not followed",
        ),
        (
            rig.certs.url("/large"),
            401,
            "signing certificate unusable: larger than mns.max_cert_bytes",
        ),
        (
            rig.certs.url("/missing.pem"),
            401,
            "signing certificate unusable: not served (HTTP 4xx)",
        ),
        (
            rig.certs.url("/cert.pem?v=2"),
            401,
            "signing certificate URL refused: query string",
        ),
    ];
    for (url, status, why) in cases {
        let mut push = Push::new(&rig, body.clone());
        push.cert_url = url.clone();
        let r = push.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (status, why),
            "{url}"
        );
    }
    let stats = rig.certs.stats().await?;
    assert_eq!(
        stats.other_connections, 0,
        "the off-allowlist server was never contacted"
    );
    assert!(rig.gw.drain().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn an_http_certificate_url_is_fetched_over_https_when_upgrading() -> Result<()> {
    let rig = rig("upgrade_http_cert_urls = true").await?;
    let mut push = Push::new(
        &rig,
        notification("json", OWNER, &base64_event("photos/up.jpg")?),
    );
    // The allowlisted server speaks only https on this port: a plain http
    // fetch could not succeed.
    push.cert_url = format!("http://127.0.0.1:{}/cert.pem", rig.certs.port);
    assert_eq!(push.send(&rig).await?.status(), 204);
    assert_eq!(rig.gw.drain().await?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn topics_of_other_accounts_and_untokened_simplified_pushes_get_401() -> Result<()> {
    let rig = rig("").await?;
    let other_owner = Push::new(
        &rig,
        notification("xml", "9999", &base64_event("photos/a.jpg")?),
    );
    let r = other_owner.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "topic owner not allowed")
    );

    // A SIMPLIFIED push that names no topic owner in signed headers:
    // nothing says who sent it.
    let mut anonymous = Push::new(&rig, base64_event("photos/b.jpg")?);
    anonymous.content_type = "text/plain;charset=utf-8";
    anonymous.path = "/v1/ingest/mns_owner_only".into();
    let r = anonymous.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (
            401,
            "push does not name its topic owner (signed x-mns-topic-owner)"
        )
    );
    assert!(rig.gw.drain().await?.is_empty());
    Ok(())
}

#[tokio::test]
async fn aliyuns_512_bit_key_with_an_expired_certificate_is_accepted() -> Result<()> {
    let rig = rig("").await?;
    let mut push = Push::simplified(&rig, base64_event("photos/legacy.jpg")?, OWNER);
    push.key = rig.certs.legacy_signing_key.clone();
    push.cert_url = rig.certs.url("/aliyun-512.pem");
    push.path = "/v1/ingest/mns_owner_only".into();
    let r = push.send(&rig).await?;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);

    // Signed by another 512-bit key than the certificate's: a signature
    // problem, said as such.
    let mut forged = Push::simplified(&rig, base64_event("photos/forged.jpg")?, OWNER);
    forged.key = rig.certs.signing_key.clone();
    forged.cert_url = rig.certs.url("/aliyun-512.pem");
    forged.path = "/v1/ingest/mns_owner_only".into();
    let r = forged.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "signature mismatch")
    );
    assert_eq!(rig.gw.drained_keys().await?, ["photos/legacy.jpg"]);
    Ok(())
}

/// Another account subscribes our URL to its own topic and publishes, in
/// SIMPLIFIED format, a body that looks like a notification from us.
#[tokio::test]
async fn a_simplified_push_imitating_our_notification_is_refused() -> Result<()> {
    let rig = rig("").await?;
    let imitation = notification("xml", OWNER, &base64_event("photos/evil.jpg")?);
    for path in [
        "/v1/ingest/mns_owner_only",
        // Even with our URL token (leaked, or sent over plain HTTP).
        PATH,
    ] {
        let mut push = Push::simplified(&rig, imitation.clone(), "1999999999999999");
        push.path = path.into();
        let r = push.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (401, "topic owner not allowed"),
            "{path}"
        );
        // Naming our account in the signed header does not make the
        // imitation a notification: it is read as the message itself.
        let mut ours = Push::simplified(&rig, imitation.clone(), OWNER);
        ours.path = path.into();
        let r = ours.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (400, "MNS message is not base64"),
            "{path}"
        );
    }
    assert!(rig.gw.drain().await?.is_empty());
    // Counted for the failing-auth alarm, per source and check.
    let metrics = rig
        .gw
        .http
        .get(format!("http://{}/metrics", rig.gw.admin_addr))
        .send()
        .await?
        .text()
        .await?;
    for source in ["mns_owner_only", "mns"] {
        let series = format!(
            "ossbridge_gateway_auth_rejections_total{{source=\"{source}\",reason=\"topic_owner\"}}"
        );
        assert!(
            metrics.lines().any(|l| l.starts_with(&series)),
            "{series} missing from:\n{metrics}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn a_signed_owner_header_that_disagrees_with_the_body_is_refused() -> Result<()> {
    let rig = rig("").await?;
    for format in ["xml", "json"] {
        let body = notification(format, OWNER, &base64_event("photos/mixed.jpg")?);
        let mut push = Push::new(&rig, body.clone());
        push.path = "/v1/ingest/mns_owner_only".into();
        push.signed = topic_headers("1999999999999999", "oss-events");
        let r = push.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (
                401,
                "signed x-mns-topic-owner disagrees with the body's TopicOwner"
            ),
            "{format}"
        );
        let mut topic = Push::new(&rig, body);
        topic.path = "/v1/ingest/mns_owner_only".into();
        topic.signed = topic_headers(OWNER, "another-topic");
        let r = topic.send(&rig).await?;
        assert_eq!(
            (r.status().as_u16(), reason(r).await?.as_str()),
            (
                401,
                "signed x-mns-topic-name disagrees with the body's TopicName"
            ),
            "{format}"
        );
    }
    // Agreeing headers and body: accepted.
    let mut agree = Push::new(
        &rig,
        notification("xml", OWNER, &base64_event("photos/agree.jpg")?),
    );
    agree.path = "/v1/ingest/mns_owner_only".into();
    agree.signed = topic_headers(OWNER, "oss-events");
    assert_eq!(agree.send(&rig).await?.status(), 204);
    assert_eq!(rig.gw.drained_keys().await?, ["photos/agree.jpg"]);
    Ok(())
}

/// Behind the ALB's port-80 rule: `X-Forwarded-Proto: http` from a
/// trusted proxy (here the test itself, on 127.0.0.1).
#[tokio::test]
async fn plain_http_pushes_reach_only_sources_that_allow_them_and_tokens_do_not_count() -> Result<()>
{
    let rig = rig("").await?;
    let plain = |push: &mut Push, path: &str| {
        push.path = path.into();
        push.unsigned = vec![("X-Forwarded-Proto".into(), "http".into())];
    };
    let mut ok = Push::simplified(&rig, base64_event("photos/plain.jpg")?, OWNER);
    plain(&mut ok, "/v1/ingest/mns_plain");
    let r = ok.send(&rig).await?;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);

    // A source without allow_plain_http: refused before its body is read.
    let mut https_only = Push::simplified(&rig, base64_event("photos/clear.jpg")?, OWNER);
    plain(&mut https_only, PATH);
    let r = https_only.send(&rig).await?;
    assert_eq!(
        (r.status().as_u16(), reason(r).await?.as_str()),
        (401, "this source accepts only HTTPS")
    );

    // A token-only source: the same token that works over HTTPS proves
    // nothing in clear. (Config refuses allow_plain_http there, so this is
    // the refusal above; over HTTPS it is accepted.)
    let token_path = "/v1/ingest/mns_token_only?token=url-token-for-tests";
    let mut over_https = Push::simplified(&rig, base64_event("photos/tls.jpg")?, "42");
    over_https.path = token_path.into();
    over_https.unsigned = vec![("X-Forwarded-Proto".into(), "https".into())];
    let r = over_https.send(&rig).await?;
    assert_eq!(r.status(), 204, "{:?}", r.text().await);
    let mut in_clear = Push::simplified(&rig, base64_event("photos/clear2.jpg")?, "42");
    plain(&mut in_clear, token_path);
    assert_eq!(in_clear.send(&rig).await?.status(), 401);

    assert_eq!(
        rig.gw.drained_keys().await?,
        ["photos/plain.jpg", "photos/tls.jpg"]
    );
    Ok(())
}

#[tokio::test]
async fn malformed_mns_bodies_get_400_and_oversize_ones_413() -> Result<()> {
    let rig = rig("").await?;
    let message = base64_event("photos/a.jpg")?;
    let cases = [
        (
            "<Notification><TopicOwner>1148930107246818</TopicOwner></Notification>".to_owned(),
            "MNS notification has no Message",
        ),
        (
            notification("xml", OWNER, "***not base64***"),
            "MNS message is not base64",
        ),
        (
            notification("xml", OWNER, &message).replace("<MessageMD5>", "<MessageMD5>00"),
            "MessageMD5 does not match Message",
        ),
        (
            notification("json", OWNER, &message).replacen('{', "{,", 1),
            "body is not an MNS JSON notification",
        ),
    ];
    for (body, why) in cases {
        let r = Push::new(&rig, body.clone()).send(&rig).await?;
        assert_eq!(r.status(), 400, "{body}");
        let got = reason(r).await?;
        assert!(got.contains(why), "{got:?} for {body}");
    }
    let big = "A".repeat(2 * 1024 * 1024);
    let r = Push::new(&rig, big).send(&rig).await?;
    assert_eq!(r.status(), 413);
    assert!(rig.gw.drain().await?.is_empty());
    Ok(())
}
