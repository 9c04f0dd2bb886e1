//! One shared copy of each distinct text of the string cells the emulator builds: the rows of
//! one alert repeat its long texts (`Description`, `Entities`, `ExtendedProperties`,
//! `AlertLink`, …) and every row repeats a few constants, so cells built through the interner
//! share one `Arc<str>` per text instead of one allocation per cell. Dynamic cells are kept
//! the same way, by content: an incident's rows repeat its `Owner`, `Comments`, `AlertIds`,
//! `AdditionalData`, … from one row to the next, and many incidents have equal ones (`[]`, an
//! unassigned owner, the same product and tactics), so equal dynamic values share one
//! `Arc<serde_json::Value>`. The sets hash with `rustc-hash` (FxHash): loading a large
//! history hashes every cell, and SipHash took a sixth of the load's time.

use std::collections::HashSet;
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use serde_json::Value as Json;

use kql::Value as Cell;

/// Texts and dynamic values seen so far, each kept once.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    texts: HashSet<Arc<str>, FxBuildHasher>,
    dynamics: HashSet<Arc<Json>, FxBuildHasher>,
}

impl Interner {
    /// The shared copy of `text`.
    pub fn text(&mut self, text: &str) -> Arc<str> {
        if let Some(t) = self.texts.get(text) {
            return t.clone();
        }
        let t: Arc<str> = Arc::from(text);
        self.texts.insert(t.clone());
        t
    }

    /// A string cell holding the shared copy of `text`.
    pub fn cell(&mut self, text: &str) -> Cell {
        Cell::String(self.text(text))
    }

    /// The shared copy of a dynamic value equal to `value` (`value` itself when it is the
    /// first of its content).
    pub fn dynamic(&mut self, value: Arc<Json>) -> Arc<Json> {
        if let Some(v) = self.dynamics.get(&*value) {
            return v.clone();
        }
        self.dynamics.insert(value.clone());
        value
    }

    /// Replaces the text of a string cell, or the value of a dynamic cell, by its shared copy
    /// (other cells are left alone).
    pub fn share(&mut self, cell: &mut Cell) {
        match cell {
            Cell::String(s) => {
                let shared = self.text(s);
                *s = shared;
            }
            Cell::Dynamic(v) => {
                let shared = self.dynamic(v.clone());
                *v = shared;
            }
            _ => {}
        }
    }

    /// How many distinct texts are kept.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// How many distinct dynamic values are kept.
    pub fn dynamic_len(&self) -> usize {
        self.dynamics.len()
    }

    /// True when no text and no dynamic value is kept.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty() && self.dynamics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_share_one_allocation() {
        let mut i = Interner::default();
        let a = i.text("Suspicious process executed");
        let b = i.text(&String::from("Suspicious process executed"));
        assert!(Arc::ptr_eq(&a, &b));
        let mut c = Cell::string("Suspicious process executed");
        i.share(&mut c);
        match &c {
            Cell::String(s) => assert!(Arc::ptr_eq(s, &a)),
            other => panic!("{other:?}"),
        }
        let mut n = Cell::Long(3);
        i.share(&mut n);
        assert_eq!(n, Cell::Long(3));
        assert_eq!(i.text("other").as_ref(), "other");
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn equal_dynamic_values_share_one_allocation() {
        let mut i = Interner::default();
        let owner = || serde_json::json!({"objectId": null, "ownerType": "Unknown"});
        let mut a = Cell::dynamic(owner());
        let mut b = Cell::dynamic(owner());
        let mut other = Cell::dynamic(serde_json::json!({"objectId": "u1", "ownerType": "User"}));
        let mut one = Cell::dynamic(serde_json::json!(1));
        let mut one_real = Cell::dynamic(serde_json::json!(1.0));
        for c in [&mut a, &mut b, &mut other, &mut one, &mut one_real] {
            i.share(c);
        }
        let arc = |c: &Cell| match c {
            Cell::Dynamic(v) => v.clone(),
            other => panic!("{other:?}"),
        };
        assert!(Arc::ptr_eq(&arc(&a), &arc(&b)));
        assert!(!Arc::ptr_eq(&arc(&a), &arc(&other)));
        // Values that differ only in their number's type stay apart (they print apart).
        assert!(!Arc::ptr_eq(&arc(&one), &arc(&one_real)));
        assert_eq!(a, Cell::dynamic(owner()));
        assert_eq!(i.dynamic_len(), 4);
        assert_eq!(i.len(), 0);
        assert!(!i.is_empty());
    }
}
