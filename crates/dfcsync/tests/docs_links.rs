//! Every link of the repository's Markdown pages (the README, `docs/`, the crates' READMEs,
//! every other `*.md` outside build output) stays inside the repository, or is a public URL:
//! a relative target must name a file or folder of the repository (not one beside it, such
//! as `../shared/…`), and an anchor (`#…`) a heading of the page it points to. Public URLs
//! (`http:`, `https:`, `mailto:`) are accepted as they are, not fetched.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The repository's root folder.
fn repository_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("the repository root {}: {e}", root.display()))
}

/// The Markdown files under `root`, skipping hidden folders and build output.
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut entries: Vec<PathBuf> = entries
            .map(|e| {
                e.unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                    .path()
            })
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            let rel = p.strip_prefix(root).unwrap_or(&p);
            if p.is_dir() {
                let skip = name.starts_with('.')
                    || name == "target"
                    || rel == Path::new("fuzz/corpus")
                    || rel == Path::new("fuzz/artifacts");
                if !skip {
                    walk(root, &p, out);
                }
            } else if name.ends_with(".md") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out
}

/// The text of a page without its code: fenced blocks become empty lines, inline code spans
/// spaces (links in code are not links). Line numbers are kept.
fn without_code(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut fence: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        match &fence {
            Some(f) => {
                if trimmed.starts_with(f.as_str()) {
                    fence = None;
                }
                out.push('\n');
                continue;
            }
            None => {
                for f in ["```", "~~~"] {
                    if trimmed.starts_with(f) {
                        let n = trimmed
                            .chars()
                            .take_while(|c| *c == f.as_bytes()[0] as char);
                        fence = Some(n.collect());
                    }
                }
                if fence.is_some() {
                    out.push('\n');
                    continue;
                }
            }
        }
        // Inline code: a run of backticks up to the same run.
        let mut rest = line;
        while let Some(start) = rest.find('`') {
            out.push_str(&rest[..start]);
            let ticks = rest[start..].chars().take_while(|c| *c == '`').count();
            let after = &rest[start + ticks..];
            match after.find(&"`".repeat(ticks)) {
                Some(end) => {
                    out.push_str(&" ".repeat(ticks * 2 + end));
                    rest = &after[end + ticks..];
                }
                None => {
                    out.push_str(&rest[start..start + ticks]);
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out.push('\n');
    }
    out
}

/// The link targets of a page, with their line numbers: inline links and images
/// (`[text](target "title")`, `![alt](target)`) and reference definitions (`[x]: target`).
fn links(text: &str) -> Vec<(usize, String)> {
    let text = without_code(text);
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        // A reference definition: `[label]: target` (not a footnote, `[^1]: …`).
        if trimmed.starts_with('[')
            && !trimmed.starts_with("[^")
            && let Some(close) = trimmed.find(']')
            && trimmed[close + 1..].starts_with(':')
        {
            let target = trimmed[close + 2..].split_whitespace().next().unwrap_or("");
            out.push((n + 1, target.trim_matches(['<', '>']).to_owned()));
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            // The target ends at the `)` that balances the opening one.
            let mut depth = 0usize;
            let mut end = after.len();
            for (i, c) in after.char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' if depth == 0 => {
                        end = i;
                        break;
                    }
                    ')' => depth -= 1,
                    _ => {}
                }
            }
            let inside = after[..end].trim();
            let target = match inside.strip_prefix('<') {
                Some(t) => t.split('>').next().unwrap_or(""),
                None => inside.split_whitespace().next().unwrap_or(""),
            };
            out.push((n + 1, target.to_owned()));
            rest = &after[end.min(after.len())..];
        }
    }
    out
}

/// GitHub's anchor of a heading: lower case, letters, digits, `-` and `_` kept, spaces made
/// `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a page: its headings' (with GitHub's `-1`, `-2` for repeats) and explicit
/// `id="…"` / `name="…"` ones.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_fence = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let hashes = t.chars().take_while(|c| *c == '#').count();
        if (1..=6).contains(&hashes) && t[hashes..].starts_with(' ') {
            let base = slug(&heading_text(&t[hashes..]));
            let mut candidate = base.clone();
            let mut i = 1;
            while out.contains(&candidate) {
                candidate = format!("{base}-{i}");
                i += 1;
            }
            out.insert(candidate);
        }
        for attr in ["id=\"", "name=\""] {
            let mut rest = line;
            while let Some(at) = rest.find(attr) {
                let after = &rest[at + attr.len()..];
                let value = after.split('"').next().unwrap_or("");
                out.insert(value.to_owned());
                rest = &after[value.len()..];
            }
        }
    }
    out
}

/// A heading's text as GitHub slugs it: links reduced to their text, trailing `#`s dropped.
fn heading_text(h: &str) -> String {
    let h = h.trim().trim_end_matches('#');
    let mut out = String::new();
    let mut rest = h;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find("](") {
            Some(close) => {
                out.push_str(&after[..close]);
                let target = &after[close + 2..];
                rest = target.find(')').map_or("", |e| &target[e + 1..]);
            }
            None => {
                out.push('[');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `%20` and the like, decoded.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        if bytes[i] == b'%'
            && let Some(b) = hex
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `a/b/../c` without the file system; `None` when it climbs above its start.
fn normalize(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// What is wrong with the links of every Markdown page under `root`, one line each, naming
/// the page, the line and the target.
fn broken_links(root: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for page in markdown_files(root) {
        let rel_page = page.strip_prefix(root).unwrap_or(&page).to_path_buf();
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        for (line, target) in links(&text) {
            let at = format!("{}:{line}: ({target})", rel_page.display());
            if target.is_empty() {
                problems.push(format!("{at}: an empty link"));
                continue;
            }
            if let Some((scheme, _)) = target.split_once(':')
                && !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
            {
                if !["http", "https", "mailto"].contains(&scheme.to_ascii_lowercase().as_str()) {
                    problems.push(format!("{at}: a {scheme}: link is not a public URL"));
                }
                continue;
            }
            let (path_part, anchor) = match target.split_once('#') {
                Some((p, a)) => (p, Some(a)),
                None => (target.as_str(), None),
            };
            let path_part = path_part.split('?').next().unwrap_or("");
            let path_part = percent_decode(path_part);
            // The page itself for `#anchor`; the repository root for `/path` (as GitHub reads
            // it); else the page's folder.
            let joined = if path_part.is_empty() {
                rel_page.clone()
            } else if let Some(abs) = path_part.strip_prefix('/') {
                PathBuf::from(abs)
            } else {
                rel_page.parent().unwrap_or(Path::new("")).join(&path_part)
            };
            let Some(inside) = normalize(&joined) else {
                problems.push(format!(
                    "{at}: leaves the repository ({} is outside {})",
                    root.join(&joined).display(),
                    root.display()
                ));
                continue;
            };
            let file = root.join(&inside);
            if !file.exists() {
                problems.push(format!("{at}: {} does not exist", file.display()));
                continue;
            }
            if let Some(anchor) = anchor.filter(|a| !a.is_empty())
                && file.extension().is_some_and(|x| x == "md")
            {
                let target_text = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let anchor = percent_decode(anchor).to_lowercase();
                if !anchors(&target_text).contains(&anchor) {
                    problems.push(format!(
                        "{at}: {} has no heading or anchor #{anchor}",
                        file.display()
                    ));
                }
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_of_the_docs_resolves_inside_the_repository() {
    let root = repository_root();
    let pages = markdown_files(&root);
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap_or(p).display().to_string())
        .collect();
    // The pages the check is for are among those read.
    for expected in [
        "README.md",
        "docs/semantics.md",
        "docs/benchmarks.md",
        "crates/kql/README.md",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} not read: {names:?}"
        );
    }
    let problems = broken_links(&root);
    assert!(
        problems.is_empty(),
        "links that do not resolve inside the repository:\n{}",
        problems.join("\n")
    );
}

/// The check itself finds what it is for: a page outside the repository, a missing file, a
/// missing anchor, a non-public scheme; and accepts what is right.
#[test]
fn the_link_check_finds_broken_links() {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let root = dir.path().join("repo");
    std::fs::create_dir_all(root.join("docs")).expect("docs/");
    std::fs::create_dir_all(dir.path().join("shared/design")).expect("shared/");
    std::fs::write(dir.path().join("shared/design/semantics.md"), "# x\n").expect("write");
    std::fs::write(
        root.join("docs/page.md"),
        "# A page\n\n## Two schedules, and why\n\n## `dfcsync replay`\n",
    )
    .expect("write");
    std::fs::write(
        root.join("README.md"),
        "\
# Readme

[beside](../shared/design/semantics.md) and [missing](docs/nowhere.md),
[bad anchor](docs/page.md#no-such-heading), [file](file:///etc/passwd).

Good: [page](docs/page.md), [anchor](docs/page.md#two-schedules-and-why),
[code heading](docs/page.md#dfcsync-replay), [own](#readme), [web](https://example.com/a_(b)),
[![badge](docs/page.md)](https://example.com), [folder](docs/).

`[in code](../nowhere.md)`

```md
[in a block](../nowhere.md)
```
",
    )
    .expect("write");
    let problems = broken_links(&root);
    let joined = problems.join("\n");
    assert_eq!(problems.len(), 4, "{joined}");
    assert!(
        problems[0].contains("README.md:3: (../shared/design/semantics.md): leaves the repository"),
        "{joined}"
    );
    assert!(
        problems[1].contains("docs/nowhere.md does not exist"),
        "{joined}"
    );
    assert!(
        problems[2].contains("no heading or anchor #no-such-heading"),
        "{joined}"
    );
    assert!(
        problems[3].contains("a file: link is not a public URL"),
        "{joined}"
    );
}

/// Every `file::test` that `docs/semantics.md` names as the proof of a row is a test of that
/// name in a file `file.rs` of a crate's tests or sources.
#[test]
fn every_test_docs_semantics_names_exists() {
    let root = repository_root();
    let page = root.join("docs/semantics.md");
    let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    let mut rust_files = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e
                .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
                .path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    for krate in ["dfcsync", "emulator", "kql"] {
        for sub in ["src", "tests"] {
            walk(&root.join("crates").join(krate).join(sub), &mut rust_files);
        }
    }
    let mut named = 0;
    let mut missing = Vec::new();
    for span in text.split('`').skip(1).step_by(2) {
        let Some((file, test)) = span.split_once("::") else {
            continue;
        };
        let ident = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        if !ident(file) || !ident(test) {
            continue;
        }
        named += 1;
        let found = rust_files.iter().any(|p| {
            p.file_stem().is_some_and(|s| s == file)
                && std::fs::read_to_string(p).is_ok_and(|src| src.contains(&format!("fn {test}(")))
        });
        if !found {
            missing.push(format!("{file}::{test}"));
        }
    }
    assert!(
        named >= 40,
        "only {named} tests named in {}",
        page.display()
    );
    assert!(
        missing.is_empty(),
        "{} names tests that do not exist: {missing:?}",
        page.display()
    );
}
