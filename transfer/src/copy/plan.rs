//! The pure part of reconciling a key: from the source's state now and the
//! destination's, what has to happen. Tested without any bucket.

use super::destination::DestinationObject;
use super::recorded::Version;
use super::source::SourceObject;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// The destination holds the source's current version.
    Current,
    /// The source has no such key.
    SourceGone,
    /// The destination lacks the source's bytes: copy them.
    Copy,
    /// The destination has the source's bytes but not its current headers,
    /// user metadata or Last-Modified (an `ObjectModified:UpdateObjectMeta`,
    /// an in-place copy): rewrite them server-side, no download.
    UpdateMetadata,
    /// The destination has the source's bytes (equal size and equal MD5
    /// ETags, both plain single-part MD5s) but another tool wrote it, e.g.
    /// Data Transfer Hub: record the version server-side, no download.
    Adopt,
}

pub fn decide(
    source: Option<&SourceObject>,
    destination: Option<&DestinationObject>,
    copy_user_metadata: bool,
) -> Plan {
    let Some(source) = source else {
        return Plan::SourceGone;
    };
    let Some(destination) = destination else {
        return Plan::Copy;
    };
    if destination.size != source.size {
        return Plan::Copy;
    }
    let now = Version::of(source, copy_user_metadata);
    match &destination.recorded {
        Some(recorded) if recorded.same_version(&now) => Plan::Current,
        Some(recorded) if recorded.same_content(&now) => Plan::UpdateMetadata,
        Some(_) => Plan::Copy,
        None => match (source.md5(), destination.md5()) {
            (Some(a), Some(b)) if a == b => Plan::Adopt,
            _ => Plan::Copy,
        },
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::primitives::DateTime;

    use super::*;
    use crate::copy::recorded::destination_metadata;

    const MD5: &str = "5d41402abc4b2a76b9719d911017c592";

    fn source(etag: &str, object_type: Option<&str>) -> SourceObject {
        SourceObject {
            key: "k".into(),
            size: 5,
            etag: format!("\"{etag}\""),
            last_modified: Some(DateTime::from_secs(1_700_000_000)),
            object_type: object_type.map(str::to_owned),
            ..SourceObject::default()
        }
    }

    fn written_from(s: &SourceObject) -> DestinationObject {
        DestinationObject {
            storage_class: None,
            etag: "\"d\"".into(),
            size: s.size,
            recorded: Version::recorded(&destination_metadata(s, true)),
        }
    }

    #[test]
    fn absent_sides() {
        let s = source(MD5, Some("Normal"));
        assert_eq!(
            decide(None, Some(&written_from(&s)), true),
            Plan::SourceGone
        );
        assert_eq!(decide(None, None, true), Plan::SourceGone);
        assert_eq!(decide(Some(&s), None, true), Plan::Copy);
    }

    #[test]
    fn the_recorded_version_decides() {
        let s = source(MD5, Some("Normal"));
        let d = written_from(&s);
        assert_eq!(decide(Some(&s), Some(&d), true), Plan::Current);

        let mut new_bytes = s.clone();
        new_bytes.etag = "\"00000000000000000000000000000000\"".into();
        assert_eq!(decide(Some(&new_bytes), Some(&d), true), Plan::Copy);

        let mut resized = s.clone();
        resized.size = 6;
        assert_eq!(decide(Some(&resized), Some(&d), true), Plan::Copy);

        let mut retyped = s.clone();
        retyped.content_type = Some("image/png".into());
        retyped.last_modified = Some(DateTime::from_secs(1_700_000_060));
        assert_eq!(decide(Some(&retyped), Some(&d), true), Plan::UpdateMetadata);
    }

    #[test]
    fn objects_of_other_tools_are_adopted_only_on_a_trustworthy_md5() {
        let foreign = DestinationObject {
            storage_class: None,
            etag: format!("\"{MD5}\""),
            size: 5,
            recorded: None,
        };
        // OSS writes ETags in upper case.
        let normal = source(&MD5.to_uppercase(), Some("Normal"));
        assert_eq!(decide(Some(&normal), Some(&foreign), true), Plan::Adopt);
        // MD5-shaped, but OSS says multipart and appendable ETags are not
        // MD5s: the bytes cannot be proven equal without reading them.
        for kind in ["Multipart", "Appendable"] {
            let s = source(&MD5.to_uppercase(), Some(kind));
            assert_eq!(decide(Some(&s), Some(&foreign), true), Plan::Copy, "{kind}");
        }
        let mut kms = normal.clone();
        kms.kms_encrypted = true;
        assert_eq!(decide(Some(&kms), Some(&foreign), true), Plan::Copy);
        let multipart_destination = DestinationObject {
            storage_class: None,
            etag: format!("\"{MD5}-2\""),
            ..foreign.clone()
        };
        assert_eq!(
            decide(Some(&normal), Some(&multipart_destination), true),
            Plan::Copy
        );
        let other = source("0123456789abcdef0123456789abcdef", Some("Normal"));
        assert_eq!(decide(Some(&other), Some(&foreign), true), Plan::Copy);
    }
}
