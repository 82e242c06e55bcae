//! `berth list`.

use std::path::Path;

use berth_runtime::container;

pub fn run(root: &Path, quiet: bool, format: &str) -> anyhow::Result<()> {
    let mut states = container::list(root)?;
    for s in &mut states {
        s.owner = owner_of(&root.join(&s.id));
    }
    if quiet {
        for s in &states {
            outln!("{}", s.id);
        }
        return Ok(());
    }
    match format {
        "json" => {
            let v: Vec<_> = states.iter().map(|s| s.public()).collect();
            outln!("{}", serde_json::to_string(&v)?);
        }
        "table" => {
            outln!(
                "{:<12} {:<10} {:<10} {:<40} {:<30} OWNER",
                "ID",
                "PID",
                "STATUS",
                "BUNDLE",
                "CREATED"
            );
            for s in &states {
                let p = s.public();
                outln!(
                    "{:<12} {:<10} {:<10} {:<40} {:<30} {}",
                    p.id,
                    p.pid,
                    p.status,
                    p.bundle.display(),
                    p.created,
                    p.owner
                );
            }
        }
        other => anyhow::bail!("unknown --format \"{other}\" (table or json)"),
    }
    Ok(())
}

/// The user owning a container's state directory, as runc's `list` reports it
/// (`#UID` when the uid has no name).
fn owner_of(dir: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let Ok(md) = std::fs::metadata(dir) else {
        return String::new();
    };
    berth_runtime::env::user_name(md.uid()).unwrap_or_else(|| format!("#{}", md.uid()))
}
