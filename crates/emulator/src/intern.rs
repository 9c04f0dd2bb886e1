//! One shared copy of each distinct text of the string cells the emulator builds: the rows of
//! one alert repeat its long texts (`Description`, `Entities`, `ExtendedProperties`,
//! `AlertLink`, …) and every row repeats a few constants, so cells built through the interner
//! share one `Arc<str>` per text instead of one allocation per cell.

use std::collections::HashSet;
use std::sync::Arc;

use crate::table::Cell;

/// Texts seen so far, each kept once.
#[derive(Debug, Clone, Default)]
pub struct Interner {
    texts: HashSet<Arc<str>>,
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

    /// Replaces the text of a string cell by its shared copy (other cells are left alone).
    pub fn share(&mut self, cell: &mut Cell) {
        if let Cell::String(s) = cell {
            let shared = self.text(s);
            *s = shared;
        }
    }

    /// How many distinct texts are kept.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// True when no text is kept.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
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
}
