//! The compiled-filter cache (one entry per profile and root) and `features`.

use super::*;

fn cache_entries(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join(CACHE_DIR))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn compiled_profiles_are_cached_once_per_root() {
    use std::os::unix::fs::MetadataExt;
    let mut sb = Sandbox::new("sc-cache");
    let profile = allow_profile(
        json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::EACCES}]),
    );
    sb.bundle.set("/linux/seccomp", profile.clone());
    sb.bundle.sh(&format!(
        "{T_FN}\nt status grep Seccomp: /proc/self/status\nt mkdir mkdir /tmp/x"
    ));
    let check = |out: &Out| {
        out.expect_ok();
        let r = results(out);
        assert_eq!(get(&r, "status", out).msg, "Seccomp: 2", "{r:#?}");
        expect_err(&r, "mkdir", "Permission denied", out);
    };

    let a = sb.id("a");
    check(&run(&sb, &a));
    let entries = cache_entries(&sb.root);
    assert_eq!(
        entries.len(),
        1,
        "cache after the first container: {entries:?}"
    );
    let file = entries[0].clone();
    assert_eq!(
        file.extension().and_then(|e| e.to_str()),
        Some("bpf"),
        "{file:?}"
    );
    let meta1 = std::fs::metadata(&file).unwrap();
    assert_eq!(
        meta1.mode() & 0o022,
        0,
        "cache file is group/other writable"
    );

    // Same profile, another container (kept created, so `list` has something).
    let b = sb.id("b");
    let guard = sb.created(&b);
    let entries = cache_entries(&sb.root);
    assert_eq!(
        entries,
        vec![file.clone()],
        "the same profile added a cache entry"
    );
    let meta2 = std::fs::metadata(&file).unwrap();
    assert_eq!(
        (meta1.ino(), meta1.mtime_nsec()),
        (meta2.ino(), meta2.mtime_nsec()),
        "the cache file was rewritten"
    );

    // `berth list` does not show the cache directory.
    for args in [
        &["list"][..],
        &["list", "-q"][..],
        &["list", "--format", "json"][..],
    ] {
        let out = sb.berth(args);
        out.expect_ok();
        assert!(
            !out.stdout.contains(CACHE_DIR),
            "`berth {}` shows the cache: {}",
            args.join(" "),
            out.stdout
        );
        assert!(
            out.stdout.contains(&b),
            "`berth {}` does not show {b}: {}",
            args.join(" "),
            out.stdout
        );
    }
    drop(guard);

    // A different profile gets its own entry.
    let mut other = profile.clone();
    other["syscalls"][0]["errnoRet"] = json!(libc::EPERM);
    sb.bundle.set("/linux/seccomp", other);
    let c = sb.id("c");
    run(&sb, &c).expect_ok();
    assert_eq!(
        cache_entries(&sb.root).len(),
        2,
        "{:?}",
        cache_entries(&sb.root)
    );

    // Four creates racing on a new profile: all succeed, one entry, no temp files.
    let mut racing = profile.clone();
    racing["syscalls"][0]["errnoRet"] = json!(libc::EROFS);
    sb.bundle.set("/linux/seccomp", racing);
    sb.bundle.args(&["true"]);
    sb.bundle.save();
    let ids: Vec<String> = (0..4).map(|n| sb.id(&format!("race{n}"))).collect();
    let outs: Vec<Out> = std::thread::scope(|s| {
        let hs: Vec<_> = ids
            .iter()
            .map(|id| {
                let sb = &sb;
                s.spawn(move || sb.berth(&["create", "--bundle", &sb.bundle_arg(), id]))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for o in &outs {
        o.expect_ok();
    }
    for id in &ids {
        sb.berth(&["delete", "--force", id]).expect_ok();
    }
    let entries = cache_entries(&sb.root);
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e.extension().is_some_and(|x| x == "bpf")),
        "{entries:?}"
    );
    sb.bundle.sh(&format!(
        "{T_FN}\nt status grep Seccomp: /proc/self/status\nt mkdir mkdir /tmp/x"
    ));

    // A corrupt entry is ignored, rewritten, and the filter still applies.
    sb.bundle.set("/linux/seccomp", profile);
    std::fs::write(&file, b"BSCB garbage").unwrap();
    let d = sb.id("d");
    check(&run(&sb, &d));
    assert_eq!(
        std::fs::metadata(&file).unwrap().len(),
        meta1.len(),
        "corrupt cache entry not rewritten"
    );
    assert_eq!(
        cache_entries(&sb.root).len(),
        3,
        "{:?}",
        cache_entries(&sb.root)
    );
}

/// `berth features` reports seccomp as enabled with NOTIFY.
#[test]
fn features_report_seccomp() {
    let sb = Sandbox::new("sc-features");
    let out = sb.berth(&["features"]);
    out.expect_ok();
    let f: Value = serde_json::from_str(&out.stdout).unwrap();
    let s = &f["linux"]["seccomp"];
    assert_eq!(s["enabled"], json!(true), "{s:#}");
    assert!(
        s["actions"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("SCMP_ACT_NOTIFY"))),
        "{s:#}"
    );
    assert!(
        s["archs"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("SCMP_ARCH_X86_64"))),
        "{s:#}"
    );
}
