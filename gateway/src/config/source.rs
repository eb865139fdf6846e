//! `[sources.ID]`: one webhook source, its verifier, body format and
//! filters.

use std::path::PathBuf;

use ossbridge_runtime::ConfigError;
use ossbridge_runtime::config::require_http_url;
use secrecy::SecretString;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The SQS queue this source's events go to (`.fifo` queues get a
    /// message group per object and the idempotency key as deduplication
    /// id).
    pub queue_url: String,
    pub verifier: VerifierConfig,
    /// How the body is laid out; defaults by verifier: `mns` for `mns`,
    /// `cloudevents` for `api_key` and `basic_auth`, `oss_events` otherwise.
    pub format: Option<BodyFormat>,
    /// Forward ObjectRemoved events as delete messages. Off by default, so a
    /// Data Transfer Hub worker fleet (which would read them as copies)
    /// never receives one.
    #[serde(default)]
    pub propagate_deletes: bool,
    #[serde(default)]
    pub filter: FilterConfig,
}

/// Which events are forwarded; an event failing a filter is accepted and
/// counted, not enqueued. Empty lists allow everything.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct FilterConfig {
    /// Source bucket names allowed.
    pub buckets: Vec<String>,
    /// Only keys starting with one of these.
    pub include_prefixes: Vec<String>,
    /// Never keys starting with one of these (wins over include).
    pub exclude_prefixes: Vec<String>,
    /// OSS event names allowed (with or without the `oss:` prefix).
    pub event_names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `{"events":[...]}`, as Function Compute triggers receive it.
    OssEvents,
    /// A CloudEvent (or a JSON array of them) whose `data` is one OSS event,
    /// as Aliyun EventBridge delivers it.
    Cloudevents,
    /// An MNS HTTP push: XML or JSON notification, or SIMPLIFIED (the
    /// message alone); the OSS event inside is base64.
    Mns,
}

/// An MNS subscription's NotifyContentFormat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    /// `<Notification>` written by MNS.
    Xml,
    /// The JSON twin of the XML notification.
    Json,
    /// The publisher's message alone (for OSS, the base64 event).
    Simplified,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    Sha1,
    #[default]
    Sha256,
}

/// How a source's requests are authenticated. There is no "none": a source
/// without a verifier does not load.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum VerifierConfig {
    /// Standard Webhooks: HMAC-SHA256 over `id.timestamp.body`.
    StandardWebhooks {
        /// `whsec_` secrets; all are accepted, for rotation.
        secrets: Secrets,
        #[serde(default = "default_tolerance_secs")]
        tolerance_secs: u64,
    },
    /// GitHub-style HMAC of the body: `X-Hub-Signature-256: sha256=HEX` or
    /// `X-Hub-Signature: sha1=HEX`.
    Hmac {
        #[serde(default)]
        algorithm: HmacAlgorithm,
        /// Raw secrets (UTF-8); all are accepted, for rotation.
        secrets: Secrets,
        /// Header carrying the signature; defaults to GitHub's for the
        /// algorithm.
        header: Option<String>,
        /// When set, this header carries the send time (Unix seconds), the
        /// signature covers `{timestamp}.{body}` and stale requests are
        /// refused.
        timestamp_header: Option<String>,
        #[serde(default = "default_tolerance_secs")]
        tolerance_secs: u64,
    },
    /// A static key in a header (EventBridge API destination connection of
    /// type API_KEY_AUTH).
    ApiKey {
        #[serde(default = "default_api_key_header")]
        header: String,
        /// Accepted keys; all are accepted, for rotation.
        keys: Secrets,
    },
    /// HTTP basic authentication (EventBridge connection of type
    /// BASIC_AUTH).
    BasicAuth {
        username: String,
        /// Accepted passwords; all are accepted, for rotation.
        passwords: Secrets,
    },
    /// MNS HTTP push, RSA-SHA1 signed by MNS (see `[mns]`).
    Mns {
        /// Aliyun account ids whose topics may push here (checked against
        /// the signed `x-mns-topic-owner` header, and the notification's
        /// TopicOwner, which must agree with it).
        #[serde(default)]
        topic_owners: Vec<String>,
        /// Topic names allowed (all of the owners' topics when empty).
        #[serde(default)]
        topics: Vec<String>,
        /// A token the subscription's endpoint URL carries as
        /// `?token=...`. It authorizes alone only when `topic_owners` is
        /// empty, and only over HTTPS.
        url_token: Option<Secrets>,
        /// The subscription's NotifyContentFormat (`xml`, `json` or
        /// `simplified`); unset, it is told from the signed Content-Type
        /// (`text/plain` is SIMPLIFIED) and the body.
        notify_content_format: Option<NotifyFormat>,
        /// Accept pushes that reached the gateway over plain HTTP (MNS
        /// endpoints documented as `http://` only). Needs `topic_owners`:
        /// a URL token sent in clear authorizes nothing.
        #[serde(default)]
        allow_plain_http: bool,
    },
}

/// Secret values: inline (`["a", "b"]`, or from `OSSBRIDGE_*` variables)
/// or read at start-up from `{ file = "PATH" }`, `{ env = "VAR" }` or
/// `{ ssm_parameter = "NAME" }` (a SecureString). A file, variable or
/// parameter holds one secret per line (a JSON array of strings also
/// works).
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum Secrets {
    Inline(#[cfg_attr(test, schemars(with = "Vec<String>"))] Vec<SecretString>),
    From(SecretRef),
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub file: Option<PathBuf>,
    pub env: Option<String>,
    pub ssm_parameter: Option<String>,
}

fn default_tolerance_secs() -> u64 {
    300
}

fn default_api_key_header() -> String {
    "x-api-key".to_owned()
}

impl VerifierConfig {
    /// The body format a verifier implies when `format` is not set.
    pub fn default_format(&self) -> BodyFormat {
        match self {
            VerifierConfig::Mns { .. } => BodyFormat::Mns,
            VerifierConfig::ApiKey { .. } | VerifierConfig::BasicAuth { .. } => {
                BodyFormat::Cloudevents
            }
            VerifierConfig::StandardWebhooks { .. } | VerifierConfig::Hmac { .. } => {
                BodyFormat::OssEvents
            }
        }
    }
}

impl SourceConfig {
    pub fn format(&self) -> BodyFormat {
        self.format
            .unwrap_or_else(|| self.verifier.default_format())
    }

    pub fn validate(&self, id: &str) -> Result<(), ConfigError> {
        let key = format!("sources.{id}");
        if id.is_empty()
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::invalid(
                key,
                "source ids may contain only letters, digits, '-' and '_'",
            ));
        }
        require_http_url(&format!("{key}.queue_url"), &self.queue_url)?;
        let verifier = format!("{key}.verifier");
        match &self.verifier {
            VerifierConfig::StandardWebhooks {
                secrets,
                tolerance_secs,
            }
            | VerifierConfig::Hmac {
                secrets,
                tolerance_secs,
                ..
            } => {
                secrets.validate(&format!("{verifier}.secrets"))?;
                if !(1..=86_400).contains(tolerance_secs) {
                    return Err(ConfigError::invalid(
                        format!("{verifier}.tolerance_secs"),
                        "must be between 1 and 86400",
                    ));
                }
            }
            VerifierConfig::ApiKey { header, keys } => {
                keys.validate(&format!("{verifier}.keys"))?;
                if axum::http::HeaderName::try_from(header.as_str()).is_err() {
                    return Err(ConfigError::invalid(
                        format!("{verifier}.header"),
                        "not a valid header name",
                    ));
                }
            }
            VerifierConfig::BasicAuth {
                username,
                passwords,
            } => {
                passwords.validate(&format!("{verifier}.passwords"))?;
                if username.is_empty() || username.contains(':') {
                    return Err(ConfigError::invalid(
                        format!("{verifier}.username"),
                        "must be non-empty and contain no ':'",
                    ));
                }
            }
            VerifierConfig::Mns {
                topic_owners,
                url_token,
                allow_plain_http,
                ..
            } => {
                if *allow_plain_http && topic_owners.is_empty() {
                    return Err(ConfigError::invalid(
                        format!("{verifier}.allow_plain_http"),
                        "needs topic_owners: over plain HTTP the url_token is seen \
                         in clear and authorizes nothing",
                    ));
                }
                if let Some(token) = url_token {
                    token.validate(&format!("{verifier}.url_token"))?;
                }
                if topic_owners.is_empty() && url_token.is_none() {
                    // The MNS signature proves only that some MNS topic sent
                    // the request, not whose.
                    return Err(ConfigError::invalid(
                        verifier,
                        "set topic_owners (your Aliyun account id) or url_token: \
                         any MNS user can send correctly signed pushes",
                    ));
                }
            }
        }
        if self.format() == BodyFormat::Mns && !matches!(self.verifier, VerifierConfig::Mns { .. })
        {
            return Err(ConfigError::invalid(
                format!("{key}.format"),
                "the mns body format needs the mns verifier",
            ));
        }
        Ok(())
    }
}

impl Secrets {
    fn validate(&self, key: &str) -> Result<(), ConfigError> {
        match self {
            Secrets::Inline(list) if list.is_empty() => {
                Err(ConfigError::invalid(key, "at least one secret is required"))
            }
            Secrets::Inline(_) => Ok(()),
            Secrets::From(r) => {
                let given = [r.file.is_some(), r.env.is_some(), r.ssm_parameter.is_some()]
                    .into_iter()
                    .filter(|g| *g)
                    .count();
                if given == 1 {
                    Ok(())
                } else {
                    Err(ConfigError::invalid(
                        key,
                        "give exactly one of file, env or ssm_parameter",
                    ))
                }
            }
        }
    }
}
