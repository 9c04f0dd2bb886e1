//! The configuration file (TOML): Azure endpoints and credentials, the workspaces, and the
//! engine's policy. Every error names the file, the key and the reason, and is raised at
//! start-up; nothing is checked later at run time.
//!
//! `dfcsync.example.toml` at the repository root documents every key.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::model::Closure;
use crate::policy::{Policy, ReopenPolicy, Template, Templates};

/// A configuration error: where, and why.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: key {key}: {reason}")]
    Invalid {
        file: String,
        key: String,
        reason: String,
    },
}

/// The whole file, as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub azure: AzureSection,
    #[serde(default)]
    pub auth: AuthSection,
    #[serde(default)]
    pub workspaces: Vec<WorkspaceSection>,
    #[serde(default)]
    pub policy: PolicySection,
}

/// `[azure]`: which cloud, and extra trust.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AzureSection {
    /// `public` (default), `usgov`, `china` or `custom`.
    pub cloud: Option<String>,
    pub tenant_id: Option<String>,
    /// An extra trusted root CA (PEM), for TLS-inspecting proxies and the emulator.
    pub tls_ca_file: Option<PathBuf>,
    /// With `cloud = "custom"`: every endpoint.
    pub endpoints: Option<EndpointsSection>,
}

/// `[azure.endpoints]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsSection {
    pub authority: String,
    pub arm: String,
    pub arm_scope: String,
    pub log_analytics: String,
    pub log_analytics_scope: String,
}

/// `[auth]`: how dfcsync gets its tokens.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSection {
    /// `auto` (default), `managed_identity`, `workload_identity`, `client_secret`, `azure_cli`.
    pub method: Option<String>,
    pub client_id: Option<String>,
    /// A managed identity chosen by object id or by resource id.
    pub object_id: Option<String>,
    pub resource_id: Option<String>,
    /// The client secret, from a file or from an environment variable (never the command line).
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_env: Option<String>,
}

/// `[[workspaces]]`: one Sentinel workspace.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSection {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

/// `[policy]`: the engine's choices (semantics.md).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySection {
    /// Incidents created longer ago are out of scope (`90d`).
    pub max_age: Option<String>,
    pub product_names: Option<Vec<String>>,
    pub reopen: Option<ReopenPolicy>,
    pub respect_manual_changes: Option<bool>,
    pub writeback: Option<bool>,
    pub resolved: Option<ClosureSection>,
    pub dismissed: Option<ClosureSection>,
    #[serde(default)]
    pub templates: TemplatesSection,
}

/// A classification and its reason.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureSection {
    pub classification: String,
    pub reason: Option<String>,
}

/// `[policy.templates]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplatesSection {
    pub classification_comment: Option<String>,
    pub close_comment: Option<String>,
    pub activate_comment: Option<String>,
    pub reopen_comment: Option<String>,
    pub notice_comment: Option<String>,
    pub writeback_comment: Option<String>,
}

/// A configuration, read and checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub policy: Policy,
    /// Where it came from, for messages (`<defaults>` when there was no file).
    pub origin: String,
}

impl Config {
    /// The defaults, with no file.
    pub fn defaults() -> Self {
        Self {
            file: ConfigFile::default(),
            policy: Policy::default(),
            origin: "<defaults>".into(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: origin.clone(),
            source,
        })?;
        Self::parse(&text, &origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
            file: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let invalid = |key: &str, reason: String| ConfigError::Invalid {
            file: origin.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let policy = build_policy(&file.policy, &invalid)?;
        check_azure(&file, &invalid)?;
        Ok(Self {
            file,
            policy,
            origin: origin.to_owned(),
        })
    }
}

fn build_policy(
    p: &PolicySection,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<Policy, ConfigError> {
    let mut policy = Policy::default();
    if let Some(age) = &p.max_age {
        let d = humantime::parse_duration(age)
            .map_err(|e| invalid("policy.max_age", format!("{age:?} is not a duration: {e}")))?;
        policy.max_age = chrono::TimeDelta::from_std(d)
            .ok()
            .filter(|d| *d > chrono::TimeDelta::zero())
            .ok_or_else(|| invalid("policy.max_age", format!("{age:?} is out of range")))?;
    }
    if let Some(names) = &p.product_names {
        if names.iter().all(|n| n.trim().is_empty()) {
            return Err(invalid(
                "policy.product_names",
                "must name at least one product".into(),
            ));
        }
        policy.product_names = names.clone();
    }
    if let Some(r) = p.reopen {
        policy.reopen = r;
    }
    if let Some(b) = p.respect_manual_changes {
        policy.respect_manual_changes = b;
    }
    if let Some(b) = p.writeback {
        policy.writeback = b;
    }
    let closure = |key: &str, c: &ClosureSection| {
        let closure = Closure::parse(&c.classification, c.reason.as_deref())
            .map_err(|e| invalid(key, e.to_string()))?;
        if closure.reason().is_none() {
            // Closing needs a reason (400 "classification … must have classificationReason").
            return Err(invalid(
                key,
                "an automatic close needs a classification with a reason (Undetermined has none)"
                    .into(),
            ));
        }
        Ok(closure)
    };
    if let Some(c) = &p.resolved {
        policy.resolved = closure("policy.resolved", c)?;
    }
    if let Some(c) = &p.dismissed {
        policy.dismissed = closure("policy.dismissed", c)?;
    }
    let t = &p.templates;
    let mut templates = Templates::default();
    let slots: [(&str, &Option<String>, &mut Template); 6] = [
        (
            "classification_comment",
            &t.classification_comment,
            &mut templates.classification_comment,
        ),
        (
            "close_comment",
            &t.close_comment,
            &mut templates.close_comment,
        ),
        (
            "activate_comment",
            &t.activate_comment,
            &mut templates.activate_comment,
        ),
        (
            "reopen_comment",
            &t.reopen_comment,
            &mut templates.reopen_comment,
        ),
        (
            "notice_comment",
            &t.notice_comment,
            &mut templates.notice_comment,
        ),
        (
            "writeback_comment",
            &t.writeback_comment,
            &mut templates.writeback_comment,
        ),
    ];
    for (name, text, slot) in slots {
        if let Some(text) = text {
            *slot = Template::parse(text)
                .map_err(|e| invalid(&format!("policy.templates.{name}"), e.to_string()))?;
        }
    }
    policy.templates = templates;
    Ok(policy)
}

fn check_azure(
    file: &ConfigFile,
    invalid: &dyn Fn(&str, String) -> ConfigError,
) -> Result<(), ConfigError> {
    let cloud = file.azure.cloud.as_deref().unwrap_or("public");
    match (cloud, &file.azure.endpoints) {
        ("public" | "usgov" | "china", None) | ("custom", Some(_)) => {}
        ("public" | "usgov" | "china", Some(_)) => {
            return Err(invalid(
                "azure.endpoints",
                format!("endpoints are given only with cloud = \"custom\" (cloud is {cloud:?})"),
            ));
        }
        ("custom", None) => {
            return Err(invalid(
                "azure.endpoints",
                "cloud = \"custom\" needs [azure.endpoints] with authority, arm, arm_scope, log_analytics and log_analytics_scope".into(),
            ));
        }
        (other, _) => {
            return Err(invalid(
                "azure.cloud",
                format!("{other:?} is not a cloud (public, usgov, china or custom)"),
            ));
        }
    }
    if let Some(e) = &file.azure.endpoints {
        for (key, url) in [
            ("azure.endpoints.authority", &e.authority),
            ("azure.endpoints.arm", &e.arm),
            ("azure.endpoints.log_analytics", &e.log_analytics),
        ] {
            if !url.starts_with("https://") {
                return Err(invalid(
                    key,
                    format!(
                        "{url:?} must be an https:// URL (Azure endpoints are never plain http)"
                    ),
                ));
            }
        }
    }
    if let Some(m) = &file.auth.method
        && ![
            "auto",
            "managed_identity",
            "workload_identity",
            "client_secret",
            "azure_cli",
        ]
        .contains(&m.as_str())
    {
        return Err(invalid(
            "auth.method",
            format!(
                "{m:?} is not a method (auto, managed_identity, workload_identity, client_secret, azure_cli)"
            ),
        ));
    }
    for (i, w) in file.workspaces.iter().enumerate() {
        for (key, v) in [
            ("subscription_id", &w.subscription_id),
            ("resource_group", &w.resource_group),
            ("name", &w.name),
        ] {
            if v.trim().is_empty() {
                return Err(invalid(
                    &format!("workspaces[{i}].{key}"),
                    "is empty".into(),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Classification, ClassificationReason};

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.policy.max_age, chrono::TimeDelta::days(90));
        assert_eq!(c.policy.reopen, ReopenPolicy::Own);
        assert!(c.policy.respect_manual_changes);
        assert!(!c.policy.writeback);
    }

    #[test]
    fn policy_keys_are_read() {
        let c = Config::parse(
            r#"
            [policy]
            max_age = "30d"
            reopen = "never"
            writeback = true
            [policy.dismissed]
            classification = "FalsePositive"
            reason = "InaccurateData"
            [policy.templates]
            close_comment = "closed {alert_ids}"
            "#,
            "x.toml",
        )
        .unwrap();
        assert_eq!(c.policy.max_age, chrono::TimeDelta::days(30));
        assert_eq!(c.policy.reopen, ReopenPolicy::Never);
        assert!(c.policy.writeback);
        assert_eq!(
            c.policy.dismissed.classification(),
            Classification::FalsePositive
        );
        assert_eq!(
            c.policy.dismissed.reason(),
            Some(ClassificationReason::InaccurateData)
        );
        assert_eq!(
            c.policy.templates.close_comment.source(),
            "closed {alert_ids}"
        );
    }

    #[test]
    fn errors_name_file_key_and_reason() {
        let cases = [
            (
                "[policy.resolved]\nclassification = \"TruePositive\"\nreason = \"InaccurateData\"",
                "x.toml: key policy.resolved: classification TruePositive cannot have reason InaccurateData",
            ),
            (
                "[policy.dismissed]\nclassification = \"Undetermined\"",
                "x.toml: key policy.dismissed: an automatic close needs",
            ),
            (
                "[policy]\nmax_age = \"soon\"",
                "x.toml: key policy.max_age: \"soon\" is not a duration",
            ),
            (
                "[policy.templates]\nnotice_comment = \"{nope}\"",
                "x.toml: key policy.templates.notice_comment: unknown placeholder {nope}",
            ),
            (
                "[azure]\ncloud = \"mars\"",
                "x.toml: key azure.cloud: \"mars\" is not a cloud",
            ),
            (
                "[azure]\ncloud = \"custom\"\n[azure.endpoints]\nauthority = \"http://x\"\narm = \"https://a\"\narm_scope = \"s\"\nlog_analytics = \"https://l\"\nlog_analytics_scope = \"s\"",
                "x.toml: key azure.endpoints.authority: \"http://x\" must be an https:// URL",
            ),
        ];
        for (text, want) in cases {
            let err = Config::parse(text, "x.toml").unwrap_err().to_string();
            assert!(err.starts_with(want), "{err}\n  wanted: {want}");
        }
        let err = Config::parse("[policy]\nbogus = 1", "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("bogus"), "{err}");
        assert!(err.contains("line 2"), "{err}");
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example is a valid configuration, and its policy is the default one.
    #[test]
    fn the_example_file_parses_to_the_defaults() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../dfcsync.example.toml");
        let c = Config::load(Path::new(path)).unwrap();
        let d = Policy::default();
        assert_eq!(c.policy.templates, d.templates);
        assert_eq!(c.policy.max_age, d.max_age);
        assert_eq!(c.policy.product_names, d.product_names);
        assert_eq!(c.policy.resolved, d.resolved);
        assert_eq!(c.policy.dismissed, d.dismissed);
    }
}
