//! The `dfcsync` command-line tool: parses the command line and runs a command.
//! Errors are reported here, once, with their chain of causes.

mod cli;
#[cfg(feature = "emulator")]
mod demo;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
