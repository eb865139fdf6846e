//! Error answers in each service's shape.
//!
//! OSS (help.aliyun.com/en/oss/user-guide/overview-14, "Error responses"):
//! `application/xml`, `<Error>` with `Code`, `Message`, `RequestId`,
//! `HostId` (the Host the client addressed), operation-specific elements
//! such as `Key`, then `EC` and `RecommendDoc`; headers `x-oss-request-id`
//! and `x-oss-ec`. EC values are included only where a real OSS answer or
//! Aliyun's docs show them; OSS says clients must not depend on them.
//!
//! S3: `<Error>` with `Code`, `Message`, operation-specific elements (e.g.
//! `Condition`), `RequestId`, `HostId`.

use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use super::Body;
use super::upstream::full;
use super::xml::{element, escape};

/// Fine-grained OSS error codes seen in OSS's answers and docs.
fn ec(code: &str) -> Option<&'static str> {
    match code {
        // help.aliyun.com/en/oss/user-guide/0026-00000016
        "PositionNotEqualToLength" => Some("0026-00000016"),
        // Every NoSuchKey answer from OSS carries it.
        "NoSuchKey" => Some("0026-00000001"),
        _ => None,
    }
}

/// Who answers: the request id and the Host the client used.
#[derive(Debug, Clone)]
pub(super) struct Answerer {
    pub request_id: String,
    pub host: String,
}

/// An OSS error answer. `extra`: (element, already escaped text).
pub(super) fn oss(
    who: &Answerer,
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &[(&str, String)],
    head: bool,
) -> Response<Body> {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error>\n  <Code>{code}</Code>\n  <Message>{}</Message>\n  <RequestId>{}</RequestId>\n  <HostId>{}</HostId>\n",
        escape(message),
        who.request_id,
        escape(&who.host),
    );
    for (name, text) in extra {
        xml.push_str(&format!("  <{name}>{text}</{name}>\n"));
    }
    let ec = ec(code);
    if let Some(ec) = ec {
        xml.push_str(&format!(
            "  <EC>{ec}</EC>\n  <RecommendDoc>https://api.aliyun.com/troubleshoot?q={ec}</RecommendDoc>\n"
        ));
    }
    xml.push_str("</Error>\n");
    // A HEAD answer has no body; the code travels in the status (and EC).
    let mut response = Response::new(if head {
        super::upstream::empty()
    } else {
        full(xml)
    });
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    if let Some(ec) = ec.and_then(|e| e.parse().ok()) {
        headers.insert("x-oss-ec", ec);
    }
    response
}

/// An S3 error answer. `extra`: (element, already escaped text).
pub(super) fn s3(
    status: StatusCode,
    code: &str,
    message: &str,
    extra: &[(&str, String)],
    request_id: &str,
) -> Response<Body> {
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>",
        escape(message)
    );
    for (name, text) in extra {
        xml.push_str(&format!("<{name}>{text}</{name}>"));
    }
    xml.push_str(&format!(
        "<RequestId>{request_id}</RequestId><HostId>ossbridge-testkit</HostId></Error>"
    ));
    let mut response = Response::new(full(xml));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    if let Ok(id) = request_id.parse() {
        response.headers_mut().insert("x-amz-request-id", id);
    }
    response
}

/// An emulator error body (`<Error><Code>...`) in OSS's shape, keeping the
/// status, the code, the message and the elements that name the resource.
/// `None` when the body is not an S3 error document.
pub(super) fn to_oss(
    who: &Answerer,
    status: StatusCode,
    body: &str,
    head: bool,
) -> Option<Response<Body>> {
    let (_, _, code) = element(body, "Code", 0)?;
    let message = element(body, "Message", 0).map_or("", |m| m.2);
    let extra: Vec<(&str, String)> = ["Key", "BucketName", "Condition", "UploadId"]
        .into_iter()
        .filter_map(|name| element(body, name, 0).map(|e| (name, e.2.to_owned())))
        .collect();
    let mut response = oss(
        who,
        status,
        code,
        &super::xml::unescape(message),
        &extra,
        head,
    );
    response.headers_mut().remove(CONTENT_LENGTH);
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn moto_errors_become_oss_errors() {
        let who = Answerer {
            request_id: "5C3D9175B6FC201293AD0001".into(),
            host: "b.localhost:1".into(),
        };
        let moto = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message><Key>a&amp;b</Key><RequestID>x</RequestID></Error>";
        let response = to_oss(&who, StatusCode::NOT_FOUND, moto, false).expect("an error body");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(response.headers()["x-oss-ec"], "0026-00000001");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        let body = String::from_utf8_lossy(&body);
        for part in [
            "<Code>NoSuchKey</Code>",
            "<RequestId>5C3D9175B6FC201293AD0001</RequestId>",
            "<HostId>b.localhost:1</HostId>",
            "<Key>a&amp;b</Key>",
            "<EC>0026-00000001</EC>",
        ] {
            assert!(body.contains(part), "{part} missing in {body}");
        }
        assert!(to_oss(&who, StatusCode::NOT_FOUND, "Not Found", false).is_none());
    }
}
