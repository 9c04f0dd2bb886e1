//! Deterministic identifiers: GUIDs, ETags and Defender for Cloud alert names, drawn from a
//! generator seeded from the scenario so that the same scenario gives the same ids.

use chrono::{DateTime, Utc};

/// A small deterministic generator (SplitMix64).
#[derive(Debug, Clone)]
pub struct IdGen {
    state: u64,
}

impl IdGen {
    /// A generator seeded from arbitrary bytes (the scenario text, a tenant id…).
    pub fn from_seed(seed: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(seed);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        IdGen {
            state: u64::from_le_bytes(bytes),
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniformly drawn number in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A version-4-shaped GUID in lower case.
    pub fn guid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let b = (b & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
        format!(
            "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xFFFF,
            a & 0x0FFF,
            b >> 48,
            b & 0xFFFF_FFFF_FFFF
        )
    }

    /// An ETag as Sentinel writes them: `"0300bf09-0000-0000-0000-5c37296e0000"`, quotes
    /// included in the value.
    pub fn etag(&mut self) -> String {
        let a = self.next_u64();
        format!(
            "\"{:08x}-0000-0000-0000-{:012x}\"",
            a >> 32,
            a & 0xFFFF_FFFF_FFFF
        )
    }

    /// A DfC alert name, `<19-digit reverse ticks>_<GUID>`, as `VendorOriginalId` holds it.
    pub fn dfc_alert_name(&mut self, at: DateTime<Utc>) -> String {
        format!("{}_{}", reverse_ticks(at), self.guid())
    }
}

/// .NET `DateTime.MaxValue.Ticks - ticks(at)`: the 19-digit prefix of DfC alert names.
pub fn reverse_ticks(at: DateTime<Utc>) -> u64 {
    const MAX_TICKS: u64 = 3_155_378_975_999_999_999;
    const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
    let ticks = UNIX_EPOCH_TICKS
        + at.timestamp() * 10_000_000
        + i64::from(at.timestamp_subsec_nanos() / 100);
    MAX_TICKS.saturating_sub(ticks.max(0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut g = IdGen::from_seed(b"x");
        let guid = g.guid();
        assert_eq!(guid.len(), 36);
        assert_eq!(&guid[14..15], "4");
        let etag = g.etag();
        assert!(etag.starts_with('"') && etag.ends_with('"'));
        assert_eq!(etag.len(), 38);
        let at = DateTime::parse_from_rfc3339("2020-02-22T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let name = g.dfc_alert_name(at);
        let (ticks, rest) = name.split_once('_').unwrap();
        assert_eq!(ticks.len(), 19);
        assert_eq!(rest.len(), 36);
        assert_eq!(IdGen::from_seed(b"x").guid(), IdGen::from_seed(b"x").guid());
    }
}
