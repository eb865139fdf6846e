//! The public TLS listener as an outside scanner sees it: `sslscan` (the
//! Debian package, installed by tests/tools/setup.sh) against the gateway
//! on 127.0.0.1, plus one probe sslscan cannot make when its OpenSSL lacks
//! zlib: a ClientHello offering DEFLATE must get a ServerHello choosing
//! null compression (CRIME).
//!
//! sslscan is required: without it this test fails rather than skips, so
//! a CI image that lost it is noticed.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use common::Gateway;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One XML element of sslscan's report: its name and attributes.
type Element = (String, BTreeMap<String, String>);

fn elements(xml: &str) -> Result<Vec<Element>> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Vec::new();
    loop {
        match reader.read_event()? {
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                let mut attributes = BTreeMap::new();
                for a in e.attributes() {
                    let a = a?;
                    attributes.insert(
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        a.unescape_value()?.into_owned(),
                    );
                }
                out.push((name, attributes));
            }
            Event::Eof => return Ok(out),
            _ => {}
        }
    }
}

/// `sslscan --xml=-` against `target`; fails when sslscan is missing.
async fn sslscan(target: &str) -> Result<String> {
    // setup.sh installs sslscan (apt) along with the other test tools.
    tokio::task::spawn_blocking(ossbridge_testkit::tools::setup).await??;
    let output = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("sslscan")
            .args(["--no-colour", "--xml=-", target])
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("sslscan took over 300 s")?
    .context("sslscan is not installed (tests/tools/setup.sh installs it)")?;
    ensure!(
        output.status.success(),
        "sslscan failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslscan_finds_only_tls12_and_tls13_with_aead_forward_secret_ciphers() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])?;
    std::fs::write(dir.path().join("cert.pem"), generated.cert.pem())?;
    std::fs::write(
        dir.path().join("key.pem"),
        generated.signing_key.serialize_pem(),
    )?;
    let gw = Gateway::start_with(&format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    ))
    .await?;
    let xml = sslscan(&gw.addr.to_string()).await?;
    let report = elements(&xml)?;
    let all = |name: &str| -> Vec<&BTreeMap<String, String>> {
        report
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, a)| a)
            .collect()
    };
    let attr = |a: &BTreeMap<String, String>, k: &str| a.get(k).cloned().unwrap_or_default();
    let version = all("document")
        .first()
        .map(|d| attr(d, "version"))
        .unwrap_or_default();
    eprintln!("sslscan {version} report:\n{xml}");

    // Protocols: every one reported, only TLS 1.2 and 1.3 enabled.
    let protocols: BTreeMap<String, String> = all("protocol")
        .iter()
        .map(|p| {
            (
                format!("{}{}", attr(p, "type"), attr(p, "version")),
                attr(p, "enabled"),
            )
        })
        .collect();
    for (protocol, enabled) in [
        ("ssl2", "0"),
        ("ssl3", "0"),
        ("tls1.0", "0"),
        ("tls1.1", "0"),
        ("tls1.2", "1"),
        ("tls1.3", "1"),
    ] {
        assert_eq!(
            protocols.get(protocol).map(String::as_str),
            Some(enabled),
            "{protocol} in {protocols:?}"
        );
    }

    // Ciphers: at least 128 bits, AEAD, forward secret (ECDHE, or TLS 1.3
    // where every suite is).
    let ciphers = all("cipher");
    ensure!(!ciphers.is_empty(), "sslscan accepted no cipher");
    for c in &ciphers {
        let (name, tls) = (attr(c, "cipher"), attr(c, "sslversion"));
        let bits: u32 = attr(c, "bits").parse().context("bits")?;
        assert!(bits >= 128, "{name}: {bits} bits");
        assert!(
            name.contains("GCM")
                || name.contains("CHACHA20-POLY1305")
                || name.contains("CHACHA20_POLY1305"),
            "{name} is not AEAD"
        );
        assert!(
            tls == "TLSv1.3" || (tls == "TLSv1.2" && name.starts_with("ECDHE-")),
            "{tls} {name} is not forward secret"
        );
    }

    // Renegotiation: none, or only the secure kind; no compression;
    // heartbleed probed on each version and not vulnerable.
    ensure!(!all("renegotiation").is_empty(), "no renegotiation result");
    for r in all("renegotiation") {
        assert!(
            attr(r, "supported") == "0" || attr(r, "secure") == "1",
            "insecure renegotiation: {r:?}"
        );
    }
    for c in all("compression") {
        assert_eq!(attr(c, "supported"), "0", "TLS compression");
    }
    let heartbleed = all("heartbleed");
    ensure!(!heartbleed.is_empty(), "sslscan made no heartbleed probe");
    for h in heartbleed {
        assert_eq!(attr(h, "vulnerable"), "0", "heartbleed: {h:?}");
    }

    assert_eq!(server_compression(gw.addr).await?, 0, "DEFLATE was chosen");
    Ok(())
}

/// The compression method of the ServerHello answering a TLS 1.2
/// ClientHello that offers DEFLATE (1) before null (0).
async fn server_compression(addr: std::net::SocketAddr) -> Result<u8> {
    let mut body = vec![3, 3];
    body.extend_from_slice(&[9; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&[0, 4, 0xc0, 0x2b, 0xc0, 0x2f]); // ECDHE AES-GCM
    body.extend_from_slice(&[2, 1, 0]); // compression: DEFLATE, null
    // supported_groups (x25519, P-256), ec_point_formats, signature_algorithms
    let extensions = [
        0, 10, 0, 6, 0, 4, 0, 0x1d, 0, 0x17, 0, 11, 0, 2, 1, 0, 0, 13, 0, 8, 0, 6, 4, 3, 8, 4, 4, 1,
    ];
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut hello = vec![0x16, 3, 1];
    hello.extend_from_slice(&(body.len() as u16 + 4).to_be_bytes());
    hello.push(1); // client_hello
    hello.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hello.extend_from_slice(&body);

    let mut stream = TcpStream::connect(addr).await?;
    stream.write_all(&hello).await?;
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut header)).await??;
    let mut record = vec![0u8; usize::from(u16::from_be_bytes([header[3], header[4]]))];
    stream.read_exact(&mut record).await?;
    if header[0] != 0x16 || record.first() != Some(&2) {
        bail!(
            "no ServerHello: record {header:02x?} starting {:02x?}",
            &record[..record.len().min(8)]
        );
    }
    // type(1) length(3) version(2) random(32) session id(1 + n) suite(2)
    let session_id = usize::from(*record.get(38).context("short ServerHello")?);
    record
        .get(39 + session_id + 2)
        .copied()
        .context("short ServerHello")
}
