//! String predicates: term matching for `has`/`hasprefix`/`hassuffix`/`has_any`/`has_all`
//! (terms are maximal runs of alphanumeric characters, matched case-insensitively), and the
//! substring, prefix, suffix and equality tests, without allocating for ASCII text
//! [kql-semantics.md §3.5].

use crate::ast::StrOpKind;

#[inline]
fn is_term_char(c: char) -> bool {
    c.is_alphanumeric()
}

/// Calls `f(start, end)` for each byte range where `needle` occurs in `hay` (ASCII
/// case-insensitive unless `cs`) until it returns true. Callers lowercase non-ASCII text
/// first and pass `cs = true`.
fn find_all(hay: &str, needle: &str, cs: bool, mut f: impl FnMut(usize, usize) -> bool) -> bool {
    let hb = hay.as_bytes();
    let nb = needle.as_bytes();
    if nb.is_empty() || nb.len() > hb.len() {
        return false;
    }
    let (lo, up) = if cs {
        (nb[0], nb[0])
    } else {
        (nb[0].to_ascii_lowercase(), nb[0].to_ascii_uppercase())
    };
    for s in 0..=hb.len() - nb.len() {
        let b = hb[s];
        if b != lo && b != up {
            continue;
        }
        let window = &hb[s..s + nb.len()];
        let eq = if cs {
            window == nb
        } else {
            window.eq_ignore_ascii_case(nb)
        };
        // A match of a UTF-8 needle in UTF-8 text starts and ends on char boundaries.
        if eq && f(s, s + nb.len()) {
            return true;
        }
    }
    false
}

fn boundary_before(hay: &str, s: usize) -> bool {
    hay[..s]
        .chars()
        .next_back()
        .is_none_or(|c| !is_term_char(c))
}

fn boundary_after(hay: &str, e: usize) -> bool {
    hay[e..].chars().next().is_none_or(|c| !is_term_char(c))
}

/// `hay has needle`: needle is a whole term of hay (or a phrase of whole terms).
pub fn has(hay: &str, needle: &str, cs: bool) -> bool {
    if !(cs || hay.is_ascii() && needle.is_ascii()) {
        let h = hay.to_lowercase();
        let n = needle.to_lowercase();
        return has(&h, &n, true);
    }
    find_all(hay, needle, cs, |s, e| {
        boundary_before(hay, s) && boundary_after(hay, e)
    })
}

/// `hay hasprefix needle`: a term of hay starts with needle.
pub fn has_prefix(hay: &str, needle: &str, cs: bool) -> bool {
    if !(cs || hay.is_ascii() && needle.is_ascii()) {
        return has_prefix(&hay.to_lowercase(), &needle.to_lowercase(), true);
    }
    find_all(hay, needle, cs, |s, _| boundary_before(hay, s))
}

/// `hay hassuffix needle`: a term of hay ends with needle.
pub fn has_suffix(hay: &str, needle: &str, cs: bool) -> bool {
    if !(cs || hay.is_ascii() && needle.is_ascii()) {
        return has_suffix(&hay.to_lowercase(), &needle.to_lowercase(), true);
    }
    find_all(hay, needle, cs, |_, e| boundary_after(hay, e))
}

/// `hay contains needle` (`contains ""` is true).
pub fn contains(hay: &str, needle: &str, cs: bool) -> bool {
    if needle.is_empty() {
        return true;
    }
    if cs {
        return hay.contains(needle);
    }
    if hay.is_ascii() && needle.is_ascii() {
        return find_all(hay, needle, false, |_, _| true);
    }
    hay.to_lowercase().contains(&needle.to_lowercase())
}

/// Case-(in)sensitive equality.
pub fn equals(a: &str, b: &str, cs: bool) -> bool {
    if cs {
        a == b
    } else if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        a.to_lowercase() == b.to_lowercase()
    }
}

/// `startswith`.
pub fn starts_with(a: &str, b: &str, cs: bool) -> bool {
    if cs {
        a.starts_with(b)
    } else if a.is_ascii() && b.is_ascii() {
        a.len() >= b.len() && a.as_bytes()[..b.len()].eq_ignore_ascii_case(b.as_bytes())
    } else {
        a.to_lowercase().starts_with(&b.to_lowercase())
    }
}

/// `endswith`.
pub fn ends_with(a: &str, b: &str, cs: bool) -> bool {
    if cs {
        a.ends_with(b)
    } else if a.is_ascii() && b.is_ascii() {
        a.len() >= b.len() && a.as_bytes()[a.len() - b.len()..].eq_ignore_ascii_case(b.as_bytes())
    } else {
        a.to_lowercase().ends_with(&b.to_lowercase())
    }
}

/// Applies one of the plain string predicates (not regex).
pub fn apply(kind: StrOpKind, a: &str, b: &str, cs: bool) -> bool {
    match kind {
        StrOpKind::Equals => equals(a, b, cs),
        StrOpKind::Has => has(a, b, cs),
        StrOpKind::HasPrefix => has_prefix(a, b, cs),
        StrOpKind::HasSuffix => has_suffix(a, b, cs),
        StrOpKind::Contains => contains(a, b, cs),
        StrOpKind::StartsWith => starts_with(a, b, cs),
        StrOpKind::EndsWith => ends_with(a, b, cs),
        StrOpKind::MatchesRegex => false,
    }
}

/// Calls `f` on every atomic string of a dynamic value: array elements, bag property names
/// and values, recursively (numbers and bools as their text) [kql-semantics.md §3.5 "has on a
/// dynamic value"]. Stops early when `f` returns true.
pub fn any_atom(j: &serde_json::Value, f: &mut impl FnMut(&str) -> bool) -> bool {
    use serde_json::Value as J;
    match j {
        J::Null => false,
        J::String(s) => f(s),
        J::Bool(b) => f(if *b { "true" } else { "false" }),
        J::Number(n) => f(&n.to_string()),
        J::Array(a) => a.iter().any(|x| any_atom(x, f)),
        J::Object(m) => m.iter().any(|(k, v)| f(k) || any_atom(v, f)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // kql-semantics.md §3.5: terms are maximal alphanumeric runs.
    #[test]
    fn has_matches_whole_terms_only() {
        let s = "Kusto: ad67d136-c1db-4f9f-88ef-d94f3b6b0b5a;KustoExplorerQueryRun";
        assert!(has(s, "KustoExplorerQueryRun", false));
        assert!(has(s, "kustoexplorerqueryrun", false));
        assert!(!has(s, "Explorer", false));
        assert!(contains(s, "Explorer", false));
        assert!(has(s, "c1db", false));
        assert!(
            has("a b", "a", false),
            "short terms still match (§3.5 3-char rule)"
        );
        assert!(has("Azure Security Center", "Azure Security Center", false));
        assert!(!has(
            "Azure Security Centers",
            "Azure Security Center",
            false
        ));
        assert!(!has("x", "", false));
        assert!(has("ÄBC def", "äbc", false));
        assert!(!has("KustoX", "Kusto", true));
    }

    #[test]
    fn prefix_suffix_and_case() {
        assert!(has_prefix("hello worldwide", "WORLD", false));
        assert!(!has_prefix("helloworld", "world", false));
        assert!(has_suffix("helloworld foo", "WORLD", false));
        assert!(starts_with("Hello", "he", false));
        assert!(!starts_with("Hello", "he", true));
        assert!(ends_with("Hello", "LO", false));
        assert!(equals("New", "new", false));
        assert!(!equals("New", "new", true));
    }
}
