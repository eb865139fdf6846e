//! Integrity while streaming: a body wrapper that counts bytes and keeps
//! CRC-64/XZ (OSS's `x-oss-hash-crc64ecma`) and MD5 of everything that
//! passes through, and at the end of the source stream compares them with
//! what the source promised. On a mismatch it fails the body instead of
//! ending it, so the upload it feeds is aborted and S3 never stores a wrong
//! object.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use bytes::Bytes;
use crc_fast::{CrcAlgorithm, Digest as CrcDigest};
use hyper::body::{Body, Frame, SizeHint};
use md5::{Digest, Md5};

/// What the source says the bytes must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expect {
    pub length: u64,
    pub crc64: Option<u64>,
    pub md5: Option<[u8; 16]>,
}

/// What actually streamed through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub length: u64,
    pub crc64: u64,
    /// CRC-32 (ISO-HDLC), the algorithm of S3's `x-amz-checksum-crc32`.
    pub crc32: u32,
    pub md5: [u8; 16],
}

#[derive(Debug, thiserror::Error)]
#[error("integrity check failed: {0}")]
pub struct IntegrityError(pub String);

/// Where the tally lands once the stream has ended.
pub type TallySlot = Arc<Mutex<Option<Tally>>>;

pub struct Verifying {
    inner: SdkBody,
    expect: Expect,
    crc: CrcDigest,
    crc32: CrcDigest,
    md5: Md5,
    length: u64,
    slot: TallySlot,
    done: bool,
}

impl std::fmt::Debug for Verifying {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifying")
            .field("expect", &self.expect)
            .field("length", &self.length)
            .finish()
    }
}

/// Wraps `source` for an upload; the returned slot holds the tally after
/// the stream ended and passed.
pub fn verifying(source: ByteStream, expect: Expect) -> (ByteStream, TallySlot) {
    let slot = TallySlot::default();
    let body = Verifying {
        inner: source.into_inner(),
        expect,
        crc: CrcDigest::new(CrcAlgorithm::Crc64Xz),
        crc32: CrcDigest::new(CrcAlgorithm::Crc32IsoHdlc),
        md5: Md5::new(),
        length: 0,
        slot: slot.clone(),
        done: false,
    };
    (ByteStream::new(SdkBody::from_body_1_x(body)), slot)
}

impl Verifying {
    fn finish(&mut self) -> Result<(), IntegrityError> {
        let crc64 = self.crc.finalize();
        let md5: [u8; 16] = self.md5.clone().finalize().into();
        let e = self.expect;
        if self.length != e.length {
            return Err(IntegrityError(format!(
                "source sent {} bytes, expected {}",
                self.length, e.length
            )));
        }
        if let Some(want) = e.crc64
            && want != crc64
        {
            return Err(IntegrityError(format!(
                "CRC-64 {crc64} does not match the source's {want}"
            )));
        }
        if let Some(want) = e.md5
            && want != md5
        {
            return Err(IntegrityError(format!(
                "MD5 {} does not match the source ETag {}",
                hex::encode(md5),
                hex::encode(want)
            )));
        }
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(Tally {
                length: self.length,
                crc64,
                crc32: self.crc32.finalize() as u32,
                md5,
            });
        }
        Ok(())
    }
}

impl Body for Verifying {
    type Data = Bytes;
    type Error = aws_sdk_s3::error::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let this = &mut *self;
                    this.crc.update(data);
                    this.crc32.update(data);
                    this.md5.update(data);
                    this.length += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(e)) => Poll::Ready(Some(Err(e))),
            None => {
                self.done = true;
                match self.finish() {
                    Ok(()) => Poll::Ready(None),
                    Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
                }
            }
        }
    }

    // Never report the end early: the check runs when the source ends.
    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.expect.length)
    }
}

/// The MD5 an ETag stands for, if it is a plain (single-part, unencrypted)
/// MD5: 32 hex digits, optionally quoted.
pub fn etag_md5(etag: &str) -> Option<[u8; 16]> {
    let hex_digits = etag.trim_matches('"');
    if hex_digits.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    hex::decode_to_slice(hex_digits, &mut out).ok()?;
    Some(out)
}

/// CRC-64/XZ of several consecutive ranges, from each range's CRC.
pub fn combine_crc64(parts: impl IntoIterator<Item = (u64, u64)>) -> Option<u64> {
    let mut iter = parts.into_iter();
    let (first, _) = iter.next()?;
    Some(iter.fold(first, |acc, (crc, len)| {
        crc_fast::checksum_combine(CrcAlgorithm::Crc64Xz, acc, crc, len)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_xz_check_value_and_combination() {
        // The CRC-64/XZ check value, as OSS documents it.
        assert_eq!(
            crc_fast::checksum(CrcAlgorithm::Crc64Xz, b"123456789"),
            0x995D_C9BB_DF19_39FA
        );
        let a = crc_fast::checksum(CrcAlgorithm::Crc64Xz, b"1234");
        let b = crc_fast::checksum(CrcAlgorithm::Crc64Xz, b"56789");
        assert_eq!(combine_crc64([(a, 4), (b, 5)]), Some(0x995D_C9BB_DF19_39FA));
    }

    #[test]
    fn plain_md5_etags_only() {
        assert!(etag_md5("\"5d41402abc4b2a76b9719d911017c592\"").is_some());
        assert!(etag_md5("5D41402ABC4B2A76B9719D911017C592").is_some());
        assert!(etag_md5("\"3b1e2e8a2c5e4f7d9a0b1c2d3e4f5a6b-88\"").is_none());
    }

    async fn drain(expect: Expect, data: &'static [u8]) -> Result<Tally, String> {
        let (stream, slot) = verifying(ByteStream::from_static(data), expect);
        stream
            .collect()
            .await
            .map_err(|e| ossbridge_runtime::error_chain(&e))?;
        Ok(slot.lock().expect("slot").expect("tally"))
    }

    #[tokio::test]
    async fn a_stream_that_does_not_match_fails_at_its_end() {
        let good = Expect {
            length: 9,
            crc64: Some(0x995D_C9BB_DF19_39FA),
            md5: Some(Md5::digest(b"123456789").into()),
        };
        assert_eq!(
            drain(good, b"123456789").await.expect("passes").crc64,
            0x995D_C9BB_DF19_39FA
        );
        let err = drain(good, b"123456780").await.expect_err("crc");
        assert!(err.contains("CRC-64"), "{err}");
        let err = drain(
            Expect {
                crc64: None,
                ..good
            },
            b"123456780",
        )
        .await
        .expect_err("md5");
        assert!(err.contains("MD5"), "{err}");
        let err = drain(Expect { length: 10, ..good }, b"123456789")
            .await
            .expect_err("length");
        assert!(err.contains("10"), "{err}");
    }
}
