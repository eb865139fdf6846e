//! Manual replay: the `replay` command from a file and stdin, DLQ redrive,
//! the admin endpoint, and the event archive replayed by time range, all
//! against a real SQS and S3 (moto).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_sqs::types::MessageAttributeValue;
use base64::Engine;
use common::cli::{args, config_file, drained, event, events, gateway_cli, key_of};
use common::{Gateway, SOURCE};
use ossbridge_message::QueueMessage;
use ossbridge_testkit::{Emulator, LocalAws, unique_name};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_replays_through_the_live_path_and_reports_what_it_refused() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    let queue_url = aws.create_queue(&unique_name("replay"), &[]).await?;
    let config = config_file(&emulator.endpoint(), "media", &queue_url, "")?;
    let config_path = config.path().display().to_string();

    let [a, b, c, d, e, f, g, tmp] = ["a", "b", "c", "d", "e", "f", "g", "tmp/x"].map(event);
    let (a, b, c, d, e, mut f, g, tmp) = (a?, b?, c?, d?, e?, f?, g?, tmp?);
    f["eventName"] = "ObjectCreated:UploadPart".into();
    let cloudevent = serde_json::json!({"specversion": "1.0", "id": "1", "source": "acs.oss",
        "type": "oss:ObjectCreated:PutObject", "data": c});
    let mns = serde_json::json!({"TopicOwner": "1148930107246818", "TopicName": "t",
        "MessageId": "m-1", "Message": base64::engine::general_purpose::STANDARD.encode(events(&[&d]))});
    let oss_e: ossbridge_message::OssNotification = serde_json::from_str(&events(&[&e]))?;
    let queue_message = QueueMessage::from_oss_event(&oss_e.events[0], "elsewhere")
        .context("a copy")?
        .to_body();
    let lines = [
        events(&[&a, &b]),              // 1: two messages
        events(&[&a, &b]),              // 2: duplicates
        "{not json".to_owned(),         // 3: rejected
        events(&[&tmp]),                // 4: filtered
        cloudevent.to_string(),         // 5: c
        mns.to_string(),                // 6: d
        queue_message,                  // 7: e
        events(&[&f]),                  // 8: ignored (UploadPart)
        r#"{"hello":1}"#.to_owned(),    // 9: rejected
        String::new(),                  // 10: blank
        format!("[{}]", events(&[&g])), // 11: an array: g
    ];
    let mut file = tempfile::NamedTempFile::new()?;
    std::io::Write::write_all(&mut file, lines.join("\n").as_bytes())?;
    let input = file.path().display().to_string();
    let expected: BTreeMap<String, String> = [
        ("a", &a),
        ("b", &b),
        ("c", &c),
        ("d", &d),
        ("e", &e),
        ("g", &g),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), key_of(v)))
    .collect();

    // A dry run prints the messages and sends nothing.
    let dry = gateway_cli(
        args(&[
            "replay",
            "--config",
            &config_path,
            "--source",
            "media",
            "--dry-run",
            &input,
        ]),
        "",
    )
    .await?;
    assert_eq!(dry.code, 1, "{}", dry.stderr);
    assert_eq!(dry.stdout.lines().count(), 7, "{}", dry.stdout);
    assert_eq!(aws.queue_depth(&queue_url).await?, (0, 0));

    let run = gateway_cli(
        args(&[
            "replay",
            "--config",
            &config_path,
            "--source",
            "media",
            &input,
        ]),
        "",
    )
    .await?;
    assert_eq!(
        run.code, 1,
        "rejected lines make exit code 1: {}",
        run.stderr
    );
    let summary = run.summary()?;
    for (field, n) in [
        ("enqueued", 6),
        ("duplicates", 2),
        ("filtered", 1),
        ("ignored", 1),
        ("rejected", 2),
        ("failed", 0),
    ] {
        assert_eq!(summary[field], n, "{field}: {summary}");
    }
    let lines: Vec<u64> = summary["problems"]
        .as_array()
        .context("problems")?
        .iter()
        .filter_map(|p| p["line"].as_u64())
        .collect();
    assert_eq!(lines, [3, 9], "{summary}");
    assert!(
        run.stderr.contains("line 3: rejected: not valid JSON"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("line 9: rejected: not a recognised format"),
        "{}",
        run.stderr
    );
    assert_eq!(drained(&aws, &queue_url).await?, expected);

    // stdin, a pretty-printed document: exit 0.
    let h = event("h")?;
    let pretty = serde_json::to_string_pretty(&serde_json::json!({ "events": [h] }))?;
    let stdin = gateway_cli(
        args(&["replay", "--config", &config_path, "--source", "media", "-"]),
        &pretty,
    )
    .await?;
    assert_eq!(stdin.code, 0, "{}", stdin.stderr);
    assert_eq!(drained(&aws, &queue_url).await?.get("h"), Some(&key_of(&h)));

    // Usage errors: exit 2.
    for bad in [
        args(&["replay", "--config", &config_path, &input]),
        args(&[
            "replay",
            "--config",
            &config_path,
            "--source",
            "nope",
            &input,
        ]),
        args(&[
            "replay",
            "--config",
            &config_path,
            "--source",
            "media",
            "--format",
            "xml",
            &input,
        ]),
    ] {
        assert_eq!(gateway_cli(bad, "").await?.code, 2);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_redrive_moves_exactly_the_messages_asked_for() -> Result<()> {
    let emulator = tokio::task::spawn_blocking(Emulator::start).await??;
    let aws = LocalAws::connect(&emulator.endpoint()).await;
    // A queue whose redrive policy names the DLQ: the default target.
    let (target, dlq) = aws
        .create_queue_with_dlq(&unique_name("target"), 3, 30)
        .await?;
    let config = config_file(&emulator.endpoint(), "media", &target, "")?;
    let config_path = config.path().display().to_string();
    for i in 0..25 {
        aws.sqs
            .send_message()
            .queue_url(&dlq)
            .message_body(format!("{{\"key\":\"dead/{i}\",\"size\":1}}"))
            .message_attributes(
                "origin",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(format!("o-{i}"))
                    .build()?,
            )
            .send()
            .await?;
    }
    let redrive = |extra: &[&str]| {
        let mut a = args(&["replay", "--config", &config_path, "--from-dlq", &dlq]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        gateway_cli(a, "")
    };

    // Dry run: lists, moves nothing, releases what it held.
    let dry = redrive(&["--to", &target, "--limit", "7", "--dry-run"]).await?;
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert_eq!(dry.stdout.lines().count(), 8, "{}", dry.stdout);
    assert_eq!(dry.summary()?["moved"], 0);
    assert_eq!(aws.queue_depth(&target).await?, (0, 0));
    assert_eq!(aws.queue_depth(&dlq).await?, (25, 0));

    // No --to: the DLQ's source queue.
    let run = redrive(&["--limit", "12"]).await?;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!("target: {target}")),
        "{}",
        run.stderr
    );
    assert_eq!(run.summary()?["moved"], 12, "{}", run.stdout);
    // Body and attributes preserved.
    let first = aws
        .sqs
        .receive_message()
        .queue_url(&target)
        .message_attribute_names("All")
        .max_number_of_messages(1)
        .send()
        .await?;
    let m = first.messages().first().context("a moved message")?;
    let body = m.body().unwrap_or_default();
    let i = body
        .trim_start_matches("{\"key\":\"dead/")
        .split('"')
        .next()
        .context("index")?;
    let origin = m
        .message_attributes()
        .and_then(|a| a.get("origin"))
        .context("origin")?;
    assert_eq!(origin.string_value(), Some(format!("o-{i}").as_str()));
    aws.sqs
        .change_message_visibility()
        .queue_url(&target)
        .receipt_handle(m.receipt_handle().unwrap_or_default())
        .visibility_timeout(0)
        .send()
        .await?;
    assert_eq!(aws.drain(&target).await?.len(), 12);
    assert_eq!(aws.drain(&dlq).await?.len(), 13);
    Ok(())
}

const TOKEN: &str = "replay-token-0123456789";

async fn admin_post(
    gw: &Gateway,
    source: &str,
    token: Option<&str>,
    body: String,
) -> Result<reqwest::Response> {
    let url = format!("http://{}/admin/replay/{source}", gw.admin_addr);
    let mut request = gw.http.post(url).body(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    Ok(request.send().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_is_off_without_tokens() -> Result<()> {
    let gw = Gateway::start().await?;
    let response = admin_post(&gw, SOURCE, Some(TOKEN), events(&[&event("x")?])).await?;
    assert_eq!(response.status(), 404);
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoint_authenticates_limits_and_answers_after_sqs() -> Result<()> {
    let gw = Gateway::start_with(&format!(
        "[admin]\nreplay_tokens = [\"{TOKEN}\"]\nreplay_per_second = 1\nreplay_burst = 5\n\
         replay_max_body_bytes = 4096\n"
    ))
    .await?;
    let (a, b) = (event("adm/a")?, event("adm/b")?);
    let body = format!("{}\n{{broken\n", events(&[&a, &b]));

    let none = admin_post(&gw, SOURCE, None, body.clone()).await?;
    assert_eq!(none.status(), 401);
    let wrong = admin_post(&gw, SOURCE, Some("replay-token-0123456788"), body.clone()).await?;
    assert_eq!(wrong.status(), 401);
    assert_eq!(gw.aws.queue_depth(&gw.queue_url).await?, (0, 0));

    let ok = admin_post(&gw, SOURCE, Some(TOKEN), body.clone()).await?;
    assert_eq!(ok.status(), 200);
    let summary: serde_json::Value = ok.json().await?;
    assert_eq!(summary["enqueued"], 2, "{summary}");
    assert_eq!(summary["rejected"], 1, "{summary}");
    assert_eq!(summary["problems"][0]["line"], 2, "{summary}");
    // Already on the queue when the 200 arrived.
    let on_queue = drained(&gw.aws, &gw.queue_url).await?;
    assert_eq!(on_queue.get("adm/a"), Some(&key_of(&a)));
    assert_eq!(on_queue.get("adm/b"), Some(&key_of(&b)));

    let big = admin_post(&gw, SOURCE, Some(TOKEN), "x".repeat(5000)).await?;
    assert_eq!(big.status(), 413);
    let unknown = admin_post(&gw, "no-such-source", Some(TOKEN), events(&[&a])).await?;
    assert_eq!(unknown.status(), 404);

    let mut statuses = Vec::new();
    for _ in 0..8 {
        let r = admin_post(&gw, SOURCE, Some(TOKEN), events(&[&a])).await?;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key("retry-after"));
            break;
        }
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archived_events_replay_by_time_range_with_their_original_keys() -> Result<()> {
    let bucket = unique_name("archive");
    let archive = format!(
        "[archive]\nbucket = \"{bucket}\"\nprefix = \"arch\"\nwindow_secs = 60\nforce_path_style = true\n"
    );
    let gw = Gateway::start_with(&archive).await?;
    gw.aws.create_bucket(&bucket).await?;
    let rfc3339 = |t: OffsetDateTime| t.format(&Rfc3339);

    let early = events(&[&event("arc/early")?]);
    assert_eq!(gw.post_signed(&early).await?.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let since = OffsetDateTime::now_utc();
    let (b, c, d) = (event("arc/b")?, event("arc/c")?, event("arc/d")?);
    assert_eq!(gw.post_signed(&events(&[&b, &c])).await?.status(), 200);
    assert_eq!(gw.post_signed(&events(&[&d])).await?.status(), 200);
    // A retried delivery: accepted as a duplicate, archived too.
    assert_eq!(gw.post_signed(&events(&[&d])).await?.status(), 200);
    // Refused (bad signature): never archived.
    let refused = events(&[&event("arc/refused")?]);
    let bad = gw
        .post(
            &refused,
            &[
                ("webhook-id", "x".into()),
                ("webhook-timestamp", "1".into()),
                ("webhook-signature", "v1,AAAA".into()),
            ],
        )
        .await?;
    assert_eq!(bad.status(), 401);
    let until = OffsetDateTime::now_utc() + time::Duration::seconds(1);
    let originals = drained(&gw.aws, &gw.queue_url).await?;
    assert_eq!(originals.len(), 4);

    // Shutdown writes the open window.
    gw.shutdown.cancel();
    let server = gw.server;
    server.await??;
    let listed = gw
        .aws
        .s3
        .list_objects_v2()
        .bucket(&bucket)
        .prefix("arch/")
        .send()
        .await?;
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert!(!keys.is_empty(), "nothing archived");
    let today = since.format(time::macros::format_description!(
        "arch/[year]/[month]/[day]/"
    ))?;
    assert!(
        keys.iter()
            .all(|k| k.starts_with(&today) && k.ends_with(".ndjson.gz")),
        "{keys:?}"
    );

    let fresh = gw.aws.create_queue(&unique_name("replayed"), &[]).await?;
    let config = config_file(&gw.emulator.endpoint(), SOURCE, &fresh, &archive)?;
    let run = gateway_cli(
        args(&[
            "replay",
            "--config",
            &config.path().display().to_string(),
            "--source",
            SOURCE,
            "--archive",
            &format!("s3://{bucket}/arch"),
            "--since",
            &rfc3339(since)?,
            "--until",
            &rfc3339(until)?,
        ]),
        "",
    )
    .await?;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let summary = run.summary()?;
    assert_eq!(summary["enqueued"], 3, "{summary}");
    assert_eq!(summary["skipped"], 1, "the early record: {summary}");
    assert_eq!(summary["keyMismatches"], 0, "{summary}");
    let replayed = drained(&gw.aws, &fresh).await?;
    let expected: BTreeMap<String, String> = originals
        .into_iter()
        .filter(|(k, _)| k != "arc/early")
        .collect();
    assert_eq!(
        replayed, expected,
        "the same idempotency keys, without the early event"
    );
    Ok(())
}
