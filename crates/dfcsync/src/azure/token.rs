//! Tokens as the HTTP layer sees them: a bearer token whose value is never printed, and
//! [`TokenSource`], anything that gives tokens per scope. The credentials of
//! [`super::auth`] implement it; [`super::http`] takes one without knowing which, so the
//! HTTP layer and the credentials (which send their token requests through it) do not
//! import each other.

use std::time::SystemTime;

use super::error::AzureError;

/// A bearer token. Its value is never printed.
#[derive(Clone)]
pub struct AccessToken {
    token: String,
    /// When it expires.
    pub expires_at: SystemTime,
}

impl AccessToken {
    pub fn new(token: String, expires_at: SystemTime) -> AccessToken {
        AccessToken { token, expires_at }
    }

    /// The token itself, for an `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.token
    }
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Anything that gives tokens: the clients' view of a credential.
#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A token for `scope` (`https://…/.default`).
    async fn token(&self, scope: &str) -> Result<AccessToken, AzureError>;
    /// Forgets a cached token that a service refused (expired early, revoked): the next
    /// [`TokenSource::token`] gets a new one.
    async fn invalidate(&self, _scope: &str) {}
    /// Which credential this is and why it was chosen.
    fn describe(&self) -> String;
}
