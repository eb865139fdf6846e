//! Human-readable error text.

use std::error::Error;

/// An error and its sources joined with ": ", each cause once.
///
/// The AWS SDK's own `DisplayErrorContext` appends Debug dumps of every
/// layer; operators need the chain of reasons, not the structs.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let part = cause.to_string();
        // Wrappers often repeat their cause's message in their own.
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);

    #[derive(Debug, thiserror::Error)]
    #[error("middle: inner")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn joins_sources_once() {
        let e = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(error_chain(&e), "outer: middle: inner");
    }
}
