//! Resolving `Secrets` at start-up: inline values, or one secret per line
//! (or a JSON array) from a file, an environment variable or an SSM
//! SecureString.

use ossbridge_runtime::{ConfigError, error_chain};
use secrecy::{ExposeSecret, SecretString};

use crate::config::Secrets;

/// The secrets `secrets` names; `key` names the setting in errors. Error
/// messages never contain a secret value.
pub async fn resolve(
    key: &str,
    secrets: &Secrets,
    ssm: &aws_sdk_ssm::Client,
) -> Result<Vec<SecretString>, ConfigError> {
    let (origin, text) = match secrets {
        Secrets::Inline(list) => return non_empty(key, list.clone()),
        Secrets::From(r) => {
            if let Some(path) = &r.file {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConfigError::invalid(key, format!("cannot read {}: {e}", path.display()))
                })?;
                (format!("file {}", path.display()), text)
            } else if let Some(var) = &r.env {
                let text = std::env::var(var).map_err(|_| {
                    ConfigError::invalid(key, format!("environment variable {var} is not set"))
                })?;
                (format!("environment variable {var}"), text)
            } else if let Some(name) = &r.ssm_parameter {
                (
                    format!("SSM parameter {name}"),
                    read_ssm(key, name, ssm).await?,
                )
            } else {
                return Err(ConfigError::invalid(
                    key,
                    "give exactly one of file, env or ssm_parameter",
                ));
            }
        }
    };
    let list = parse(&text).ok_or_else(|| {
        ConfigError::invalid(key, format!("{origin}: not a JSON array of strings"))
    })?;
    non_empty(key, list).map_err(|_| ConfigError::invalid(key, format!("{origin} holds no secret")))
}

async fn read_ssm(key: &str, name: &str, ssm: &aws_sdk_ssm::Client) -> Result<String, ConfigError> {
    let output = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| {
            ConfigError::invalid(
                key,
                format!("cannot read SSM parameter {name}: {}", error_chain(&e)),
            )
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| ConfigError::invalid(key, format!("SSM parameter {name} has no value")))
}

/// One secret per non-empty line (lines starting with `#` are comments),
/// or a JSON array of strings.
fn parse(text: &str) -> Option<Vec<SecretString>> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let list: Vec<String> = serde_json::from_str(trimmed).ok()?;
        return Some(list.into_iter().map(SecretString::from).collect());
    }
    Some(
        trimmed
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(SecretString::from)
            .collect(),
    )
}

fn non_empty(key: &str, list: Vec<SecretString>) -> Result<Vec<SecretString>, ConfigError> {
    if list.is_empty() || list.iter().any(|s| s.expose_secret().is_empty()) {
        return Err(ConfigError::invalid(
            key,
            "at least one non-empty secret is required",
        ));
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exposed(list: Option<Vec<SecretString>>) -> Vec<String> {
        list.unwrap_or_default()
            .iter()
            .map(|s| s.expose_secret().to_owned())
            .collect()
    }

    #[test]
    fn lines_comments_and_json_arrays() {
        assert_eq!(
            exposed(parse("# rotated 2026-11\nnew\n\n old \n")),
            ["new", "old"]
        );
        assert_eq!(exposed(parse(r#" ["a", "b"] "#)), ["a", "b"]);
        assert!(parse("[1, 2]").is_none());
    }
}
