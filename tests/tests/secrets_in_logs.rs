//! No secret reaches the logs, even at `trace` for every crate (hyper,
//! rustls, the AWS SDK): the gateway and the transfer binaries run at that
//! level with a distinctive value for every kind of secret, real traffic
//! goes through every verifier (accepted and refused), the admin replay
//! endpoint and a copy that reads the OSS keys from SSM, and then every
//! captured line is searched for each secret in raw, base64 and hex form.
//!
//! gateway/tests/process.rs checks one secret from the environment at a
//! filtered trace level; this covers all of them, unfiltered, in both
//! services.

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_ssm::types::ParameterType;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use md5::{Digest, Md5};
use ossbridge_testkit::pipeline::{Names, Resources};
use ossbridge_testkit::tools::{self, CertServer};
use ossbridge_testkit::webhook::{Signer, now};
use ossbridge_testkit::{Emulator, LocalAws, S3Proxy, Service, TEST_REGION, fixtures, unique_name};
use serde_json::Value;

// Printable, so a raw leak of the Standard Webhooks key bytes is visible.
const SW_KEY: &[u8] = b"sw-key-bytes-Q7vX2mPz9K";
const GH_SECRET: &str = "gh-hmac-secret-R4nW8tLq";
const EB_API_KEY: &str = "eb-api-key-J6yH3sDc";
const EB_PASSWORD: &str = "eb-basic-password-T9fK2wZe";
const MNS_TOKEN: &str = "mns-url-token-B5pM7xNa";
const ADMIN_TOKEN: &str = "admin-replay-token-V3cL8qYu";
const OSS_SECRET: &str = "oss-secret-access-key-H2gD6rJw";
/// The AWS SDK's own secret key (moto does not check signatures).
const AWS_SECRET: &str = "aws-secret-access-key-N8kP4sFt";
const OWNER: &str = "1148930107246818";
const WAIT: Duration = Duration::from_secs(60);

/// Every form a secret could leak in.
fn forms(secret: &[u8]) -> Vec<String> {
    vec![
        String::from_utf8_lossy(secret).into_owned(),
        STANDARD.encode(secret),
        STANDARD_NO_PAD.encode(secret),
        URL_SAFE_NO_PAD.encode(secret),
        hex::encode(secret),
        hex::encode_upper(secret),
    ]
}

fn toml_str(s: &str) -> String {
    Value::from(s).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_trace_logs_of_either_service() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let res = Resources::create(&aws, Names::unique(), 3, 30).await?;
    aws.put_oss_keys(&res.parameter, "testing", OSS_SECRET)
        .await?;
    let prefix = format!("/ossbridge/{}", unique_name("secrets"));
    for (name, value) in [("gh", GH_SECRET), ("admin", ADMIN_TOKEN)] {
        aws.ssm
            .put_parameter()
            .name(format!("{prefix}/{name}"))
            .value(value)
            .r#type(ParameterType::SecureString)
            .send()
            .await?;
    }
    let certs = tokio::task::spawn_blocking(CertServer::start).await??;
    let cert_dir = certs.ca.parent().context("cert dir")?.to_path_buf();
    let dir = tempfile::tempdir()?;
    let password_file = dir.path().join("eb-passwords");
    std::fs::write(&password_file, format!("{EB_PASSWORD}\n"))?;
    let signer =
        Signer::from_secret(&format!("whsec_{}", STANDARD.encode(SW_KEY))).context("signer")?;

    // Every way a secret is configured: inline, SSM, environment, file.
    let queue = toml_str(&res.queue_url);
    let aws_section = format!(
        "[aws]\nregion = {}\nendpoint_url = {}\n",
        toml_str(TEST_REGION),
        toml_str(&emulator.endpoint())
    );
    let gateway_config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n\
         [log]\nformat = \"json\"\nlevel = \"trace\"\n{aws_section}\
         [tls]\ncert_file = {cert}\nkey_file = {key}\n\
         [admin]\nreplay_tokens = {{ ssm_parameter = \"{prefix}/admin\" }}\n\
         [mns]\ncert_url_allowlist = [{allow}]\nextra_ca_file = {ca}\n\
         [sources.sw]\nqueue_url = {queue}\n[sources.sw.verifier]\n\
         type = \"standard_webhooks\"\nsecrets = [{sw}]\n\
         [sources.gh]\nqueue_url = {queue}\n[sources.gh.verifier]\n\
         type = \"hmac\"\nsecrets = {{ ssm_parameter = \"{prefix}/gh\" }}\n\
         [sources.eb_key]\nqueue_url = {queue}\n[sources.eb_key.verifier]\n\
         type = \"api_key\"\nheader = \"X-Api-Key\"\nkeys = {{ env = \"EB_API_KEYS\" }}\n\
         [sources.eb_basic]\nqueue_url = {queue}\n[sources.eb_basic.verifier]\n\
         type = \"basic_auth\"\nusername = \"eventbridge\"\npasswords = {{ file = {pw} }}\n\
         [sources.mns]\nqueue_url = {queue}\n[sources.mns.verifier]\n\
         type = \"mns\"\ntopic_owners = [\"{OWNER}\"]\nurl_token = [\"{MNS_TOKEN}\"]\n",
        cert = toml_str(&cert_dir.join("server.pem").display().to_string()),
        key = toml_str(&cert_dir.join("server-key.pem").display().to_string()),
        allow = toml_str(&certs.url("/")),
        ca = toml_str(&certs.ca.display().to_string()),
        sw = toml_str(signer.secret()),
        pw = toml_str(&password_file.display().to_string()),
    );
    let env = [
        ("EB_API_KEYS", EB_API_KEY),
        ("AWS_SECRET_ACCESS_KEY", AWS_SECRET),
    ];
    let gateway = Service::spawn_with_env(
        "ossbridge-gateway",
        &gateway_config,
        "gateway_started",
        &env,
    )
    .await?;
    // The source as OSS: virtual-hosted-style, OSS's headers.
    let source = S3Proxy::start_oss(&emulator.endpoint()).await?;
    let transfer_config = format!(
        "queue_url = {queue}\n[log]\nformat = \"json\"\nlevel = \"trace\"\n{aws_section}\
         [source]\nbucket = {src}\nendpoint_url = {endpoint}\nregion = {region}\n\
         credentials_parameter = {param}\nforce_path_style = false\n\
         [destination]\nbucket = {dst}\nforce_path_style = true\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[worker]\nvisibility_timeout_secs = 30\n",
        src = toml_str(&res.source_bucket),
        endpoint = toml_str(&source.endpoint()),
        region = toml_str(TEST_REGION),
        param = toml_str(&res.parameter),
        dst = toml_str(&res.destination_bucket),
    );
    let transfer = Service::spawn_with_env(
        "ossbridge-transfer",
        &transfer_config,
        "transfer_started",
        &[("AWS_SECRET_ACCESS_KEY", AWS_SECRET)],
    )
    .await?;

    let started = gateway.event("gateway_started").context("started")?;
    let base = format!("https://{}", started["addr"].as_str().context("addr")?);
    let admin = format!(
        "http://{}",
        started["admin_addr"].as_str().context("admin")?
    );
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&certs.ca)?)?)
        .build()?;
    let post = |path: &str, body: &str, headers: &[(&str, String)]| {
        let mut request = http.post(format!("{base}{path}")).body(body.to_owned());
        for (k, v) in headers {
            request = request.header(*k, v);
        }
        request.send()
    };
    let event = |key: &str| -> Result<String> {
        fixtures::oss_event(
            "oss-events/put-object.json",
            &res.source_bucket,
            &[(key, key.as_bytes())],
        )
    };
    let keys = [
        "s/sw",
        "s/gh",
        "s/eb-key",
        "s/eb-basic",
        "s/mns",
        "s/replayed",
    ];
    for key in keys {
        aws.put_object(&res.source_bucket, key, key.as_bytes().to_vec())
            .await?;
    }

    // Standard Webhooks: accepted, then a forged signature.
    let body = event("s/sw")?;
    assert_eq!(
        post(
            "/v1/ingest/sw",
            &body,
            &signer.headers("m1", now(), body.as_bytes())
        )
        .await?
        .status(),
        200
    );
    let forged = [
        ("webhook-id", "m2".into()),
        ("webhook-timestamp", now().to_string()),
        ("webhook-signature", "v1,AAAA".into()),
    ];
    assert_eq!(post("/v1/ingest/sw", &body, &forged).await?.status(), 401);

    // GitHub-style HMAC (secret from SSM).
    let body = event("s/gh")?;
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(GH_SECRET.as_bytes())?;
    mac.update(body.as_bytes());
    let sig = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
    assert_eq!(
        post("/v1/ingest/gh", &body, &[("X-Hub-Signature-256", sig)])
            .await?
            .status(),
        200
    );
    assert_eq!(
        post(
            "/v1/ingest/gh",
            &body,
            &[("X-Hub-Signature-256", "sha256=00".into())]
        )
        .await?
        .status(),
        401
    );

    // EventBridge: API key (environment) and basic auth (file).
    let cloudevent = |key: &str| -> Result<String> {
        let mut ce: Value =
            serde_json::from_str(&fixtures::read("eventbridge/cloudevent-put.json")?)?;
        let oss: Value = serde_json::from_str(&event(key)?)?;
        ce["data"] = oss["events"][0].clone();
        Ok(ce.to_string())
    };
    let body = cloudevent("s/eb-key")?;
    assert_eq!(
        post(
            "/v1/ingest/eb_key",
            &body,
            &[("X-Api-Key", EB_API_KEY.into())]
        )
        .await?
        .status(),
        200
    );
    assert_eq!(
        post("/v1/ingest/eb_key", &body, &[("X-Api-Key", "wrong".into())])
            .await?
            .status(),
        401
    );
    let basic = |pw: &str| format!("Basic {}", STANDARD.encode(format!("eventbridge:{pw}")));
    let body = cloudevent("s/eb-basic")?;
    assert_eq!(
        post(
            "/v1/ingest/eb_basic",
            &body,
            &[("Authorization", basic(EB_PASSWORD))]
        )
        .await?
        .status(),
        200
    );
    assert_eq!(
        post(
            "/v1/ingest/eb_basic",
            &body,
            &[("Authorization", basic("wrong"))]
        )
        .await?
        .status(),
        401
    );

    // MNS push with the URL token (certificate fetched over rustls), and one
    // with a wrong token.
    let message = STANDARD.encode(event("s/mns")?);
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Notification xmlns=\"http://mns.aliyuncs.com/doc/v1/\">\
         <TopicOwner>{OWNER}</TopicOwner><TopicName>oss-events</TopicName><Subscriber>{OWNER}</Subscriber>\
         <SubscriptionName>ossbridge</SubscriptionName><MessageId>{}</MessageId><MessageMD5>{}</MessageMD5>\
         <Message>{message}</Message><PublishTime>1795767342000</PublishTime></Notification>",
        unique_name("mid"),
        hex::encode_upper(Md5::digest(message.as_bytes())),
    );
    for (token, status) in [(MNS_TOKEN, 204), ("wrong-token", 401)] {
        let path = format!("/v1/ingest/mns?token={token}");
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "text/xml;charset=utf-8".into()),
            (
                "Content-MD5".into(),
                STANDARD.encode(hex::encode(Md5::digest(xml.as_bytes()))),
            ),
            ("Date".into(), httpdate(std::time::SystemTime::now())),
            ("x-mns-version".into(), "2015-06-06".into()),
            (
                "x-mns-signing-cert-url".into(),
                STANDARD.encode(certs.url("/cert.pem")),
            ),
        ];
        let signature = tools::mns_signature(&certs.signing_key, "POST", &path, &headers).await?;
        headers.push(("Authorization".into(), signature));
        let headers: Vec<(&str, String)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        assert_eq!(
            post(&path, &xml, &headers).await?.status(),
            status,
            "token {token}"
        );
    }

    // The admin replay endpoint (token from SSM), wrong token first.
    let replay = |token: &str| {
        http.post(format!("{admin}/admin/replay/sw"))
            .bearer_auth(token)
            .body(event("s/replayed").unwrap_or_default())
            .send()
    };
    assert_eq!(replay("wrong-admin-token").await?.status(), 401);
    assert_eq!(replay(ADMIN_TOKEN).await?.status(), 200);

    // The transfer copies every object with the keys it read from SSM.
    for key in &keys {
        let copied = aws
            .wait_for_object(&res.destination_bucket, key, WAIT)
            .await?;
        assert_eq!(copied, key.as_bytes());
    }
    aws.wait_until_empty(&res.queue_url, WAIT).await?;

    let key_pem = std::fs::read_to_string(cert_dir.join("server-key.pem"))?;
    let mut secrets: Vec<(String, String)> = Vec::new();
    for (what, value) in [
        ("standard webhooks key", SW_KEY),
        ("standard webhooks secret", signer.secret().as_bytes()),
        ("github hmac secret", GH_SECRET.as_bytes()),
        ("eventbridge api key", EB_API_KEY.as_bytes()),
        ("eventbridge password", EB_PASSWORD.as_bytes()),
        (
            "eventbridge basic credentials",
            format!("eventbridge:{EB_PASSWORD}").as_bytes(),
        ),
        ("mns url token", MNS_TOKEN.as_bytes()),
        ("admin token", ADMIN_TOKEN.as_bytes()),
        ("oss secret key", OSS_SECRET.as_bytes()),
        ("aws secret key", AWS_SECRET.as_bytes()),
    ] {
        secrets.extend(forms(value).into_iter().map(|f| (what.to_owned(), f)));
    }
    for line in key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
    {
        secrets.push(("tls private key".to_owned(), line.to_owned()));
    }

    for (service, expect_targets) in [
        (
            &gateway,
            &["hyper", "rustls", "aws_smithy_runtime", "ossbridge_gateway"][..],
        ),
        (
            &transfer,
            &["hyper", "aws_smithy_runtime", "ossbridge_transfer"][..],
        ),
    ] {
        let logs = service.logs();
        let parsed: Vec<Value> = logs
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        // The capture is real: thousands of lines, trace level, from the
        // dependencies as well as our code.
        let traces = parsed.iter().filter(|v| v["level"] == "TRACE").count();
        assert!(traces > 100, "{} trace lines of {}", traces, logs.len());
        for target in expect_targets {
            assert!(
                parsed
                    .iter()
                    .any(|v| v["target"].as_str().is_some_and(|t| t.starts_with(target))),
                "no log line from {target}"
            );
        }
        eprintln!("{} log lines ({traces} at trace)", logs.len());
        for line in &logs {
            for (what, form) in &secrets {
                assert!(
                    !line.contains(form.as_str()),
                    "the {what} ({form}) is in a log line: {line}"
                );
            }
        }
    }
    Ok(())
}

fn httpdate(at: std::time::SystemTime) -> String {
    let t = time::OffsetDateTime::from(at);
    let format = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.format(&format).unwrap_or_default()
}
