//! Skipping a test whose tool or host feature is missing, and CI's rule on it.
//!
//! Outside CI a skip prints why and the test returns. Under `scripts/test.sh`
//! (`BERTH_CI=1`) a skip is a failure, unless its key is listed in
//! `BERTH_CI_ALLOW_SKIP` (comma-separated: the steps test.sh declares
//! optional); every skip is also appended to `BERTH_SKIP_LOG`, which test.sh
//! prints at the end. A missing tool in CI is then never a silent pass.

use std::io::Write;

/// Whether the skip `key` is allowed here (always outside CI).
fn allowed(key: &str) -> bool {
    if std::env::var_os("BERTH_CI").is_none_or(|v| v.is_empty() || v == "0") {
        return true;
    }
    std::env::var("BERTH_CI_ALLOW_SKIP")
        .unwrap_or_default()
        .split(',')
        .any(|k| k.trim() == key)
}

/// Report a skip of the current test: `key` names the missing thing
/// ("podman", "pure-cgroup2-host", ...), `why` says it for people. Panics
/// (fails the test) in CI unless `key` is allowed. The caller returns after.
#[track_caller]
pub fn skip(key: &str, why: &str) {
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed>")
        .to_string();
    let line = format!("{test}: [{key}] {why}");
    eprintln!("SKIP {line}");
    if let Some(path) = std::env::var_os("BERTH_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
    if !allowed(key) {
        panic!(
            "skipped in CI, which counts as a failure ([{key}] {why}); \
             install what is missing or add {key:?} to BERTH_CI_ALLOW_SKIP in scripts/test.sh"
        );
    }
}
