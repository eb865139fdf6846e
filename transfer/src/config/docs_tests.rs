//! docs/configuration.md against [`Config`]: every accepted key documented,
//! every documented key accepted, and the environment variable rule.

use super::*;

const DOCS: &str = include_str!("../../../docs/configuration.md");

#[test]
fn docs_configuration_lists_exactly_the_transfer_keys() {
    // The walker must see through nesting and optional tables.
    let report = ossbridge_runtime::config_docs::check_docs::<Config>(
        DOCS,
        "ossbridge-transfer",
        &[
            "queue_url",
            "log.format",
            "aws.endpoint_url",
            "worker.concurrency",
        ],
    );
    assert!(report.is_empty(), "docs/configuration.md:\n{report}");
}

/// docs/configuration.md's rule, one example per nesting depth: `OSSBRIDGE_`,
/// then the key's path in upper case with `__` between levels (a single `_`
/// stays part of the name).
// figment::Jail's closure must return figment's own (large) error type.
#[allow(clippy::result_large_err)]
#[test]
fn environment_variables_follow_the_documented_rule() {
    figment::Jail::expect_with(|jail| {
        // Only the variables set here: any OSSBRIDGE_* of the environment
        // the tests run in (OSSBRIDGE_VENV for the test tools, say) would
        // be read as a configuration key. The jail restores them.
        jail.clear_env();
        jail.create_file(
            "transfer.toml",
            include_str!("../../../deploy/config/transfer.example.toml"),
        )?;
        jail.set_env("OSSBRIDGE_QUEUE_URL", "http://127.0.0.1:4/q");
        jail.set_env("OSSBRIDGE_WORKER__CONCURRENCY", "7");
        jail.set_env("OSSBRIDGE_WORKER__MAX_BYTES_IN_FLIGHT_MIB", "512");
        jail.set_env("OSSBRIDGE_DESTINATION__STORAGE_CLASS", "STANDARD_IA");
        jail.set_env("OSSBRIDGE_METRICS__EMF", "true");
        let config: Config =
            ossbridge_runtime::load_config(Some(std::path::Path::new("transfer.toml")))
                .map_err(|e| e.to_string())?;
        config.validate().map_err(|e| e.to_string())?;
        assert_eq!(config.queue_url.as_deref(), Some("http://127.0.0.1:4/q"));
        assert_eq!(config.worker.concurrency, 7);
        assert_eq!(config.worker.max_bytes_in_flight_mib, 512);
        assert_eq!(
            config.destination.storage_class.as_deref(),
            Some("STANDARD_IA")
        );
        assert!(config.metrics.emf);
        Ok(())
    });
}
