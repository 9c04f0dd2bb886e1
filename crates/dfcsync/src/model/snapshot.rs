//! The snapshot: what the decision engine sees of one workspace at one instant.
//!
//! It is built from `SecurityIncident` and `SecurityAlert` rows by `observe` and read by
//! `decide`. Incidents or alerts whose rows could not be read are kept as such (with the
//! reason), so that the engine holds exactly the incidents they touch.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{AlertStatus, IncidentStatus, Mark};

/// One workspace's incidents and alerts, as of the rows read.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Incidents whose rows were read. The builder sorts them by number, then name (the
    /// engine's order), but the engine does not rely on it.
    pub incidents: Vec<IncidentState>,
    /// Incidents whose own rows could not be read: they are held with the reason.
    pub unreadable_incidents: Vec<HeldInput>,
    /// The newest state of each alert by `SystemAlertId`, or why its rows could not be read.
    pub alerts: AlertMap,
    /// Rows that name no incident or alert at all (they cannot hold anything), for the report.
    pub warnings: Vec<String>,
    /// The service's clock when it answered the query, when the answer says.
    pub server_now: Option<DateTime<Utc>>,
}

/// The alerts of a snapshot by `SystemAlertId`: each alert's newest state, or why its rows
/// could not be read. An incident's [`AlertRef`]s carry the slot of their alert, so the
/// engine reaches an incident's alerts without hashing (ids are hashed with FxHash when they
/// are: they come from Sentinel, not from an adversary).
#[derive(Debug, Clone, Default)]
pub struct AlertMap {
    slots: rustc_hash::FxHashMap<Arc<str>, u32>,
    entries: Vec<(Arc<str>, Result<AlertState, String>)>,
}

impl AlertMap {
    /// The map a builder assembled: `slots` gives each id's index in `entries`.
    pub(crate) fn from_parts(
        slots: rustc_hash::FxHashMap<Arc<str>, u32>,
        entries: Vec<(Arc<str>, Result<AlertState, String>)>,
    ) -> Self {
        debug_assert_eq!(slots.len(), entries.len());
        Self { slots, entries }
    }

    /// Adds (or replaces) an alert.
    pub fn insert(&mut self, id: Arc<str>, state: Result<AlertState, String>) {
        match self.slots.get(&id) {
            Some(&slot) => self.entries[slot as usize].1 = state,
            None => {
                let slot = slot_number(self.entries.len());
                self.slots.insert(id.clone(), slot);
                self.entries.push((id, state));
            }
        }
    }

    /// The alert with this `SystemAlertId`, if the snapshot has a row of it.
    pub fn get(&self, id: &str) -> Option<&Result<AlertState, String>> {
        let &slot = self.slots.get(id)?;
        self.entries.get(slot as usize).map(|(_, state)| state)
    }

    /// The alert an incident's reference names. The slot is a shortcut that is checked (the
    /// reference may come from another snapshot); the id decides.
    pub fn at(&self, alert: &AlertRef) -> Option<&Result<AlertState, String>> {
        if let Some((id, state)) = alert.slot.and_then(|s| self.entries.get(s as usize))
            && (Arc::ptr_eq(id, &alert.id) || **id == *alert.id)
        {
            return Some(state);
        }
        self.get(&alert.id)
    }

    /// A reference to the alert with this id, resolved against this map (the id is shared
    /// with the map's own copy when the map has the alert).
    pub fn reference(&self, id: &str) -> AlertRef {
        match self.slots.get_key_value(id) {
            Some((key, &slot)) => AlertRef {
                id: key.clone(),
                slot: Some(slot),
            },
            None => AlertRef::new(id.into()),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every alert with its id, in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Result<AlertState, String>)> {
        self.entries.iter().map(|(id, state)| (&**id, state))
    }

    /// The alerts' states (those whose rows could be read).
    pub fn states(&self) -> impl Iterator<Item = &AlertState> {
        self.entries
            .iter()
            .filter_map(|(_, state)| state.as_ref().ok())
    }
}

/// Two maps are equal when they hold the same alerts with the same states, whatever the
/// order they were added in.
impl PartialEq for AlertMap {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(id, state)| other.get(id) == Some(state))
    }
}

impl FromIterator<(Arc<str>, Result<AlertState, String>)> for AlertMap {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, Result<AlertState, String>)>>(iter: I) -> Self {
        let mut map = Self::default();
        for (id, state) in iter {
            map.insert(id, state);
        }
        map
    }
}

/// The slot of the `index`-th incident or alert (a workspace holds far fewer than 2^32).
pub(crate) fn slot_number(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

/// An alert an incident lists (a `SystemAlertId` of its `AlertIds`), with where the
/// snapshot's [`AlertMap`] keeps it. Two references are equal when their ids are.
#[derive(Debug, Clone)]
pub struct AlertRef {
    id: Arc<str>,
    slot: Option<u32>,
}

impl AlertRef {
    /// A reference that is not resolved yet: [`AlertMap::at`] finds it by id.
    pub fn new(id: Arc<str>) -> Self {
        Self { id, slot: None }
    }

    /// The `SystemAlertId`.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl std::fmt::Display for AlertRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.id)
    }
}

impl PartialEq for AlertRef {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for AlertRef {}

/// An incident that cannot be decided because its input is unreadable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldInput {
    pub incident: String,
    pub incident_number: Option<i64>,
    pub reason: String,
}

/// The current state of one incident: its newest row plus what its history tells. Texts
/// that repeat across incidents (titles, people, products, classifications) are shared.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentState {
    /// `IncidentName`: the GUID that names the incident in the ARM API.
    pub name: Arc<str>,
    pub number: i64,
    pub title: Arc<str>,
    pub status: IncidentStatus,
    /// When the incident entered its current status: the `LastModifiedTime` of the oldest row
    /// of the newest unbroken run of rows with this status.
    pub status_since: DateTime<Utc>,
    /// `ModifiedBy` of that row: who made the change.
    pub status_set_by: Arc<str>,
    pub created: DateTime<Utc>,
    /// `TimeGenerated` of the newest row.
    pub last_row_at: DateTime<Utc>,
    pub last_modified: DateTime<Utc>,
    pub classification: Option<Arc<str>>,
    pub classification_reason: Option<Arc<str>>,
    /// The owner's object id, UPN, e-mail or name, whichever is set; `None` when unassigned.
    pub owner: Option<Arc<str>>,
    /// `AlertIds` of the newest row (Sentinel's `SystemAlertId`s), without duplicates.
    pub alert_ids: Vec<AlertRef>,
    /// `AdditionalData.alertProductNames` of the newest row.
    pub product_names: Vec<Arc<str>>,
    /// How many alerts the service says the incident holds (Sentinel's
    /// `AdditionalData.alertsCount`), when it says: more than `alert_ids` lists means the
    /// list was cut.
    pub alerts_count: Option<u32>,
    /// Every mark this tool left on the incident, in its classification comment or comments.
    pub marks: Vec<ObservedMark>,
    /// Whether the rows carried a `Comments` column. Without it, marks in comments are unknown
    /// here and must be read from the comments API before acting.
    pub comments_known: bool,
}

/// A comment on an incident, as the `Comments` column or the comments API gives it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Comment {
    pub message: String,
    pub created: DateTime<Utc>,
}

/// A mark found on an incident, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedMark {
    pub mark: Mark,
    pub source: MarkSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkSource {
    /// In `ClassificationComment`; `current` when it is the newest row's.
    ClassificationComment { current: bool },
    /// In a comment created at this time.
    Comment { created: DateTime<Utc> },
    /// In a comment whose creation time could not be read (a shape of the service's not
    /// known, a value not a time). It counts for "already done" (guard 1 needs no time); the
    /// rules that need a comment's time pass it by, each in its safe direction.
    UndatedComment,
}

/// The current state of one alert: its newest `SecurityAlert` row plus when its status
/// last changed.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertState {
    /// `SystemAlertId`: Sentinel's id, the value in the incident's `AlertIds`.
    pub id: Arc<str>,
    pub status: AlertStatus,
    /// When the alert entered its current status: the `TimeGenerated` of the oldest row of
    /// the newest unbroken run of rows with this status (re-ingested rows do not move it).
    pub changed_at: DateTime<Utc>,
    /// `TimeGenerated` of the newest row.
    pub last_row_at: DateTime<Utc>,
    /// When the alert last became finished: the start of the newest unbroken run of Resolved
    /// or Dismissed rows (a move from one to the other, such as the echo of a close, does not
    /// start a new run). `None` while the alert is not finished.
    pub finished_since: Option<DateTime<Utc>>,
    pub product_name: Arc<str>,
    pub display_name: Arc<str>,
    /// `AlertLink`: the link to the alert in its portal.
    pub link: String,
    /// Where the alert lives in Defender for Cloud, when the row tells.
    pub address: Option<AlertAddress>,
}

/// The coordinates of a Defender for Cloud alert in the `Microsoft.Security` API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertAddress {
    /// The DfC alert name (`VendorOriginalId`).
    pub name: String,
    pub subscription_id: Arc<str>,
    pub resource_group: Option<Arc<str>>,
    /// The DfC region (`ascLocation`).
    pub location: Arc<str>,
}

impl AlertAddress {
    /// Reads the address from a DfC `AlertLink`, by key rather than by position (the blade
    /// segment varies): `…/alertId/{name}/subscriptionId/{sub}/resourceGroup/{rg}/…/location/{loc}`.
    pub fn from_alert_link(link: &str) -> Option<Self> {
        let parts: Vec<&str> = link.split(['/', '?', '#']).collect();
        let value_after = |key: &str| {
            parts
                .windows(2)
                .find(|w| w[0].eq_ignore_ascii_case(key))
                .map(|w| w[1])
                .filter(|v| !v.is_empty())
        };
        Some(Self {
            name: value_after("alertId")?.to_owned(),
            subscription_id: value_after("subscriptionId")?.into(),
            resource_group: value_after("resourceGroup").map(Into::into),
            location: value_after("location")?.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str) -> AlertState {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        AlertState {
            id: id.into(),
            status: AlertStatus::New,
            changed_at: t,
            last_row_at: t,
            finished_since: None,
            product_name: "".into(),
            display_name: "".into(),
            link: String::new(),
            address: None,
        }
    }

    #[test]
    fn references_find_their_alert_by_slot_or_by_id() {
        let one: AlertMap = [("a", Ok(alert("a"))), ("b", Err("unreadable".to_owned()))]
            .into_iter()
            .map(|(id, state)| (Arc::from(id), state))
            .collect();
        let b = one.reference("b");
        assert_eq!(one.at(&b), Some(&Err("unreadable".to_owned())));
        assert_eq!(one.at(&one.reference("missing")), None);
        // A reference resolved against another map: its slot there names another alert, so
        // the id decides.
        let other: AlertMap = [("b", Ok(alert("b"))), ("a", Ok(alert("a")))]
            .into_iter()
            .map(|(id, state)| (Arc::from(id), state))
            .collect();
        let a_in_other = other.reference("a");
        assert_eq!(a_in_other.slot, Some(1));
        assert_eq!(
            one.at(&a_in_other)
                .and_then(|r| r.as_ref().ok())
                .map(|a| &*a.id),
            Some("a")
        );
        assert_eq!(one.at(&AlertRef::new("a".into())), one.get("a"));
        assert_eq!(one.len(), 2);
        assert_eq!(one.states().count(), 1);
        assert_ne!(one, other, "b's state differs");
        let reordered: AlertMap = [("b", Err("unreadable".to_owned())), ("a", Ok(alert("a")))]
            .into_iter()
            .map(|(id, state)| (Arc::from(id), state))
            .collect();
        assert_eq!(
            one, reordered,
            "equality does not depend on the order of insertion"
        );
    }

    #[test]
    fn alert_link_is_read_by_key() {
        let link = "https://portal.azure.com/#blade/Microsoft_Azure_Security_AzureDefenderForData/AlertBlade/alertId/2517228307705103557_15add4de-1111-2222-3333-444455556666/subscriptionId/00000000-0000-0000-0000-000000000002/resourceGroup/rg-app/referencedFrom/alertDeepLink/location/westeurope";
        let a = AlertAddress::from_alert_link(link).unwrap();
        assert_eq!(
            a.name,
            "2517228307705103557_15add4de-1111-2222-3333-444455556666"
        );
        assert_eq!(&*a.subscription_id, "00000000-0000-0000-0000-000000000002");
        assert_eq!(a.resource_group.as_deref(), Some("rg-app"));
        assert_eq!(&*a.location, "westeurope");
    }

    #[test]
    fn alert_link_without_location_has_no_address() {
        assert_eq!(
            AlertAddress::from_alert_link(
                "https://portal.azure.com/#blade/X/AlertBlade/alertId/a/subscriptionId/s"
            ),
            None
        );
        assert_eq!(AlertAddress::from_alert_link(""), None);
    }
}
