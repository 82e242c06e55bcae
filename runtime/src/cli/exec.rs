//! `berth exec`: run a new process inside a running container.

use std::path::Path;

#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Container id.
    id: String,
    /// Command and arguments.
    #[arg(trailing_var_arg = true)]
    command: Vec<String>,
}

pub fn run(_root: &Path, a: &ExecArgs) -> anyhow::Result<i32> {
    anyhow::bail!("exec {}: not implemented yet", a.id)
}
