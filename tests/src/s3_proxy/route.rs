//! What a request addresses and which S3 operation it is.
//!
//! In OSS mode buckets are addressed only virtual-hosted-style, as OSS
//! requires: `Host: BUCKET.localhost:PORT`, the key as the path. The proxy
//! turns that into the emulator's path-style `/BUCKET/KEY`, which is also
//! the form every internal table (faults, ETags, locks) is keyed by.

use hyper::header::HeaderMap;
use hyper::{Method, Uri};

/// `/bucket/key` with the key percent-encoded the way the SDK sends it.
pub(super) fn object_path(bucket: &str, key: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    format!(
        "/{bucket}/{}",
        percent_encoding::utf8_percent_encode(key, KEEP)
    )
}

/// The emulator's path for a request, or why OSS would refuse it.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Addressed {
    /// Path-style: `/bucket/key`, `/bucket` or `/` (ListBuckets).
    Path(String),
    /// A bucket named in the path of a request to the bare endpoint.
    PathStyle,
}

/// The bucket of a `BUCKET.localhost[:PORT]` Host.
fn virtual_host_bucket(host: &str) -> Option<&str> {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let bucket = name.strip_suffix(".localhost")?;
    (!bucket.is_empty()).then_some(bucket)
}

/// Where a request goes. `virtual_hosted`: OSS mode, where the bucket is
/// in the Host and path-style requests are refused.
pub(super) fn address(uri: &Uri, headers: &HeaderMap, virtual_hosted: bool) -> Addressed {
    let path = uri.path();
    if !virtual_hosted {
        return Addressed::Path(path.to_owned());
    }
    let host = headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .unwrap_or("");
    match virtual_host_bucket(host) {
        Some(bucket) if path == "/" => Addressed::Path(format!("/{bucket}")),
        Some(bucket) => Addressed::Path(format!("/{bucket}{path}")),
        // The service itself (ListBuckets) is reachable on the endpoint.
        None if path == "/" => Addressed::Path("/".to_owned()),
        None => Addressed::PathStyle,
    }
}

/// `path` with `query` appended, if any.
pub(super) fn with_query(path: &str, query: &str) -> String {
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}

/// Whether the query string has parameter `name` (with or without value).
pub(super) fn has_param(query: &str, name: &str) -> bool {
    query
        .split('&')
        .any(|kv| kv == name || kv.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The value of query parameter `name`.
pub(super) fn param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// The S3 (or OSS) operation a request is.
pub(super) fn operation(
    method: &Method,
    path: &str,
    query: &str,
    headers: &HeaderMap,
) -> &'static str {
    let has = |p: &str| has_param(query, p);
    let is_object = path.trim_start_matches('/').contains('/');
    let copies = headers.contains_key("x-amz-copy-source");
    match *method {
        Method::PUT if has("partNumber") && has("uploadId") && copies => "UploadPartCopy",
        Method::PUT if has("partNumber") && has("uploadId") => "UploadPart",
        Method::POST if has("uploads") => "CreateMultipartUpload",
        Method::POST if has("uploadId") => "CompleteMultipartUpload",
        Method::POST if has("append") && is_object => "AppendObject",
        Method::POST if has("delete") => "DeleteObjects",
        Method::DELETE if has("uploadId") => "AbortMultipartUpload",
        Method::GET if has("uploadId") => "ListParts",
        Method::GET if has("uploads") => "ListMultipartUploads",
        Method::GET if has("acl") => "GetObjectAcl",
        Method::GET if is_object => "GetObject",
        Method::HEAD if is_object => "HeadObject",
        Method::PUT if is_object && copies => "CopyObject",
        Method::PUT if is_object => "PutObject",
        Method::DELETE if is_object => "DeleteObject",
        Method::GET if has("versions") => "ListObjectVersions",
        Method::GET if path == "/" => "ListBuckets",
        Method::GET => "ListObjects",
        _ => "Other",
    }
}

/// Operations that change the object at their key: serialized per key so
/// that a condition checked by the proxy still holds when the write lands.
pub(super) fn is_write(op: &str) -> bool {
    matches!(
        op,
        "PutObject" | "CopyObject" | "CompleteMultipartUpload" | "DeleteObject" | "AppendObject"
    )
}

/// The access key id of a SigV4 `Authorization` header.
pub(super) fn access_key(headers: &HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let credential = auth.split("Credential=").nth(1)?;
    Some(credential.split('/').next()?.to_owned())
}

/// The emulator path of an `x-amz-copy-source` (`[/]bucket/key[?versionId=]`,
/// key URL-encoded).
pub(super) fn copy_source_path(value: &str) -> String {
    let value = value.trim_start_matches('/');
    let value = value.split_once("?versionId=").map_or(value, |(p, _)| p);
    let decoded = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    match decoded.split_once('/') {
        Some((bucket, key)) => object_path(bucket, key),
        None => format!("/{decoded}"),
    }
}

/// The decoded key of an emulator path `/bucket/key`.
pub(super) fn key_of(path: &str) -> String {
    let key = path
        .trim_start_matches('/')
        .split_once('/')
        .map_or("", |(_, k)| k);
    percent_encoding::percent_decode_str(key)
        .decode_utf8_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().expect("header value"));
        }
        h
    }

    #[test]
    fn operations_are_told_apart() {
        let none = HeaderMap::new();
        let op = |m: &Method, p: &str, q: &str| operation(m, p, q, &none);
        assert_eq!(
            op(&Method::PUT, "/b/k", "partNumber=1&uploadId=x"),
            "UploadPart"
        );
        assert_eq!(op(&Method::PUT, "/b/k", "x-id=PutObject"), "PutObject");
        assert_eq!(
            operation(
                &Method::PUT,
                "/b/k",
                "x-id=CopyObject",
                &headers(&[("x-amz-copy-source", "b/j")])
            ),
            "CopyObject"
        );
        assert_eq!(
            op(&Method::POST, "/b/k", "uploads"),
            "CreateMultipartUpload"
        );
        assert_eq!(
            op(&Method::POST, "/b/k", "append&position=0"),
            "AppendObject"
        );
        assert_eq!(op(&Method::GET, "/b", "list-type=2"), "ListObjects");
        assert_eq!(op(&Method::GET, "/b/k", "x-id=GetObject"), "GetObject");
        assert_eq!(op(&Method::GET, "/", ""), "ListBuckets");
    }

    #[test]
    fn keys_are_encoded_as_the_sdk_does() {
        assert_eq!(
            object_path("b", "a b/报告+.txt"),
            "/b/a%20b/%E6%8A%A5%E5%91%8A%2B.txt"
        );
        assert_eq!(
            key_of("/b/a%20b/%E6%8A%A5%E5%91%8A%2B.txt"),
            "a b/报告+.txt"
        );
        assert_eq!(copy_source_path("/b/a%20b?versionId=1"), "/b/a%20b");
        assert_eq!(copy_source_path("b/a b"), "/b/a%20b");
    }

    #[test]
    fn only_virtual_hosted_requests_reach_a_bucket() {
        let uri: Uri = "/dir/k.txt".parse().expect("uri");
        let vhost = headers(&[("host", "media-1.localhost:9000")]);
        assert_eq!(
            address(&uri, &vhost, true),
            Addressed::Path("/media-1/dir/k.txt".into())
        );
        let root: Uri = "/?list-type=2".parse().expect("uri");
        assert_eq!(
            address(&root, &vhost, true),
            Addressed::Path("/media-1".into())
        );
        for host in ["localhost:9000", "127.0.0.1:9000"] {
            let bare = headers(&[("host", host)]);
            assert_eq!(address(&uri, &bare, true), Addressed::PathStyle);
            assert_eq!(address(&root, &bare, true), Addressed::Path("/".into()));
        }
        assert_eq!(
            address(&uri, &headers(&[("host", "127.0.0.1:9000")]), false),
            Addressed::Path("/dir/k.txt".into())
        );
    }

    #[test]
    fn query_parameters() {
        assert!(has_param("append&position=3", "append"));
        assert!(!has_param("appendix=1", "append"));
        assert_eq!(param("append&position=3", "position"), Some("3"));
    }
}
