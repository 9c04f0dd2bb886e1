//! The mark `[dfcsync:<action>:<fingerprint>]`: the only state dfcsync keeps, written into
//! Sentinel itself (semantics.md, "Idempotency"). Its format is a contract: tests outside the
//! project compute it.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::AlertStatus;

/// What dfcsync did to an incident; the `<action>` of a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    Close,
    Activate,
    Reopen,
    Notice,
    Writeback,
}

impl ActionKind {
    pub const ALL: [ActionKind; 5] = [
        Self::Close,
        Self::Activate,
        Self::Reopen,
        Self::Notice,
        Self::Writeback,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Close => "close",
            Self::Activate => "activate",
            Self::Reopen => "reopen",
            Self::Notice => "notice",
            Self::Writeback => "writeback",
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ActionKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|a| a.as_str() == s).ok_or(())
    }
}

/// The first 16 lowercase hex digits of the SHA-256 of the alerts' `id=Status@changed_at` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 8]);

impl Fingerprint {
    /// Computes the fingerprint of an incident's alerts, exactly as semantics.md gives it:
    /// one `SystemAlertId=Status@changed_at` item per alert, sorted by id (byte order), joined
    /// with `;`, `changed_at` in RFC 3339 UTC with whole seconds (fractions dropped) and `Z`.
    pub fn of_alerts<'a, I>(alerts: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a AlertStatus, DateTime<Utc>)>,
    {
        let mut items: Vec<(&str, &AlertStatus, DateTime<Utc>)> = alerts.into_iter().collect();
        items.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        Self::of_sorted_alerts(items)
    }

    /// [`of_alerts`](Self::of_alerts) for alerts already sorted by id (byte order). The
    /// canonical string is hashed as it is written, never built.
    pub fn of_sorted_alerts<'a, I>(alerts: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a AlertStatus, DateTime<Utc>)>,
    {
        let mut hasher = Sha256::new();
        let mut previous: Option<&str> = None;
        for (id, status, at) in alerts {
            debug_assert!(previous.is_none_or(|p| p.as_bytes() <= id.as_bytes()));
            if previous.is_some() {
                hasher.update(b";");
            }
            previous = Some(id);
            hasher.update(id.as_bytes());
            hasher.update(b"=");
            hasher.update(status.as_str().as_bytes());
            hasher.update(b"@");
            match rfc3339_seconds(at) {
                Some(text) => hasher.update(text),
                None => {
                    let mut text = String::new();
                    push_rfc3339_seconds(&mut text, at);
                    hasher.update(text.as_bytes());
                }
            }
        }
        Self::from_digest(&hasher.finalize())
    }

    fn from_digest(digest: &[u8]) -> Self {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&digest[..8]);
        Self(bytes)
    }

    /// Parses 16 lowercase hex digits.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 16
            || !s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return None;
        }
        let mut bytes = [0u8; 8];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(bytes))
    }
}

/// Appends `t` as RFC 3339 in UTC with whole seconds and a `Z` (`2026-11-27T10:00:00Z`),
/// dropping any fraction. Hand-written because it runs once per alert of every incident
/// decided, where chrono's format machinery dominated the profile.
pub fn push_rfc3339_seconds(out: &mut String, t: DateTime<Utc>) {
    match rfc3339_seconds(t) {
        Some(text) => out.push_str(std::str::from_utf8(&text).unwrap_or_default()),
        // Outside RFC 3339's four-digit years: let chrono spell it.
        None => out.push_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    }
}

/// `t` as RFC 3339 with whole seconds, as ASCII on the stack; `None` outside years 0-9999.
/// The civil date comes from the day count by integer arithmetic (H. Hinnant's
/// `civil_from_days`), which is several times cheaper than asking chrono for the year, month
/// and day one by one; a test compares the two over the whole range.
fn rfc3339_seconds(t: DateTime<Utc>) -> Option<[u8; 20]> {
    let seconds = t.timestamp();
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    if !(0..=9999).contains(&year) {
        return None;
    }
    let mut buf = *b"0000-00-00T00:00:00Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, second_of_day / 3_600);
    put(14, 2, second_of_day / 60 % 60);
    put(17, 2, second_of_day % 60);
    Some(buf)
}

impl Fingerprint {
    /// The 16 lowercase hex digits (written by hand: every action's texts carry the mark).
    fn hex(&self) -> [u8; 16] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; 16];
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = DIGITS[usize::from(b >> 4)];
            out[2 * i + 1] = DIGITS[usize::from(b & 0x0f)];
        }
        out
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(std::str::from_utf8(&self.hex()).map_err(|_| fmt::Error)?)
    }
}

/// `[dfcsync:<action>:<fingerprint>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mark {
    pub action: ActionKind,
    pub fingerprint: Fingerprint,
}

const MARK_PREFIX: &str = "[dfcsync:";

impl Mark {
    pub fn new(action: ActionKind, fingerprint: Fingerprint) -> Self {
        Self {
            action,
            fingerprint,
        }
    }

    /// Every well-formed mark in a text, in order of appearance. Text that merely looks
    /// like a mark (an unknown action, a short fingerprint) is not one.
    pub fn find_all(text: &str) -> Vec<Mark> {
        let mut marks = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find(MARK_PREFIX) {
            let after = &rest[start + MARK_PREFIX.len()..];
            if let Some(mark) = Self::parse_body(after) {
                marks.push(mark);
            }
            rest = after;
        }
        marks
    }

    /// Parses `<action>:<fingerprint>]` at the start of `s`.
    fn parse_body(s: &str) -> Option<Mark> {
        let (action, rest) = s.split_once(':')?;
        let action = action.parse().ok()?;
        let fingerprint = Fingerprint::parse_hex(rest.get(..16)?)?;
        if rest.as_bytes().get(16) != Some(&b']') {
            return None;
        }
        Some(Mark::new(action, fingerprint))
    }
}

impl Mark {
    /// The longest a mark's text is, in characters (`[dfcsync:writeback:` + 16 hex + `]`).
    pub const TEXT_LEN: usize = 36;

    /// Appends the mark to `out` (what `Display` writes, without the formatting machinery).
    pub fn push_to(&self, out: &mut String) {
        out.push_str(MARK_PREFIX);
        out.push_str(self.action.as_str());
        out.push(':');
        out.push_str(std::str::from_utf8(&self.fingerprint.hex()).unwrap_or_default());
        out.push(']');
    }
}

impl fmt::Display for Mark {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::with_capacity(36);
        self.push_to(&mut text);
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact string semantics.md says is hashed, for sorted items: built, to check the
    /// fingerprint that hashes it without building it.
    fn canonical_string(items: &[(&str, &AlertStatus, DateTime<Utc>)]) -> String {
        let mut out = String::with_capacity(items.len() * 64);
        for (i, (id, status, at)) in items.iter().enumerate() {
            if i > 0 {
                out.push(';');
            }
            out.push_str(id);
            out.push('=');
            out.push_str(status.as_str());
            out.push('@');
            push_rfc3339_seconds(&mut out, *at);
        }
        out
    }
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32, ms: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 27, h, m, s).unwrap()
            + chrono::TimeDelta::milliseconds(i64::from(ms))
    }

    #[test]
    fn canonical_string_is_the_documented_example() {
        // semantics.md: alerts `b` Resolved at 10:00:00.73 and `a` New at 09:00:00 give
        // `a=New@2026-11-27T09:00:00Z;b=Resolved@2026-11-27T10:00:00Z`.
        let mut items = vec![
            ("b", &AlertStatus::Resolved, at(10, 0, 0, 730)),
            ("a", &AlertStatus::New, at(9, 0, 0, 0)),
        ];
        items.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        assert_eq!(
            canonical_string(&items),
            "a=New@2026-11-27T09:00:00Z;b=Resolved@2026-11-27T10:00:00Z"
        );
    }

    #[test]
    fn fingerprint_is_sha256_prefix_of_the_canonical_string() {
        let fp = Fingerprint::of_alerts([
            ("b", &AlertStatus::Resolved, at(10, 0, 0, 730)),
            ("a", &AlertStatus::New, at(9, 0, 0, 0)),
        ]);
        // sha256("a=New@2026-11-27T09:00:00Z;b=Resolved@2026-11-27T10:00:00Z"), computed
        // independently with `printf '%s' … | sha256sum`.
        assert_eq!(fp.to_string(), "1556419fddc5874c");
    }

    #[test]
    fn streamed_fingerprint_equals_the_canonical_one() {
        let items = [
            ("B", &AlertStatus::Dismissed, at(8, 0, 0, 0)),
            ("a", &AlertStatus::New, at(9, 0, 0, 0)),
            ("b", &AlertStatus::Resolved, at(10, 0, 0, 730)),
        ];
        for n in 0..=items.len() {
            assert_eq!(
                Fingerprint::of_sorted_alerts(items[..n].iter().copied()),
                Fingerprint::from_digest(&Sha256::digest(canonical_string(&items[..n]))),
                "{n} items"
            );
        }
        let far = Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            Fingerprint::of_sorted_alerts([("x", &AlertStatus::New, far)]),
            Fingerprint::from_digest(&Sha256::digest(canonical_string(&[(
                "x",
                &AlertStatus::New,
                far
            )])))
        );
    }

    #[test]
    fn mark_text_round_trips() {
        let fp = Fingerprint::parse_hex("0123456789abcdef").unwrap();
        let mark = Mark::new(ActionKind::Writeback, fp);
        assert_eq!(mark.to_string(), "[dfcsync:writeback:0123456789abcdef]");
        assert_eq!(fp.to_string(), "0123456789abcdef");
        assert_eq!(Mark::find_all(&mark.to_string()), vec![mark]);
    }

    #[test]
    fn fractions_are_dropped_not_rounded_and_order_does_not_matter() {
        let a = Fingerprint::of_alerts([("x", &AlertStatus::New, at(9, 0, 0, 999))]);
        let b = Fingerprint::of_alerts([("x", &AlertStatus::New, at(9, 0, 0, 0))]);
        let c = Fingerprint::of_alerts([("x", &AlertStatus::New, at(9, 0, 1, 0))]);
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn fast_time_format_agrees_with_chrono() {
        for t in [
            at(0, 0, 0, 0),
            at(23, 59, 59, 999),
            Utc.with_ymd_and_hms(1, 2, 3, 4, 5, 6).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        ] {
            let mut s = String::new();
            push_rfc3339_seconds(&mut s, t);
            assert_eq!(s, t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_time_format_agrees_with_chrono_everywhere(
            seconds in -62_200_000_000i64..260_000_000_000i64,
            nanos in 0u32..1_000_000_000,
        ) {
            let t = DateTime::<Utc>::from_timestamp(seconds, nanos).unwrap();
            let mut s = String::new();
            push_rfc3339_seconds(&mut s, t);
            proptest::prop_assert_eq!(s, t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
    }

    #[test]
    fn fast_time_format_at_the_edges() {
        for text in [
            "0000-01-01T00:00:00Z",
            "0000-02-29T23:59:59Z",
            "1900-02-28T12:00:00Z",
            "1969-12-31T23:59:59Z",
            "1970-01-01T00:00:00Z",
            "2000-02-29T00:00:00Z",
            "2100-03-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
        ] {
            let t: DateTime<Utc> = text.parse().unwrap();
            let mut s = String::new();
            push_rfc3339_seconds(&mut s, t);
            assert_eq!(s, text);
        }
    }

    #[test]
    fn ids_sort_by_bytes() {
        // 'B' (0x42) sorts before 'a' (0x61) in byte order.
        let items = [
            ("a", &AlertStatus::New, at(9, 0, 0, 0)),
            ("B", &AlertStatus::New, at(9, 0, 0, 0)),
        ];
        let fp = Fingerprint::of_alerts(items);
        let mut sorted = items.to_vec();
        sorted.sort_by(|x, y| x.0.as_bytes().cmp(y.0.as_bytes()));
        assert_eq!(sorted[0].0, "B");
        assert_eq!(
            fp,
            Fingerprint::from_digest(&Sha256::digest(canonical_string(&sorted)))
        );
    }

    #[test]
    fn mark_formats_and_parses() {
        let fp = Fingerprint::parse_hex("0123456789abcdef").unwrap();
        let mark = Mark::new(ActionKind::Close, fp);
        assert_eq!(mark.to_string(), "[dfcsync:close:0123456789abcdef]");
        let text = format!("Closed by dfcsync. {mark} and [dfcsync:reopen:fedcba9876543210]");
        let found = Mark::find_all(&text);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0], mark);
        assert_eq!(found[1].action, ActionKind::Reopen);
    }

    #[test]
    fn near_marks_are_not_marks() {
        for text in [
            "[dfcsync:close:0123456789abcde]",
            "[dfcsync:close:0123456789ABCDEF]",
            "[dfcsync:shut:0123456789abcdef]",
            "[dfcsync:close:0123456789abcdef0]",
            "[dfcsync:close:0123456789abcdef",
            "dfcsync:close:0123456789abcdef]",
            "[dfcsync:[dfcsync:close:é]",
        ] {
            assert!(Mark::find_all(text).is_empty(), "{text}");
        }
        assert_eq!(
            Mark::find_all("[dfcsync:[dfcsync:close:0123456789abcdef]").len(),
            1
        );
    }
}
