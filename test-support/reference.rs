//! The reference files beside the repository, for the tests that need them.
//!
//! A few tests check the code against files the project does not keep: Azure's published
//! OpenAPI specifications and their examples, and the original Logic App's query as the seed
//! document gave it. They live in `shared/reference/`, in a folder `shared/` that sits beside
//! the repository's folder (`../shared` from the repository root). A clone on its own has no
//! such folder; there, [`reference`] decides:
//!
//! - the file or folder is there: the test runs on it;
//! - it is not, and `CI` is set (`CI=true`, as CI services set it; `.ci/run` sets it too):
//!   the test fails, naming the path it looked for;
//! - it is not, elsewhere: the test prints one line saying what it skipped and why, and
//!   passes.
//!
//! The line is written with `std::io::stderr().write_all`, not `eprintln!`: libtest captures
//! what the print macros write in a test (and shows it only when the test fails), but not
//! what is written to the process's standard error handle directly, so `cargo test` shows
//! the line between the test results (checked with Rust 1.95).
//!
//! Each test crate includes this one file (`#[path = "…/test-support/reference.rs"] mod
//! reference;`): every crate sits at `crates/NAME`, so the repository root is two folders up
//! from its manifest.

#![allow(dead_code)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The repository's root folder.
pub fn repository_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("the repository root {}: {e}", root.display()))
}

/// The folder `shared/` beside the repository (which may not exist).
pub fn shared_dir() -> PathBuf {
    let root = repository_root();
    root.parent()
        .unwrap_or_else(|| {
            panic!(
                "the repository root {} has no parent folder",
                root.display()
            )
        })
        .join("shared")
}

/// Whether the tests run under CI: `CI` set to anything but empty, `0` or `false`.
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.trim(), "" | "0" | "false" | "FALSE" | "False"))
}

/// `shared/<relative>` beside the repository, when it exists. When it does not: under CI, a
/// panic naming the path; elsewhere `None`, after one line on standard error that names the
/// test, what it skipped (`what`) and the path it looked for.
pub fn reference(relative: &str, what: &str) -> Option<PathBuf> {
    let path = shared_dir().join(relative);
    if path.exists() {
        return Some(path);
    }
    if under_ci() {
        panic!(
            "{what}: {} does not exist; under CI (CI={:?}) the reference files must sit beside \
             the repository, in shared/ next to its folder",
            path.display(),
            std::env::var("CI").unwrap_or_default()
        );
    }
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or("a test");
    // The test, and how to run it again: `cargo test -p PACKAGE --test BINARY`.
    let line = format!(
        "skipped {test} (cargo test -p {} --test {}): {what}: {} is not there (the reference \
         files are not beside this clone: see the README; with CI=true this fails)\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_CRATE_NAME"),
        path.display()
    );
    // Not `eprintln!`: see the module's documentation.
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}
