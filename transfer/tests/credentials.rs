//! The source keys' provider against real stores: OSS keys in Secrets
//! Manager (as Data Transfer Hub keeps them) or SSM, a refresh storm after
//! a rotation, a store that becomes unreachable or holds a broken value
//! after start, a destination 403, and configuration errors. The store is
//! reached through a `FaultProxy`, which counts its reads.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use aws_sdk_ssm::types::ParameterType;
use aws_types::SdkConfig;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use common::{Rig, Worker};
use ossbridge_runtime::parse_toml;
use ossbridge_testkit::{FaultProxy, LocalAws, Service, fixtures, unique_name};
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

/// A worker on the rig's SSM parameter, reached through `store` and
/// re-read every `refresh_secs`, once it has read it and copied a first
/// object.
async fn warm_worker_on_parameter(
    rig: &Rig,
    store: &FaultProxy,
    refresh_secs: u64,
) -> Result<Worker> {
    let keys = format!("credentials_parameter = \"{}\"", rig.parameter);
    let text = config_with_keys(rig, &keys, refresh_secs, "");
    let worker = rig.worker_from_toml(sdk_with_store_at(rig, store)?, text)?;
    let first = send_objects(rig, "first", 1).await?;
    copied(rig, &first).await?;
    ensure!(
        store.calls(GET_PARAMETER) == 1,
        "the parameter was not read once"
    );
    Ok(worker)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_storm_after_rotation_reads_the_store_once() -> Result<()> {
    let rig = Rig::start().await?;
    let store = FaultProxy::start(&rig.emulator.endpoint()).await?;
    // By ARN this time.
    let arn = create_secret(
        &rig.aws,
        &unique_name("oss-keys"),
        &keys_json("testing", "testing"),
    )
    .await?;
    let text = config_with_keys(
        &rig,
        &format!("credentials_secret = \"{arn}\""),
        600,
        "[worker]\nconcurrency = 16\nreceivers = 2\nwait_time_secs = 1\n\
         visibility_timeout_secs = 10\nshutdown_grace_secs = 5\n",
    );
    let worker = rig.worker_from_toml(sdk_with_store_at(&rig, &store)?, text)?;
    let warm = send_objects(&rig, "warm", 1).await?;
    copied(&rig, &warm).await?;

    let storm: Vec<(String, Vec<u8>)> = (0..32)
        .map(|i| {
            let key = format!("storm/{i:02}");
            let bytes = fixtures::bytes(700 + i * 31, i as u64 + 5);
            (key, bytes)
        })
        .collect();
    for (key, bytes) in &storm {
        rig.put_source(key, bytes.clone()).await?;
    }

    // Rotate: the secret holds a new pair, the source refuses the old
    // one. Then a storm of copies, each refused at first: they start 50 ms
    // apart and OSS takes 1 s to answer, so that many requests are signed
    // with the old keys before the first 403 and refused after the new
    // keys were read; and the store takes 500 ms to answer, so that many
    // copies ask for keys while it is being read.
    secrets_manager(&rig.aws)
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(keys_json("rotated-key", "rotated-secret"))
        .send()
        .await?;
    rig.source.revoke("testing");
    rig.source.set_latency(Duration::from_secs(1));
    store.set_latency(Duration::from_millis(500));
    for (key, _) in &storm {
        rig.send(rig.message("copy", key)).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    copied(&rig, &storm).await?;
    assert_eq!(
        store.calls(GET_SECRET_VALUE),
        2,
        "one read at start, one for the rotation, however many copies were refused"
    );
    assert_eq!(
        rig.aws.queue_depth(&rig.dlq_url).await?,
        (0, 0),
        "no copy failed for good"
    );
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_store_after_start_leaves_the_last_good_keys_in_use() -> Result<()> {
    let rig = Rig::start().await?;
    let store = FaultProxy::start(&rig.emulator.endpoint()).await?;
    // The shortest refresh interval the configuration allows.
    let worker = warm_worker_on_parameter(&rig, &store, 10).await?;

    // SSM answers nothing but 503 from now on, and the keys grow older
    // than the refresh interval.
    store.fail_next_requests(u64::MAX);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let started = Instant::now();
    let during = send_objects(&rig, "during", 6).await?;
    copied(&rig, &during).await?;
    let reads = store.calls(GET_PARAMETER) - 1;
    // It tried (each read is up to 3 attempts by the SDK), but backs off
    // between reads (2 s, doubling) instead of trying on every request.
    let window_reads = started.elapsed().as_secs() / 2 + 1;
    ensure!(reads >= 1, "the store was not tried again");
    ensure!(
        reads <= 3 * window_reads,
        "{reads} GetParameter calls in {:?}: the store is hammered",
        started.elapsed()
    );
    // And it asks only when keys are needed: nothing without traffic.
    let idle = store.calls(GET_PARAMETER);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(store.calls(GET_PARAMETER), idle);
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_403_does_not_read_the_source_keys_again() -> Result<()> {
    let rig = Rig::start().await?;
    let store = FaultProxy::start(&rig.emulator.endpoint()).await?;
    let worker = warm_worker_on_parameter(&rig, &store, 600).await?;

    // The destination refuses the worker (a broken bucket policy): every
    // copy fails with access_denied, until its message is dead-lettered.
    rig.destination.revoke("testing");
    let denied = send_objects(&rig, "denied", 3).await?;
    rig.dead_letters_within(denied.len() as u64, Duration::from_secs(90))
        .await?;
    for (key, _) in &denied {
        ensure!(
            rig.destination_object(key).await?.is_none(),
            "{key} written"
        );
    }
    // Access restored: the next copies use the source keys held, without
    // reading them again.
    rig.destination.restore("testing");
    let after = send_objects(&rig, "after", 2).await?;
    copied(&rig, &after).await?;
    assert_eq!(
        store.calls(GET_PARAMETER),
        1,
        "the source keys were read at start only: a destination 403 says nothing about them"
    );
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_that_no_longer_parses_keeps_the_last_good_keys() -> Result<()> {
    let rig = Rig::start().await?;
    // The binary, for its logs; keys re-read every 10 s.
    let text = format!(
        "{}[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 5\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n",
        rig.config_toml("")
    );
    let worker = Service::spawn_with_env(
        "ossbridge-transfer",
        &text,
        "transfer_started",
        &[("OSSBRIDGE_SOURCE__CREDENTIALS_REFRESH_SECS", "10")],
    )
    .await?;
    let before = send_objects(&rig, "before", 1).await?;
    copied(&rig, &before).await?;

    // Someone pastes the secret alone, not the JSON.
    let pasted = "hunter2-pasted-secret";
    rig.aws
        .ssm
        .put_parameter()
        .name(&rig.parameter)
        .value(pasted)
        .r#type(ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await?;
    tokio::time::sleep(Duration::from_secs(11)).await;
    let after = send_objects(&rig, "after", 2).await?;
    copied(&rig, &after).await?;

    let kept = worker.events("source_credentials_kept");
    let kept = kept.first().context("no source_credentials_kept")?;
    let error = kept["error"].as_str().unwrap_or_default();
    ensure!(
        error.contains(&format!("SSM parameter {}", rig.parameter)) && error.contains("JSON"),
        "{kept}"
    );
    ensure!(kept["access_key_id"] == "testing", "{kept}");
    for line in worker.logs() {
        ensure!(!line.contains(pasted), "the value was logged: {line}");
    }
    Ok(())
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
        (
            with_keys(&parameter)
                .replace("[destination]\n", "[destination]\nread_timeout_secs = 0\n"),
            vec!["destination.read_timeout_secs".to_owned()],
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
