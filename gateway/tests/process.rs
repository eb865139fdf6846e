//! The `ossbridge-gateway` binary as operators run it: TLS from PEM files
//! reloaded on SIGHUP without dropping connections, a graceful SIGTERM under
//! load, and JSON logs carrying the request id and object key.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::future::join_all;
use ossbridge_testkit::webhook::{Signer, now};
use ossbridge_testkit::{Emulator, LocalAws, Service, fixtures, unique_name};

struct Running {
    _emulator: Emulator,
    aws: LocalAws,
    queue_url: String,
    signer: Signer,
    service: Service,
}

async fn start(extra: &str) -> Result<Running> {
    start_with(extra, "", &[]).await
}

/// `verifier_secrets` replaces the inline secret list when not empty.
async fn start_with(extra: &str, verifier_secrets: &str, env: &[(&str, &str)]) -> Result<Running> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("proc"), &[]).await?;
    let signer = Signer::generate(&unique_name("s"));
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra}\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\
         [sources.media]\nqueue_url = \"{queue_url}\"\n\
         [sources.media.verifier]\ntype = \"standard_webhooks\"\nsecrets = {secrets}\n",
        endpoint = emulator.endpoint(),
        secrets = if verifier_secrets.is_empty() {
            format!("[\"{}\"]", signer.secret())
        } else {
            verifier_secrets.to_owned()
        },
    );
    let service =
        Service::spawn_with_env("ossbridge-gateway", &config, "gateway_started", env).await?;
    Ok(Running {
        _emulator: emulator,
        aws,
        queue_url,
        signer,
        service,
    })
}

impl Running {
    fn addr(&self) -> Result<String> {
        let started = self.service.event("gateway_started").context("started")?;
        Ok(started["addr"].as_str().context("addr")?.to_owned())
    }

    fn signed(
        &self,
        client: &reqwest::Client,
        url: &str,
        key: &str,
    ) -> Result<reqwest::RequestBuilder> {
        let body = fixtures::oss_event("oss-events/put-object.json", "media-prod", &[(key, b"x")])?;
        let mut request = client.post(url).body(body.clone());
        for (k, v) in self
            .signer
            .headers(&unique_name("m"), now(), body.as_bytes())
        {
            request = request.header(k, v);
        }
        Ok(request)
    }

    async fn wait_for_log(&self, event: &str, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.service.event(event) {
                return Ok(line);
            }
            if Instant::now() > deadline {
                bail!("no {event} log within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn write_cert(dir: &Path) -> Result<Vec<u8>> {
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    std::fs::write(dir.join("cert.pem"), generated.cert.pem())?;
    std::fs::write(dir.join("key.pem"), generated.signing_key.serialize_pem())?;
    Ok(generated.cert.der().to_vec())
}

fn client_trusting(certs: &[&[u8]]) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().no_proxy().tls_info(true);
    for der in certs {
        builder = builder.add_root_certificate(reqwest::Certificate::from_der(der)?);
    }
    Ok(builder.build()?)
}

async fn peer_certificate(client: &reqwest::Client, url: &str) -> Result<Vec<u8>> {
    let response = client.get(url).send().await?;
    assert_eq!(response.status(), 200);
    let info = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .context("no TLS info")?;
    Ok(info
        .peer_certificate()
        .context("no peer certificate")?
        .to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_certificates_are_reloaded_on_sighup_without_dropping_connections() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let first = write_cert(dir.path())?;
    let running = start(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    ))
    .await?;
    let url = format!("https://{}/healthz", running.addr()?);

    let second_dir = tempfile::tempdir()?;
    let second = write_cert(second_dir.path())?;
    let client = client_trusting(&[&first, &second])?;
    assert_eq!(peer_certificate(&client, &url).await?, first);
    let ingest = format!("https://{}/v1/ingest/media", running.addr()?);
    assert_eq!(
        running
            .signed(&client, &ingest, "tls/before")?
            .send()
            .await?
            .status(),
        200
    );

    // Swap the files, then SIGHUP.
    for name in ["cert.pem", "key.pem"] {
        std::fs::copy(second_dir.path().join(name), dir.path().join(name))?;
    }
    let pid = running.service.pid().context("pid")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )?;
    running
        .wait_for_log("tls_certificate_reloaded", Duration::from_secs(10))
        .await?;

    // The open connection survives (same certificate, still served); a new
    // connection gets the new certificate.
    assert_eq!(peer_certificate(&client, &url).await?, first);
    assert_eq!(
        running
            .signed(&client, &ingest, "tls/after")?
            .send()
            .await?
            .status(),
        200
    );
    let fresh = client_trusting(&[&second])?;
    assert_eq!(peer_certificate(&fresh, &url).await?, second);

    // A broken file on the next SIGHUP keeps the current certificate.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate")?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )?;
    running
        .wait_for_log("tls_certificate_reload_failed", Duration::from_secs(10))
        .await?;
    let again = client_trusting(&[&second])?;
    assert_eq!(peer_certificate(&again, &url).await?, second);

    assert_eq!(running.aws.drain(&running.queue_url).await?.len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_answers_every_request_and_loses_no_acknowledged_event() -> Result<()> {
    const REQUESTS: usize = 200;
    // Debug level: `event_normalized` names each request's key once the
    // gateway has read and verified it.
    let mut running = start(
        "[log]\nformat = \"json\"\n\
         level = \"debug,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,h2=warn\"\n",
    )
    .await?;
    let url = format!("http://{}/v1/ingest/media", running.addr()?);
    let client = reqwest::Client::builder().no_proxy().build()?;

    let answered = AtomicUsize::new(0);
    let requests: Vec<_> = (0..REQUESTS)
        .map(|i| {
            let key = format!("term/{i}");
            let request = running.signed(&client, &url, &key)?;
            let answered = &answered;
            Ok(async move {
                let result = request.send().await;
                answered.fetch_add(1, Ordering::Relaxed);
                (key, result)
            })
        })
        .collect::<Result<_>>()?;
    let sending = join_all(requests);
    // SIGTERM once the gateway is visibly under load: some requests
    // answered, most still queued or in flight (however slow the machine).
    let terminate = async {
        while answered.load(Ordering::Relaxed) < 10 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        running.service.terminate()
    };
    let (responses, terminated) = tokio::join!(sending, terminate);
    terminated?;

    let mut acknowledged = BTreeSet::new();
    let mut unanswered = Vec::new();
    for (key, r) in responses {
        match r {
            Ok(r) => {
                let status = r.status().as_u16();
                assert!(status == 200 || status == 503, "status {status}");
                if status == 200 {
                    acknowledged.insert(key);
                }
            }
            Err(e) => unanswered.push((key, e)),
        }
    }
    assert!(acknowledged.len() >= 10);
    let status = running.service.wait(Duration::from_secs(30)).await?;
    assert!(status.success(), "exit status {status}");
    assert!(running.service.event("gateway_stopped").is_some());
    // A request that failed at the transport never got in: refused after
    // the listener closed, or reset while still in the kernel's accept
    // queue or on a keep-alive connection closed as idle. The sender
    // retries those. A request the gateway had read must have been
    // answered.
    let read: BTreeSet<String> = running
        .service
        .events("event_normalized")
        .iter()
        .filter_map(|e| e["key"].as_str().map(str::to_owned))
        .collect();
    assert!(
        acknowledged.is_subset(&read),
        "event_normalized names each key"
    );
    for (key, e) in &unanswered {
        assert!(
            !read.contains(key),
            "{key} was read by the gateway but not answered: {e}"
        );
    }
    // Every acknowledged event, by key, is on the queue.
    let on_queue: BTreeSet<String> = running
        .aws
        .drain(&running.queue_url)
        .await?
        .iter()
        .map(|body| {
            let m: serde_json::Value = serde_json::from_str(body)?;
            m["key"].as_str().map(str::to_owned).context("key")
        })
        .collect::<Result<_>>()?;
    let lost: Vec<_> = acknowledged.difference(&on_queue).collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not on the queue: {lost:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_and_the_object_key() -> Result<()> {
    let running = start("[log]\nformat = \"json\"\nlevel = \"debug,aws_config=warn,aws_smithy_runtime=warn,hyper=warn,h2=warn\"\n").await?;
    let url = format!("http://{}/v1/ingest/media", running.addr()?);
    let client = reqwest::Client::builder().no_proxy().build()?;
    let response = running
        .signed(&client, &url, "logs/报告 final.pdf")?
        .header("x-request-id", "trace-me-42")
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let line = running
        .wait_for_log("event_normalized", Duration::from_secs(10))
        .await?;
    assert_eq!(line["key"], "logs/报告 final.pdf", "{line}");
    assert_eq!(line["span"]["request_id"], "trace-me-42", "{line}");
    assert_eq!(line["span"]["source"], "media", "{line}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_the_environment_work_and_never_reach_the_logs() -> Result<()> {
    let signer = Signer::generate("from-env");
    let running = start_with(
        "[log]\nformat = \"json\"\nlevel = \"trace,aws_smithy_runtime=info,aws_config=info,hyper=info,h2=info\"\n",
        "{ env = \"MEDIA_WEBHOOK_SECRETS\" }",
        &[("MEDIA_WEBHOOK_SECRETS", signer.secret())],
    )
    .await?;
    let url = format!("http://{}/v1/ingest/media", running.addr()?);
    let client = reqwest::Client::builder().no_proxy().build()?;
    let body = fixtures::oss_event(
        "oss-events/put-object.json",
        "media-prod",
        &[("env/ok", b"x")],
    )?;
    let mut request = client.post(&url).body(body.clone());
    for (k, v) in signer.headers("m-env", now(), body.as_bytes()) {
        request = request.header(k, v);
    }
    assert_eq!(request.send().await?.status(), 200);
    // A refused request, too: its error path must not echo the secret.
    let bad = client
        .post(&url)
        .body(body)
        .header("webhook-id", "x")
        .header("webhook-timestamp", now().to_string())
        .header("webhook-signature", "v1,AAAA")
        .send()
        .await?;
    assert_eq!(bad.status(), 401);
    let key = signer.secret().trim_start_matches("whsec_");
    let logs = running.service.logs().join("\n");
    assert!(
        logs.contains("ingest_accepted") || logs.contains("event_normalized"),
        "trace logs were captured"
    );
    assert!(
        !logs.contains(key),
        "the webhook secret appeared in the logs"
    );
    Ok(())
}
