//! moto quirks the proxy mends, in both modes:
//!
//! - moto 5.2 names the root element of a ListParts answer
//!   `ListPartsResponse` instead of S3's `ListPartsResult`, which the Rust
//!   SDK rightly refuses;
//! - it reports every multipart upload as initiated on 2010-11-10, so the
//!   proxy notes when each upload it created was really initiated and
//!   reports that.

use std::collections::HashMap;
use std::sync::Mutex;

use super::xml::element;

/// Whether an answer to `op` needs mending (so its body is buffered).
pub(super) fn needs_mending(op: &str) -> bool {
    matches!(
        op,
        "ListParts" | "CreateMultipartUpload" | "ListMultipartUploads"
    )
}

/// Upload id → when CreateMultipartUpload went through the proxy.
#[derive(Debug, Default)]
pub(super) struct Initiated(Mutex<HashMap<String, String>>);

impl Initiated {
    pub(super) fn mend(&self, op: &str, xml: String) -> String {
        match op {
            "ListParts" => xml
                .replace("<ListPartsResponse", "<ListPartsResult")
                .replace("</ListPartsResponse>", "</ListPartsResult>"),
            "CreateMultipartUpload" => {
                if let Some((_, _, id)) = element(&xml, "UploadId", 0)
                    && let Ok(mut initiated) = self.0.lock()
                {
                    let format = time::macros::format_description!(
                        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
                    );
                    let now = time::OffsetDateTime::now_utc()
                        .format(&format)
                        .unwrap_or_default();
                    initiated.insert(id.to_owned(), now);
                }
                xml
            }
            _ => self.swap_initiated(xml),
        }
    }

    /// The answer with each known upload's Initiated replaced.
    fn swap_initiated(&self, xml: String) -> String {
        let Ok(initiated) = self.0.lock() else {
            return xml;
        };
        let mut out = String::with_capacity(xml.len());
        let mut copied = 0;
        let mut from = 0;
        while let Some((_, id_end, id)) = element(&xml, "UploadId", from) {
            if let (Some(when), Some((start, end, _))) =
                (initiated.get(id), element(&xml, "Initiated", id_end))
            {
                out.push_str(&xml[copied..start]);
                out.push_str(when);
                copied = end;
            }
            from = id_end;
        }
        out.push_str(&xml[copied..]);
        out
    }
}
