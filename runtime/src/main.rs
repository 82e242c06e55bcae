//! `berth`: a runc-compatible OCI runtime.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
