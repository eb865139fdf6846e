//! The source keys' provider against real stores: OSS keys in Secrets
//! Manager (as Data Transfer Hub keeps them) or SSM, and configuration
//! errors. The store is reached through a `FaultProxy`, which counts its
//! reads.

mod common;

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use aws_types::SdkConfig;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use common::Rig;
use ossbridge_runtime::parse_toml;
use ossbridge_testkit::{FaultProxy, LocalAws, fixtures, unique_name};
use ossbridge_transfer::{Config, run_with};
use tokio_util::sync::CancellationToken;

const GET_PARAMETER: &str = "AmazonSSM.GetParameter";
const GET_SECRET_VALUE: &str = "secretsmanager.GetSecretValue";

/// Where an in-process worker's AWS calls go: SSM and Secrets Manager to
/// `store` (a fault proxy), every other service straight to `other` (the
/// emulator), so that faults and counts concern the key store alone.
#[derive(Debug)]
struct Endpoints {
    store: String,
    other: String,
}

impl LoadServiceConfig for Endpoints {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        if key.profile() != "endpoint_url" {
            return None;
        }
        Some(match key.service_id() {
            "SSM" | "Secrets Manager" => self.store.clone(),
            _ => self.other.clone(),
        })
    }
}

/// The rig's SDK configuration with the key store behind `store`.
fn sdk_with_store_at(rig: &Rig, store: &FaultProxy) -> Result<SdkConfig> {
    let base = &rig.aws.sdk;
    Ok(SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(base.region().cloned())
        .sleep_impl(base.sleep_impl().context("a sleep implementation")?)
        .time_source(base.time_source().context("a time source")?)
        .credentials_provider(base.credentials_provider().context("credentials")?)
        .service_config(Endpoints {
            store: store.endpoint(),
            other: rig.emulator.endpoint(),
        })
        .build())
}

/// The rig's worker configuration with the keys in `keys` (a
/// `credentials_parameter = ...` or `credentials_secret = ...` line) and
/// re-read every `refresh_secs`.
fn config_with_keys(rig: &Rig, keys: &str, refresh_secs: u64, extra: &str) -> String {
    rig.config_toml(extra)
        .replace(
            &format!("credentials_parameter = \"{}\"", rig.parameter),
            keys,
        )
        .replace(
            "credentials_refresh_secs = 600",
            &format!("credentials_refresh_secs = {refresh_secs}"),
        )
}

fn secrets_manager(aws: &LocalAws) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws.sdk)
}

/// Data Transfer Hub's format for OSS keys.
fn keys_json(access_key_id: &str, secret_access_key: &str) -> String {
    serde_json::json!({
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
    })
    .to_string()
}

/// Creates a secret holding `value`; returns its ARN.
async fn create_secret(aws: &LocalAws, name: &str, value: &str) -> Result<String> {
    let out = secrets_manager(aws)
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .with_context(|| format!("create secret {name}"))?;
    out.arn.context("CreateSecret returned no ARN")
}

/// Puts `n` small objects under `prefix` and a message for each.
async fn send_objects(rig: &Rig, prefix: &str, n: usize) -> Result<Vec<(String, Vec<u8>)>> {
    let mut objects = Vec::new();
    for i in 0..n {
        let key = format!("{prefix}/{i:02}");
        let bytes = fixtures::bytes(500 + i * 37, key.len() as u64 * 7 + i as u64);
        rig.put_source(&key, bytes.clone()).await?;
        rig.send(rig.message("copy", &key)).await?;
        objects.push((key, bytes));
    }
    Ok(objects)
}

/// Copies `objects` and checks them at the destination.
async fn copied(rig: &Rig, objects: &[(String, Vec<u8>)]) -> Result<()> {
    for (key, _) in objects {
        rig.wait_for_destination(key).await?;
    }
    rig.drained().await?;
    rig.expect_equal(objects).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_from_secrets_manager_copy_objects() -> Result<()> {
    let rig = Rig::start().await?;
    let store = FaultProxy::start(&rig.emulator.endpoint()).await?;
    // The secret as Data Transfer Hub's OSS tutorial has it made: a
    // plaintext SecretString, referred to by name.
    let name = unique_name("dth-oss-credentials");
    create_secret(&rig.aws, &name, &keys_json("testing", "testing")).await?;
    let text = config_with_keys(&rig, &format!("credentials_secret = \"{name}\""), 600, "");
    let worker = rig.worker_from_toml(sdk_with_store_at(&rig, &store)?, text)?;
    let objects = send_objects(&rig, "sm", 5).await?;
    copied(&rig, &objects).await?;
    assert_eq!(store.calls(GET_SECRET_VALUE), 1, "read once, at start");
    assert_eq!(store.calls(GET_PARAMETER), 0);
    worker.stop().await
}

/// Runs the worker in-process on `text` until it stops on its own.
async fn run_until_error(rig: &Rig, text: &str) -> Result<String> {
    let config: Config = parse_toml(text)?;
    let outcome = tokio::time::timeout(
        Duration::from_secs(60),
        run_with(config, &rig.aws.sdk, None, CancellationToken::new()),
    )
    .await
    .context("the worker started")?;
    match outcome {
        Err(e) => Ok(e.to_string()),
        Ok(()) => anyhow::bail!("the worker ran"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_and_store_errors_name_the_key_or_the_store() -> Result<()> {
    let rig = Rig::start().await?;
    let parameter = format!("credentials_parameter = \"{}\"", rig.parameter);
    let with_keys =
        |keys: &str| config_with_keys(&rig, keys, 600, "[worker]\nwait_time_secs = 1\n[metrics]\n");
    let missing = unique_name("no-such-secret");
    let broken = unique_name("broken-secret");
    create_secret(&rig.aws, &broken, "{\"access_key_id\": \"LTAI\", hunter2").await?;
    let both_keys = || {
        vec![
            "source.credentials_parameter".to_owned(),
            "source.credentials_secret".to_owned(),
        ]
    };
    // (configuration, what its error must name)
    let cases = [
        (with_keys(""), both_keys()),
        (
            with_keys(&format!("{parameter}\ncredentials_secret = \"x\"")),
            both_keys(),
        ),
        // A secret that does not exist, and one that is not the JSON: both
        // stop the worker at start, naming the secret, never its value.
        (
            with_keys(&format!("credentials_secret = \"{missing}\"")),
            vec![format!("Secrets Manager secret {missing}")],
        ),
        (
            with_keys(&format!("credentials_secret = \"{broken}\"")),
            vec![format!("Secrets Manager secret {broken}")],
        ),
    ];
    for (text, named) in cases {
        let err = run_until_error(&rig, &text).await?;
        ensure!(
            named.iter().all(|n| err.contains(n.as_str())) && !err.contains("hunter2"),
            "expected {named:?} in: {err}"
        );
    }
    Ok(())
}
