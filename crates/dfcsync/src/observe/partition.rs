//! Partitions of a whole read: how many, so that no answer nears Log Analytics' limits on
//! one answer (500,000 records and about 100 MiB of raw data, reference §2.7; past them the
//! service answers a `PartialError` and dfcsync acts on nothing of that answer).
//!
//! A whole read is split by `IncidentNumber % modulus`. The modulus is chosen from a cheap
//! counting query ([`count_query`](super::query::count_query)) before the read: the rows of
//! the window, spread evenly over the partitions (incident numbers are consecutive), must
//! stay under a quarter of each limit. A partition whose answer is refused anyway (a burst
//! of comments, an estimate gone wrong) is split in two, `r mod m` into `r mod 2m` and
//! `r + m mod 2m`, and read again, down to [`MAX_MODULUS`]. Pure: no I/O.

use super::query::Partition;

/// Log Analytics' record limit on one answer.
pub const MAX_ANSWER_ROWS: u64 = 500_000;
/// Log Analytics' size limit on one answer (~100 MiB of raw data).
pub const MAX_ANSWER_BYTES: u64 = 104_857_600;
/// The share of each limit a partition aims for: a quarter, so that an estimate off by
/// four still reads whole.
const TARGET_SHARE: u64 = 4;
/// A generous bound on the bytes one row of a read takes in the answer: the projected
/// columns of an incident row (names, title, owner, alert ids, product names, times, and a
/// marked comment) or an alert row (ids, names, the alert link), as JSON. The rows of the
/// emulator's realistic workspace average 434 bytes (docs/benchmarks.md, "Observe at
/// scale"); a row larger than this only makes a partition's answer larger than aimed for
/// (a quarter of the limit), and the split handles an answer refused anyway.
pub const BYTES_PER_ROW_ESTIMATE: u64 = 1_024;
/// The most partitions a read is split into (then a partition's answer is refused, the read
/// fails, and the failure is reported).
pub const MAX_MODULUS: u32 = 1 << 16;

/// What the counting query found, summed over the workspaces one query reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadSize {
    pub incident_rows: u64,
    pub alert_rows: u64,
}

impl ReadSize {
    /// The rows a whole read answers at most (the scope only removes rows).
    pub fn rows(&self) -> u64 {
        self.incident_rows.saturating_add(self.alert_rows)
    }
}

/// The modulus of a whole read of `size`: a power of two (so that splitting a partition
/// keeps the others as they are), at least 1.
pub fn modulus_for(size: ReadSize) -> u32 {
    let rows = size.rows();
    let by_rows = rows.div_ceil(MAX_ANSWER_ROWS / TARGET_SHARE);
    let by_bytes = rows
        .saturating_mul(BYTES_PER_ROW_ESTIMATE)
        .div_ceil(MAX_ANSWER_BYTES / TARGET_SHARE);
    let needed = by_rows.max(by_bytes).max(1);
    let pow2 = needed.checked_next_power_of_two().unwrap_or(u64::MAX);
    u32::try_from(pow2.min(u64::from(MAX_MODULUS))).unwrap_or(MAX_MODULUS)
}

/// The partitions of a whole read with this modulus.
pub fn partitions(modulus: u32) -> impl Iterator<Item = Partition> {
    let modulus = modulus.max(1);
    (0..modulus).map(move |residue| Partition { modulus, residue })
}

/// The two halves of a partition whose answer was refused, or `None` when it cannot be
/// split further.
pub fn split(p: Partition) -> Option<[Partition; 2]> {
    let modulus = p.modulus.checked_mul(2).filter(|m| *m <= MAX_MODULUS)?;
    Some([
        Partition {
            modulus,
            residue: p.residue,
        },
        Partition {
            modulus,
            residue: p.residue + p.modulus,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_workspace_is_read_whole() {
        assert_eq!(modulus_for(ReadSize::default()), 1);
        assert_eq!(
            modulus_for(ReadSize {
                incident_rows: 10_000,
                alert_rows: 10_000
            }),
            1
        );
    }

    #[test]
    fn the_modulus_keeps_each_partition_under_a_quarter_of_both_limits() {
        for rows in [50_000u64, 100_000, 1_000_000, 3_100_000, 40_000_000] {
            let size = ReadSize {
                incident_rows: rows / 2,
                alert_rows: rows - rows / 2,
            };
            let m = u64::from(modulus_for(size));
            assert!(m.is_power_of_two());
            let per = rows.div_ceil(m);
            assert!(per <= MAX_ANSWER_ROWS / 4, "{rows} rows, modulus {m}");
            assert!(
                per * BYTES_PER_ROW_ESTIMATE <= MAX_ANSWER_BYTES / 4 + BYTES_PER_ROW_ESTIMATE,
                "{rows} rows, modulus {m}"
            );
            // And not split more than needed: half the modulus would not do.
            if m > 1 {
                let half = (m / 2).max(1);
                let per = rows.div_ceil(half);
                assert!(
                    per > MAX_ANSWER_ROWS / 4
                        || per * BYTES_PER_ROW_ESTIMATE > MAX_ANSWER_BYTES / 4,
                    "{rows} rows: modulus {m} where {half} would do"
                );
            }
        }
        assert_eq!(
            modulus_for(ReadSize {
                incident_rows: u64::MAX,
                alert_rows: u64::MAX
            }),
            MAX_MODULUS
        );
    }

    #[test]
    fn halves_cover_exactly_the_partition() {
        let p = Partition {
            modulus: 4,
            residue: 3,
        };
        let [a, b] = split(p).unwrap();
        for n in 0..64u32 {
            let in_p = n % p.modulus == p.residue;
            let in_a = n % a.modulus == a.residue;
            let in_b = n % b.modulus == b.residue;
            assert_eq!(in_p, in_a || in_b, "{n}");
            assert!(!(in_a && in_b), "{n}");
        }
        assert_eq!(
            split(Partition {
                modulus: MAX_MODULUS,
                residue: 0
            }),
            None
        );
        let all: Vec<_> = partitions(4).collect();
        assert_eq!(all.len(), 4);
        assert!(all.iter().all(|p| p.modulus == 4));
    }
}
