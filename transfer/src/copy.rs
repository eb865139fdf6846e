//! Copying one object from the source bucket to the destination: the
//! source's GET body is streamed straight into the destination PUT, so an
//! object is never held in memory.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::get_object::GetObjectError;

use crate::error::CopyError;

#[derive(Debug, Clone)]
pub struct Copier {
    source: Client,
    source_bucket: String,
    destination: Client,
    destination_bucket: String,
    destination_prefix: String,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Copied {
        bytes: u64,
    },
    /// The source no longer has the key (deleted after the event was
    /// sent): there is nothing to copy.
    SourceMissing,
}

impl Copier {
    pub fn new(
        source: Client,
        source_bucket: String,
        destination: Client,
        destination_bucket: String,
        destination_prefix: String,
    ) -> Copier {
        Copier {
            source,
            source_bucket,
            destination,
            destination_bucket,
            destination_prefix,
        }
    }

    pub fn source_bucket(&self) -> &str {
        &self.source_bucket
    }

    pub fn destination_bucket(&self) -> &str {
        &self.destination_bucket
    }

    pub fn destination_key(&self, key: &str) -> String {
        format!("{}{key}", self.destination_prefix)
    }

    /// Copies `key`; returns once the destination confirmed the write.
    pub async fn copy(&self, key: &str) -> Result<Outcome, CopyError> {
        let object = match self
            .source
            .get_object()
            .bucket(&self.source_bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => object,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(Outcome::SourceMissing);
            }
            Err(e) => return Err(CopyError::from_sdk("GetObject", e)),
        };
        let length = object
            .content_length()
            .filter(|l| *l >= 0)
            .ok_or_else(|| CopyError::permanent("GetObject", "source sent no Content-Length"))?;
        let put = self
            .destination
            .put_object()
            .bucket(&self.destination_bucket)
            .key(self.destination_key(key))
            .content_length(length)
            .set_content_type(object.content_type)
            .body(object.body);
        put.send()
            .await
            .map_err(|e| CopyError::from_sdk("PutObject", e))?;
        Ok(Outcome::Copied {
            bytes: length.unsigned_abs(),
        })
    }
}
