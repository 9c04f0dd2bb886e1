//! The Sentinel backend: incidents and alerts read from Log Analytics (`SecurityIncident`,
//! `SecurityAlert`), incidents written through ARM (`Microsoft.SecurityInsights`), and, with
//! writeback, Defender for Cloud alerts through ARM (`Microsoft.Security`).
//!
//! The targets are the configured workspaces, looked up in ARM once each (their workspace id
//! does not change) and read in groups of up to [`source::MAX_WORKSPACES_PER_QUERY`], one
//! query a group. [`source`] is the reading, [`sink`] the writing.

pub mod sink;
pub mod source;

use crate::azure::sentinel::Workspace;
use crate::config::Config;

/// The Sentinel backend's state between cycles: the workspaces configured and those found.
pub struct SentinelBackend {
    /// `subscription/resourceGroup/name` of each configured workspace, and its parts.
    configured: Vec<Configured>,
    /// One entry per configured workspace: found in ARM, or not yet.
    resolved: Vec<Option<Workspace>>,
    /// How whole reads are made (`--read`).
    whole_read: crate::observe::change_feed::WholeRead,
}

struct Configured {
    label: String,
    subscription_id: String,
    resource_group: String,
    name: String,
    /// The workspace id, when the configuration gives it (no ARM lookup then).
    workspace_id: Option<String>,
}

impl SentinelBackend {
    pub fn new(config: &Config) -> Self {
        let configured: Vec<Configured> = config
            .file
            .workspaces
            .iter()
            .map(|w| Configured {
                label: format!("{}/{}/{}", w.subscription_id, w.resource_group, w.name),
                subscription_id: w.subscription_id.clone(),
                resource_group: w.resource_group.clone(),
                name: w.name.clone(),
                workspace_id: w.workspace_id.clone(),
            })
            .collect();
        Self {
            resolved: configured.iter().map(|_| None).collect(),
            whole_read: Default::default(),
            configured,
        }
    }

    /// The workspace of target `i`, once found.
    fn workspace(&self, i: usize) -> Option<&Workspace> {
        self.resolved.get(i).and_then(Option::as_ref)
    }
}
