//! The fault matrix on the transfer side (docs/reliability.md): slow and
//! failing S3 and SQS behind fault-injecting proxies, source keys rotated
//! mid-run, and a destination that refuses writes for a while. Each test
//! ends by comparing the destination with the source object by object and
//! accounting for every message: copied, or in the dead-letter queue.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::Rig;
use ossbridge_testkit::{FaultProxy, fixtures};

const MIB: usize = 1024 * 1024;

/// Keys named by the messages on the dead-letter queue (drained).
async fn dead_lettered(rig: &Rig) -> Result<BTreeSet<String>> {
    rig.aws
        .drain(&rig.dlq_url)
        .await?
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_str(body)?;
            v["key"]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("no key in {body}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_failing_s3_and_sqs_are_retried_until_every_copy_converges() -> Result<()> {
    // Five receives before the dead-letter queue, as in production: a
    // dropped ReceiveMessage answer really costs a message a receive.
    let rig = Rig::start_with_max_receives(5).await?;
    let sqs = FaultProxy::start(&rig.emulator.endpoint()).await?;
    let mut objects: Vec<(String, Vec<u8>)> = (0..24)
        .map(|i| {
            let len = (i * 7919) % (200 * 1024);
            (
                format!("faults/small-{i:02}"),
                fixtures::bytes(len, i as u64 + 1),
            )
        })
        .collect();
    for i in 0..2 {
        objects.push((
            format!("faults/large-{i}"),
            fixtures::bytes(11 * MIB, 100 + i),
        ));
    }
    for (key, bytes) in &objects {
        rig.put_source(key, bytes.clone()).await?;
    }
    // The first message goes before the faults: the worker reads the OSS
    // keys from SSM once at start and exits if it cannot (fail fast, the
    // orchestrator restarts it), which is not what this test is about.
    rig.send(rig.message("copy", &objects[0].0)).await?;

    // Once the worker runs: latency on every call, and bursts of each
    // fault every 300 ms for 15 s: 503 SlowDown and dropped connections
    // at both S3 ends, GET bodies cut short at the source, 503s and
    // dropped connections at SQS.
    for s3 in [&rig.source, &rig.destination] {
        s3.set_latency(Duration::from_millis(30));
    }
    sqs.set_latency(Duration::from_millis(50));
    let worker = rig
        .worker_via(
            &sqs.endpoint(),
            "[copy]\nmultipart_threshold_mib = 5\npart_size_mib = 5\npart_concurrency = 2\n\
             [worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 10\nshutdown_grace_secs = 5\n",
        )
        .await?;
    rig.wait_for_destination(&objects[0].0).await?;
    for (key, _) in &objects[1..] {
        rig.send(rig.message("copy", key)).await?;
    }
    let storm = async {
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            rig.source.slow_down_next(2);
            rig.source.drop_next(1);
            rig.source.truncate_next_gets(1);
            rig.destination.slow_down_next(2);
            rig.destination.drop_next(1);
            sqs.fail_next_requests(1);
            sqs.drop_next_requests(1);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    // Longer than the rig's default wait: every call has latency.
    let drained = rig
        .aws
        .wait_until_empty(&rig.queue_url, Duration::from_secs(240));
    let (finished, ()) = tokio::join!(drained, storm);
    finished?;

    rig.expect_equal(&objects).await?;
    assert_eq!(
        rig.aws.queue_depth(&rig.dlq_url).await?,
        (0, 0),
        "transient faults must not dead-letter anything"
    );
    // The faults really happened.
    for (side, s3) in [("source", &rig.source), ("destination", &rig.destination)] {
        for kind in ["slow_down", "dropped"] {
            ensure!(s3.injected(kind) > 0, "no {kind} injected at the {side}");
        }
    }
    ensure!(
        rig.source.injected("truncated") > 0,
        "no GET body cut short"
    );
    ensure!(sqs.injected() > 0, "no SQS fault injected");
    worker.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_keys_and_a_denied_destination_lose_no_message() -> Result<()> {
    let rig = Rig::start().await?;
    let mut worker = rig
        .process(
            "[worker]\nwait_time_secs = 1\nvisibility_timeout_secs = 5\nshutdown_grace_secs = 5\n",
        )
        .await?;
    let batch = |name: &str| -> Vec<(String, Vec<u8>)> {
        (0..4)
            .map(|i| {
                let key = format!("{name}/{i}");
                let bytes = fixtures::bytes(1000 + i * 10, key.len() as u64 * 31 + i as u64);
                (key, bytes)
            })
            .collect()
    };
    let send = |objects: Vec<(String, Vec<u8>)>| {
        let rig = &rig;
        async move {
            for (key, bytes) in &objects {
                rig.put_source(key, bytes.clone()).await?;
                rig.send(rig.message("copy", key)).await?;
            }
            anyhow::Ok(objects)
        }
    };

    // 1. Normal operation.
    let before = send(batch("before")).await?;
    rig.drained().await?;
    // 2. The OSS keys are rotated: SSM holds the new pair and the source
    //    refuses the old one. The worker is refused once per cached
    //    credential, re-reads SSM and carries on.
    rig.aws
        .put_oss_keys(&rig.parameter, "rotated-key", "rotated-secret")
        .await?;
    rig.source.revoke("testing");
    let rotated = send(batch("rotated")).await?;
    rig.drained().await?;
    // 3. The destination bucket refuses the worker (a broken bucket
    //    policy): every copy fails, visibly, and after the queue's
    //    receives its message moves to the dead-letter queue.
    rig.destination.revoke("testing");
    let denied = send(batch("denied")).await?;
    rig.dead_letters_within(denied.len() as u64, Duration::from_secs(90))
        .await?;
    rig.drained().await?;
    // 4. Access restored: copies succeed again.
    rig.destination.restore("testing");
    let after = send(batch("after")).await?;
    rig.drained().await?;

    for copied in [&before, &rotated, &after] {
        rig.expect_equal(copied).await?;
    }
    for (key, _) in &denied {
        ensure!(
            rig.destination_object(key).await?.is_none(),
            "{key} was written while the destination denied access"
        );
    }
    // Every message is accounted for: the denied ones are in the
    // dead-letter queue, nothing else is.
    let expected: BTreeSet<String> = denied.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(dead_lettered(&rig).await?, expected);

    // The failures were visible: logged per key with the reason.
    let failures = worker.events("job_failed");
    for key in &expected {
        let logged = failures.iter().find(|e| e["key"] == key.as_str());
        let logged = logged.with_context(|| format!("no job_failed for {key}"))?;
        ensure!(logged["reason"] == "access_denied", "{logged}");
    }
    ensure!(
        !failures
            .iter()
            .any(|e| e["key"].as_str().is_some_and(|k| !k.starts_with("denied/"))),
        "only the denied copies failed"
    );
    worker.terminate()?;
    worker.wait(Duration::from_secs(20)).await?;
    Ok(())
}

/// The value of an unlabelled gauge in a Prometheus text page.
fn gauge(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Behind a slow source, a small object's copy is mostly its GET: the
/// in-flight gauge must count it from the GET on, or a worker busy with
/// slow copies looks idle. Before the fix the gauge rose only for the
/// PUT, a few milliseconds; here it must read 1 for a whole second of a
/// three-second GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_waiting_on_a_slow_source_counts_as_in_flight() -> Result<()> {
    const IN_FLIGHT: &str = "ossbridge_transfer_in_flight_objects";
    let rig = Rig::start().await?;
    let key = "slow-source/a.txt";
    let bytes = fixtures::bytes(1000, 5);
    rig.put_source(key, bytes.clone()).await?;
    rig.source.delay_gets(Duration::from_secs(3));
    let worker = rig.process("[worker]\nwait_time_secs = 1\n").await?;
    let admin = worker
        .event("transfer_started")
        .and_then(|e| e["admin_addr"].as_str().map(str::to_owned))
        .context("admin_addr")?;
    let metrics = format!("http://{admin}/metrics");
    rig.send(rig.message("copy", key)).await?;

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counted_since = None;
    loop {
        let page = reqwest::get(&metrics).await?.text().await?;
        match gauge(&page, IN_FLIGHT) {
            Some(n) if n >= 1.0 => {
                let since = *counted_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(1) {
                    break;
                }
            }
            _ => counted_since = None,
        }
        ensure!(
            rig.destination_object(key).await?.is_none(),
            "copied without counting as in flight for a second of its GET"
        );
        ensure!(
            Instant::now() < deadline,
            "the copy never counted as in flight"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ensure!(rig.wait_for_destination(key).await? == bytes);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let page = reqwest::get(&metrics).await?.text().await?;
        if gauge(&page, IN_FLIGHT) == Some(0.0) {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "still in flight after the copy: {page}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}
