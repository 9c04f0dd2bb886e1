//! Output column naming: generated names for unnamed expressions (`Column1`, `print_0`) and
//! the numeric-suffix rule that makes duplicate names unique [kql-semantics.md §2.11, §2.17].

use std::collections::HashSet;

/// Renames later duplicates to `name` + the smallest suffix 1, 2, … not used anywhere in the
/// list (KL `MakeColumnNamesUnique`: `[c, c, c1]` → `[c, c2, c1]`).
pub fn make_unique(names: &mut [String]) {
    let all: HashSet<String> = names.iter().cloned().collect();
    let mut taken: HashSet<String> = HashSet::new();
    for n in names.iter_mut() {
        if taken.insert(n.clone()) {
            continue;
        }
        let mut k = 1;
        loop {
            let cand = format!("{n}{k}");
            if !all.contains(&cand) && !taken.contains(&cand) {
                *n = cand.clone();
                taken.insert(cand);
                break;
            }
            k += 1;
        }
    }
}

/// Hands out `Column1`, `Column2`, … skipping names already in use.
#[derive(Default)]
pub struct ColumnNamer {
    next: usize,
}

impl ColumnNamer {
    pub fn next_name(&mut self, in_use: impl Fn(&str) -> bool) -> String {
        loop {
            self.next += 1;
            let cand = format!("Column{}", self.next);
            if !in_use(&cand) {
                return cand;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kql-semantics.md §2.11: `[c, c, c1]` → `[c, c2, c1]`; `Key` → `Key1`.
    #[test]
    fn duplicate_names_get_the_smallest_free_suffix() {
        let mut v: Vec<String> = ["c", "c", "c1"].iter().map(|s| s.to_string()).collect();
        make_unique(&mut v);
        assert_eq!(v, ["c", "c2", "c1"]);
        let mut v: Vec<String> = ["Key", "Value1", "Key", "Value2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        make_unique(&mut v);
        assert_eq!(v, ["Key", "Value1", "Key1", "Value2"]);
    }
}
