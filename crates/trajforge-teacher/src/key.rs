//! The API key, kept out of every printed or serialised form.

use std::fmt;

/// Environment variables read by [`ApiKey::from_env`], in order of preference.
pub const API_KEY_ENV_VARS: [&str; 2] = ["TRAJFORGE_API_KEY", "OPENAI_API_KEY"];

/// A secret bearer token. Debug and Display print `ApiKey(***)`; it has no Serialize.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wrap a key.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The first non-empty key among `TRAJFORGE_API_KEY` and `OPENAI_API_KEY`.
    pub fn from_env() -> Option<Self> {
        API_KEY_ENV_VARS.iter().find_map(|var| {
            std::env::var(var)
                .ok()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .map(Self)
        })
    }

    /// The secret itself; only the HTTP layer should need this.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}
