//! Entra ID tokens: JWT-shaped bearer tokens carrying `oid`, `appid`, `tid`, `aud`, `exp`
//! (and, for Microsoft Graph, the application permissions in `roles`), signed with a per-run key so that a token the emulator did not issue (or one altered) is
//! refused, and the checks each service makes of them (audience, expiry).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};

/// The audience of ARM tokens.
pub const ARM_AUDIENCE: &str = "https://management.azure.com";
/// The audience of Log Analytics tokens.
pub const LA_AUDIENCE: &str = "https://api.loganalytics.io";

/// Audiences ARM accepts (reference: ARM's own list in its error message).
pub const ARM_AUDIENCES: &[&str] = &[
    "https://management.core.windows.net/",
    "https://management.core.windows.net",
    "https://management.azure.com/",
    "https://management.azure.com",
];

/// Audiences the Log Analytics query API accepts.
pub const LA_AUDIENCES: &[&str] = &[
    "https://api.loganalytics.io",
    "https://api.loganalytics.io/",
    "https://api.loganalytics.azure.com",
    "https://api.loganalytics.azure.com/",
];

/// The audience of Microsoft Graph tokens.
pub const GRAPH_AUDIENCE: &str = "https://graph.microsoft.com";

/// Audiences Microsoft Graph accepts (its application ID URI, with or without the slash, and
/// its well-known application id).
pub const GRAPH_AUDIENCES: &[&str] = &[
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
];

/// Audiences Azure Storage accepts (`https://storage.azure.com/`, docs/azure-services.md §1.7).
pub const STORAGE_AUDIENCES: &[&str] = &["https://storage.azure.com", "https://storage.azure.com/"];

/// Audiences the Logs Ingestion API accepts (`https://monitor.azure.com`,
/// docs/azure-services.md §3.1).
pub const MONITOR_AUDIENCES: &[&str] = &["https://monitor.azure.com", "https://monitor.azure.com/"];

/// The `roles` claim a principal's token carries for an audience: its Graph application
/// permissions for a Graph token (Entra puts granted app roles there), nothing otherwise.
pub fn roles_for<'a>(aud: &str, graph_permissions: &'a [String]) -> &'a [String] {
    if GRAPH_AUDIENCES.iter().any(|a| a.eq_ignore_ascii_case(aud)) {
        graph_permissions
    } else {
        &[]
    }
}

/// Maps a requested scope (`https://management.azure.com/.default`) or resource to the
/// audience of the token, or `None` for a resource the tenant does not know.
pub fn audience_for(scope_or_resource: &str) -> Option<String> {
    let first = scope_or_resource.split_whitespace().next()?;
    let base = first.strip_suffix("/.default").unwrap_or(first);
    let known = ARM_AUDIENCES
        .iter()
        .chain(LA_AUDIENCES)
        .chain(GRAPH_AUDIENCES)
        .chain(STORAGE_AUDIENCES)
        .chain(MONITOR_AUDIENCES)
        .any(|a| a.eq_ignore_ascii_case(base));
    known.then(|| base.to_string())
}

/// The claims of a token the emulator issued.
#[derive(Debug, Clone)]
pub struct Claims {
    pub aud: String,
    pub oid: String,
    pub appid: Option<String>,
    pub tid: String,
    pub exp: i64,
    pub upn: Option<String>,
    /// The application permissions granted (`roles`), empty when the token has none.
    pub roles: Vec<String>,
}

/// What a token says: its audience, subject, lifetime and permissions.
#[derive(Debug, Clone, Copy)]
pub struct Grant<'a> {
    pub aud: &'a str,
    pub oid: &'a str,
    pub appid: Option<&'a str>,
    pub upn: Option<&'a str>,
    /// A user-assigned managed identity's ARM id (`xms_mirid`).
    pub mi_res_id: Option<&'a str>,
    /// Application permissions (`roles`); none: no claim.
    pub roles: &'a [String],
    pub now: DateTime<Utc>,
    pub lifetime_secs: i64,
    pub uti: &'a str,
}

/// Issues and checks tokens.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    key: Vec<u8>,
    tenant_id: String,
}

/// Why a token is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenError {
    Missing,
    Malformed,
    Expired {
        exp: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    WrongAudience(String),
}

impl TokenIssuer {
    /// An issuer for a tenant, with a signing key.
    pub fn new(tenant_id: &str, key: &[u8]) -> TokenIssuer {
        TokenIssuer {
            key: key.to_vec(),
            tenant_id: tenant_id.to_string(),
        }
    }

    fn sign(&self, data: &str) -> String {
        let mut h = Sha256::new();
        h.update(&self.key);
        h.update(data.as_bytes());
        URL_SAFE_NO_PAD.encode(h.finalize())
    }

    /// Issues a token valid for `lifetime_secs` from `now`, without `roles`.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &self,
        aud: &str,
        oid: &str,
        appid: Option<&str>,
        upn: Option<&str>,
        mi_res_id: Option<&str>,
        now: DateTime<Utc>,
        lifetime_secs: i64,
        uti: &str,
    ) -> String {
        self.grant(&Grant {
            aud,
            oid,
            appid,
            upn,
            mi_res_id,
            roles: &[],
            now,
            lifetime_secs,
            uti,
        })
    }

    /// Issues the token a [`Grant`] describes.
    pub fn grant(&self, g: &Grant<'_>) -> String {
        let Grant {
            aud,
            oid,
            appid,
            upn,
            mi_res_id,
            roles,
            now,
            lifetime_secs,
            uti,
        } = *g;
        let header = json!({"typ": "JWT", "alg": "HS256", "kid": "emulator"});
        let iat = now.timestamp();
        let mut claims = json!({
            "aud": aud,
            "iss": format!("https://sts.windows.net/{}/", self.tenant_id),
            "iat": iat,
            "nbf": iat,
            "exp": iat + lifetime_secs,
            "oid": oid,
            "sub": oid,
            "tid": self.tenant_id,
            "uti": uti,
            "ver": "1.0",
        });
        if let Some(a) = appid {
            claims["appid"] = json!(a);
            claims["appidacr"] = json!("1");
            claims["idtyp"] = json!("app");
        }
        if let Some(u) = upn {
            claims["upn"] = json!(u);
            claims["unique_name"] = json!(u);
            claims["idtyp"] = json!("user");
        }
        if let Some(r) = mi_res_id {
            claims["xms_mirid"] = json!(r);
        }
        if !roles.is_empty() {
            claims["roles"] = json!(roles);
        }
        let data = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self.sign(&data);
        format!("{data}.{sig}")
    }

    /// Checks an `Authorization` header value for one of `audiences` at `now`.
    pub fn check(
        &self,
        authorization: Option<&str>,
        audiences: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        let header = authorization.ok_or(TokenError::Missing)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(TokenError::Malformed)?
            .trim();
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        if self.sign(&format!("{h}.{c}")) != s {
            return Err(TokenError::Malformed);
        }
        let claims: Json = URL_SAFE_NO_PAD
            .decode(c)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or(TokenError::Malformed)?;
        let get = |k: &str| claims.get(k).and_then(Json::as_str).map(str::to_string);
        let aud = get("aud").ok_or(TokenError::Malformed)?;
        let exp = claims
            .get("exp")
            .and_then(Json::as_i64)
            .ok_or(TokenError::Malformed)?;
        if !audiences.iter().any(|a| a.eq_ignore_ascii_case(&aud)) {
            return Err(TokenError::WrongAudience(aud));
        }
        if exp <= now.timestamp() {
            return Err(TokenError::Expired {
                exp: DateTime::from_timestamp(exp, 0).unwrap_or(now),
                now,
            });
        }
        Ok(Claims {
            aud,
            oid: get("oid").ok_or(TokenError::Malformed)?,
            appid: get("appid"),
            tid: get("tid").unwrap_or_default(),
            exp,
            upn: get("upn"),
            roles: claims
                .get("roles")
                .and_then(Json::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Json::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_check() {
        let iss = TokenIssuer::new("t", b"k");
        let now = Utc::now();
        let tok = iss.issue(ARM_AUDIENCE, "o", Some("a"), None, None, now, 3599, "u");
        let c = iss
            .check(Some(&format!("Bearer {tok}")), ARM_AUDIENCES, now)
            .unwrap();
        assert_eq!(c.oid, "o");
        assert_eq!(c.appid.as_deref(), Some("a"));
        assert!(matches!(
            iss.check(Some(&format!("Bearer {tok}")), LA_AUDIENCES, now),
            Err(TokenError::WrongAudience(_))
        ));
        assert!(matches!(
            iss.check(
                Some(&format!("Bearer {tok}")),
                ARM_AUDIENCES,
                now + chrono::Duration::hours(2)
            ),
            Err(TokenError::Expired { .. })
        ));
        let forged = TokenIssuer::new("t", b"other").issue(
            ARM_AUDIENCE,
            "o",
            None,
            None,
            None,
            now,
            3599,
            "u",
        );
        assert_eq!(
            iss.check(Some(&format!("Bearer {forged}")), ARM_AUDIENCES, now)
                .unwrap_err(),
            TokenError::Malformed
        );
        assert_eq!(
            iss.check(None, ARM_AUDIENCES, now).unwrap_err(),
            TokenError::Missing
        );
        assert_eq!(
            audience_for("https://management.azure.com/.default").as_deref(),
            Some("https://management.azure.com")
        );
        assert_eq!(
            audience_for("https://graph.microsoft.com/.default").as_deref(),
            Some(GRAPH_AUDIENCE)
        );
        assert_eq!(audience_for("https://vault.azure.net/.default"), None);
        let perms = vec!["SecurityIncident.Read.All".to_string()];
        let tok = iss.grant(&Grant {
            aud: GRAPH_AUDIENCE,
            oid: "o",
            appid: Some("a"),
            upn: None,
            mi_res_id: None,
            roles: roles_for(GRAPH_AUDIENCE, &perms),
            now,
            lifetime_secs: 60,
            uti: "u",
        });
        let c = iss
            .check(Some(&format!("Bearer {tok}")), GRAPH_AUDIENCES, now)
            .unwrap();
        assert_eq!(c.roles, perms);
        assert!(roles_for(ARM_AUDIENCE, &perms).is_empty());
    }
}
