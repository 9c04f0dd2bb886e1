//! The one error type of the Azure shell, and how a service's error response becomes one.
//!
//! Every variant says what to do about it (a missing role names the role and the scope; a
//! conflict says to read again), and carries the service's request id for support cases.
//! No variant ever holds a token, a secret or a request body: only service error codes and
//! messages, URLs and ids.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

/// The Azure services dfcsync talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Azure Resource Manager: Sentinel incidents, DfC alerts, workspaces.
    Arm,
    /// The Log Analytics query API.
    LogAnalytics,
    /// Microsoft Graph's security API (Defender XDR incidents and alerts).
    Graph,
    /// Entra ID or a managed-identity endpoint (hand-written token requests only).
    Token,
    /// Azure Storage's Blob service (the lease).
    Storage,
    /// Azure Monitor's Logs Ingestion API (dfcsync's health rows).
    LogsIngestion,
}

impl Service {
    /// A short name for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Service::Arm => "arm",
            Service::LogAnalytics => "log_analytics",
            Service::Graph => "graph",
            Service::Token => "token",
            Service::Storage => "storage",
            Service::LogsIngestion => "logs_ingestion",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Service::Arm => "Azure Resource Manager",
            Service::LogAnalytics => "Log Analytics",
            Service::Graph => "Microsoft Graph",
            Service::Token => "the token endpoint",
            Service::Storage => "Azure Storage",
            Service::LogsIngestion => "the Logs Ingestion API",
        })
    }
}

/// `" (request id X)"` when there is one.
struct Rid<'a>(&'a Option<String>);

impl fmt::Display for Rid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request id {id})"),
            None => Ok(()),
        }
    }
}

/// An error of an Azure call.
#[derive(Debug, thiserror::Error)]
pub enum AzureError {
    /// 409: the resource changed since it was read (a stale `etag`). Read it again and decide
    /// again; never repeat the same write.
    #[error(
        "conflict on {resource}: {message}: it changed since it was read; read it again and decide again{}",
        Rid(request_id)
    )]
    Conflict {
        resource: String,
        message: String,
        request_id: Option<String>,
    },

    /// 403 from ARM (`AuthorizationFailed`): a role is missing.
    #[error(
        "forbidden: {message} -- dfcsync needs the role {role_hint} on {scope}; a fresh role assignment can take several minutes to apply{}",
        Rid(request_id)
    )]
    Forbidden {
        /// The role that grants the action (least privilege, reference §6).
        role_hint: String,
        /// The scope the action was refused on.
        scope: String,
        /// The refused action, when the service names it.
        action: Option<String>,
        message: String,
        request_id: Option<String>,
    },

    /// 403 `InsufficientAccessError` from Log Analytics: no query right on the workspace.
    #[error(
        "insufficient access to Log Analytics workspace {workspace}: {message} -- dfcsync needs the role {role_hint} on the workspace (or its resource group); a fresh role assignment can take several minutes to apply{}",
        Rid(request_id)
    )]
    InsufficientAccess {
        workspace: String,
        role_hint: String,
        message: String,
        request_id: Option<String>,
    },

    /// 429 past what we are willing to wait (or past the retries).
    #[error(
        "throttled by {service}{}; gave up after the configured retries{}",
        retry_after.map(|d| format!(" (Retry-After {}s)", d.as_secs())).unwrap_or_default(),
        Rid(request_id)
    )]
    Throttled {
        service: Service,
        retry_after: Option<Duration>,
        request_id: Option<String>,
    },

    /// A Log Analytics answer with a `PartialError`: the data may be incomplete, so it is not
    /// used at all.
    #[error(
        "Log Analytics returned a partial result ({message}{}); not acting on partial data{}",
        if details.is_empty() { String::new() } else { format!(": {}", details.join("; ")) },
        Rid(request_id)
    )]
    PartialError {
        message: String,
        details: Vec<String>,
        request_id: Option<String>,
    },

    /// Any other error status.
    #[error(
        "{service} answered HTTP {status}{}: {message}{}",
        code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
        Rid(request_id)
    )]
    Http {
        service: Service,
        status: u16,
        code: Option<String>,
        message: String,
        request_id: Option<String>,
    },

    /// No answer: connection refused or reset, TLS failure, timeout.
    #[error("cannot reach {service} at {url}: {message}")]
    Transport {
        service: Service,
        url: String,
        message: String,
        /// Whether it was a timeout.
        timeout: bool,
    },

    /// No token: the credential failed, or a service refused the token itself (wrong
    /// audience, expired, malformed).
    #[error("authentication failed ({credential}): {message}")]
    Auth { credential: String, message: String },

    /// A successful answer that does not have the expected shape.
    #[error("cannot decode {what}: {message}")]
    Decode { what: String, message: String },

    /// The configuration cannot make a client or a credential.
    #[error("azure configuration: {0}")]
    Config(String),

    /// A write not sent: this run does not hold the lease (any more), or not for long enough
    /// (one writer at a time; docs/deploy.md).
    #[error("not written: {0}")]
    Fenced(String),
}

impl AzureError {
    /// The service's request id, when the error came from an answer.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            AzureError::Conflict { request_id, .. }
            | AzureError::Forbidden { request_id, .. }
            | AzureError::InsufficientAccess { request_id, .. }
            | AzureError::Throttled { request_id, .. }
            | AzureError::PartialError { request_id, .. }
            | AzureError::Http { request_id, .. } => request_id.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, when the error came from an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            AzureError::Conflict { .. } => Some(409),
            AzureError::Forbidden { .. } | AzureError::InsufficientAccess { .. } => Some(403),
            AzureError::Throttled { .. } => Some(429),
            AzureError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether this is a Log Analytics answer cut short by the service's limits on an
    /// answer (500,000 records, ~100 MiB: reference §2.7), which a smaller query avoids.
    pub fn is_answer_too_large(&self) -> bool {
        match self {
            AzureError::PartialError {
                message, details, ..
            } => std::iter::once(message).chain(details).any(|m| {
                let m = m.to_ascii_lowercase();
                m.contains("e_query_result_set_too_large")
                    || (m.contains("limit") && (m.contains("exceed") || m.contains("too large")))
            }),
            _ => false,
        }
    }

    pub(crate) fn decode(what: impl Into<String>, e: impl fmt::Display) -> AzureError {
        AzureError::Decode {
            what: what.into(),
            message: e.to_string(),
        }
    }
}

/// The role that grants an ARM or Log Analytics action (reference §6, least privilege).
pub fn role_for_action(action: &str) -> String {
    let a = action.to_ascii_lowercase();
    if a.starts_with("microsoft.securityinsights/")
        || a.starts_with("microsoft.operationalinsights/")
    {
        "Microsoft Sentinel Responder".into()
    } else if a.starts_with("microsoft.security/") {
        if a.ends_with("/read") {
            "Security Reader (read) or Security Admin (status changes)".into()
        } else {
            "Security Admin".into()
        }
    } else {
        format!("a role that allows '{action}'")
    }
}

/// The Graph application role a 403 asks for (its message: "Missing application roles. API
/// required roles: A,B, application roles: C."), with how it is granted: Graph roles are
/// application permissions with admin consent, which ARM cannot grant (docs/deploy.md).
pub fn graph_role_hint(message: &str) -> String {
    let required = message
        .split_once("required roles:")
        .map(|(_, rest)| rest.split(", application roles").next().unwrap_or(rest))
        .map(|r| r.trim().trim_end_matches('.').replace(',', " or "))
        .filter(|r| !r.is_empty());
    format!(
        "{} (a Microsoft Graph application role: an administrator grants it to dfcsync's identity with admin consent, e.g. `az rest --method POST --uri https://graph.microsoft.com/v1.0/servicePrincipals/<dfcsync's object id>/appRoleAssignments` as docs/deploy.md shows; ARM role assignments cannot)",
        required.unwrap_or_else(|| {
            "SecurityIncident.ReadWrite.All and SecurityAlert.Read.All".to_owned()
        })
    )
}

/// The text between `key '` and the next `'` in an ARM message.
fn quoted_after(message: &str, key: &str) -> Option<String> {
    let start = message.find(key)? + key.len();
    let rest = &message[start..];
    let rest = rest.strip_prefix('\'')?;
    let end = rest.find('\'')?;
    Some(rest[..end].to_owned())
}

/// What an error response says: `(code, message, inner code)`, from ARM's `CloudError`, Log
/// Analytics' `errorResponse`, or Entra ID's `{error, error_description}`.
pub(crate) fn error_parts(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return xml_error_parts(body);
    };
    match v.get("error") {
        Some(Value::Object(e)) => (
            e.get("code").and_then(Value::as_str).map(str::to_owned),
            e.get("message").and_then(Value::as_str).map(str::to_owned),
            e.get("innererror")
                .and_then(|i| i.get("code"))
                .and_then(Value::as_str)
                .map(str::to_owned),
        ),
        Some(Value::String(code)) => (
            Some(code.clone()),
            v.get("error_description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            None,
        ),
        _ => (
            None,
            v.get("message").and_then(Value::as_str).map(str::to_owned),
            None,
        ),
    }
}

/// Azure Storage's error body: `<Error><Code>…</Code><Message>…</Message></Error>`.
fn xml_error_parts(body: &[u8]) -> (Option<String>, Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(body);
    let element = |name: &str| {
        let open = format!("<{name}>");
        let start = text.find(&open)? + open.len();
        let end = text[start..].find(&format!("</{name}>"))? + start;
        Some(text[start..end].trim().to_owned())
    };
    match element("Code") {
        Some(code) => (Some(code), element("Message"), None),
        None => (None, None, None),
    }
}

/// Turns a final (non-2xx) answer into an error.
///
/// `resource` is the path or workspace the request was about, used in messages.
#[cfg(test)]
pub(crate) fn from_response(
    service: Service,
    status: u16,
    body: &[u8],
    request_id: Option<String>,
    resource: &str,
) -> AzureError {
    from_answer(service, status, body, None, request_id, resource)
}

/// [`from_response`], with the error code of the `x-ms-error-code` header (Azure Storage and
/// the Logs Ingestion API send it; a HEAD answer has no body to carry one).
pub(crate) fn from_answer(
    service: Service,
    status: u16,
    body: &[u8],
    header_code: Option<&str>,
    request_id: Option<String>,
    resource: &str,
) -> AzureError {
    let (body_code, message, inner) = error_parts(body);
    let code = body_code.or_else(|| header_code.map(str::to_owned));
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            "(no error body)".to_owned()
        } else {
            text.chars().take(300).collect()
        }
    });
    let code_is = |c: &str| code.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(c));
    if code_is("InvalidAuthenticationTokenAudience")
        || code_is("InvalidAuthenticationToken")
        || code_is("ExpiredAuthenticationToken")
        || code_is("AuthenticationFailed")
    {
        let hint = if code_is("InvalidAuthenticationTokenAudience") {
            match service {
                Service::LogAnalytics => {
                    " (the token audience is wrong: check log_analytics_scope in [azure.endpoints])"
                }
                Service::Graph => {
                    " (the token audience is wrong: check graph_scope in [azure.endpoints])"
                }
                _ => " (the token audience is wrong: check arm_scope in [azure.endpoints])",
            }
        } else {
            ""
        };
        return AzureError::Auth {
            credential: format!("{service} refused the token"),
            message: format!(
                "HTTP {status} {}: {message}{hint}{}",
                code.as_deref().unwrap_or(""),
                Rid(&request_id)
            ),
        };
    }
    match status {
        409 if matches!(service, Service::Arm | Service::Graph) => AzureError::Conflict {
            resource: resource.to_owned(),
            message,
            request_id,
        },
        403 if code_is("InsufficientAccessError") => AzureError::InsufficientAccess {
            workspace: resource.to_owned(),
            role_hint: "Microsoft Sentinel Responder (or Log Analytics Reader)".into(),
            message: match inner {
                Some(i) => format!("{message} ({i})"),
                None => message,
            },
            request_id,
        },
        403 if service == Service::Arm => {
            let action = quoted_after(&message, "perform action ");
            let scope =
                quoted_after(&message, "over scope ").unwrap_or_else(|| resource.to_owned());
            let role_hint = match &action {
                Some(a) => role_for_action(a),
                None => {
                    "Microsoft Sentinel Responder (incidents) or Security Admin (DfC alerts)".into()
                }
            };
            AzureError::Forbidden {
                role_hint,
                scope,
                action,
                message,
                request_id,
            }
        }
        403 if service == Service::Graph => {
            let role_hint = graph_role_hint(&message);
            AzureError::Forbidden {
                role_hint,
                scope: "Microsoft Graph (the tenant)".into(),
                action: None,
                message,
                request_id,
            }
        }
        429 => AzureError::Throttled {
            service,
            retry_after: None,
            request_id,
        },
        _ => AzureError::Http {
            service,
            status,
            code,
            message,
            request_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_authorization_failed_names_role_and_scope() {
        let body = br#"{"error":{"code":"AuthorizationFailed","message":"The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Security/locations/alerts/resolve/action' over scope '/subscriptions/s/providers/Microsoft.Security/locations/westeurope/alerts/a' or the scope is invalid."}}"#;
        let e = from_response(Service::Arm, 403, body, Some("rid-1".into()), "/p");
        let AzureError::Forbidden {
            role_hint, scope, ..
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(role_hint, "Security Admin");
        assert!(scope.starts_with("/subscriptions/s/providers/Microsoft.Security"));
        let text = e.to_string();
        assert!(text.contains("Security Admin") && text.contains("several minutes"));
        assert!(text.contains("rid-1"));
    }

    #[test]
    fn graph_403_names_the_missing_application_role() {
        let body = br#"{"error":{"code":"Forbidden","message":"Missing application roles. API required roles: SecurityIncident.ReadWrite.All, application roles: SecurityIncident.Read.All.","innerError":{"request-id":"r"}}}"#;
        let e = from_response(Service::Graph, 403, body, Some("r".into()), "/v1.0/x");
        let AzureError::Forbidden { role_hint, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(
            role_hint
                .starts_with("SecurityIncident.ReadWrite.All (a Microsoft Graph application role"),
            "{role_hint}"
        );
        assert!(e.to_string().contains("appRoleAssignments"), "{e}");
        let body = br#"{"error":{"code":"InvalidAuthenticationToken","message":"Lifetime validation failed, the token is expired."}}"#;
        let e = from_response(Service::Graph, 401, body, None, "/v1.0/x");
        assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
    }

    #[test]
    fn la_errors() {
        let body = br#"{"error":{"message":"The provided credentials have insufficient access to perform the requested operation","code":"InsufficientAccessError","innererror":{"code":"UnauthorizedClient","message":"m"}}}"#;
        let e = from_response(Service::LogAnalytics, 403, body, None, "ws-guid");
        assert!(matches!(e, AzureError::InsufficientAccess { .. }), "{e:?}");
        assert!(e.to_string().contains("Microsoft Sentinel Responder"));
        let body =
            br#"{"error":{"message":"bad aud","code":"InvalidAuthenticationTokenAudience"}}"#;
        let e = from_response(Service::LogAnalytics, 403, body, None, "ws-guid");
        assert!(matches!(e, AzureError::Auth { .. }), "{e:?}");
        assert!(e.to_string().contains("log_analytics_scope"));
        let e = from_response(Service::Arm, 500, b"<html>oops</html>", None, "/p");
        assert!(e.to_string().contains("<html>oops</html>"), "{e}");
    }
}
