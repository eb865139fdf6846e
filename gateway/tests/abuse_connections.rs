//! The gateway against hostile connections: malformed TLS, and thousands
//! of idle and half-open connections against the real binary.
//!
//! A connection that never finishes its handshake or its request is cheap
//! for an attacker to hold, so it must cost the gateway no more than a slot
//! until its deadline: after every hostile case a correctly signed client
//! is still served, and with thousands held at once the process's peak RSS
//! stays far below what the deploy gives it. Every peer is on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::raw::{put_event, read_until_quiet};
use common::{Gateway, SOURCE};
use futures::StreamExt;
use ossbridge_testkit::webhook::{Signer, now};
use ossbridge_testkit::{Emulator, LocalAws, Service, unique_name};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

// ---- TLS ----

/// A self-signed certificate for 127.0.0.1 in PEM files, the `[tls]`
/// table naming them, and an https client trusting it.
struct TlsFiles {
    _dir: tempfile::TempDir,
    toml: String,
    der: Vec<u8>,
}

impl TlsFiles {
    fn new() -> Result<TlsFiles> {
        let dir = tempfile::tempdir()?;
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, generated.cert.pem())?;
        std::fs::write(&key, generated.signing_key.serialize_pem())?;
        let toml = format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n");
        let der = generated.cert.der().to_vec();
        Ok(TlsFiles {
            _dir: dir,
            toml,
            der,
        })
    }

    fn client(&self) -> Result<reqwest::Client> {
        let root = reqwest::Certificate::from_der(&self.der)?;
        let builder = reqwest::Client::builder()
            .no_proxy()
            .add_root_certificate(root);
        Ok(builder.timeout(Duration::from_secs(60)).build()?)
    }
}

/// POSTs a signed event for `key` to `https://{addr}`; the status.
async fn post_https(
    client: &reqwest::Client,
    addr: SocketAddr,
    signer: &Signer,
    key: &str,
) -> Result<u16> {
    let body = put_event(key)?;
    let url = format!("https://{addr}/v1/ingest/{SOURCE}");
    let mut request = client.post(url).body(body.clone());
    for (k, v) in signer.headers(&unique_name("m"), now(), body.as_bytes()) {
        request = request.header(k, v);
    }
    Ok(request.send().await?.status().as_u16())
}

/// A TLS handshake record holding a ClientHello.
fn client_hello(record: u16, client: u16, suites: &[u16], extensions: &[u8]) -> Vec<u8> {
    let mut body = client.to_be_bytes().to_vec();
    body.extend_from_slice(&[7; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&(suites.len() as u16 * 2).to_be_bytes());
    suites
        .iter()
        .for_each(|s| body.extend_from_slice(&s.to_be_bytes()));
    body.extend_from_slice(&[1, 0]); // compression: null only
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(extensions);
    let mut handshake = vec![1]; // client_hello
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut out = vec![0x16];
    out.extend_from_slice(&record.to_be_bytes());
    out.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    out.extend_from_slice(&handshake);
    out
}

/// supported_groups (x25519, P-256), ec_point_formats, signature_algorithms.
const EXTENSIONS: &[u8] = &[
    0, 10, 0, 6, 0, 4, 0, 0x1d, 0, 0x17, 0, 11, 0, 2, 1, 0, 0, 13, 0, 8, 0, 6, 4, 3, 8, 4, 4, 1,
];
/// A ClientHello a TLS 1.2 server accepts (ECDHE-ECDSA/RSA AES-GCM).
fn tls12_hello() -> Vec<u8> {
    client_hello(0x0301, 0x0303, &[0xc02b, 0xc02f], EXTENSIONS)
}

#[tokio::test]
async fn malformed_tls_is_closed_and_good_clients_are_served_during_and_after() -> Result<()> {
    let tls = TlsFiles::new()?;
    let gw = Gateway::start_with(&format!(
        "{}[limits]\ntls_handshake_timeout_ms = 1500\n",
        tls.toml
    ))
    .await?;
    let client = tls.client()?;

    // A handshake that stops half way holds a slot until the handshake
    // deadline; a good client is served meanwhile.
    let hello = tls12_hello();
    let mut stalled = TcpStream::connect(gw.addr).await?;
    stalled.write_all(&hello[..hello.len() / 2]).await?;
    assert_eq!(
        post_https(&client, gw.addr, &gw.signer, "tls/during").await?,
        200
    );
    let started = Instant::now();
    let (answer, closed) = read_until_quiet(&mut stalled, Duration::from_secs(10)).await;
    assert!(closed && answer.is_empty(), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(5));

    let mut random = Vec::with_capacity(4096);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while random.len() < 4096 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        random.extend_from_slice(&x.to_le_bytes());
    }
    // SSLv2 CLIENT-HELLO (version 2 and a v3.1-in-v2 framing), 3 specs.
    let sslv2 = |version: [u8; 2]| {
        let mut m = vec![1, version[0], version[1], 0, 9, 0, 0, 0, 16];
        m.extend_from_slice(&[1, 0, 0x80, 7, 0, 0xc0, 0, 0, 0x2f]);
        m.extend_from_slice(&[0x42; 16]);
        let mut out = vec![0x80 | (m.len() >> 8) as u8, m.len() as u8];
        out.extend_from_slice(&m);
        out
    };
    let old = [0x002f, 0xc009, 0xc013, 0x000a];
    let cases: [(&str, Vec<u8>); 7] = [
        ("random bytes", random),
        ("SSLv2 hello", sslv2([0, 2])),
        ("SSLv2-framed TLS 1.0 hello", sslv2([3, 1])),
        (
            "TLS 1.0-only hello",
            client_hello(0x0301, 0x0301, &old, EXTENSIONS),
        ),
        (
            "TLS 1.1-only hello",
            client_hello(0x0302, 0x0302, &old, EXTENSIONS),
        ),
        ("truncated hello, then EOF", hello[..40].to_vec()),
        (
            "plaintext HTTP",
            b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(),
        ),
    ];
    for (name, bytes) in cases {
        let mut stream = TcpStream::connect(gw.addr).await?;
        let _ = stream.write_all(&bytes).await;
        if name.ends_with("EOF") {
            stream.shutdown().await?;
        }
        let (answer, closed) = read_until_quiet(&mut stream, Duration::from_secs(10)).await;
        assert!(closed, "{name}: still open");
        // Nothing but (at most) a TLS alert record: 0x15, then a fatal level.
        assert!(
            answer.is_empty() || (answer[0] == 0x15 && answer.get(5) == Some(&2)),
            "{name}: {answer:?}"
        );
        if name.starts_with("TLS 1.") {
            // An old-version hello is refused as such: protocol_version (70).
            assert_eq!(answer.get(6), Some(&70), "{name}: {answer:?}");
        }
        assert_eq!(
            post_https(&client, gw.addr, &gw.signer, &format!("tls/after {name}")).await?,
            200
        );
    }
    assert_eq!(gw.drain().await?.len(), 8);
    Ok(())
}

// ---- Thousands of connections against the real binary ----

/// Our RLIMIT_NOFILE soft limit, raised to the hard limit (with
/// util-linux `prlimit`) when below `needed`; the gateway child inherits it.
fn ensure_nofile(needed: u64) -> Result<u64> {
    let soft = || -> Result<(u64, String)> {
        let limits = std::fs::read_to_string("/proc/self/limits")?;
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .context("no open-files limit")?;
        let mut fields = line.split_whitespace().skip(3);
        let soft = fields.next().context("soft")?.parse().unwrap_or(u64::MAX);
        Ok((soft, fields.next().context("hard")?.to_owned()))
    };
    let (current, hard) = soft()?;
    if current < needed {
        let pid = std::process::id().to_string();
        let _ = std::process::Command::new("prlimit")
            .args(["--pid", &pid, &format!("--nofile={hard}:{hard}")])
            .status();
    }
    let (current, _) = soft()?;
    ensure!(
        current >= needed,
        "RLIMIT_NOFILE is {current}, this test needs {needed}"
    );
    Ok(current)
}

fn vm_kib(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .with_context(|| format!("no {field}"))?;
    Ok(line.split_whitespace().nth(1).context("value")?.parse()?)
}

async fn open_connections(admin: &str, client: &reqwest::Client) -> Result<u64> {
    let text = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let line = text
        .lines()
        .find(|l| l.starts_with("ossbridge_gateway_connections "))
        .context("no connection gauge")?;
    Ok(line.rsplit(' ').next().unwrap_or("0").parse::<f64>()? as u64)
}

/// Opens `n` connections with `open`, `at_once` at a time.
async fn hold<T, F: std::future::Future<Output = Result<T>>>(
    n: usize,
    at_once: usize,
    open: impl FnMut(usize) -> F,
) -> Result<Vec<T>> {
    let opened: Vec<Result<T>> = futures::stream::iter(0..n)
        .map(open)
        .buffer_unordered(at_once)
        .collect()
        .await;
    opened.into_iter().collect()
}

/// Idle TCP, half-sent ClientHellos and finished handshakes that never send
/// a full request, all at once; the deploy gives the gateway task 1 GiB
/// (deploy/aws/ossbridge.yaml), and its peak RSS must stay far below.
const IDLE_TCP: usize = 2200;
const HALF_HANDSHAKES: usize = 500;
const IDLE_TLS: usize = 300;
const VM_HWM_LIMIT_KIB: u64 = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_idle_connections_neither_starve_signed_clients_nor_blow_memory() -> Result<()>
{
    let total = IDLE_TCP + HALF_HANDSHAKES + IDLE_TLS;
    ensure_nofile(total as u64 + 1024)?;
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("flood"), &[]).await?;
    let signer = Signer::generate(&unique_name("s"));
    let tls = TlsFiles::new()?;
    // Long deadlines: the connections are held, not timed out, while the
    // good client is served (the worst case for memory).
    let config = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{tls}\
         [log]\nlevel = \"info\"\n\
         [limits]\nheader_read_timeout_ms = 120000\ntls_handshake_timeout_ms = 120000\n\
         [aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n\
         [sources.{SOURCE}]\nqueue_url = \"{queue_url}\"\n\
         [sources.{SOURCE}.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"{secret}\"]\n",
        tls = tls.toml,
        endpoint = emulator.endpoint(),
        secret = signer.secret(),
    );
    let service = Service::spawn("ossbridge-gateway", &config, "gateway_started").await?;
    let started = service.event("gateway_started").context("started")?;
    let addr: SocketAddr = started["addr"].as_str().context("addr")?.parse()?;
    let admin = started["admin_addr"].as_str().context("admin")?.to_owned();
    let pid = service.pid().context("pid")?;
    let plain = reqwest::Client::builder().no_proxy().build()?;
    let rss_before = vm_kib(pid, "VmRSS:")?;

    let mut roots = rustls::RootCertStore::empty();
    roots.add(rustls_pki_types::CertificateDer::from(tls.der.clone()))?;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth(),
    ));
    let half_hello = &tls12_hello()[..60];
    let idle = hold(IDLE_TCP + HALF_HANDSHAKES, 64, |i| async move {
        let mut stream = TcpStream::connect(addr).await?;
        if i >= IDLE_TCP {
            stream.write_all(half_hello).await?;
        }
        Ok(stream)
    })
    .await?;
    let idle_tls = hold(IDLE_TLS, 16, |_| {
        let connector = connector.clone();
        async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls_pki_types::ServerName::try_from("127.0.0.1")?.to_owned();
            let mut tls = connector.connect(name, tcp).await?;
            // Headers begun, never finished.
            tls.write_all(b"POST /v1/ingest/media-prod HTTP/1.1\r\nHost: x\r\n")
                .await?;
            Ok(tls)
        }
    })
    .await?;

    // Held by the gateway itself, not waiting in the accept queue.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut held = open_connections(&admin, &plain).await?;
    while held < total as u64 {
        ensure!(
            Instant::now() < deadline,
            "only {held} of {total} connections accepted"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        held = open_connections(&admin, &plain).await?;
    }

    let client = tls.client()?;
    for i in 0..20 {
        let status = post_https(&client, addr, &signer, &format!("flood/{i}")).await?;
        assert_eq!(status, 200, "request {i}");
    }
    let hwm = vm_kib(pid, "VmHWM:")?;
    eprintln!(
        "held {held} connections ({IDLE_TCP} idle TCP, {HALF_HANDSHAKES} half handshakes, \
         {IDLE_TLS} idle TLS); gateway VmRSS before {rss_before} KiB, VmHWM {hwm} KiB"
    );
    assert!(hwm < VM_HWM_LIMIT_KIB, "VmHWM {hwm} KiB");

    drop(idle);
    drop(idle_tls);
    let r = plain.get(format!("http://{admin}/healthz")).send().await?;
    assert_eq!(r.status(), 200, "the gateway is alive");
    assert_eq!(aws.drain(&queue_url).await?.len(), 20);
    Ok(())
}
