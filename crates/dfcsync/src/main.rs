//! The `dfcsync` command-line tool.
fn main() {}
