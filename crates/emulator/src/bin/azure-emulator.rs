//! `azure-emulator`: the emulator on its own (the product's `dfcsync emulator` runs the same).

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "azure-emulator",
    about = "A local stand-in for Entra ID, ARM and Log Analytics"
)]
struct Cli {
    #[command(flatten)]
    args: emulator::cli::EmulatorArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    emulator::cli::run(Cli::parse().args).await
}
