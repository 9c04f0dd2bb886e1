//! Role-based access control: the built-in roles the scenario may assign (names, ids, actions
//! and notActions from reference §6), the action each endpoint needs, and the check of a
//! principal's assignments against a resource id (subscription, resource group or resource
//! scope, case-insensitive, as ARM compares ids).

/// A built-in role definition.
#[derive(Debug)]
pub struct RoleDef {
    pub name: &'static str,
    pub id: &'static str,
    pub actions: &'static [&'static str],
    pub not_actions: &'static [&'static str],
    /// Data-plane actions (`dataActions`): Storage's blob operations, Logs Ingestion.
    pub data_actions: &'static [&'static str],
}

/// The built-in roles the emulator knows.
pub const ROLES: &[RoleDef] = &[
    RoleDef {
        name: "Microsoft Sentinel Responder",
        id: "3e150937-b8fe-4cfb-8069-0eaf05ecd056",
        actions: &[
            "Microsoft.SecurityInsights/*/read",
            "Microsoft.SecurityInsights/incidents/*",
            "Microsoft.SecurityInsights/cases/*",
            "Microsoft.SecurityInsights/automationRules/*",
            "Microsoft.SecurityInsights/entities/runPlaybook/action",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/*/read",
            "Microsoft.OperationalInsights/workspaces/query/read",
            "Microsoft.OperationalInsights/workspaces/query/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        not_actions: &[
            "Microsoft.SecurityInsights/incidents/*/Delete",
            "Microsoft.SecurityInsights/cases/*/Delete",
            "Microsoft.SecurityInsights/ConfidentialWatchlists/*",
        ],
        data_actions: &[],
    },
    RoleDef {
        name: "Microsoft Sentinel Reader",
        id: "8d289c81-5878-46d4-8554-54e1e3d8b5cb",
        actions: &[
            "Microsoft.SecurityInsights/*/read",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/*/read",
            "Microsoft.OperationalInsights/workspaces/query/read",
            "Microsoft.OperationalInsights/workspaces/query/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        not_actions: &["Microsoft.SecurityInsights/ConfidentialWatchlists/*"],
        data_actions: &[],
    },
    RoleDef {
        name: "Log Analytics Reader",
        id: "73c42c96-874c-492b-b04d-ab87d138a893",
        actions: &[
            "*/read",
            "Microsoft.OperationalInsights/workspaces/analytics/query/action",
            "Microsoft.OperationalInsights/workspaces/search/action",
        ],
        not_actions: &["Microsoft.OperationalInsights/workspaces/sharedKeys/read"],
        data_actions: &[],
    },
    RoleDef {
        name: "Security Reader",
        id: "39bc4728-0917-49c7-9d2c-d95423bc2eb4",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Security/*/read",
            "Microsoft.OperationalInsights/workspaces/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        name: "Security Admin",
        id: "fb1c8493-542b-48eb-b624-b4c8fea62acd",
        actions: &[
            "Microsoft.Authorization/*/read",
            "Microsoft.Authorization/policyAssignments/*",
            "Microsoft.Authorization/policyDefinitions/*",
            "Microsoft.Security/*",
            "Microsoft.OperationalInsights/workspaces/*/read",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        name: "Reader",
        id: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
        actions: &["*/read"],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        name: "Contributor",
        id: "b24988ac-6180-42a0-ab88-20f7382dd24c",
        actions: &["*"],
        not_actions: &[
            "Microsoft.Authorization/*/Delete",
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/elevateAccess/Action",
        ],
        data_actions: &[],
    },
    RoleDef {
        name: "Owner",
        id: "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
        actions: &["*"],
        not_actions: &[],
        data_actions: &[],
    },
    RoleDef {
        name: "Storage Blob Data Contributor",
        id: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/write",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/delete",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/move/action",
            "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action",
        ],
    },
    RoleDef {
        name: "Storage Blob Data Reader",
        id: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
        actions: &[
            "Microsoft.Storage/storageAccounts/blobServices/containers/read",
            "Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey/action",
        ],
        not_actions: &[],
        data_actions: &["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
    },
    RoleDef {
        name: "Monitoring Metrics Publisher",
        id: "3913510d-42f4-4e42-8a64-420c390055eb",
        actions: &[
            "Microsoft.Insights/Register/Action",
            "Microsoft.Support/*",
            "Microsoft.Resources/subscriptions/resourceGroups/read",
        ],
        not_actions: &[],
        data_actions: &[
            "Microsoft.Insights/Metrics/Write",
            "Microsoft.Insights/Telemetry/Write",
        ],
    },
];

/// Looks a role up by name or id (case-insensitive), also accepting the full role definition id.
pub fn find_role(name_or_id: &str) -> Option<&'static RoleDef> {
    let key = name_or_id
        .rsplit('/')
        .next()
        .unwrap_or(name_or_id)
        .to_ascii_lowercase();
    ROLES
        .iter()
        .find(|r| r.name.to_ascii_lowercase() == key || r.id == key)
}

/// Does an action pattern (with `*` wildcards) match an action? `/*/` also matches `/`, so
/// `workspaces/*/read` covers `workspaces/read`.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let a = action.to_ascii_lowercase();
    if glob(&p, &a) {
        return true;
    }
    if p.contains("/*/") {
        return glob(&p.replacen("/*/", "/", 1), &a);
    }
    false
}

fn glob(p: &str, s: &str) -> bool {
    let (pb, sb) = (p.as_bytes(), s.as_bytes());
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < sb.len() {
        if pi < pb.len() && pb[pi] == sb[si] {
            pi += 1;
            si += 1;
        } else if pi < pb.len() && pb[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(sp) = star {
            pi = sp + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < pb.len() && pb[pi] == b'*' {
        pi += 1;
    }
    pi == pb.len()
}

/// Does a role grant an action?
pub fn role_grants(role: &RoleDef, action: &str) -> bool {
    role.actions.iter().any(|p| action_matches(p, action))
        && !role.not_actions.iter().any(|p| action_matches(p, action))
}

/// Does a role grant a data action (its `dataActions`; `*` in `actions` grants none)?
pub fn role_grants_data(role: &RoleDef, data_action: &str) -> bool {
    role.data_actions
        .iter()
        .any(|p| action_matches(p, data_action))
}

/// Is `resource` at or under `scope` (case-insensitive, on a segment boundary)?
pub fn scope_covers(scope: &str, resource: &str) -> bool {
    let s = scope.trim_end_matches('/').to_ascii_lowercase();
    let r = resource.trim_end_matches('/').to_ascii_lowercase();
    r == s || (r.starts_with(&s) && r.as_bytes().get(s.len()) == Some(&b'/')) || s == "/"
}

/// Checks the syntax of an assignment scope.
pub fn valid_scope(scope: &str) -> bool {
    let lower = scope.to_ascii_lowercase();
    lower.starts_with("/subscriptions/") && scope.len() > "/subscriptions/".len()
        || lower.starts_with("/providers/microsoft.management/managementgroups/")
        || scope == "/"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_grant_what_the_reference_says() {
        let responder = find_role("Microsoft Sentinel Responder").unwrap();
        assert!(role_grants(
            responder,
            "Microsoft.SecurityInsights/incidents/write"
        ));
        assert!(role_grants(
            responder,
            "Microsoft.SecurityInsights/incidents/comments/write"
        ));
        assert!(role_grants(
            responder,
            "Microsoft.OperationalInsights/workspaces/query/read"
        ));
        assert!(role_grants(
            responder,
            "Microsoft.OperationalInsights/workspaces/read"
        ));
        assert!(!role_grants(
            responder,
            "Microsoft.SecurityInsights/incidents/delete"
        ));
        assert!(!role_grants(
            responder,
            "Microsoft.Security/locations/alerts/resolve/action"
        ));
        let reader = find_role("8d289c81-5878-46d4-8554-54e1e3d8b5cb").unwrap();
        assert!(role_grants(
            reader,
            "Microsoft.SecurityInsights/incidents/read"
        ));
        assert!(!role_grants(
            reader,
            "Microsoft.SecurityInsights/incidents/write"
        ));
        let admin = find_role("security admin").unwrap();
        assert!(role_grants(
            admin,
            "Microsoft.Security/locations/alerts/inProgress/action"
        ));
        let la = find_role("Log Analytics Reader").unwrap();
        assert!(role_grants(
            la,
            "Microsoft.OperationalInsights/workspaces/query/read"
        ));
        assert!(!role_grants(
            la,
            "Microsoft.OperationalInsights/workspaces/sharedKeys/read"
        ));
    }

    #[test]
    fn scopes() {
        assert!(scope_covers(
            "/subscriptions/A",
            "/subscriptions/a/resourceGroups/x"
        ));
        assert!(!scope_covers(
            "/subscriptions/a/resourceGroups/x",
            "/subscriptions/a/resourceGroups/xy"
        ));
        assert!(scope_covers(
            "/subscriptions/a/resourceGroups/x",
            "/subscriptions/a/resourcegroups/X/providers/p"
        ));
    }
}
