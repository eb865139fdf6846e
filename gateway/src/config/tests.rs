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
        "type = \"mns\"\ntopic_owners = [\"1\"]\nallow_plain_http = true\nnotify_content_format = \"simplified\"",
    ] {
        load(&format!("{SOURCE}[sources.s.verifier]\n{verifier}\n")).expect(verifier);
    }
    for (verifier, key) in [
        ("type = \"mns\"", "sources.s.verifier"),
        (
            "type = \"mns\"\nurl_token = [\"t\"]\nallow_plain_http = true",
            "sources.s.verifier.allow_plain_http",
        ),
        (
            "type = \"mns\"\ntopic_owners = [\"1\"]\nnotify_content_format = \"yaml\"",
            "sources.s.verifier",
        ),
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

const DOCS: &str = include_str!("../../../docs/configuration.md");

#[test]
fn docs_configuration_lists_exactly_the_gateway_keys() {
    // The walker must see through nesting, maps, tagged enums and secrets.
    let report = ossbridge_runtime::config_docs::check_docs::<Config>(
        DOCS,
        "ossbridge-gateway",
        &[
            "log.level",
            "limits.max_body_bytes",
            "admin.replay_tokens",
            "sources.ID.filter.buckets",
            "sources.ID.verifier.type",
            "sources.ID.verifier.url_token [type = mns]",
        ],
    );
    assert!(report.is_empty(), "docs/configuration.md:\n{report}");
}

/// docs/configuration.md's rule, one example per nesting depth: `OSSBRIDGE_`,
/// then the key's path in upper case with `__` between levels; names are
/// lower-cased, so a source id given in a variable is lower-case.
// figment::Jail's closure must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
#[test]
fn environment_variables_follow_the_documented_rule() {
    use secrecy::ExposeSecret;
    figment::Jail::expect_with(|jail| {
        // Only the variables set here: any OSSBRIDGE_* of the environment
        // the tests run in (OSSBRIDGE_VENV for the test tools, say) would
        // be read as a configuration key. The jail restores them.
        jail.clear_env();
        jail.create_file("gateway.toml", &format!("{SOURCE}{VERIFIER}"))?;
        jail.set_env("OSSBRIDGE_LISTEN", "127.0.0.1:18080");
        jail.set_env("OSSBRIDGE_ADMIN_LISTEN", "127.0.0.1:19090");
        jail.set_env("OSSBRIDGE_LIMITS__MAX_BODY_BYTES", "2048");
        jail.set_env("OSSBRIDGE_ADMIN__REPLAY_TOKENS", "{env=REPLAY_TOKENS}");
        jail.set_env("OSSBRIDGE_SOURCES__S__QUEUE_URL", "http://127.0.0.1:2/q");
        let media = "OSSBRIDGE_SOURCES__MEDIA_PROD__";
        jail.set_env(format!("{media}QUEUE_URL"), "http://127.0.0.1:3/q");
        jail.set_env(format!("{media}VERIFIER__TYPE"), "standard_webhooks");
        jail.set_env(format!("{media}VERIFIER__SECRETS"), "[whsec_a, whsec_b]");
        jail.set_env(format!("{media}FILTER__BUCKETS"), "[media-a, media-b]");
        let config: Config =
            ossbridge_runtime::load_config(Some(std::path::Path::new("gateway.toml")))
                .map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        assert_eq!(config.listen.port(), 18080);
        assert_eq!(config.admin_listen.port(), 19090);
        assert_eq!(config.limits.max_body_bytes, 2048);
        let Some(Secrets::From(tokens)) = &config.admin.replay_tokens else {
            panic!("{:?}", config.admin.replay_tokens);
        };
        assert_eq!(tokens.env.as_deref(), Some("REPLAY_TOKENS"));
        // A variable overrides one key of a file's source, keeping the rest.
        let s = &config.sources["s"];
        assert_eq!(s.queue_url, "http://127.0.0.1:2/q");
        assert!(matches!(
            s.verifier,
            VerifierConfig::StandardWebhooks { .. }
        ));
        // ...and can add a source; its id is lower-cased.
        let media = &config.sources["media_prod"];
        assert_eq!(media.queue_url, "http://127.0.0.1:3/q");
        assert_eq!(media.filter.buckets, ["media-a", "media-b"]);
        let VerifierConfig::StandardWebhooks {
            secrets: Secrets::Inline(secrets),
            ..
        } = &media.verifier
        else {
            panic!("{:?}", media.verifier);
        };
        let secrets: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        assert_eq!(secrets, ["whsec_a", "whsec_b"]);
        Ok(())
    });
}
