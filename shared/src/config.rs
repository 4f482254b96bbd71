//! Typed configuration read once from environment variables at start-up.
//!
//! Every function reads its settings through [`required`] / [`optional`] / [`parsed`], so a missing
//! variable stops start-up with its name, and the infra test can list what each function reads.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("missing required environment variable {0}")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// A variable that must be set and non-empty.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(ConfigError::Missing(name)),
    }
}

/// A variable that may be absent; an empty value counts as absent.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// An optional variable parsed into `T`, with `default` when absent. A value that does not parse is an
/// error, never silently replaced by the default.
pub fn parsed<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_reported_by_name() {
        let err = required("FERRY_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            err,
            ConfigError::Missing("FERRY_TEST_SURELY_UNSET_VARIABLE")
        );
        assert!(err.to_string().contains("FERRY_TEST_SURELY_UNSET_VARIABLE"));
    }

    #[test]
    fn unparsable_value_is_an_error_not_the_default() {
        // SAFETY: single-threaded test touching a variable only it uses.
        unsafe { std::env::set_var("FERRY_TEST_PARSED_BAD", "ten") };
        let err = parsed::<u32>("FERRY_TEST_PARSED_BAD", 5).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::Invalid {
                name: "FERRY_TEST_PARSED_BAD",
                ..
            }
        ));
        assert_eq!(parsed::<u32>("FERRY_TEST_PARSED_UNSET", 5).unwrap(), 5);
    }
}
