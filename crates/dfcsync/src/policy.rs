//! The engine's policy: what it may do and how it words it (semantics.md, steps 1 and 2).
//!
//! A policy is built from configuration and checked there: an invalid classification pair or
//! an unknown template placeholder is a start-up error, never a run-time one.

use chrono::TimeDelta;

use crate::model::Closure;

/// Whether a Closed incident is reopened when its alerts become active again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReopenPolicy {
    /// Only incidents this tool closed (the default).
    #[default]
    Own,
    /// Never.
    Never,
    /// Also incidents a person closed.
    Always,
}

/// Everything the engine needs to know besides the snapshot and the time.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Incidents created longer ago than this are out of scope.
    pub max_age: TimeDelta,
    /// Product names that put an incident in scope (compared case-insensitively).
    pub product_names: Vec<String>,
    pub reopen: ReopenPolicy,
    /// Leave a status a person set after the alerts changed, and post a notice instead.
    pub respect_manual_changes: bool,
    /// Set DfC alerts InProgress when a person takes the incident (off by default).
    pub writeback: bool,
    /// How to close when every alert is finished and at least one is Resolved.
    pub resolved: Closure,
    /// How to close when every alert is Dismissed.
    pub dismissed: Closure,
    pub templates: Templates,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_age: TimeDelta::days(90),
            product_names: vec![
                "Azure Security Center".to_owned(),
                "Microsoft Defender for Cloud".to_owned(),
            ],
            reopen: ReopenPolicy::Own,
            respect_manual_changes: true,
            writeback: false,
            resolved: Closure::true_positive(),
            dismissed: Closure::benign_positive(),
            templates: Templates::default(),
        }
    }
}

impl Policy {
    pub fn is_product_in_scope(&self, name: &str) -> bool {
        let name = name.trim();
        self.product_names
            .iter()
            .any(|p| p.len() == name.len() && p.eq_ignore_ascii_case(name))
    }
}

/// The texts dfcsync writes. Placeholders are `{name}`; `{{` and `}}` are literal braces.
/// The mark is appended by the engine, never by the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Templates {
    /// The incident's `classificationComment` when dfcsync closes it.
    pub classification_comment: Template,
    pub close_comment: Template,
    pub activate_comment: Template,
    pub reopen_comment: Template,
    pub notice_comment: Template,
    pub writeback_comment: Template,
}

impl Default for Templates {
    fn default() -> Self {
        let t = |s: &str| Template::parse(s).expect("default templates are valid");
        Self {
            classification_comment: t(
                "Closed by dfcsync: the alerts of this incident are {alert_status} in Microsoft Defender for Cloud (last change {changed_at}).",
            ),
            close_comment: t(
                "dfcsync closed this incident as {classification} ({classification_reason}): every alert is finished in Microsoft Defender for Cloud.\n{alerts}",
            ),
            activate_comment: t(
                "dfcsync set this incident Active: an alert is in progress in Microsoft Defender for Cloud.\n{alerts}",
            ),
            reopen_comment: t(
                "dfcsync reopened this incident: an alert became active again in Microsoft Defender for Cloud after the incident was closed.\n{alerts}",
            ),
            notice_comment: t(
                "dfcsync left this incident {incident_status}: its alerts changed in Microsoft Defender for Cloud ({alert_status}, last change {changed_at}), but {status_set_by} set the status later, at {status_since}. It would otherwise have been {would}.\n{alerts}",
            ),
            writeback_comment: t(
                "dfcsync set these alerts InProgress in Microsoft Defender for Cloud, because this incident is being worked on:\n{alerts}",
            ),
        }
    }
}

/// The placeholders a template may use: `{alert_status}` and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder {
    /// The distinct statuses of the alerts: `Resolved, Dismissed`.
    AlertStatus,
    /// The DfC alert names (or Sentinel ids where the name is unknown), comma-separated.
    AlertIds,
    /// The alerts' portal links, space-separated.
    AlertLink,
    /// One line per alert: name, display name, status, since when, link.
    Alerts,
    /// When the alerts last changed.
    ChangedAt,
    Classification,
    ClassificationReason,
    IncidentNumber,
    IncidentStatus,
    /// When the incident entered its status, and who set it.
    StatusSince,
    StatusSetBy,
    /// What dfcsync would have done (in notices).
    Would,
}

impl Placeholder {
    pub const ALL: [Placeholder; 12] = [
        Self::AlertStatus,
        Self::AlertIds,
        Self::AlertLink,
        Self::Alerts,
        Self::ChangedAt,
        Self::Classification,
        Self::ClassificationReason,
        Self::IncidentNumber,
        Self::IncidentStatus,
        Self::StatusSince,
        Self::StatusSetBy,
        Self::Would,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::AlertStatus => "alert_status",
            Self::AlertIds => "alert_ids",
            Self::AlertLink => "alert_link",
            Self::Alerts => "alerts",
            Self::ChangedAt => "changed_at",
            Self::Classification => "classification",
            Self::ClassificationReason => "classification_reason",
            Self::IncidentNumber => "incident_number",
            Self::IncidentStatus => "incident_status",
            Self::StatusSince => "status_since",
            Self::StatusSetBy => "status_set_by",
            Self::Would => "would",
        }
    }
}

fn placeholder_names() -> String {
    Placeholder::ALL.map(Placeholder::name).join(", ")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unknown placeholder {{{name}}} (known: {known})", known = placeholder_names())]
    UnknownPlaceholder { name: String },
    #[error("unclosed '{{' at byte {at}")]
    Unclosed { at: usize },
    #[error("lone '}}' at byte {at} (write '}}}}' for a literal brace)")]
    LoneClose { at: usize },
}

/// A checked template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Placeholder(Placeholder),
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().map(|p| p.1) == Some('{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().map(|p| p.1) == Some('}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(TemplateError::LoneClose { at: i }),
                '{' => {
                    let rest = &source[i + 1..];
                    let end = rest.find('}').ok_or(TemplateError::Unclosed { at: i })?;
                    let name = &rest[..end];
                    let known = Placeholder::ALL
                        .into_iter()
                        .find(|p| p.name() == name)
                        .ok_or_else(|| TemplateError::UnknownPlaceholder {
                            name: name.to_owned(),
                        })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Placeholder(known));
                    for _ in 0..=end {
                        chars.next();
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Self {
            parts,
            source: source.to_owned(),
        })
    }

    /// The text as written in the configuration.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Appends the text to `out`, letting `value` write each placeholder.
    pub fn render_into(&self, out: &mut String, value: &mut dyn FnMut(Placeholder, &mut String)) {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Placeholder(p) => value(*p, out),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_placeholders_and_escapes() {
        let t = Template::parse("{{x}} {alert_status} at {changed_at}}}").unwrap();
        let mut out = String::new();
        t.render_into(&mut out, &mut |p, out| {
            out.push_str(&format!("<{}>", p.name()))
        });
        assert_eq!(out, "{x} <alert_status> at <changed_at>}");
    }

    #[test]
    fn refuses_unknown_and_malformed_placeholders() {
        assert_eq!(
            Template::parse("a {bogus} b"),
            Err(TemplateError::UnknownPlaceholder {
                name: "bogus".into()
            })
        );
        assert_eq!(
            Template::parse("a {alert"),
            Err(TemplateError::Unclosed { at: 2 })
        );
        assert_eq!(
            Template::parse("a } b"),
            Err(TemplateError::LoneClose { at: 2 })
        );
        let msg = Template::parse("{x}").unwrap_err().to_string();
        assert!(msg.contains("alert_status"), "{msg}");
    }

    #[test]
    fn product_names_match_case_insensitively() {
        let p = Policy::default();
        assert!(p.is_product_in_scope("azure security center"));
        assert!(p.is_product_in_scope("Microsoft Defender for Cloud"));
        assert!(!p.is_product_in_scope("Microsoft Defender for Endpoint"));
    }
}
