//! What the deploy tests share: dfcsync's real command line (read from the binary's own
//! `-h` output), its real environment variables (`dfcsync::config::ENV_OVERRIDES`), and the
//! configuration those variables make (`Config::load_with_env`).
#![allow(dead_code)]

pub mod arm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use dfcsync::config::{Config, ENV_OVERRIDES};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Where the image installs the binary (the Dockerfile's ENTRYPOINT).
pub const BINARY_PATH: &str = "/usr/local/bin/dfcsync";

/// A long option of a command, as `-h` prints it.
#[derive(Debug, Clone)]
pub struct Flag {
    pub long: String,
    pub takes_value: bool,
    /// `[possible values: a, b]`, when clap lists them.
    pub possible: Option<Vec<String>>,
}

/// The command line of the built binary.
#[derive(Debug)]
pub struct CliSpec {
    pub global: Vec<Flag>,
    pub commands: BTreeMap<String, Vec<Flag>>,
}

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .args(args)
        .output()
        .expect("running dfcsync");
    assert!(out.status.success(), "dfcsync {args:?} failed");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

/// The lines of one section (`Commands:`, `Options:`) of a help text.
fn section<'a>(text: &'a str, title: &str) -> Vec<&'a str> {
    text.lines()
        .skip_while(|l| l.trim() != title)
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

/// The entries of a help section: an entry starts at a line whose text starts with `-`;
/// the more indented lines after it (wrapped descriptions) belong to it.
fn entries(text: &str, title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in section(text, title) {
        let t = l.trim_start();
        if t.starts_with('-') {
            out.push(t.to_owned());
        } else if let Some(last) = out.last_mut() {
            last.push(' ');
            last.push_str(t);
        }
    }
    out
}

fn flags(text: &str) -> Vec<Flag> {
    entries(text, "Options:")
        .into_iter()
        .filter_map(|e| {
            let e = e.split_whitespace().collect::<Vec<_>>().join(" ");
            let i = e.find("--")?;
            let rest = &e[i + 2..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(rest.len());
            let long = rest[..end].to_owned();
            let after = rest[end..].trim_start();
            let possible = e.find("[possible values: ").map(|p| {
                let r = &e[p + "[possible values: ".len()..];
                r[..r.find(']').unwrap_or(r.len())]
                    .split(", ")
                    .map(str::to_owned)
                    .collect()
            });
            Some(Flag {
                long,
                takes_value: after.starts_with('<'),
                possible,
            })
        })
        .collect()
}

/// Reads the command line from `dfcsync -h` and `dfcsync <command> -h`.
pub fn cli() -> CliSpec {
    let top = help(&["-h"]);
    // Command lines are indented by two spaces; wrapped descriptions by more.
    let names: Vec<String> = section(&top, "Commands:")
        .into_iter()
        .filter(|l| l.starts_with("  ") && !l[2..].starts_with(' '))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|n| n != "help")
        .collect();
    assert!(
        names.iter().any(|n| n == "sync"),
        "no sync command in dfcsync -h:\n{top}"
    );
    let commands = names
        .iter()
        .map(|n| (n.clone(), flags(&help(&[n, "-h"]))))
        .collect();
    CliSpec {
        global: flags(&top),
        commands,
    }
}

/// Commands a production image has: it is built without the `emulator` feature.
pub fn in_production_build(command: &str) -> bool {
    !matches!(command, "demo" | "emulator")
}

impl CliSpec {
    /// Checks a container's argument vector (after the binary) against the real command
    /// line, then has the built binary parse it (see [`parses`]); returns the command it
    /// runs.
    pub fn check_args(&self, args: &[String]) -> Result<String, String> {
        let command = self.check_names(args)?;
        parses(args)?;
        Ok(command)
    }

    /// The options and commands of an argument vector are those `-h` lists, with a value
    /// where they take one, among the possible values when clap lists them.
    fn check_names(&self, args: &[String]) -> Result<String, String> {
        let mut command: Option<&str> = None;
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            if let Some(long) = a.strip_prefix("--") {
                let (name, inline) = match long.split_once('=') {
                    Some((n, v)) => (n, Some(v.to_owned())),
                    None => (long, None),
                };
                let known = match command {
                    Some(c) => self.commands[c]
                        .iter()
                        .chain(self.global.iter())
                        .find(|f| f.long == name),
                    None => self.global.iter().find(|f| f.long == name),
                };
                let flag = known.ok_or_else(|| match command {
                    Some(c) => format!("dfcsync {c} has no option --{name}"),
                    None => format!("dfcsync has no global option --{name}"),
                })?;
                if flag.takes_value {
                    let value = match inline {
                        Some(v) => v,
                        None => {
                            i += 1;
                            args.get(i)
                                .cloned()
                                .ok_or(format!("--{name} needs a value"))?
                        }
                    };
                    if let Some(p) = &flag.possible
                        && !p.contains(&value)
                    {
                        return Err(format!("--{name} {value}: not one of {p:?}"));
                    }
                }
            } else if a.starts_with('-') {
                return Err(format!("{a}: use long options in deployment files"));
            } else if command.is_none() {
                if !self.commands.contains_key(a) {
                    return Err(format!("dfcsync has no command {a:?}"));
                }
                if !in_production_build(a) {
                    return Err(format!(
                        "dfcsync {a} is not in the image (built --no-default-features)"
                    ));
                }
                command = Some(a.as_str());
            } else {
                return Err(format!("unexpected argument {a:?}"));
            }
            i += 1;
        }
        command
            .map(str::to_owned)
            .ok_or("no command in the arguments".into())
    }
}

/// Has the built binary parse `args` followed by `--help`. clap parses every argument
/// before it acts on `--help`, and runs the value parsers (the `--changed-within` duration,
/// say) as it goes, so a success means dfcsync accepts these values; with `--help` it then
/// prints the help and exits, reading no configuration and touching nothing.
pub fn parses(args: &[String]) -> Result<(), String> {
    let out = Command::new(env!("CARGO_BIN_EXE_dfcsync"))
        .args(args)
        .arg("--help")
        .output()
        .map_err(|e| format!("running dfcsync: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "dfcsync refuses {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// How long a row may take to become visible to queries after its event, at the most we
/// plan for: a change window must cover a schedule period and this.
pub const INGESTION_ALLOWANCE: Duration = Duration::from_secs(5 * 60);

/// Checks the two schedules of a deployment: a change read every N minutes (`*/N * * * *`)
/// reading `--changed-within WINDOW`, and a full sync hourly at minute M (`M * * * *`).
/// M must not be a minute the change read runs at, and WINDOW must cover a period and
/// [`INGESTION_ALLOWANCE`] (the period alone would lose a row ingested late).
pub fn check_schedules(change_cron: &str, window: &str, full_cron: &str) -> Result<(), String> {
    let every: u64 = change_cron
        .strip_prefix("*/")
        .and_then(|r| r.strip_suffix(" * * * *"))
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or(format!("{change_cron:?} is not */N * * * *"))?;
    let minute: u64 = full_cron
        .strip_suffix(" * * * *")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m < 60)
        .ok_or(format!("{full_cron:?} is not M * * * * (hourly)"))?;
    if minute.is_multiple_of(every) {
        return Err(format!(
            "{full_cron:?} starts at a minute {change_cron:?} also starts at"
        ));
    }
    let window = humantime::parse_duration(window).map_err(|e| format!("{window:?}: {e}"))?;
    let period = Duration::from_secs(60 * every);
    if window < period + INGESTION_ALLOWANCE {
        return Err(format!(
            "a change window of {window:?} does not cover a period of {period:?} and {INGESTION_ALLOWANCE:?} of ingestion"
        ));
    }
    Ok(())
}

/// The value after `--flag` in an argument vector.
pub fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

/// Variables a deployment may set besides the `DFCSYNC_*` ones.
const OTHER_VARS: &[&str] = &["RUST_LOG"];

/// Checks a container's environment against dfcsync's real variables, and returns the
/// configuration dfcsync would run with (no file, as in the deployments).
pub fn check_env(env: &BTreeMap<String, String>) -> Result<Config, String> {
    check_env_with_file(env, None)
}

/// [`check_env`] with the configuration file `DFCSYNC_CONFIG` names read from `file` (a
/// local copy of what the deployment mounts there).
pub fn check_env_with_file(
    env: &BTreeMap<String, String>,
    file: Option<&std::path::Path>,
) -> Result<Config, String> {
    for name in env.keys() {
        let known = ENV_OVERRIDES.iter().any(|(v, _)| v == name)
            || name == "DFCSYNC_CONFIG"
            || OTHER_VARS.contains(&name.as_str());
        if !known {
            return Err(format!(
                "{name} is not a variable dfcsync reads (config::ENV_OVERRIDES)"
            ));
        }
    }
    let config = Config::load_with_env(file, &|k| env.get(k).cloned())
        .map_err(|e| format!("dfcsync refuses this environment: {e}"))?;
    // The Graph backend reads the credential's tenant: no workspace is needed.
    if config.sync.backend == dfcsync::config::Backend::Sentinel
        && config.file.workspaces.is_empty()
    {
        return Err("no workspace: DFCSYNC_WORKSPACES is not set".into());
    }
    Ok(config)
}
