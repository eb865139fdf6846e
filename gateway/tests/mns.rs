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
             [sources.mns_owner_only.verifier]\ntype = \"mns\"\ntopic_owners = [\"{OWNER}\"]\n"
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
        }
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
            ("Content-Type".into(), "text/xml;charset=utf-8".into()),
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
        let signature = tools::mns_signature(&self.key, "POST", &self.path, &headers).await?;
        headers.push(("Authorization".into(), signature));
        rig.gw.post_to(&self.path, body, &headers).await
    }
}

fn base64_event(key: &str) -> Result<String> {
    Ok(STANDARD.encode(oss_body(key)?))
}

#[tokio::test]
async fn xml_json_and_simplified_pushes_are_enqueued_and_the_certificate_is_cached() -> Result<()> {
    let rig = rig("").await?;
    for format in ["xml", "json", "simplified"] {
        let key = format!("photos/{format}.jpg");
        let push = Push::new(&rig, notification(format, OWNER, &base64_event(&key)?));
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
        (rig.certs.url("/large"), 401, "signing certificate unusable"),
        (
            rig.certs.url("/missing.pem"),
            401,
            "signing certificate unusable",
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

    let mut simplified = Push::new(&rig, base64_event("photos/b.jpg")?);
    simplified.path = "/v1/ingest/mns_owner_only".into();
    let r = simplified.send(&rig).await?;
    assert_eq!(r.status(), 401);
    assert!(reason(r).await?.contains("url_token"));
    assert!(rig.gw.drain().await?.is_empty());
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
        (notification("json", OWNER, &message).replace('{', "[{"), ""),
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
