//! RSASSA-PKCS1-v1_5 with SHA-1, the only algorithm MNS signs with, for
//! the key sizes MNS really uses.
//!
//! Aliyun's signing certificate (the one at
//! `https://mnstest.oss-cn-hangzhou.aliyuncs.com/x509_public_certificate.pem`,
//! still signing pushes in 2023) holds a **512-bit** key, below the 1024-bit
//! floor of aws-lc-rs and of RustCrypto's default constructor. RustCrypto's
//! `rsa` crate verifies it once the size limits are given explicitly, so
//! every size from [`MIN_BITS`] to [`MAX_BITS`] goes through this one path.
//! What a 512-bit signature does and does not prove is in
//! deploy/aliyun/README.md.

use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey};
use sha1::{Digest, Sha1};
use x509_cert::der::asn1::UintRef;
use x509_cert::der::{Decode, Reader, SliceReader};

use super::VerifyError;

/// Smallest modulus accepted: Aliyun's own key.
pub const MIN_BITS: usize = 512;
/// Largest modulus accepted; bigger keys only cost verification time.
pub const MAX_BITS: usize = 8192;

/// Why a certificate's key cannot verify MNS signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedKey {
    #[error("not an RSA key")]
    NotRsa,
    #[error("{bits}-bit RSA ({MIN_BITS}-{MAX_BITS} bits accepted)")]
    Size { bits: usize },
}

/// An MNS signing key, checked to be usable.
#[derive(Debug)]
pub struct SigningKey {
    key: PublicKey,
    bits: usize,
}

impl SigningKey {
    /// The key of a PKCS#1 `RSAPublicKey` (the certificate's
    /// subjectPublicKey), or why it cannot be used. A key of the wrong size
    /// is reported as such, never later as a signature mismatch.
    pub fn from_pkcs1_der(der: &[u8]) -> Result<SigningKey, VerifyError> {
        let malformed = || VerifyError::CertificateInvalid("malformed RSA key");
        let (n, e) = modulus_and_exponent(der).map_err(|_| malformed())?;
        let bits = bit_length(n.as_bytes());
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(VerifyError::UnsupportedKey(UnsupportedKey::Size { bits }));
        }
        let n = uint(n.as_bytes()).ok_or_else(malformed)?;
        let e = uint(e.as_bytes()).ok_or_else(malformed)?;
        let key =
            PublicKey::new_with_size_limits(n, e, MIN_BITS..=MAX_BITS).map_err(|_| malformed())?;
        Ok(SigningKey { key, bits })
    }

    /// Whether `signature` is this key's RSA-SHA1 PKCS#1 v1.5 signature of
    /// `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        self.key
            .verify(
                Pkcs1v15Sign::new::<Sha1>(),
                &Sha1::digest(message),
                signature,
            )
            .map_err(|_| VerifyError::BadSignature)
    }

    pub fn bits(&self) -> usize {
        self.bits
    }
}

/// `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }`
/// (RFC 8017 A.1.1), nothing after it.
fn modulus_and_exponent(der: &[u8]) -> x509_cert::der::Result<(UintRef<'_>, UintRef<'_>)> {
    let mut reader = SliceReader::new(der)?;
    let parts = reader.sequence(|seq| Ok((UintRef::decode(seq)?, UintRef::decode(seq)?)))?;
    reader.finish(parts)
}

/// Bits of a big-endian unsigned integer without leading zero bytes.
fn bit_length(be: &[u8]) -> usize {
    match be.iter().position(|&b| b != 0) {
        Some(i) => (be.len() - i) * 8 - be[i].leading_zeros() as usize,
        None => 0,
    }
}

fn uint(be: &[u8]) -> Option<BoxedUint> {
    let bits = u32::try_from(be.len().max(1) * 8).ok()?;
    BoxedUint::from_be_slice(be, bits).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DER of `RSAPublicKey { n, 65537 }` for an arbitrary odd `n`.
    fn pkcs1(n: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
            let mut out = vec![tag];
            let len = value.len();
            if len < 0x80 {
                out.push(len as u8);
            } else {
                let bytes: Vec<u8> = len
                    .to_be_bytes()
                    .into_iter()
                    .skip_while(|&b| b == 0)
                    .collect();
                out.push(0x80 | bytes.len() as u8);
                out.extend(bytes);
            }
            out.extend_from_slice(value);
            out
        }
        // DER INTEGERs are minimal: a leading zero only before a set high bit.
        let mut modulus = if n[0] & 0x80 != 0 {
            vec![0u8]
        } else {
            Vec::new()
        };
        modulus.extend_from_slice(n);
        let mut body = tlv(0x02, &modulus);
        body.extend(tlv(0x02, &[0x01, 0x00, 0x01]));
        tlv(0x30, &body)
    }

    fn modulus(bits: usize) -> Vec<u8> {
        let mut n = vec![0xC3u8; bits.div_ceil(8)];
        let spare = n.len() * 8 - bits;
        n[0] = 0xFF >> spare;
        if let Some(last) = n.last_mut() {
            *last |= 1;
        }
        n
    }

    #[test]
    fn sizes_outside_512_to_8192_bits_are_reported_as_such() {
        for bits in [256, 384, 511, 8193, 16384] {
            assert_eq!(
                SigningKey::from_pkcs1_der(&pkcs1(&modulus(bits))).map(|k| k.bits()),
                Err(VerifyError::UnsupportedKey(UnsupportedKey::Size { bits })),
                "{bits}"
            );
        }
        for bits in [512, 1024, 2048, 8192] {
            assert_eq!(
                SigningKey::from_pkcs1_der(&pkcs1(&modulus(bits))).map(|k| k.bits()),
                Ok(bits)
            );
        }
    }

    #[test]
    fn malformed_keys_say_so() {
        let mut trailing = pkcs1(&modulus(1024));
        trailing.push(0);
        let mut even = modulus(1024);
        if let Some(last) = even.last_mut() {
            *last &= 0xFE;
        }
        for der in [trailing, pkcs1(&even), b"\x30\x00".to_vec(), Vec::new()] {
            assert_eq!(
                SigningKey::from_pkcs1_der(&der).map(|k| k.bits()),
                Err(VerifyError::CertificateInvalid("malformed RSA key"))
            );
        }
    }
}
