//! Every committed fuzz input — `fuzz/seeds/<target>/*` and
//! `fuzz/regressions/<target>/*` — through the very functions the fuzz
//! targets run (`fuzz/src/lib.rs`, included below), on stable: no panic,
//! the same invariants, and each `valid-*` seed still accepted. A crash a
//! fuzzer found stays fixed once its minimized input is in
//! `fuzz/regressions/<target>/`.

// The harness is the fuzz crate's library; this test uses its entry
// points, not every constant it exports.
#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};

use ossbridge_gateway::verify::VerifyError;

const TARGETS: &[&str] = &[
    "oss_events",
    "cloudevents",
    "mns_body",
    "queue_message",
    "signatures",
    "replay_input",
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// (file name, bytes) of every seed (at least one) and regression input.
fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (kind, required) in [("seeds", true), ("regressions", false)] {
        let dir = fuzz_dir().join(kind).join(target);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(_) if !required => continue,
            Err(e) => panic!("{}: {e}", dir.display()),
        };
        let before = out.len();
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_file() {
                let name = path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned();
                out.push((name, fs::read(&path).expect("readable input")));
            }
        }
        assert!(
            !required || out.len() > before,
            "{} has no seeds",
            dir.display()
        );
    }
    out.sort();
    out
}

fn valid(name: &str) -> bool {
    name.starts_with("valid-")
}

#[test]
fn every_target_has_a_source_file_and_seeds() {
    let mut on_disk: Vec<String> = fs::read_dir(fuzz_dir().join("fuzz_targets"))
        .expect("fuzz/fuzz_targets")
        .map(|e| {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            name.trim_end_matches(".rs").to_owned()
        })
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = TARGETS.iter().map(|t| (*t).to_owned()).collect();
    listed.sort();
    assert_eq!(on_disk, listed, "fuzz targets and this test disagree");
    for target in TARGETS {
        assert!(inputs(target).iter().any(|(name, _)| valid(name)));
    }
}

#[test]
fn oss_events() {
    for (name, data) in inputs("oss_events") {
        let events = harness::oss_events(&data);
        if valid(&name) {
            assert!(events.is_some_and(|n| n > 0), "{name}: {events:?}");
        }
    }
}

#[test]
fn cloudevents() {
    for (name, data) in inputs("cloudevents") {
        let events = harness::cloudevents(&data);
        if valid(&name) {
            assert!(events.is_some_and(|n| n > 0), "{name}: {events:?}");
        }
    }
}

#[test]
fn mns_body() {
    for (name, data) in inputs("mns_body") {
        let outcome = harness::mns_body(&data);
        if valid(&name) {
            assert!(
                outcome.trusted.is_some_and(|n| n > 0),
                "{name}: {outcome:?}"
            );
            let text = String::from_utf8_lossy(&data);
            let notification = text.trim_start_matches('\u{feff}').trim_start();
            if notification.starts_with(['<', '{']) {
                assert!(
                    outcome.untrusted.is_some_and(|n| n > 0),
                    "{name}: {outcome:?}"
                );
            } else {
                // SIMPLIFIED names no topic: refused without the URL token.
                assert_eq!(outcome.untrusted, None, "{name}");
            }
        }
    }
}

#[test]
fn queue_message() {
    for (name, data) in inputs("queue_message") {
        let decoded = harness::queue_message(&data);
        if valid(&name) {
            assert!(decoded.is_some(), "{name}");
        }
    }
}

#[test]
fn signatures() {
    for (name, data) in inputs("signatures") {
        let verdicts = harness::signatures(&data);
        assert_eq!(verdicts.len(), 7);
        let Some(verifier) = name
            .strip_prefix("valid-")
            .and_then(|rest| rest.strip_suffix(".http"))
        else {
            continue;
        };
        let (_, verdict) = verdicts
            .iter()
            .find(|(v, _)| *v == verifier)
            .unwrap_or_else(|| panic!("{name}: no verifier {verifier}"));
        let expected = if verifier == "mns" {
            // Offline the MNS verifier fetches no certificate: a push that
            // passes every other check stops at the (empty) allowlist.
            Err(VerifyError::CertificateUrlRefused("not on the allowlist"))
        } else {
            Ok(())
        };
        assert_eq!(*verdict, expected, "{name}");
    }
}

#[test]
fn replay_input() {
    for (name, data) in inputs("replay_input") {
        let outcome = harness::replay_input(&data);
        if valid(&name) {
            let outcome = outcome.unwrap_or_else(|| panic!("{name}: not UTF-8"));
            assert!(outcome.documents > 0, "{name}: {outcome:?}");
            assert_eq!(outcome.rejected, 0, "{name}: {outcome:?}");
            assert!(outcome.enqueued > 0, "{name}: {outcome:?}");
        }
    }
}
