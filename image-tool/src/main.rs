//! `berth-image`: turn OCI images into runtime bundles.

mod cli;

use clap::Parser;

fn main() {
    let cli = cli::Cli::parse();
    if let Err(e) = cli::run(&cli) {
        eprintln!("berth-image: {e:#}");
        std::process::exit(1);
    }
}
