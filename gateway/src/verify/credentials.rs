//! Static credentials, as Aliyun EventBridge API destinations send them:
//! an API key in a header (API_KEY_AUTH) or HTTP basic authentication
//! (BASIC_AUTH). Several values are accepted at once, for rotation.

use axum::http::{HeaderMap, HeaderName, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ossbridge_runtime::ConfigError;
use secrecy::{ExposeSecret, SecretString};

use super::{VerifyError, matches_any};

#[derive(Debug)]
pub struct ApiKey {
    header: HeaderName,
    label: &'static str,
    keys: Vec<SecretString>,
}

impl ApiKey {
    pub fn new(key: &str, header: &str, keys: Vec<SecretString>) -> Result<ApiKey, ConfigError> {
        let label: &'static str = Box::leak(header.to_ascii_lowercase().into_boxed_str());
        let header = HeaderName::try_from(label).map_err(|_| {
            ConfigError::invalid(format!("{key}.header"), "not a valid header name")
        })?;
        Ok(ApiKey {
            header,
            label,
            keys,
        })
    }

    pub fn verify(&self, headers: &HeaderMap) -> Result<(), VerifyError> {
        let given = headers
            .get(&self.header)
            .ok_or(VerifyError::MissingHeader(self.label))?;
        let accepted: Vec<Vec<u8>> = self
            .keys
            .iter()
            .map(|k| k.expose_secret().as_bytes().to_vec())
            .collect();
        if matches_any(given.as_bytes(), &accepted) {
            Ok(())
        } else {
            Err(VerifyError::BadCredentials)
        }
    }
}

#[derive(Debug)]
pub struct BasicAuth {
    username: String,
    passwords: Vec<SecretString>,
}

impl BasicAuth {
    pub fn new(username: &str, passwords: Vec<SecretString>) -> BasicAuth {
        BasicAuth {
            username: username.to_owned(),
            passwords,
        }
    }

    pub fn verify(&self, headers: &HeaderMap) -> Result<(), VerifyError> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(VerifyError::MissingHeader("authorization"))?
            .to_str()
            .map_err(|_| VerifyError::MalformedHeader("authorization"))?;
        let encoded = value
            .strip_prefix("Basic ")
            .ok_or(VerifyError::MalformedHeader("authorization"))?;
        let decoded = STANDARD
            .decode(encoded.trim())
            .map_err(|_| VerifyError::MalformedHeader("authorization"))?;
        // Compare the whole "user:password" string, so neither part is
        // checked on its own.
        let accepted: Vec<Vec<u8>> = self
            .passwords
            .iter()
            .map(|p| format!("{}:{}", self.username, p.expose_secret()).into_bytes())
            .collect();
        if matches_any(&decoded, &accepted) {
            Ok(())
        } else {
            Err(VerifyError::BadCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn api_keys_and_basic_auth() {
        let v = ApiKey::new(
            "k",
            "X-Api-Key",
            vec![SecretString::from("old"), SecretString::from("new")],
        )
        .expect("valid");
        let mut h = HeaderMap::new();
        assert_eq!(v.verify(&h), Err(VerifyError::MissingHeader("x-api-key")));
        h.insert("x-api-key", HeaderValue::from_static("new"));
        assert_eq!(v.verify(&h), Ok(()));
        h.insert("x-api-key", HeaderValue::from_static("newer"));
        assert_eq!(v.verify(&h), Err(VerifyError::BadCredentials));

        let b = BasicAuth::new("eventbridge", vec![SecretString::from("pw")]);
        let mut h = HeaderMap::new();
        let ok = format!("Basic {}", STANDARD.encode("eventbridge:pw"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&ok).expect("hv"),
        );
        assert_eq!(b.verify(&h), Ok(()));
        let wrong = format!("Basic {}", STANDARD.encode("eventbridge:pw2"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&wrong).expect("hv"),
        );
        assert_eq!(b.verify(&h), Err(VerifyError::BadCredentials));
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer x"));
        assert_eq!(
            b.verify(&h),
            Err(VerifyError::MalformedHeader("authorization"))
        );
    }
}
