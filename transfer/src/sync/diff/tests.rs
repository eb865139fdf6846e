use std::collections::VecDeque;

use super::*;

struct Vector(&'static str, VecDeque<Entry>);

impl Sorted for Vector {
    fn side(&self) -> &'static str {
        self.0
    }

    async fn next(&mut self) -> Result<Option<Entry>, SyncError> {
        Ok(self.1.pop_front())
    }
}

fn entry(key: &str, size: u64, etag: &str) -> Entry {
    Entry {
        key: key.to_owned(),
        size,
        etag: etag.to_owned(),
        last_modified: Some(1_700_000_000),
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

fn merge(source: Vec<Entry>, destination: Vec<Entry>) -> Result<Vec<Decision>, SyncError> {
    block_on(async {
        let mut m = Merge::new(
            Vector("source", source.into()),
            Vector("destination", destination.into()),
        );
        let mut out = Vec::new();
        while let Some(pair) = m.next().await? {
            out.push(decide(pair));
        }
        Ok(out)
    })
}

#[test]
fn merge_join_classifies_every_key_once() {
    let source = vec![
        entry("a", 1, "e1"),
        entry("b", 2, "e2"),
        entry("c", 3, "e3"),
        entry("e", 5, "e5"),
    ];
    let destination = vec![entry("b", 2, "x"), entry("c", 4, "e3"), entry("d", 1, "")];
    let got = merge(source, destination).expect("merge");
    assert_eq!(
        got,
        vec![
            Decision::Copy(entry("a", 1, "e1"), Reason::Missing),
            Decision::Check(entry("b", 2, "e2")),
            Decision::Copy(entry("c", 3, "e3"), Reason::SizeDiffers),
            Decision::Extra(entry("d", 1, "")),
            Decision::Copy(entry("e", 5, "e5"), Reason::Missing),
        ]
    );
}

#[test]
fn empty_sides() {
    assert!(merge(vec![], vec![]).expect("merge").is_empty());
    let only_dest = merge(vec![], vec![entry("z", 1, "")]).expect("merge");
    assert_eq!(only_dest, vec![Decision::Extra(entry("z", 1, ""))]);
}

#[test]
fn byte_order_not_locale_order() {
    // UTF-8 binary order: "Z" (0x5A) < "a" (0x61) < "é" (0xC3 0xA9).
    let keys = ["Z", "a", "é"];
    let source: Vec<Entry> = keys.iter().map(|k| entry(k, 1, "e")).collect();
    let got = merge(source.clone(), source).expect("merge");
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|d| matches!(d, Decision::Check(_))));
}

#[test]
fn an_unsorted_listing_is_an_error_not_a_wrong_diff() {
    let err = merge(vec![entry("b", 1, ""), entry("a", 1, "")], vec![]).expect_err("unsorted");
    assert!(
        matches!(err, SyncError::Unsorted { side: "source", .. }),
        "{err}"
    );
    let err = merge(vec![], vec![entry("a", 1, ""), entry("a", 1, "")]).expect_err("duplicate");
    assert!(
        matches!(
            err,
            SyncError::Unsorted {
                side: "destination",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn the_recorded_version_decides_equal_sizes() {
    let recorded = |etag: &str, last_modified: i64| Version {
        etag: etag.to_owned(),
        last_modified: Some(last_modified),
        meta: Some("m".to_owned()),
    };
    let listed = entry("k", 1, "\"ABC\"");
    assert_eq!(
        recorded_reason(&listed, Some(&recorded("ABC", 1_700_000_000))),
        None
    );
    assert_eq!(
        recorded_reason(&listed, Some(&recorded("ABD", 1_700_000_000))),
        Some(Reason::EtagDiffers)
    );
    assert_eq!(
        recorded_reason(&listed, Some(&recorded("ABC", 1_700_000_060))),
        Some(Reason::Modified)
    );
    let before_digests = Version {
        meta: None,
        ..recorded("ABC", 1_700_000_000)
    };
    assert_eq!(recorded_reason(&listed, Some(&before_digests)), None);
    let no_time = Version {
        last_modified: None,
        ..recorded("ABC", 1_700_000_000)
    };
    assert_eq!(
        recorded_reason(&listed, Some(&no_time)),
        Some(Reason::Modified)
    );
    assert_eq!(recorded_reason(&listed, None), Some(Reason::NoRecordedEtag));
}

#[test]
fn filter_exclude_wins_and_ranges_are_pruned() {
    let f = Filter {
        include: vec!["photos/".into(), "photos/2024/".into(), "docs/a".into()],
        exclude: vec!["photos/tmp/".into()],
    };
    assert!(f.allows("photos/x.jpg"));
    assert!(!f.allows("photos/tmp/x.jpg"));
    assert!(f.allows("docs/abc"));
    assert!(!f.allows("docs/b"));
    assert!(!f.allows("video/x"));
    assert!(f.may_contain("photos/"));
    assert!(f.may_contain("docs/"));
    assert!(!f.may_contain("photos/tmp/"));
    assert!(!f.may_contain("video/"));
    assert_eq!(f.roots(), vec!["docs/a".to_owned(), "photos/".to_owned()]);
    assert_eq!(Filter::default().roots(), vec![String::new()]);
    assert!(Filter::default().allows("anything"));
}
