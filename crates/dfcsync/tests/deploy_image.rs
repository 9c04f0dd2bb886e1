//! The `Dockerfile`, checked against what it builds (Docker cannot run here): its build
//! stage runs one cargo command whose package, binary, profile, features and target exist
//! in the workspace and on this toolchain; the run stage is distroless, non-root, and
//! starts the binary where the deployment files expect it. `.ci/run` compiles the same
//! feature set (`cargo check -p dfcsync --no-default-features`).

mod deploy_support;

use std::process::Command;

use deploy_support::{BINARY_PATH, read};

/// One instruction of a Dockerfile, continuation lines joined.
#[derive(Debug)]
struct Instr {
    op: String,
    args: String,
}

#[derive(Debug)]
struct Stage {
    base: String,
    name: Option<String>,
    instrs: Vec<Instr>,
}

fn parse_dockerfile(text: &str) -> (Vec<(String, String)>, Vec<Stage>) {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.is_empty() || t.starts_with('#')) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            logical.push(std::mem::take(&mut cur));
        }
    }
    let mut args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for l in logical {
        let (op, rest) = l.split_once(char::is_whitespace).unwrap_or((&l, ""));
        let op = op.to_ascii_uppercase();
        let rest = rest.trim().to_owned();
        match (op.as_str(), stages.last_mut()) {
            ("ARG", None) => {
                let (k, v) = rest.split_once('=').unwrap_or((&rest, ""));
                args.push((k.to_owned(), v.to_owned()));
            }
            ("FROM", _) => {
                let words: Vec<&str> = rest.split_whitespace().collect();
                let base = words
                    .iter()
                    .find(|w| !w.starts_with("--"))
                    .unwrap()
                    .to_string();
                let name = words
                    .iter()
                    .position(|w| w.eq_ignore_ascii_case("AS"))
                    .map(|i| words[i + 1].to_owned());
                stages.push(Stage {
                    base,
                    name,
                    instrs: Vec::new(),
                });
            }
            (_, Some(s)) => s.instrs.push(Instr { op, args: rest }),
            (_, None) => panic!("{op} before FROM"),
        }
    }
    (args, stages)
}

fn dockerfile() -> (Vec<(String, String)>, Vec<Stage>) {
    parse_dockerfile(&read("Dockerfile"))
}

fn exec_form(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_else(|_| panic!("{s}: use the exec (JSON) form"))
}

/// The toolchain's host triple (`rustc -vV`).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let out = Command::new(rustc).arg("-vV").output().expect("rustc -vV");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .expect("host: line")
}

fn version(s: &str) -> (u32, u32) {
    let mut it = s.split('.').map(|p| p.parse::<u32>().unwrap());
    (it.next().unwrap(), it.next().unwrap_or(0))
}

/// What the build stage's cargo command says.
struct CargoBuild {
    package: String,
    target: String,
    profile: String,
    no_default_features: bool,
    features: Vec<String>,
    locked: bool,
}

fn cargo_build(stage: &Stage) -> CargoBuild {
    let runs: Vec<&Instr> = stage
        .instrs
        .iter()
        .filter(|i| i.op == "RUN" && i.args.contains("cargo"))
        .collect();
    assert_eq!(runs.len(), 1, "the build stage runs one cargo command");
    let words: Vec<&str> = runs[0]
        .args
        .split_whitespace()
        .filter(|w| !w.starts_with("--mount="))
        .collect();
    assert!(
        !runs[0].args.contains("&&") && !runs[0].args.contains(';'),
        "one command, nothing chained: {}",
        runs[0].args
    );
    assert_eq!(&words[..2], ["cargo", "build"], "{words:?}");
    let mut b = CargoBuild {
        package: String::new(),
        target: String::new(),
        profile: "dev".into(),
        no_default_features: false,
        features: Vec::new(),
        locked: false,
    };
    let mut it = words[2..].iter();
    while let Some(w) = it.next() {
        match *w {
            "--release" => b.profile = "release".into(),
            "--profile" => b.profile = it.next().unwrap().to_string(),
            "--locked" => b.locked = true,
            "--no-default-features" => b.no_default_features = true,
            "--features" | "-F" => b.features.push(it.next().unwrap().to_string()),
            "-p" | "--package" => b.package = it.next().unwrap().to_string(),
            "--target" => b.target = it.next().unwrap().to_string(),
            other => panic!("unexpected cargo argument {other}"),
        }
    }
    b
}

#[test]
fn the_build_stage_builds_the_release_binary_without_the_emulator() {
    let (args, stages) = dockerfile();
    assert_eq!(stages.len(), 2, "a build stage and a run stage");
    let build = &stages[0];
    let b = cargo_build(build);
    assert!(b.locked, "--locked: the image builds what Cargo.lock pins");

    // The package and its binary.
    let manifest: toml::Value = toml::from_str(&read("crates/dfcsync/Cargo.toml")).unwrap();
    assert_eq!(
        manifest["package"]["name"].as_str(),
        Some(b.package.as_str())
    );
    let bins = manifest["bin"].as_array().unwrap();
    assert!(bins.iter().any(|x| x["name"].as_str() == Some("dfcsync")));

    // Features: the defaults are exactly the emulator, so --no-default-features leaves it
    // out and nothing else; no feature is added back.
    let features = manifest["features"].as_table().unwrap();
    let default: Vec<&str> = features["default"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(default, ["emulator"]);
    assert!(b.no_default_features);
    assert!(b.features.is_empty(), "{:?}", b.features);

    // The profile is the one the workspace tunes for what it ships.
    let workspace: toml::Value = toml::from_str(&read("Cargo.toml")).unwrap();
    assert_eq!(b.profile, "release");
    assert!(
        workspace["profile"]["release"].is_table(),
        "[profile.release] in the workspace Cargo.toml"
    );

    // The target is this toolchain's (the musl target is not installable here), so the
    // release binary CI checks is the one the image ships.
    assert_eq!(b.target, host_triple());
    assert_eq!(b.target, "x86_64-unknown-linux-gnu");

    // The builder's Rust is new enough for the crate.
    let msrv = manifest["package"]["rust-version"].as_str().unwrap();
    let rust_version = args
        .iter()
        .find(|(k, _)| k == "RUST_VERSION")
        .map(|(_, v)| v.clone())
        .expect("ARG RUST_VERSION");
    assert!(build.base.contains("${RUST_VERSION}"), "{}", build.base);
    assert!(
        version(&rust_version) >= version(msrv),
        "builder Rust {rust_version} < rust-version {msrv}"
    );
    assert!(
        build.base.contains("bookworm"),
        "the builder's glibc is distroless cc-debian12's (bookworm)"
    );
}

#[test]
fn the_run_stage_is_distroless_non_root_and_starts_the_binary() {
    let (_, stages) = dockerfile();
    let (build, run) = (&stages[0], &stages[1]);
    let b = cargo_build(build);
    // glibc build: distroless "cc" (libc, libgcc_s); a musl build could use "static".
    assert!(
        run.base.starts_with("gcr.io/distroless/cc-"),
        "{}: the gnu binary needs glibc",
        run.base
    );
    let workdir = build
        .instrs
        .iter()
        .rev()
        .find(|i| i.op == "WORKDIR")
        .map(|i| i.args.clone())
        .expect("WORKDIR in the build stage");
    let copy = run
        .instrs
        .iter()
        .find(|i| i.op == "COPY")
        .expect("COPY of the binary");
    let words: Vec<&str> = copy.args.split_whitespace().collect();
    assert_eq!(
        words[0],
        format!("--from={}", build.name.as_deref().unwrap())
    );
    assert_eq!(
        words[1],
        format!("{workdir}/target/{}/{}/dfcsync", b.target, b.profile)
    );
    assert_eq!(words[2], BINARY_PATH);
    let entry = run
        .instrs
        .iter()
        .find(|i| i.op == "ENTRYPOINT")
        .expect("ENTRYPOINT");
    assert_eq!(exec_form(&entry.args), [BINARY_PATH]);
    let user = run
        .instrs
        .iter()
        .rev()
        .find(|i| i.op == "USER")
        .expect("USER");
    let uid = user.args.split(':').next().unwrap();
    assert!(
        uid == "nonroot" || uid.parse::<u32>().is_ok_and(|u| u != 0),
        "USER {}",
        user.args
    );
    // `dfcsync run` in a container must listen beyond loopback.
    let env = run
        .instrs
        .iter()
        .find(|i| i.op == "ENV" && i.args.starts_with("DFCSYNC_LISTEN="))
        .expect("ENV DFCSYNC_LISTEN");
    let (k, v) = env.args.split_once('=').unwrap();
    assert!(dfcsync::config::ENV_OVERRIDES.iter().any(|(n, _)| *n == k));
    let addr: std::net::SocketAddr = v.parse().unwrap();
    assert!(addr.ip().is_unspecified());
    let expose = run
        .instrs
        .iter()
        .find(|i| i.op == "EXPOSE")
        .expect("EXPOSE");
    assert_eq!(expose.args, addr.port().to_string());
}

#[test]
fn the_build_context_has_the_sources_and_no_build_output() {
    let ignore = read(".dockerignore");
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(patterns.iter().any(|p| p.trim_end_matches('/') == "target"));
    assert!(patterns.contains(&".git"));
    // cargo loads the whole workspace: every crate, the manifests and the lock file.
    for needed in ["crates", "Cargo.toml", "Cargo.lock"] {
        assert!(
            !patterns.iter().any(|p| {
                let p = p.trim_end_matches('/');
                p == needed || p == "*" || needed.starts_with(&format!("{p}/"))
            }),
            ".dockerignore drops {needed}"
        );
    }
}
