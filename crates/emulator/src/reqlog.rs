//! The request log (control API `GET /_emulator/requests`): every request to the emulated
//! services, with what it was answered, so tests can count reads, writes and retries.

use serde::Serialize;

/// One logged request.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub seq: u64,
    pub method: String,
    /// The path without the query string.
    pub path: String,
    pub status: u16,
    /// The scenario name of the caller, when known.
    pub principal: Option<String>,
    /// The emulator's clock at the request (RFC 3339).
    pub time: String,
    /// `token`, `identity`, `arm`, `log_analytics`, `graph`, `storage`, `kubernetes`,
    /// `logs_ingestion`.
    pub service: String,
    /// The response body's size as sent, in bytes (0 without a body).
    pub response_bytes: usize,
    /// The request's `User-Agent` header (none without one): tells two replicas apart.
    pub user_agent: Option<String>,
    /// Rows in a Log Analytics query answer; absent for other responses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
}

/// The log.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Vec<Entry>,
    next: u64,
}

impl RequestLog {
    /// Appends an entry (its `seq` is set here).
    pub fn push(&mut self, mut e: Entry) {
        self.next += 1;
        e.seq = self.next;
        self.entries.push(e);
    }

    /// The entries after `seq` `since`.
    pub fn since(&self, since: u64) -> Vec<Entry> {
        let start = self.entries.partition_point(|e| e.seq <= since);
        self.entries[start..].to_vec()
    }

    /// Empties the log (sequence numbers keep growing).
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}
