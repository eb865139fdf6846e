//! One configuration story for every binary: a TOML file, overridden by
//! `OSSBRIDGE_*` environment variables (`__` separates nesting levels, so
//! `OSSBRIDGE_AWS__REGION` sets `aws.region`), deserialized into structs
//! that deny unknown keys, then validated with errors naming the key.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "OSSBRIDGE_";
/// Environment variable naming the configuration file (it is not itself a
/// configuration key).
pub const CONFIG_PATH_ENV: &str = "OSSBRIDGE_CONFIG";

/// A configuration that cannot be used. Its message names the key and where
/// the value came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration file {0}: not found")]
    FileNotFound(String),
    #[error("{0}")]
    Load(String),
    #[error("invalid configuration: {key}: {reason}")]
    Invalid { key: String, reason: String },
}

impl ConfigError {
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// Loads `T` from the optional TOML `file` and `OSSBRIDGE_*` variables.
pub fn load_config<T: DeserializeOwned>(file: Option<&Path>) -> Result<T, ConfigError> {
    load_from(file, Env::prefixed(ENV_PREFIX))
}

/// Parses `T` from TOML text alone, without environment overrides (for
/// tests and generated configurations).
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    extract(Figment::from(Toml::string(text)))
}

fn extract<T: DeserializeOwned>(figment: Figment) -> Result<T, ConfigError> {
    figment.extract().map_err(|error| {
        // figment reports every problem it found; name them all at once.
        // Keys are reported under figment's profile ("default."), which is
        // not part of any key a user writes.
        let all: Vec<String> = error
            .into_iter()
            .map(|e| e.to_string().replace("for key \"default.", "for key \""))
            .collect();
        ConfigError::Load(format!("invalid configuration: {}", all.join("; ")))
    })
}

fn load_from<T: DeserializeOwned>(file: Option<&Path>, env: Env) -> Result<T, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        if !path.is_file() {
            return Err(ConfigError::FileNotFound(path.display().to_string()));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let env = env.ignore(&["config"]).split("__");
    extract(figment.merge(env))
}

/// Checks that `value` is an absolute http(s) URL.
pub fn require_http_url(key: &str, value: &str) -> Result<(), ConfigError> {
    let rest = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(ConfigError::invalid(
            key,
            format!("{value:?} is not an http(s) URL"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::io::Write;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        name: String,
        #[serde(default)]
        nested: Nested,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested {
        #[serde(default)]
        port: u16,
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        f
    }

    // figment::Jail's closure must return figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    #[test]
    fn environment_overrides_the_file_with_double_underscore_nesting() {
        let f = file("name = \"a\"\n[nested]\nport = 1\n");
        figment::Jail::expect_with(|jail| {
            jail.set_env("TESTCFG_NESTED__PORT", "2");
            jail.set_env("TESTCFG_CONFIG", "/ignored/path.toml");
            let s: Sample =
                load_from(Some(f.path()), Env::prefixed("TESTCFG_")).map_err(|e| e.to_string())?;
            assert_eq!((s.name.as_str(), s.nested.port), ("a", 2));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_named_with_their_origin() {
        let f = file("name = \"a\"\n[nested]\nprot = 1\n");
        let err = load_from::<Sample>(Some(f.path()), Env::prefixed("NOPE_NOT_SET_"))
            .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("prot") && msg.contains("nested"), "{msg}");
        // figment shows the path relative to the current directory when
        // that is shorter, so the full path depends on where the tests run
        // from (the clone's location, or the directory a figment::Jail in
        // another test has switched to). The file's name does not.
        let name = f.path().file_name().expect("temp file name");
        assert!(msg.contains(&*name.to_string_lossy()), "{msg}");
    }

    #[test]
    fn a_missing_file_is_named() {
        let err = load_from::<Sample>(Some(Path::new("/no/such.toml")), Env::prefixed("X_"))
            .expect_err("missing");
        assert_eq!(
            err.to_string(),
            "configuration file /no/such.toml: not found"
        );
    }

    #[test]
    fn http_urls_are_checked() {
        assert!(require_http_url("k", "http://127.0.0.1:4566").is_ok());
        assert!(require_http_url("k", "https://sqs.us-east-1.amazonaws.com/1/q").is_ok());
        let err = require_http_url("aws.endpoint_url", "127.0.0.1:4566").expect_err("no scheme");
        assert!(err.to_string().contains("aws.endpoint_url"));
    }
}
