//! Settings of the redactor and the errors of building one from them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Settings, deserialisable from TOML/JSON (serde), all fields defaulted.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RedactConfig {
    /// Master switch; when false nothing is redacted (the rules are still checked).
    pub enabled: bool,
    /// Per built-in detector action; a missing detector gets `mask`, `off` disables it.
    pub builtin: BTreeMap<String, Action>,
    /// User-given rules, run after the built-in detectors.
    pub custom: Vec<CustomRule>,
    /// File holding the HMAC key for the `hash` action (trailing CR/LF are ignored).
    pub hmac_key_file: Option<PathBuf>,
    /// Name of an environment variable holding the HMAC key for the `hash` action.
    pub hmac_key_env: Option<String>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            enabled: true,
            builtin: BTreeMap::new(),
            custom: Vec::new(),
            hmac_key_file: None,
            hmac_key_env: None,
        }
    }
}

/// What to do with a match.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Replace the match with `[REDACTED:<detector>]`.
    #[default]
    Mask,
    /// Replace the match with `[HMAC:<detector>:<16 hex>]`, a keyed hash that keeps equal values joinable.
    Hash,
    /// Drop the whole record.
    Drop,
    /// Disable the detector.
    Off,
}

/// A user-given detector: a name, a regular expression (Rust `regex` syntax) and an action.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CustomRule {
    /// Name used in replacements and counts: ASCII letters, digits, `_`, `-`, `.`.
    pub name: String,
    /// Regular expression in Rust `regex` syntax; it must not match the empty string.
    pub pattern: String,
    /// What to do with a match (default `mask`).
    #[serde(default)]
    pub action: Action,
}

/// Why a [`crate::Redactor`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    /// `builtin` names a detector that does not exist.
    #[error("redact: unknown built-in detector `{name}` (known: {known})")]
    UnknownDetector {
        /// The name as configured.
        name: String,
        /// The built-in names, comma-separated.
        known: String,
    },
    /// A custom rule's pattern does not compile.
    #[error("redact: custom rule `{rule}`: invalid pattern: {source}")]
    BadPattern {
        /// The rule's name.
        rule: String,
        /// The regex compiler's message.
        #[source]
        source: regex::Error,
    },
    /// A custom rule's pattern matches the empty string, so it would redact between every two characters.
    #[error("redact: custom rule `{rule}`: pattern `{pattern}` matches the empty string")]
    EmptyMatch {
        /// The rule's name.
        rule: String,
        /// The pattern.
        pattern: String,
    },
    /// A custom rule's name is empty, has characters other than ASCII letters, digits, `_`, `-`, `.`, or is taken.
    #[error("redact: custom rule name `{name}`: {reason}")]
    BadRuleName {
        /// The name as configured.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Some detector has action `hash` but no key was configured.
    #[error(
        "redact: action `hash` for {detectors} needs an HMAC key: set `hmac_key_file` or `hmac_key_env`"
    )]
    MissingKey {
        /// The detectors with action `hash`, comma-separated.
        detectors: String,
    },
    /// Both `hmac_key_file` and `hmac_key_env` are set.
    #[error("redact: set only one of `hmac_key_file` and `hmac_key_env`")]
    TwoKeySources,
    /// The key file could not be read.
    #[error("redact: HMAC key file {path}: {source}")]
    KeyFile {
        /// The configured path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The key environment variable is unset or not valid Unicode.
    #[error("redact: HMAC key environment variable `{var}` is unset or not valid Unicode")]
    KeyEnv {
        /// The variable's name.
        var: String,
    },
    /// The key is empty.
    #[error("redact: the HMAC key is empty")]
    EmptyKey,
}
