//! Azure Blob Storage as a lease holder uses it (`docs/azure-services.md` §1): the scenario's
//! storage accounts and containers, block blobs with their properties and metadata, and the
//! Lease Blob state machine (available, leased, expired, breaking, broken) on the emulator's
//! clock, with the service's error codes and each lease's history (every period with its
//! lease id, holder, start and end). Pure: the HTTP layer (`http::blob`) only translates.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::ids::IdGen;

/// A Blob service error: its HTTP status, its code (`x-ms-error-code`) and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("The specified container does not exist.")]
    ContainerNotFound,
    #[error("The specified blob does not exist.")]
    BlobNotFound,
    #[error("The specified blob already exists.")]
    BlobAlreadyExists,
    #[error("There is already a lease present.")]
    LeaseAlreadyPresent,
    #[error("The lease ID specified did not match the lease ID for the blob.")]
    LeaseIdMismatchWithLeaseOperation,
    #[error("There is currently no lease on the blob.")]
    LeaseNotPresentWithLeaseOperation,
    #[error(
        "The lease ID matched, but the lease has been broken explicitly and cannot be renewed."
    )]
    LeaseIsBrokenAndCannotBeRenewed,
    #[error(
        "The lease ID matched, but the lease is currently in breaking state and cannot be acquired until it is broken."
    )]
    LeaseIsBreakingAndCannotBeAcquired,
    #[error(
        "The lease ID matched, but the lease is currently in breaking state and cannot be changed."
    )]
    LeaseIsBreakingAndCannotBeChanged,
    #[error("There is currently a lease on the blob and no lease ID was specified in the request.")]
    LeaseIdMissing,
    #[error("A lease ID was specified, but the lease for the blob has expired.")]
    LeaseLost,
    #[error("The lease ID specified did not match the lease ID for the blob.")]
    LeaseIdMismatchWithBlobOperation,
    #[error("There is currently no lease on the blob.")]
    LeaseNotPresentWithBlobOperation,
    /// A header's value is out of range or malformed (the header's name).
    #[error("The value for one of the HTTP headers is not in the correct format.")]
    InvalidHeaderValue(String),
    /// A required header is missing (the header's name).
    #[error("An HTTP header that's mandatory for this request is not specified.")]
    MissingRequiredHeader(String),
}

impl StorageError {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        use StorageError::*;
        match self {
            ContainerNotFound | BlobNotFound => 404,
            BlobAlreadyExists
            | LeaseAlreadyPresent
            | LeaseIdMismatchWithLeaseOperation
            | LeaseNotPresentWithLeaseOperation
            | LeaseIsBrokenAndCannotBeRenewed
            | LeaseIsBreakingAndCannotBeAcquired
            | LeaseIsBreakingAndCannotBeChanged => 409,
            LeaseIdMissing
            | LeaseLost
            | LeaseIdMismatchWithBlobOperation
            | LeaseNotPresentWithBlobOperation => 412,
            InvalidHeaderValue(_) | MissingRequiredHeader(_) => 400,
        }
    }

    /// The error code (`<Code>` and `x-ms-error-code`).
    pub fn code(&self) -> &'static str {
        use StorageError::*;
        match self {
            ContainerNotFound => "ContainerNotFound",
            BlobNotFound => "BlobNotFound",
            BlobAlreadyExists => "BlobAlreadyExists",
            LeaseAlreadyPresent => "LeaseAlreadyPresent",
            LeaseIdMismatchWithLeaseOperation => "LeaseIdMismatchWithLeaseOperation",
            LeaseNotPresentWithLeaseOperation => "LeaseNotPresentWithLeaseOperation",
            LeaseIsBrokenAndCannotBeRenewed => "LeaseIsBrokenAndCannotBeRenewed",
            LeaseIsBreakingAndCannotBeAcquired => "LeaseIsBreakingAndCannotBeAcquired",
            LeaseIsBreakingAndCannotBeChanged => "LeaseIsBreakingAndCannotBeChanged",
            LeaseIdMissing => "LeaseIdMissing",
            LeaseLost => "LeaseLost",
            LeaseIdMismatchWithBlobOperation => "LeaseIdMismatchWithBlobOperation",
            LeaseNotPresentWithBlobOperation => "LeaseNotPresentWithBlobOperation",
            InvalidHeaderValue(_) => "InvalidHeaderValue",
            MissingRequiredHeader(_) => "MissingRequiredHeader",
        }
    }
}

/// A lease's state (`x-ms-lease-state`), with what each state keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    Available,
    /// `expires`: none for an infinite lease.
    Leased {
        id: String,
        duration: Option<i64>,
        expires: Option<DateTime<Utc>>,
    },
    /// Broken but still locked until `until`.
    Breaking {
        id: String,
        until: DateTime<Utc>,
    },
    Broken {
        id: String,
    },
    /// The duration ran out; the id is kept until the blob is modified (`None` after), and
    /// the duration a renewal of it takes again.
    Expired {
        id: Option<String>,
        duration: i64,
    },
}

impl LeaseState {
    /// `x-ms-lease-state`.
    pub fn name(&self) -> &'static str {
        match self {
            LeaseState::Available => "available",
            LeaseState::Leased { .. } => "leased",
            LeaseState::Breaking { .. } => "breaking",
            LeaseState::Broken { .. } => "broken",
            LeaseState::Expired { .. } => "expired",
        }
    }

    /// `x-ms-lease-status`: locked while leased or breaking.
    pub fn status(&self) -> &'static str {
        match self {
            LeaseState::Leased { .. } | LeaseState::Breaking { .. } => "locked",
            _ => "unlocked",
        }
    }

    /// `x-ms-lease-duration` (only while leased): `infinite` or `fixed`.
    pub fn duration_kind(&self) -> Option<&'static str> {
        match self {
            LeaseState::Leased { duration: None, .. } => Some("infinite"),
            LeaseState::Leased { .. } => Some("fixed"),
            _ => None,
        }
    }
}

/// How a lease period ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeriodEnd {
    Released,
    Broken,
    Expired,
    /// Its id was changed (`change`): a new period starts with the new id.
    Changed,
}

impl PeriodEnd {
    pub fn name(self) -> &'static str {
        match self {
            PeriodEnd::Released => "released",
            PeriodEnd::Broken => "broken",
            PeriodEnd::Expired => "expired",
            PeriodEnd::Changed => "changed",
        }
    }
}

/// One period of a lease in a blob's history.
#[derive(Debug, Clone)]
pub struct LeasePeriod {
    pub lease_id: String,
    /// The `holder` metadata written during the period (the last one).
    pub holder: Option<String>,
    /// The blob's metadata as last written during the period.
    pub metadata: BTreeMap<String, String>,
    pub acquired_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub ended_by: Option<PeriodEnd>,
}

/// A block blob.
#[derive(Debug, Clone)]
pub struct Blob {
    pub etag: String,
    pub last_modified: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub content_length: usize,
    /// Names as written (lookups are case-insensitive, as the service's).
    pub metadata: BTreeMap<String, String>,
    pub lease: LeaseState,
    pub history: Vec<LeasePeriod>,
}

/// A container and its blobs.
#[derive(Debug, Clone)]
pub struct Container {
    pub name: String,
    pub blobs: BTreeMap<String, Blob>,
}

/// A storage account of the scenario.
#[derive(Debug, Clone)]
pub struct Account {
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub containers: Vec<Container>,
}

impl Account {
    /// The account's ARM id (the scope of its role assignments).
    pub fn arm_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Storage/storageAccounts/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }

    /// A container's ARM id (`…/blobServices/default/containers/{name}`).
    pub fn container_id(&self, container: &str) -> String {
        format!(
            "{}/blobServices/default/containers/{container}",
            self.arm_id()
        )
    }
}

/// The lease request of a Lease Blob call, its headers checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseAction {
    /// `duration`: `None` for infinite.
    Acquire {
        duration: Option<i64>,
        proposed: Option<String>,
    },
    Renew {
        id: String,
    },
    Change {
        id: String,
        proposed: String,
    },
    Release {
        id: String,
    },
    /// `period`: seconds, when given.
    Break {
        period: Option<i64>,
    },
}

/// What a successful lease call answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseOutcome {
    /// 201, 200 or 202.
    pub status: u16,
    /// `x-ms-lease-id` (acquire, renew, change).
    pub lease_id: Option<String>,
    /// `x-ms-lease-time` (break): seconds until the lease is broken.
    pub lease_time: Option<i64>,
    pub etag: String,
    pub last_modified: DateTime<Utc>,
}

/// The storage accounts of the tenant.
#[derive(Debug, Clone, Default)]
pub struct BlobStore {
    pub accounts: Vec<Account>,
}

/// A GUID-shaped id is what the service takes as a lease id.
fn valid_lease_id(s: &str) -> bool {
    s.len() == 36
        && s.chars().enumerate().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Checks a lease id header (`x-ms-lease-id` or `x-ms-proposed-lease-id`).
pub fn check_lease_id(header: &str, value: &str) -> Result<String, StorageError> {
    if valid_lease_id(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(StorageError::InvalidHeaderValue(header.to_string()))
    }
}

impl Blob {
    /// Brings the lease up to `now`: a leased one past its duration expires, a breaking one
    /// past its break period is broken (the history records the instant it happened).
    pub fn settle(&mut self, now: DateTime<Utc>) {
        match &self.lease {
            LeaseState::Leased {
                id,
                expires: Some(t),
                duration,
            } if *t <= now => {
                let (id, t, duration) = (id.clone(), *t, duration.unwrap_or(60));
                self.end_period(t, PeriodEnd::Expired);
                self.lease = LeaseState::Expired {
                    id: Some(id),
                    duration,
                };
            }
            LeaseState::Breaking { id, until } if *until <= now => {
                let (id, t) = (id.clone(), *until);
                self.end_period(t, PeriodEnd::Broken);
                self.lease = LeaseState::Broken { id };
            }
            _ => {}
        }
    }

    fn end_period(&mut self, at: DateTime<Utc>, how: PeriodEnd) {
        if let Some(p) = self.history.last_mut()
            && p.ended_at.is_none()
        {
            p.ended_at = Some(at);
            p.ended_by = Some(how);
        }
    }

    fn start_period(&mut self, id: &str, at: DateTime<Utc>) {
        let holder = holder_of(&self.metadata);
        self.history.push(LeasePeriod {
            lease_id: id.to_string(),
            holder,
            metadata: self.metadata.clone(),
            acquired_at: at,
            ended_at: None,
            ended_by: None,
        });
    }

    /// Checks a write (Put Blob, Set Blob Metadata) against the lease: the lease id it gives
    /// (`x-ms-lease-id`), if any.
    pub fn check_write(&self, lease_id: Option<&str>) -> Result<(), StorageError> {
        use LeaseState::*;
        match (&self.lease, lease_id) {
            (Leased { .. } | Breaking { .. }, None) => Err(StorageError::LeaseIdMissing),
            (Leased { id, .. } | Breaking { id, .. }, Some(given)) => {
                if id.eq_ignore_ascii_case(given) {
                    Ok(())
                } else {
                    Err(StorageError::LeaseIdMismatchWithBlobOperation)
                }
            }
            (Available, Some(_)) => Err(StorageError::LeaseNotPresentWithBlobOperation),
            (Expired { .. } | Broken { .. }, Some(_)) => Err(StorageError::LeaseLost),
            (_, None) => Ok(()),
        }
    }

    /// Records a modification: new ETag and Last-Modified; an expired lease forgets its id.
    fn modified(&mut self, etag: String, at: DateTime<Utc>) {
        self.etag = etag;
        self.last_modified = at;
        if let LeaseState::Expired { id, .. } = &mut self.lease {
            *id = None;
        }
        if let Some(p) = self.history.last_mut()
            && p.ended_at.is_none()
        {
            p.metadata = self.metadata.clone();
            p.holder = holder_of(&self.metadata);
        }
    }
}

/// The `holder` metadata (any case), else `holder_identity`.
fn holder_of(metadata: &BTreeMap<String, String>) -> Option<String> {
    let find = |key: &str| {
        metadata
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    find("holder").or_else(|| find("holder_identity"))
}

/// A new ETag, quoted, in the service's `0x8D…` shape.
fn new_etag(ids: &mut IdGen) -> String {
    let hex: String = ids.guid().chars().filter(|c| *c != '-').take(15).collect();
    format!("\"0x8D{}\"", hex.to_ascii_uppercase())
}

impl BlobStore {
    /// The account of a name (exact, as account names are lower case).
    pub fn account(&self, name: &str) -> Option<usize> {
        self.accounts.iter().position(|a| a.name == name)
    }

    fn container_mut(
        &mut self,
        account: usize,
        container: &str,
    ) -> Result<&mut Container, StorageError> {
        self.accounts[account]
            .containers
            .iter_mut()
            .find(|c| c.name == container)
            .ok_or(StorageError::ContainerNotFound)
    }

    /// A blob, its lease brought up to `now` (container checked first, as the service does).
    pub fn blob_mut(
        &mut self,
        account: usize,
        container: &str,
        blob: &str,
        now: DateTime<Utc>,
    ) -> Result<&mut Blob, StorageError> {
        let c = self.container_mut(account, container)?;
        let b = c.blobs.get_mut(blob).ok_or(StorageError::BlobNotFound)?;
        b.settle(now);
        Ok(b)
    }

    /// Put Blob (a block blob of `content_length` bytes with `metadata`): 201 on create or
    /// overwrite. `if_none_match_any`: `If-None-Match: *` (409 `BlobAlreadyExists` if it
    /// exists). An overwrite keeps the lease (with the right id) and replaces the metadata.
    #[allow(clippy::too_many_arguments)]
    pub fn put_blob(
        &mut self,
        account: usize,
        container: &str,
        blob: &str,
        content_length: usize,
        metadata: BTreeMap<String, String>,
        lease_id: Option<&str>,
        if_none_match_any: bool,
        ids: &mut IdGen,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        let etag = new_etag(ids);
        let c = self.container_mut(account, container)?;
        match c.blobs.get_mut(blob) {
            Some(b) => {
                b.settle(now);
                if if_none_match_any {
                    return Err(StorageError::BlobAlreadyExists);
                }
                b.check_write(lease_id)?;
                b.content_length = content_length;
                b.metadata = metadata;
                b.modified(etag.clone(), now);
                Ok((etag, now))
            }
            None => {
                if lease_id.is_some() {
                    return Err(StorageError::LeaseNotPresentWithBlobOperation);
                }
                c.blobs.insert(
                    blob.to_string(),
                    Blob {
                        etag: etag.clone(),
                        last_modified: now,
                        created: now,
                        content_length,
                        metadata,
                        lease: LeaseState::Available,
                        history: Vec::new(),
                    },
                );
                Ok((etag, now))
            }
        }
    }

    /// Set Blob Metadata: replaces the metadata (the lease id is needed while leased).
    #[allow(clippy::too_many_arguments)]
    pub fn set_metadata(
        &mut self,
        account: usize,
        container: &str,
        blob: &str,
        metadata: BTreeMap<String, String>,
        lease_id: Option<&str>,
        ids: &mut IdGen,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), StorageError> {
        let etag = new_etag(ids);
        let b = self.blob_mut(account, container, blob, now)?;
        b.check_write(lease_id)?;
        b.metadata = metadata;
        b.modified(etag.clone(), now);
        Ok((etag, now))
    }

    /// Lease Blob: the state machine of `docs/azure-services.md` §1.5. Does not change the
    /// blob's ETag or Last-Modified.
    pub fn lease(
        &mut self,
        account: usize,
        container: &str,
        blob: &str,
        action: LeaseAction,
        ids: &mut IdGen,
        now: DateTime<Utc>,
    ) -> Result<LeaseOutcome, StorageError> {
        let new_id = ids.guid();
        let b = self.blob_mut(account, container, blob, now)?;
        let ok = |b: &Blob, status: u16, lease_id: Option<String>, lease_time: Option<i64>| {
            Ok(LeaseOutcome {
                status,
                lease_id,
                lease_time,
                etag: b.etag.clone(),
                last_modified: b.last_modified,
            })
        };
        use LeaseState::*;
        let same = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
        match action {
            LeaseAction::Acquire { duration, proposed } => {
                let id = proposed.clone().unwrap_or(new_id);
                match &b.lease {
                    Leased { id: cur, .. } => {
                        if proposed.as_deref().is_some_and(|p| same(p, cur)) {
                            // The same id again: a new duration from now, the same period.
                            let id = cur.clone();
                            b.lease = Leased {
                                id: id.clone(),
                                duration,
                                expires: duration.map(|d| now + Duration::seconds(d)),
                            };
                            return ok(b, 201, Some(id), None);
                        }
                        Err(StorageError::LeaseAlreadyPresent)
                    }
                    Breaking { id: cur, .. } => {
                        if proposed.as_deref().is_some_and(|p| same(p, cur)) {
                            Err(StorageError::LeaseIsBreakingAndCannotBeAcquired)
                        } else {
                            Err(StorageError::LeaseAlreadyPresent)
                        }
                    }
                    Available | Broken { .. } | Expired { .. } => {
                        b.lease = Leased {
                            id: id.clone(),
                            duration,
                            expires: duration.map(|d| now + Duration::seconds(d)),
                        };
                        b.start_period(&id, now);
                        ok(b, 201, Some(id), None)
                    }
                }
            }
            LeaseAction::Renew { id } => match &b.lease {
                Leased {
                    id: cur, duration, ..
                } if same(cur, &id) => {
                    let (cur, duration) = (cur.clone(), *duration);
                    b.lease = Leased {
                        id: cur.clone(),
                        duration,
                        expires: duration.map(|d| now + Duration::seconds(d)),
                    };
                    ok(b, 200, Some(cur), None)
                }
                Expired {
                    id: Some(cur),
                    duration,
                } if same(cur, &id) => {
                    // Renewing an expired lease that nobody took (the blob unmodified): the
                    // same id and duration, a new period.
                    let (cur, duration) = (cur.clone(), *duration);
                    b.lease = Leased {
                        id: cur.clone(),
                        duration: Some(duration),
                        expires: Some(now + Duration::seconds(duration)),
                    };
                    b.start_period(&cur, now);
                    ok(b, 200, Some(cur), None)
                }
                Breaking { id: cur, .. } | Broken { id: cur } if same(cur, &id) => {
                    Err(StorageError::LeaseIsBrokenAndCannotBeRenewed)
                }
                _ => Err(StorageError::LeaseIdMismatchWithLeaseOperation),
            },
            LeaseAction::Change { id, proposed } => match &b.lease {
                Leased {
                    id: cur,
                    duration,
                    expires,
                } => {
                    if same(cur, &id) || same(cur, &proposed) {
                        let (duration, expires) = (*duration, *expires);
                        if !same(cur, &proposed) {
                            b.end_period(now, PeriodEnd::Changed);
                            b.start_period(&proposed, now);
                        }
                        b.lease = Leased {
                            id: proposed.clone(),
                            duration,
                            expires,
                        };
                        ok(b, 200, Some(proposed), None)
                    } else {
                        Err(StorageError::LeaseIdMismatchWithLeaseOperation)
                    }
                }
                Breaking { id: cur, .. } => {
                    if same(cur, &id) || same(cur, &proposed) {
                        Err(StorageError::LeaseIsBreakingAndCannotBeChanged)
                    } else {
                        Err(StorageError::LeaseIdMismatchWithLeaseOperation)
                    }
                }
                _ => Err(StorageError::LeaseNotPresentWithLeaseOperation),
            },
            LeaseAction::Release { id } => {
                let cur = match &b.lease {
                    Leased { id, .. } | Breaking { id, .. } | Broken { id } => Some(id.clone()),
                    Expired { id, .. } => id.clone(),
                    Available => None,
                };
                match cur {
                    Some(cur) if same(&cur, &id) => {
                        if matches!(b.lease, Leased { .. } | Breaking { .. }) {
                            b.end_period(now, PeriodEnd::Released);
                        }
                        b.lease = Available;
                        ok(b, 200, None, None)
                    }
                    _ => Err(StorageError::LeaseIdMismatchWithLeaseOperation),
                }
            }
            LeaseAction::Break { period } => match &b.lease {
                Available => Err(StorageError::LeaseNotPresentWithLeaseOperation),
                Leased { id, expires, .. } => {
                    let left = expires.map(|t| (t - now).num_seconds().max(0));
                    // The break period is used only when shorter than the time left; without
                    // one a fixed lease breaks when its period ends, an infinite one at once.
                    let wait = match (period, left) {
                        (Some(p), Some(l)) => p.min(l),
                        (Some(p), None) => p,
                        (None, Some(l)) => l,
                        (None, None) => 0,
                    };
                    let id = id.clone();
                    if wait == 0 {
                        b.end_period(now, PeriodEnd::Broken);
                        b.lease = Broken { id };
                    } else {
                        b.lease = Breaking {
                            id,
                            until: now + Duration::seconds(wait),
                        };
                    }
                    ok(b, 202, None, Some(wait))
                }
                Breaking { id, until } => {
                    let left = (*until - now).num_seconds().max(0);
                    let wait = period.map_or(left, |p| p.min(left));
                    let id = id.clone();
                    if wait == 0 {
                        b.end_period(now, PeriodEnd::Broken);
                        b.lease = Broken { id };
                    } else {
                        b.lease = Breaking {
                            id,
                            until: now + Duration::seconds(wait),
                        };
                    }
                    ok(b, 202, None, Some(wait))
                }
                Broken { .. } => ok(b, 202, None, Some(0)),
                Expired { id, .. } => {
                    let id = id.clone().unwrap_or_default();
                    b.lease = Broken { id };
                    ok(b, 202, None, Some(0))
                }
            },
        }
    }

    /// Breaks a blob's lease at once (control API): a leased or breaking lease is broken now.
    /// Returns whether there was a lease to break.
    pub fn break_now(
        &mut self,
        account: usize,
        container: &str,
        blob: &str,
        ids: &mut IdGen,
        now: DateTime<Utc>,
    ) -> Result<bool, StorageError> {
        match self.lease(
            account,
            container,
            blob,
            LeaseAction::Break { period: Some(0) },
            ids,
            now,
        ) {
            Ok(_) => Ok(true),
            Err(StorageError::LeaseNotPresentWithLeaseOperation) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Brings every lease up to `now` (for a view of the history).
    pub fn settle_all(&mut self, now: DateTime<Utc>) {
        for a in &mut self.accounts {
            for c in &mut a.containers {
                for b in c.blobs.values_mut() {
                    b.settle(now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaa-0000-0000-0000-000000000001";
    const B: &str = "bbbbbbbb-0000-0000-0000-000000000002";

    fn store() -> (BlobStore, IdGen, DateTime<Utc>) {
        let s = BlobStore {
            accounts: vec![Account {
                name: "st".into(),
                subscription_id: "s".into(),
                resource_group: "rg".into(),
                containers: vec![Container {
                    name: "c".into(),
                    blobs: BTreeMap::new(),
                }],
            }],
        };
        let now = DateTime::parse_from_rfc3339("2026-12-07T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        (s, IdGen::from_seed(b"t"), now)
    }

    fn acquire(d: Option<i64>, p: Option<&str>) -> LeaseAction {
        LeaseAction::Acquire {
            duration: d,
            proposed: p.map(str::to_string),
        }
    }

    #[test]
    fn the_lease_state_machine_follows_the_table() {
        let (mut s, mut ids, now) = store();
        let e = s.lease(0, "c", "b", acquire(Some(15), None), &mut ids, now);
        assert_eq!(e.unwrap_err(), StorageError::BlobNotFound);
        let e = s.lease(0, "x", "b", acquire(Some(15), None), &mut ids, now);
        assert_eq!(e.unwrap_err(), StorageError::ContainerNotFound);
        s.put_blob(0, "c", "b", 0, BTreeMap::new(), None, true, &mut ids, now)
            .unwrap();
        let e = s.put_blob(0, "c", "b", 0, BTreeMap::new(), None, true, &mut ids, now);
        assert_eq!(e.unwrap_err(), StorageError::BlobAlreadyExists);
        let o = s
            .lease(0, "c", "b", acquire(Some(15), Some(A)), &mut ids, now)
            .unwrap();
        assert_eq!((o.status, o.lease_id.as_deref()), (201, Some(A)));
        // Another holder cannot acquire; the holder can, again.
        let e = s.lease(0, "c", "b", acquire(Some(15), Some(B)), &mut ids, now);
        assert_eq!(e.unwrap_err(), StorageError::LeaseAlreadyPresent);
        assert!(
            s.lease(0, "c", "b", acquire(Some(15), Some(A)), &mut ids, now)
                .is_ok()
        );
        // Writes need the id.
        let e = s.set_metadata(0, "c", "b", BTreeMap::new(), None, &mut ids, now);
        assert_eq!(e.unwrap_err(), StorageError::LeaseIdMissing);
        let meta = BTreeMap::from([("holder".to_string(), "replica-1".to_string())]);
        s.set_metadata(0, "c", "b", meta, Some(A), &mut ids, now)
            .unwrap();
        let e = s.lease(
            0,
            "c",
            "b",
            LeaseAction::Renew { id: B.into() },
            &mut ids,
            now,
        );
        assert_eq!(
            e.unwrap_err(),
            StorageError::LeaseIdMismatchWithLeaseOperation
        );
        // 15 s later it has expired; a write with the old id has lost it.
        let later = now + Duration::seconds(15);
        let e = s.set_metadata(0, "c", "b", BTreeMap::new(), Some(A), &mut ids, later);
        assert_eq!(e.unwrap_err(), StorageError::LeaseLost);
        // Renewing the expired (unmodified) lease works.
        let o = s
            .lease(
                0,
                "c",
                "b",
                LeaseAction::Renew { id: A.into() },
                &mut ids,
                later,
            )
            .unwrap();
        assert_eq!(o.status, 200);
        // Break with a period: breaking, then broken.
        let o = s
            .lease(
                0,
                "c",
                "b",
                LeaseAction::Break { period: Some(10) },
                &mut ids,
                later,
            )
            .unwrap();
        assert_eq!((o.status, o.lease_time), (202, Some(10)));
        let e = s.lease(
            0,
            "c",
            "b",
            LeaseAction::Renew { id: A.into() },
            &mut ids,
            later,
        );
        assert_eq!(
            e.unwrap_err(),
            StorageError::LeaseIsBrokenAndCannotBeRenewed
        );
        let e = s.lease(0, "c", "b", acquire(Some(15), Some(A)), &mut ids, later);
        assert_eq!(
            e.unwrap_err(),
            StorageError::LeaseIsBreakingAndCannotBeAcquired
        );
        let broken = later + Duration::seconds(10);
        let b = s.blob_mut(0, "c", "b", broken).unwrap();
        assert_eq!(b.lease.name(), "broken");
        // Another holder takes it; change; release.
        s.lease(0, "c", "b", acquire(None, Some(B)), &mut ids, broken)
            .unwrap();
        let o = s
            .lease(
                0,
                "c",
                "b",
                LeaseAction::Change {
                    id: B.into(),
                    proposed: A.into(),
                },
                &mut ids,
                broken,
            )
            .unwrap();
        assert_eq!(o.lease_id.as_deref(), Some(A));
        let e = s.lease(
            0,
            "c",
            "b",
            LeaseAction::Release { id: B.into() },
            &mut ids,
            broken,
        );
        assert_eq!(
            e.unwrap_err(),
            StorageError::LeaseIdMismatchWithLeaseOperation
        );
        s.lease(
            0,
            "c",
            "b",
            LeaseAction::Release { id: A.into() },
            &mut ids,
            broken,
        )
        .unwrap();
        let e = s.lease(
            0,
            "c",
            "b",
            LeaseAction::Break { period: None },
            &mut ids,
            broken,
        );
        assert_eq!(
            e.unwrap_err(),
            StorageError::LeaseNotPresentWithLeaseOperation
        );
        // The history: A (expired), A again (broken), B (changed), A (released).
        let b = s.blob_mut(0, "c", "b", broken).unwrap();
        let h: Vec<(&str, Option<&str>, Option<PeriodEnd>)> = b
            .history
            .iter()
            .map(|p| (p.lease_id.as_str(), p.holder.as_deref(), p.ended_by))
            .collect();
        assert_eq!(
            h,
            vec![
                (A, Some("replica-1"), Some(PeriodEnd::Expired)),
                (A, Some("replica-1"), Some(PeriodEnd::Broken)),
                (B, Some("replica-1"), Some(PeriodEnd::Changed)),
                (A, Some("replica-1"), Some(PeriodEnd::Released)),
            ]
        );
        assert_eq!(b.history[0].ended_at, Some(now + Duration::seconds(15)));
    }
}
