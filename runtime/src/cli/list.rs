//! `berth list`.

use std::path::Path;

use berth_runtime::container;

pub fn run(root: &Path, quiet: bool, format: &str) -> anyhow::Result<()> {
    let states = container::list(root)?;
    if quiet {
        for s in &states {
            println!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let v: Vec<_> = states.iter().map(|s| s.public()).collect();
            println!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            println!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID", "PID", "STATUS", "BUNDLE", "CREATED"
            );
            for s in &states {
                let p = s.public();
                println!(
                    "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                    p.id,
                    p.pid,
                    p.status,
                    p.bundle.display(),
                    p.created,
                    if p.owner.is_empty() { "root" } else { p.owner }
                );
            }
        }
        other => anyhow::bail!("unknown --format \"{other}\" (table or json)"),
    }
    Ok(())
}
