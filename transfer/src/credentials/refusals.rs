//! The source client's own report of refused keys: an interceptor that
//! notes which access key id signed each source request and, when OSS
//! answers 403, tells [`SourceCredentials`] which keys were refused.
//!
//! Because it sits on the source client only, a destination 403 can never
//! re-read the source keys, whatever the caller does; and because it names
//! the refused key id, a 403 to a request signed before the keys were
//! re-read (a late answer to the old keys) does not re-read them again.

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

use super::SourceCredentials;

#[derive(Debug)]
pub(super) struct SourceRefusals {
    pub(super) credentials: SourceCredentials,
}

/// The access key id of the attempt in flight.
#[derive(Debug, Clone)]
struct SignedWith(String);

impl Storable for SignedWith {
    type Storer = StoreReplace<Self>;
}

impl Intercept for SourceRefusals {
    fn name(&self) -> &'static str {
        "SourceRefusals"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(id) = context
            .request()
            .headers()
            .get("authorization")
            .and_then(access_key_id)
        {
            cfg.interceptor_state().store_put(SignedWith(id.to_owned()));
        }
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if context.response().status().as_u16() == 403
            && let Some(SignedWith(id)) = cfg.load::<SignedWith>()
        {
            self.credentials.refused(id);
        }
        Ok(())
    }
}

/// The access key id in a SigV4 `Authorization` header:
/// `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request, ...`.
fn access_key_id(authorization: &str) -> Option<&str> {
    let credential = authorization.split("Credential=").nth(1)?;
    credential.split('/').next().filter(|id| !id.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_key_id_is_read_from_a_sigv4_authorization_header() {
        assert_eq!(
            access_key_id(
                "AWS4-HMAC-SHA256 Credential=LTAI5t/20260101/oss-cn-hangzhou/s3/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc"
            ),
            Some("LTAI5t")
        );
        assert_eq!(access_key_id("Bearer x"), None);
        assert_eq!(access_key_id("AWS4-HMAC-SHA256 Credential=/x"), None);
    }
}
