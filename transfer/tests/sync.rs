//! `ossbridge-transfer sync` end to end, through the real binary, against
//! moto behind the S3 proxies (source plays OSS; the destination proxy
//! counts PutObject calls).

mod common;

use std::collections::{BTreeSet, HashMap};

use anyhow::{Result, bail, ensure};
use common::Rig;
use ossbridge_message::{Operation, QueueMessage};

use ossbridge_transfer::copy::recorded::{META_SOURCE_ETAG, META_SOURCE_LAST_MODIFIED};

/// What an ossbridge copy records of the source version it holds: its
/// ETag and Last-Modified (`last_modified`, from [`source_times`]).
fn meta(etag: &str, last_modified: &str) -> Option<HashMap<String, String>> {
    Some(HashMap::from([
        (META_SOURCE_ETAG.to_owned(), etag.to_owned()),
        (
            META_SOURCE_LAST_MODIFIED.to_owned(),
            last_modified.to_owned(),
        ),
    ]))
}

/// Every source key's Last-Modified, as ossbridge records it.
async fn source_times(rig: &Rig) -> Result<HashMap<String, String>> {
    let mut times = HashMap::new();
    let mut pages = rig
        .aws
        .s3
        .list_objects_v2()
        .bucket(&rig.source_bucket)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for object in page?.contents() {
            if let (Some(key), Some(t)) = (object.key(), object.last_modified()) {
                times.insert(
                    key.to_owned(),
                    t.fmt(aws_sdk_s3::primitives::DateTimeFormat::DateTime)?,
                );
            }
        }
    }
    Ok(times)
}

/// 16–100 bytes, different per key.
fn body(i: usize) -> Vec<u8> {
    let len = 16 + (i * 7) % 85;
    ossbridge_testkit::fixtures::bytes(len, i as u64 + 1)
}

fn config(rig: &Rig) -> String {
    rig.config_toml("[worker]\nshutdown_grace_secs = 5\n")
}

/// A key layout with several top-level prefixes, so the ranges run in
/// parallel, and some keys at the top level.
fn key(i: usize) -> String {
    if i % 100 == 99 {
        format!("top-{i:05}")
    } else {
        format!("p{}/obj-{i:05}", i % 8)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_objects_dry_run_then_sync_copies_exactly_the_differences() -> Result<()> {
    const N: usize = 10_000;
    let rig = Rig::start_split().await?;
    // OSS's ETag of a single PUT is the MD5 of the bytes in upper case (and
    // that is what ossbridge records at the destination), so both buckets
    // can be filled at once, each by its own emulator.
    let etag = |i: usize| hex::encode_upper(<md5::Md5 as md5::Digest>::digest(body(i)));
    let source: Vec<_> = (0..N).map(|i| (key(i), body(i), None)).collect();

    let etags = rig.put_many(&rig.source_bucket, source, 32).await?;
    let times = source_times(&rig).await?;
    // Every 200th key is missing (50), every 200th + 1 differs in size
    // (50), every 200th + 2 has the same size but records another source
    // version (50); the rest are correct copies.
    let mut expected = BTreeSet::new();
    let mut destination = Vec::new();
    for i in 0..N {
        let k = key(i);
        let recorded = meta(&etag(i), &times[&k]);
        match i % 200 {
            0 => {
                expected.insert(k);
            }
            1 => {
                let mut longer = body(i);
                longer.push(b'x');
                destination.push((k.clone(), longer, recorded));
                expected.insert(k);
            }
            2 => {
                let old = vec![b'o'; body(i).len()];
                let other = meta("0123456789abcdef0123456789abcdef", &times[&k]);
                destination.push((k.clone(), old, other));
                expected.insert(k);
            }
            _ => destination.push((k.clone(), body(i), recorded)),
        }
    }
    ensure!(expected.len() == 150);
    rig.put_many(&rig.destination_bucket, destination, 32)
        .await?;
    ensure!(
        etags[&key(7)] == etag(7),
        "the source's ETag is not the upper-case MD5"
    );

    let dry = rig
        .run_binary(&config(&rig), &["sync", "--dry-run", "--progress", "log"])
        .await?;
    ensure!(
        dry.code == 0,
        "dry run exited {}:\n{}",
        dry.code,
        dry.stderr
    );
    ensure!(
        dry.planned("copy") == expected,
        "dry run planned {:?}",
        dry.planned("copy")
            .difference(&expected)
            .collect::<Vec<_>>()
    );
    ensure!(dry.planned("delete").is_empty());
    ensure!(rig.destination.calls("PutObject") == 0);
    ensure!(rig.destination_object(&key(0)).await?.is_none());
    ensure!(dry.count("source_objects")? == N as u64);
    ensure!(dry.count("destination_objects")? == (N - 50) as u64);
    ensure!(dry.count("already_current")? == (N - 150) as u64);

    let run = rig
        .run_binary(&config(&rig), &["sync", "--concurrency", "16"])
        .await?;
    ensure!(
        run.code == 0,
        "sync exited {}:\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    ensure!(
        rig.destination.calls("PutObject") == 150,
        "PutObject calls: {}",
        rig.destination.calls("PutObject")
    );
    ensure!(run.count("copied")? == 150 && run.count("failed")? == 0);
    for i in (0..N).filter(|i| i % 200 < 3) {
        let bytes = rig.destination_object(&key(i)).await?;
        ensure!(bytes == Some(body(i)), "{} differs after sync", key(i));
    }
    ensure!(
        run.stdout.contains("copied:          150"),
        "{}",
        run.stdout
    );

    let again = rig.run_binary(&config(&rig), &["sync"]).await?;
    ensure!(again.code == 0, "{}", again.stderr);
    ensure!(again.count("to_copy")? == 0 && again.count("copied")? == 0);
    ensure!(again.count("already_current")? == N as u64);
    ensure!(rig.destination.calls("PutObject") == 150);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_needs_confirmation_and_stays_under_the_destination_prefix() -> Result<()> {
    let rig = Rig::start().await?;
    for k in ["a/1", "a/2", "b"] {
        rig.put_source(k, k.as_bytes().to_vec()).await?;
    }
    // Extras under the prefix (one in a prefix the source lacks), and an
    // object outside it that must survive.
    for k in ["mirror/a/3", "mirror/z/9", "mirror/c", "other/x"] {
        rig.aws
            .put_object(&rig.destination_bucket, k, b"extra".to_vec())
            .await?;
    }
    // In-process sync needs no queue.
    let text = common::without_queue_url(&config(&rig));
    let prefix = ["--destination-prefix", "mirror/"];

    let refused = rig
        .run_binary(&text, &[&["sync", "--delete"][..], &prefix].concat())
        .await?;
    ensure!(refused.code == 2, "exit {}", refused.code);
    ensure!(
        refused.stderr.contains("--yes-delete"),
        "{}",
        refused.stderr
    );

    let dry = rig
        .run_binary(
            &text,
            &[
                &[
                    "sync",
                    "--delete",
                    "--dry-run",
                    "--max-delete-percent",
                    "100",
                ][..],
                &prefix,
            ]
            .concat(),
        )
        .await?;
    ensure!(dry.code == 0, "{}", dry.stderr);
    let deletes: BTreeSet<String> = ["a/3", "c", "z/9"].map(String::from).into();
    ensure!(
        dry.planned("delete") == deletes,
        "{:?}",
        dry.planned("delete")
    );
    ensure!(rig.destination_object("mirror/a/3").await?.is_some());

    let run = rig
        .run_binary(
            &text,
            &[
                &[
                    "sync",
                    "--delete",
                    "--yes-delete",
                    "--max-delete-percent",
                    "100",
                ][..],
                &prefix,
            ]
            .concat(),
        )
        .await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(run.count("deleted")? == 3 && run.count("copied")? == 3);
    for k in ["mirror/a/3", "mirror/z/9", "mirror/c"] {
        ensure!(rig.destination_object(k).await?.is_none(), "{k} survived");
    }
    ensure!(rig.destination_object("other/x").await?.is_some());
    ensure!(rig.destination_object("mirror/a/1").await? == Some(b"a/1".to_vec()));

    // The worker still requires the queue, naming it.
    let worker = rig.run_binary(&text, &[]).await?;
    ensure!(
        worker.code == 2 && worker.stderr.contains("queue_url"),
        "{}",
        worker.stderr
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn include_and_exclude_are_honoured() -> Result<()> {
    let rig = Rig::start().await?;
    for k in ["keep/1", "keep/tmp/2", "keepsake", "skip/3", "top"] {
        rig.put_source(k, k.as_bytes().to_vec()).await?;
    }
    let args = [
        "sync",
        "--include",
        "keep/",
        "--include",
        "top",
        "--exclude",
        "keep/tmp/",
    ];
    let run = rig.run_binary(&config(&rig), &args).await?;
    ensure!(run.code == 0, "{}", run.stderr);
    ensure!(run.count("copied")? == 2, "{}", run.stdout);
    ensure!(rig.destination_object("keep/1").await?.is_some());
    ensure!(rig.destination_object("top").await?.is_some());
    for k in ["keep/tmp/2", "keepsake", "skip/3"] {
        ensure!(rig.destination_object(k).await?.is_none(), "{k} copied");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueue_puts_exactly_the_outdated_keys_on_the_queue() -> Result<()> {
    let rig = Rig::start().await?;
    let objects: Vec<_> = (0..25)
        .map(|i| (format!("d{}/k{i:02}", i % 3), body(i), None))
        .collect();
    let etags = rig.put_many(&rig.source_bucket, objects, 8).await?;
    let times = source_times(&rig).await?;
    let current: Vec<_> = (0..5)
        .map(|i| {
            let k = format!("d{}/k{i:02}", i % 3);
            (k.clone(), body(i), meta(&etags[&k], &times[&k]))
        })
        .collect();
    rig.put_many(&rig.destination_bucket, current, 8).await?;
    // Two more the destination holds in an older version; the other 18
    // it lacks.
    let outdated = ["d2/k05", "d0/k06"];
    let old: Vec<_> = outdated
        .iter()
        .map(|k| (k.to_string(), b"old".to_vec(), None))
        .collect();
    rig.put_many(&rig.destination_bucket, old, 8).await?;

    let run = rig
        .run_binary(&config(&rig), &["sync", "--enqueue"])
        .await?;
    ensure!(run.code == 0, "{}\n{}", run.stdout, run.stderr);
    ensure!(run.count("enqueued")? == 20 && run.count("copied")? == 0);
    ensure!(rig.destination.calls("PutObject") == 0);

    let mut keys = BTreeSet::new();
    for body in rig.aws.drain(&rig.queue_url).await? {
        let m = QueueMessage::from_body(&body)?;
        ensure!(m.op == Operation::Copy && m.bucket == rig.source_bucket);
        ensure!(m.e_tag == etags[&m.key], "{} carries {}", m.key, m.e_tag);
        // The worker reads it as a job, and a key the destination lacked
        // as a new object: a source GET and an `If-None-Match: *` PUT,
        // no destination HEAD first, as sync without --enqueue copies it.
        let missing = !outdated.contains(&m.key.as_str());
        let ossbridge_transfer::decode::Decoded::Jobs(jobs) =
            ossbridge_transfer::decode::decode(&body)?
        else {
            bail!("{} is not a job", m.key);
        };
        ensure!(
            jobs.len() == 1 && jobs[0].new_object == missing,
            "{}: {jobs:?}",
            m.key
        );
        let name = if missing {
            ossbridge_transfer::sync::EVENT_NAME_MISSING
        } else {
            ossbridge_transfer::sync::EVENT_NAME
        };
        ensure!(m.event_name == name, "{}: {}", m.key, m.event_name);
        ensure!(keys.insert(m.key), "duplicate job");
    }
    let expected: BTreeSet<String> = (5..25).map(|i| format!("d{}/k{i:02}", i % 3)).collect();
    ensure!(keys == expected, "{keys:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_copy_makes_the_exit_code_non_zero_and_names_the_reason() -> Result<()> {
    let rig = Rig::start().await?;
    for k in ["ok/1", "ok/2", "bad/1"] {
        rig.put_source(k, body(k.len()).repeat(3)).await?;
    }
    rig.source.corrupt(&rig.source_bucket, "bad/1");
    let text = rig.config_toml("[copy]\nattempts = 1\n");
    let run = rig.run_binary(&text, &["sync"]).await?;
    ensure!(
        run.code == 1,
        "exit {}:\n{}\n{}",
        run.code,
        run.stdout,
        run.stderr
    );
    ensure!(run.count("copied")? == 2 && run.count("failed")? == 1);
    ensure!(
        run.stdout.contains("failed \"bad/1\" (integrity)"),
        "{}",
        run.stdout
    );
    ensure!(rig.destination_object("bad/1").await?.is_none());
    Ok(())
}
