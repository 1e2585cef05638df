//! Typed configuration from environment variables, with errors that name the variable.

use std::str::FromStr;

/// A missing or malformed setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A required variable is unset or empty.
    #[error("environment variable {name} must be set")]
    Missing {
        /// The variable.
        name: &'static str,
    },
    /// A variable does not parse.
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid {
        /// The variable.
        name: &'static str,
        /// Why.
        reason: String,
    },
}

/// The value of a variable that must be set (non-empty).
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name)?.ok_or(ConfigError::Missing { name })
}

/// The value of a variable, `None` when unset or empty.
pub fn optional(name: &'static str) -> Result<Option<String>, ConfigError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(ConfigError::Invalid { name, reason: "not valid UTF-8".into() })
        }
    }
}

/// A variable parsed as `T`, or `default` when unset.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    optional(name)?.map_or(Ok(default), |text| parse(name, &text))
}

/// Parses a variable's text as `T`, naming the variable on failure.
pub fn parse<T>(name: &'static str, text: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    text.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { name, reason: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_names_the_missing_variable() {
        assert_eq!(
            required("STRATA_TEST_UNSET_1"),
            Err(ConfigError::Missing { name: "STRATA_TEST_UNSET_1" })
        );
        let message = required("STRATA_TEST_UNSET_1").unwrap_err().to_string();
        assert!(message.contains("STRATA_TEST_UNSET_1"), "{message}");
    }

    #[test]
    fn unset_takes_the_default_and_garbage_is_refused_by_name() {
        assert_eq!(parsed_or("STRATA_TEST_UNSET_2", 7u32), Ok(7));
        assert_eq!(parse::<u32>("N", " 12 "), Ok(12));
        let error = parse::<u32>("STRATA_PUBLISH_ATTEMPTS", "many").unwrap_err();
        assert!(matches!(error, ConfigError::Invalid { name: "STRATA_PUBLISH_ATTEMPTS", .. }), "{error}");
        assert!(error.to_string().contains("STRATA_PUBLISH_ATTEMPTS"));
    }
}
