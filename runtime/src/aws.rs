//! AWS SDK configuration shared by every client a service builds.

use aws_config::Region;
use aws_config::{BehaviorVersion, SdkConfig};
use serde::Deserialize;

use crate::ConfigError;
use crate::config::require_http_url;

/// `[aws]`: where the service's own AWS calls (SQS, SSM, the destination
/// bucket) go. Credentials always come from the default chain (environment,
/// profile, ECS task role, instance profile).
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// Region; the default chain's region (AWS_REGION, profile) when unset.
    pub region: Option<String>,
    /// Endpoint for every AWS service, for local emulators such as moto or
    /// LocalStack. Unset in production.
    pub endpoint_url: Option<String>,
}

impl AwsConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        if let Some(url) = &self.endpoint_url {
            require_http_url(&format!("{key}.endpoint_url"), url)?;
        }
        if self.region.as_deref() == Some("") {
            return Err(ConfigError::invalid(
                format!("{key}.region"),
                "must not be empty",
            ));
        }
        Ok(())
    }

    /// Loads the SDK configuration: default credential chain, with the
    /// region and endpoint from this section when set.
    pub async fn load(&self) -> SdkConfig {
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(region) = &self.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &self.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        loader.load().await
    }
}
