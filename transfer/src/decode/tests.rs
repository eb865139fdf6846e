use super::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/");

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}{path}")).expect("fixture")
}

fn jobs(body: &str) -> Vec<Job> {
    match decode(body).expect("decodes") {
        Decoded::Jobs(jobs) => jobs,
        Decoded::Nothing(why) => panic!("nothing: {why}"),
    }
}

#[test]
fn the_dth_message() {
    let job = &jobs(&fixture("queue-messages/dth-minimal.json"))[0];
    assert_eq!((job.op, job.bucket.as_deref()), (Operation::Copy, None));
    assert_eq!(job.key, "photos/2026/11/20/IMG_0042.jpg");
    assert_eq!(
        (job.size, job.shape),
        (Some(122539), Shape::DataTransferHub)
    );
}

#[test]
fn the_ossbridge_message_keeps_its_key_raw() {
    let body = r#"{"key":"a b+c%20.txt","size":3,"version":1,"op":"delete","bucket":"src",
        "region":"cn-hangzhou","eTag":"X","eventName":"ObjectRemoved:DeleteObject",
        "eventTime":"2026-11-20T08:15:42.000Z","idempotencyKey":"k"}"#;
    let job = &jobs(body)[0];
    assert_eq!(
        (job.op, job.key.as_str()),
        (Operation::Delete, "a b+c%20.txt")
    );
    assert_eq!(job.bucket.as_deref(), Some("src"));
}

#[test]
fn s3_notifications_direct_sns_and_eventbridge_decode_their_keys() {
    let direct = fixture("queue-messages/s3-event-notification.json");
    let expected = "reports/2026/Q4 summary报告.pdf";
    let job = &jobs(&direct)[0];
    assert_eq!(job.key, expected);
    assert_eq!(
        (job.op, job.bucket.as_deref()),
        (Operation::Copy, Some("source-bucket"))
    );

    let sns = serde_json::json!({"Type": "Notification", "MessageId": "m", "Message": direct})
        .to_string();
    assert_eq!(jobs(&sns)[0].key, expected);

    let eventbridge = serde_json::json!({
        "version": "0", "detail-type": "Object Deleted", "source": "aws.s3", "time": "2026-11-20T08:15:42Z",
        "detail": {"bucket": {"name": "source-bucket"}, "object": {"key": "a+b%2Bc", "size": 0}}
    })
    .to_string();
    let job = &jobs(&eventbridge)[0];
    assert_eq!((job.op, job.key.as_str()), (Operation::Delete, "a b+c"));
}

#[test]
fn test_events_and_events_that_change_nothing_are_dropped() {
    assert_eq!(
        decode(&fixture("queue-messages/s3-test-event.json")).expect("decodes"),
        Decoded::Nothing("s3:TestEvent")
    );
    let part = fixture("oss-events/put-object.json").replace("PutObject", "UploadPart");
    assert!(matches!(decode(&part), Ok(Decoded::Nothing(_))));
}

#[test]
fn raw_oss_events_become_one_job_each() {
    let jobs = jobs(&fixture("oss-events/tricky-keys.json"));
    let keys: Vec<&str> = jobs.iter().map(|j| j.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "报告/2026 年度/summary+final 100%.pdf",
            "empty/zero-byte marker",
            "a/b/../c?d=e&f#g %2F.txt"
        ]
    );
    assert!(jobs.iter().all(|j| j.shape == Shape::OssEvent));
}

#[test]
fn everything_else_is_an_error() {
    assert!(matches!(
        decode("not json"),
        Err(DecodeError::NotJson { line: 1, .. })
    ));
    assert!(matches!(decode("[1]"), Err(DecodeError::Unrecognized)));
    assert!(matches!(
        decode(r#"{"size": 1}"#),
        Err(DecodeError::Unrecognized)
    ));
    assert!(matches!(
        decode(r#"{"version":1,"op":"copy"}"#),
        Err(DecodeError::Contract(_))
    ));
    assert!(matches!(
        decode(r#"{"Type":"Notification","Message":"{"}"#),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        decode(r#"{"Records":[{"eventName":"ObjectCreated:Put","s3":{}}]}"#),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn only_puts_and_posts_announce_a_new_object() {
    let job = |body: &str| jobs(body)[0].clone();
    let oss = |name: &str| {
        format!(
            r#"{{"events":[{{"eventName":"{name}","eventTime":"","oss":{{"bucket":{{"name":"b"}},"object":{{"key":"k","size":1}}}}}}]}}"#
        )
    };
    for name in ["ObjectCreated:PutObject", "ObjectCreated:PostObject"] {
        assert!(job(&oss(name)).new_object, "{name}");
    }
    for name in [
        "ObjectCreated:CopyObject",
        "ObjectCreated:AppendObject",
        "ObjectCreated:CompleteMultipartUpload",
        "ObjectModified:UpdateObjectMeta",
    ] {
        assert!(!job(&oss(name)).new_object, "{name}");
    }
    let s3 = |name: &str| {
        format!(
            r#"{{"Records":[{{"eventName":"{name}","s3":{{"object":{{"key":"k","size":1}}}}}}]}}"#
        )
    };
    assert!(job(&s3("ObjectCreated:Put")).new_object);
    assert!(!job(&s3("ObjectCreated:Copy")).new_object);
    // A Data Transfer Hub message names no event: taken as a new object.
    assert!(job(r#"{"key":"k","size":1}"#).new_object);
    // sync --enqueue: a key the destination lacked is a new object, one
    // it held in another version is not.
    let sync = |name: &str| {
        format!(
            r#"{{"key":"k","size":1,"version":1,"op":"copy","bucket":"b","region":"r","eTag":"e","eventName":"{name}","eventTime":"","idempotencyKey":"i"}}"#
        )
    };
    assert!(job(&sync(crate::sync::EVENT_NAME_MISSING)).new_object);
    assert!(!job(&sync(crate::sync::EVENT_NAME)).new_object);
}
