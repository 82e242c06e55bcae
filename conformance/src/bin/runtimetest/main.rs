//! `runtimetest`: runs as the container process and checks, from inside, that the
//! runtime applied /config.json. Prints TAP and exits 0 only if every check passed.
//!
//! Usage: `runtimetest [CHECK...]` where CHECK is one of the names in [`CHECKS`]
//! (`all` runs every one), or `file:PATH=CONTENT` / `absent:PATH` / `erofs:PATH` / `mounted:PATH` for ad-hoc
//! checks, or `fds` (only stdin, stdout and stderr are open; not part of `all`). Arguments after `--` are ignored (they exercise process.args).

mod checks;
mod procfs;
mod tap;

use checks::{fs as fscheck, linux, process};
use serde_json::Value;
use tap::Tap;

type Check = fn(&mut Tap, &Value);

const CHECKS: &[(&str, Check)] = &[
    ("args", |t, c| process::args(t, &c["process"])),
    ("env", |t, c| process::env(t, &c["process"])),
    ("cwd", |t, c| process::cwd(t, &c["process"])),
    ("user", |t, c| process::user(t, &c["process"])),
    ("rlimits", |t, c| process::rlimits(t, &c["process"])),
    ("capabilities", |t, c| {
        process::capabilities(t, &c["process"])
    }),
    ("no-new-privileges", |t, c| {
        process::no_new_privileges(t, &c["process"])
    }),
    ("oom-score-adj", |t, c| {
        process::oom_score_adj(t, &c["process"])
    }),
    ("hostname", linux::hostname),
    ("domainname", linux::domainname),
    ("namespaces", |t, c| linux::namespaces(t, &c["linux"])),
    ("sysctl", |t, c| linux::sysctl(t, &c["linux"])),
    ("cgroups", |t, c| linux::cgroups(t, &c["linux"])),
    ("id-mappings", |t, c| linux::id_mappings(t, &c["linux"])),
    ("root-readonly", fscheck::root_readonly),
    ("mounts", fscheck::mounts),
    ("default-devices", |t, _| fscheck::default_devices(t)),
    ("dev-symlinks", |t, _| fscheck::dev_symlinks(t)),
    ("linux-devices", |t, c| {
        fscheck::linux_devices(t, &c["linux"])
    }),
    ("masked-paths", |t, c| fscheck::masked_paths(t, &c["linux"])),
    ("readonly-paths", |t, c| {
        fscheck::readonly_paths(t, &c["linux"])
    }),
    ("rootfs-propagation", |t, c| {
        fscheck::rootfs_propagation(t, &c["linux"])
    }),
];

fn load_config() -> Result<Value, String> {
    let text =
        std::fs::read_to_string("/config.json").map_err(|e| format!("read /config.json: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("parse /config.json: {e}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        let names: Vec<&str> = CHECKS.iter().map(|(n, _)| *n).collect();
        println!("usage: runtimetest [all | file:PATH=CONTENT | absent:PATH | open-denied:PATH | erofs:PATH | mounted:PATH | {}]...", names.join(" | "));
        return;
    }
    let mut tap = Tap::new();
    let config = match load_config() {
        Ok(c) => c,
        Err(e) => {
            tap.check("load /config.json", Err(e));
            std::process::exit(tap.finish());
        }
    };
    let wanted: Vec<String> = if args.is_empty() {
        vec!["all".into()]
    } else {
        args
    };
    // Everything after `--` is payload for the args check, not a check name.
    let names = wanted.iter().take_while(|a| *a != "--");
    for name in names {
        if name == "fds" {
            process::only_stdio(&mut tap);
        } else if let Some(path) = name.strip_prefix("mounted:") {
            fscheck::mounted(&mut tap, path);
        } else if let Some(path) = name.strip_prefix("erofs:") {
            fscheck::erofs(&mut tap, path);
        } else if let Some(spec) = name.strip_prefix("file:") {
            fscheck::file_content(&mut tap, spec);
        } else if let Some(path) = name.strip_prefix("absent:") {
            fscheck::absent(&mut tap, path);
        } else if let Some(path) = name.strip_prefix("open-denied:") {
            fscheck::open_denied(&mut tap, path);
        } else if name == "all" {
            for (_, check) in CHECKS {
                check(&mut tap, &config);
            }
        } else if let Some((_, check)) = CHECKS.iter().find(|(n, _)| n == name) {
            check(&mut tap, &config);
        } else {
            tap.check(
                &format!("check {name}"),
                Err(format!("unknown check {name:?}")),
            );
        }
    }
    std::process::exit(tap.finish());
}
