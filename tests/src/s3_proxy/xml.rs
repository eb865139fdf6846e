//! Just enough XML for the proxy's rewrites: S3 and OSS answers are flat,
//! machine-written documents, so elements are found by their tags.

/// The text between `<tag>` and `</tag>`, searching from `from`: (start of
/// the text, end of the text, the text).
pub(super) fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(usize, usize, &'a str)> {
    let open = format!("<{tag}>");
    let start = xml.get(from..)?.find(&open)? + from + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some((start, end, &xml[start..end]))
}

/// `xml` with the text of every `<tag>` replaced by `f(text)`.
pub(super) fn map_elements(xml: &str, tag: &str, mut f: impl FnMut(&str) -> String) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut copied = 0;
    while let Some((start, end, text)) = element(xml, tag, copied) {
        out.push_str(&xml[copied..start]);
        out.push_str(&f(text));
        copied = end;
    }
    out.push_str(&xml[copied..]);
    out
}

/// Text escaped for an XML element.
pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Element text unescaped (the five predefined entities).
pub(super) fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elements_are_found_and_mapped() {
        let xml = "<a><ETag>&quot;x&quot;</ETag><ETag>y</ETag></a>";
        assert_eq!(element(xml, "ETag", 0).map(|e| e.2), Some("&quot;x&quot;"));
        assert_eq!(
            map_elements(xml, "ETag", |t| unescape(t).to_uppercase()),
            "<a><ETag>\"X\"</ETag><ETag>Y</ETag></a>"
        );
        assert_eq!(unescape(&escape("a&b<\"")), "a&b<\"");
    }
}
