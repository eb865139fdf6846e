use super::*;
use ossbridge_runtime::parse_toml;

fn load(text: &str) -> Result<Config, ConfigError> {
    let config: Config = parse_toml(text)?;
    config.validate()?;
    Ok(config)
}

const SOURCE: &str = "[sources.s]\nqueue_url = \"http://127.0.0.1:1/q\"\n";
const VERIFIER: &str =
    "[sources.s.verifier]\ntype = \"standard_webhooks\"\nsecrets = [\"whsec_AAAA\"]\n";

#[test]
fn the_example_configuration_is_valid() {
    let config = load(include_str!("../../../deploy/config/gateway.example.toml")).expect("valid");
    assert!(
        config.sources.len() >= 3,
        "the example shows several delivery paths"
    );
}

#[test]
fn the_compose_configuration_is_valid() {
    let config = load(include_str!("../../../deploy/compose/gateway.toml")).expect("valid");
    assert_eq!(
        config.sources.keys().collect::<Vec<_>>(),
        ["local"],
        "deploy/README.md posts to /v1/ingest/local"
    );
}

#[test]
fn a_source_without_a_verifier_or_with_an_unknown_one_fails() {
    let err = load(SOURCE).expect_err("no verifier");
    assert!(
        err.to_string().contains("missing field `verifier`"),
        "{err}"
    );
    let err =
        load(&format!("{SOURCE}[sources.s.verifier]\ntype = \"none\"\n")).expect_err("unknown");
    let msg = err.to_string();
    assert!(
        msg.contains("unknown variant") && msg.contains("sources.s.verifier"),
        "{msg}"
    );
}

#[test]
fn every_verifier_type_loads_and_checks_its_settings() {
    for verifier in [
        "type = \"hmac\"\nalgorithm = \"sha1\"\nsecrets = [\"s\"]",
        "type = \"hmac\"\nsecrets = { file = \"/run/secrets/x\" }\ntimestamp_header = \"x-ts\"",
        "type = \"api_key\"\nheader = \"X-Api-Key\"\nkeys = { ssm_parameter = \"/x\" }",
        "type = \"basic_auth\"\nusername = \"eb\"\npasswords = { env = \"EB_PASSWORDS\" }",
        "type = \"mns\"\ntopic_owners = [\"1148930107246818\"]",
        "type = \"mns\"\nurl_token = [\"t\"]",
    ] {
        load(&format!("{SOURCE}[sources.s.verifier]\n{verifier}\n")).expect(verifier);
    }
    for (verifier, key) in [
        ("type = \"mns\"", "sources.s.verifier"),
        (
            "type = \"hmac\"\nsecrets = []",
            "sources.s.verifier.secrets",
        ),
        (
            "type = \"hmac\"\nsecrets = { file = \"/a\", env = \"B\" }",
            "sources.s.verifier.secrets",
        ),
        (
            "type = \"api_key\"\nheader = \"bad header\"\nkeys = [\"k\"]",
            "sources.s.verifier.header",
        ),
        (
            "type = \"basic_auth\"\nusername = \"a:b\"\npasswords = [\"p\"]",
            "sources.s.verifier.username",
        ),
        (
            "type = \"standard_webhooks\"\nsecrets = [\"s\"]\ntolerance_secs = 0",
            "sources.s.verifier.tolerance_secs",
        ),
    ] {
        let err = load(&format!("{SOURCE}[sources.s.verifier]\n{verifier}\n")).expect_err(verifier);
        assert!(err.to_string().contains(key), "{verifier}: {err}");
    }
    let err = load(&format!("{SOURCE}format = \"mns\"\n{VERIFIER}")).expect_err("mns format");
    assert!(err.to_string().contains("sources.s.format"), "{err}");
}

#[test]
fn errors_name_the_key() {
    let err = load(&format!("{SOURCE}{VERIFIER}[limits]\nmax_body = 1\n")).expect_err("typo");
    assert!(err.to_string().contains("max_body"), "{err}");
    let err = load(&format!("[sources.s]\nqueue_url = \"sqs\"\n{VERIFIER}")).expect_err("url");
    assert!(err.to_string().contains("sources.s.queue_url"), "{err}");
    let err = load(&format!(
        "{SOURCE}{VERIFIER}[sqs]\nmax_batch_entries = 11\n"
    ))
    .expect_err("batch");
    assert!(err.to_string().contains("sqs.max_batch_entries"), "{err}");
    let err = load(&format!(
        "{SOURCE}{VERIFIER}[mns]\ncert_url_allowlist = [\"http://x/\"]\n"
    ))
    .expect_err("allowlist");
    assert!(
        err.to_string().contains("mns.cert_url_allowlist[0]"),
        "{err}"
    );
    let err = load(&format!(
        "{SOURCE}{VERIFIER}[rate_limit]\ntrusted_proxies = [\"10.0.0.0/33\"]\n"
    ))
    .expect_err("cidr");
    assert!(err.to_string().contains("trusted_proxies"), "{err}");
    let err = load("").expect_err("no sources");
    assert!(err.to_string().contains("sources"), "{err}");
}

#[test]
fn debug_output_redacts_every_secret() {
    let config = load(&format!(
        "{SOURCE}[sources.s.verifier]\ntype = \"basic_auth\"\nusername = \"u\"\npasswords = [\"hunter2-very-secret\"]\n\
         [sources.t]\nqueue_url = \"http://127.0.0.1:1/q\"\n[sources.t.verifier]\ntype = \"mns\"\nurl_token = [\"token-very-secret\"]\n"
    ))
    .expect("valid");
    let debug = format!("{config:?}");
    assert!(!debug.contains("very-secret"), "{debug}");
    assert!(debug.contains("REDACTED"));
}

#[test]
fn admin_and_archive_settings_are_checked_naming_the_key() {
    let base = format!("{SOURCE}{VERIFIER}");
    let config = load(&format!(
        "[admin]\nreplay_tokens = {{ env = \"REPLAY_TOKENS\" }}\n\
         [archive]\nbucket = \"b\"\nprefix = \"gw/events\"\n{base}"
    ))
    .expect("valid");
    assert_eq!(config.archive.map(|a| a.window_secs), Some(300));
    assert_eq!(config.admin.replay_per_second, 1);
    for (extra, key) in [
        (
            "[admin]\nreplay_per_second = 0\n",
            "admin.replay_per_second",
        ),
        ("[admin]\ntoken = \"x\"\n", "token"),
        ("[archive]\nbucket = \"\"\n", "archive.bucket"),
        (
            "[archive]\nbucket = \"b\"\nprefix = \"/x\"\n",
            "archive.prefix",
        ),
        (
            "[archive]\nbucket = \"b\"\nwindow_secs = 7\n",
            "archive.window_secs",
        ),
    ] {
        let err = load(&format!("{extra}{base}")).expect_err(extra);
        assert!(err.to_string().contains(key), "{extra}: {err}");
    }
}
