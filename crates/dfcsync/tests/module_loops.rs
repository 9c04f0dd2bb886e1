//! No module of `dfcsync` or of the emulator imports a module that imports it back, directly
//! or through others (docs/architecture.md). The imports are read from the sources: every
//! `crate::a::b` and `super::x` path outside comments and test modules names a module (the
//! longest prefix that is a module file); the test finds the strongly connected sets of the
//! graph and fails naming them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`backend::graph::source`) → file.
fn modules(src: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if matches!(
                    parts.last().map(String::as_str),
                    Some("mod" | "lib" | "main")
                ) {
                    parts.pop();
                }
                out.insert(parts.join("::"), p);
            }
        }
    }
    out
}

/// The source without comments and without a trailing `#[cfg(test)] mod tests { … }`.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn resolve(mods: &BTreeMap<String, PathBuf>, path: &str) -> Option<String> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len())
        .rev()
        .map(|k| segs[..k].join("::"))
        .find(|m| mods.contains_key(m))
}

/// The modules each module imports (other than itself and its own ancestors).
fn imports(mods: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges = BTreeMap::new();
    for (m, file) in mods {
        let text = code(&std::fs::read_to_string(file).unwrap());
        // What `super` means in this file: the module's parent.
        let base_for_super = m
            .rsplit_once("::")
            .map_or(String::new(), |p| p.0.to_owned());
        let mut targets = BTreeSet::new();
        let mut add = |full: String| {
            if let Some(t) = resolve(mods, &full)
                && t != *m
                && !m.starts_with(&format!("{t}::"))
            {
                targets.insert(t);
            }
        };
        let bytes = text.as_bytes();
        for kw in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(i) = text[from..].find(kw) {
                let at = from + i;
                from = at + kw.len();
                if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                    continue;
                }
                let prefix = |rest: &str| -> String {
                    if kw == "crate::" || base_for_super.is_empty() {
                        rest.to_owned()
                    } else {
                        format!("{base_for_super}::{rest}")
                    }
                };
                let rest = &text[from..];
                if let Some(group) = rest.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for item in group[..end].split(',') {
                        let item = item.trim().split("::").next().unwrap_or("").trim();
                        if !item.is_empty() {
                            add(prefix(item));
                        }
                    }
                } else {
                    let path: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                        .collect();
                    add(prefix(path.trim_end_matches(':')));
                }
            }
        }
        edges.insert(m.clone(), targets);
    }
    edges
}

/// The strongly connected sets of more than one module (Tarjan).
fn loops(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(lw));
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low[v];
                t.low.insert(v, lv.min(iw));
            }
        }
        if t.low[v] == t.index[v] {
            let mut set = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                set.push(w.to_owned());
                if w == v {
                    break;
                }
            }
            if set.len() > 1 {
                set.sort();
                t.out.push(set);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn the_finder_finds_a_loop() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_owned(), BTreeSet::from(["b".to_owned()]));
    edges.insert("b".to_owned(), BTreeSet::from(["c".to_owned()]));
    edges.insert("c".to_owned(), BTreeSet::from(["a".to_owned()]));
    edges.insert("d".to_owned(), BTreeSet::from(["a".to_owned()]));
    assert_eq!(loops(&edges), vec![vec!["a", "b", "c"]]);
}

#[test]
fn dfcsync_has_no_import_loop() {
    let mods = modules(&crate_src("dfcsync"));
    let edges = imports(&mods);
    assert!(
        edges["cycle"].contains("backend") && edges["backend::graph::sink"].contains("act"),
        "the imports are read: {:?}",
        edges["cycle"]
    );
    assert_eq!(loops(&edges), Vec::<Vec<String>>::new());
}

#[test]
fn the_emulator_has_no_import_loop() {
    let mods = modules(&crate_src("emulator"));
    let edges = imports(&mods);
    assert!(mods.len() > 20, "{:?}", mods.keys());
    assert_eq!(loops(&edges), Vec::<Vec<String>>::new());
}
