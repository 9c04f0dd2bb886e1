//! Data parallelism for the evaluator's per-row work. A frame's rows are independent for a
//! filter, a computed column, a key's hash or the result's rows: on a large frame, ranges of
//! rows go to rayon's thread pool and the results are joined back **in row order**, so a
//! query answers exactly what it answers on one thread. Small frames stay on the calling
//! thread (splitting costs more than it saves).

use rayon::prelude::*;

/// Frames with fewer rows are evaluated on the calling thread.
pub const MIN_PARALLEL_ROWS: usize = 32 * 1024;

/// Rows a task takes at least (a task per few rows would cost more than its rows).
const MIN_TASK_ROWS: usize = 4 * 1024;

/// How many hash partitions to group `n` rows in: one per thread of the pool for a large
/// frame, one for a small one.
pub fn partitions(n: usize) -> usize {
    if n < MIN_PARALLEL_ROWS {
        1
    } else {
        rayon::current_num_threads().max(1)
    }
}

/// `f(0), f(1), …, f(n - 1)`, in that order.
pub fn map<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if n < MIN_PARALLEL_ROWS || rayon::current_num_threads() == 1 {
        return (0..n).map(f).collect();
    }
    (0..n)
        .into_par_iter()
        .with_min_len(MIN_TASK_ROWS)
        .map(f)
        .collect()
}

/// `f(0), …, f(n - 1)` as `n` tasks of their own, in that order (for a few large tasks, such
/// as one per hash partition).
pub fn tasks<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    if n <= 1 {
        return (0..n).map(f).collect();
    }
    (0..n).into_par_iter().with_max_len(1).map(f).collect()
}

/// `f` of consecutive ranges covering `0..n`, in order: one range on a small frame, a few per
/// thread on a large one (for work whose output per row varies, such as `mv-expand`).
pub fn chunks<T: Send>(n: usize, f: impl Fn(std::ops::Range<usize>) -> T + Sync + Send) -> Vec<T> {
    let threads = rayon::current_num_threads();
    if n < MIN_PARALLEL_ROWS || threads == 1 {
        return vec![f(0..n)];
    }
    let size = (n / (threads * 4)).max(MIN_TASK_ROWS);
    let ranges: Vec<std::ops::Range<usize>> =
        (0..n).step_by(size).map(|s| s..(s + size).min(n)).collect();
    tasks(ranges.len(), |i| f(ranges[i].clone()))
}

/// The rows among `0..n` for which `keep` holds, ascending.
pub fn filter(n: usize, keep: impl Fn(usize) -> bool + Sync + Send) -> Vec<u32> {
    if n < MIN_PARALLEL_ROWS || rayon::current_num_threads() == 1 {
        return (0..n).filter(|&r| keep(r)).map(|r| r as u32).collect();
    }
    (0..n)
        .into_par_iter()
        .with_min_len(MIN_TASK_ROWS)
        .filter(|&r| keep(r))
        .map(|r| r as u32)
        .collect()
}

/// The rows of `rows` for which `keep` holds, in their order.
pub fn retain(rows: Vec<u32>, keep: impl Fn(usize) -> bool + Sync + Send) -> Vec<u32> {
    if rows.len() < MIN_PARALLEL_ROWS || rayon::current_num_threads() == 1 {
        let mut rows = rows;
        rows.retain(|&r| keep(r as usize));
        return rows;
    }
    rows.par_iter()
        .with_min_len(MIN_TASK_ROWS)
        .filter(|&&r| keep(r as usize))
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_and_filter_keep_row_order_on_both_sides_of_the_threshold() {
        for n in [0, 10, MIN_PARALLEL_ROWS - 1, MIN_PARALLEL_ROWS * 3 + 7] {
            assert_eq!(map(n, |r| r * 2), (0..n).map(|r| r * 2).collect::<Vec<_>>());
            let odd: Vec<u32> = (0..n as u32).filter(|r| r % 3 == 1).collect();
            assert_eq!(filter(n, |r| r % 3 == 1), odd);
            let kept: Vec<u32> = (0..n as u32).filter(|r| r % 5 == 2).collect();
            assert_eq!(retain((0..n as u32).collect(), |r| r % 5 == 2), kept);
            let joined: Vec<usize> = chunks(n, |r| r.collect::<Vec<_>>()).concat();
            assert_eq!(joined, (0..n).collect::<Vec<_>>());
        }
    }
}
