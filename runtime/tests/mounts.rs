//! Mounts as runc makes them: rootfsPropagation values, propagation options
//! on bind mounts, mounts in config order, flags on bind remounts, tmpfs
//! modes and tmpcopyup, /dev, idmapped mounts. Real containers (needs root).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

/// A tmpfs the test mounts on the host (shared, so that propagation can be
/// observed), unmounted with everything below it when dropped.
struct HostTmpfs(PathBuf);

impl HostTmpfs {
    fn shared(at: &Path) -> HostTmpfs {
        std::fs::create_dir_all(at).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount a tmpfs on the host");
        let t = HostTmpfs(at.to_path_buf());
        // Its own peer group (not the one of the mount it sits on).
        for flag in [
            nix::mount::MsFlags::MS_PRIVATE,
            nix::mount::MsFlags::MS_SHARED,
        ] {
            nix::mount::mount(None::<&str>, at, None::<&str>, flag, None::<&str>).unwrap();
        }
        t
    }
}

impl Drop for HostTmpfs {
    fn drop(&mut self) {
        let prefix = format!("{}/", self.0.display());
        let mut below: Vec<String> = mount_points()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .collect();
        below.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in below {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// The optional fields (`shared:N`, `master:N`, `unbindable`) of the
/// mountinfo line for mount point `mp` in `mountinfo`.
fn optional_fields(mountinfo: &str, mp: &str) -> String {
    mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some(mp))
        .map(|l| {
            let head = l.split(" - ").next().unwrap_or("");
            head.split(' ').skip(6).collect::<Vec<_>>().join(" ")
        })
        .unwrap_or_else(|| panic!("no mount at {mp} in:\n{mountinfo}"))
}

/// `berth run` the bundle; assert success; its stdout.
#[track_caller]
fn run_ok(sb: &Sandbox) -> String {
    let id = sb.id("m");
    sb.bundle.save();
    let _c = sb.guard(&id);
    let o = sb.berth(&["run", "--bundle", &sb.bundle_arg(), &id]);
    assert_eq!(o.code, 0, "berth run failed: {o:?}");
    o.stdout
}

/// Every rootfsPropagation value runc accepts is accepted, and applies to the
/// container's root after pivot_root.
#[test]
fn rootfs_propagation_accepts_every_runc_value() {
    let mut sb = Sandbox::new("mnt-rprop");
    sb.bundle.args(&["cat", "/proc/self/mountinfo"]);
    // A cgroup v1 mount binds the host's hierarchies, which runbindable makes
    // unbindable (runc fails there as well); it is not what this test is about.
    sb.bundle.without_mount("/sys/fs/cgroup");
    for value in [
        "shared",
        "rshared",
        "slave",
        "rslave",
        "private",
        "rprivate",
        "unbindable",
        "runbindable",
    ] {
        sb.bundle.set("/linux/rootfsPropagation", json!(value));
        let info = run_ok(&sb);
        let root = optional_fields(&info, "/");
        match value {
            "shared" | "rshared" => assert!(root.contains("shared:"), "{value}: {root:?}"),
            "unbindable" | "runbindable" => assert_eq!(root, "unbindable", "{value}"),
            "private" | "rprivate" => assert_eq!(root, "", "{value}"),
            _ => {}
        }
    }
}

/// Under a shared rootfsPropagation, an `rshared` bind mount stays in the
/// host mount's peer group, so a mount made inside the container appears on
/// the host (containerd's CRI "bidirectional" mounts).
#[test]
fn rshared_bind_propagates_back_to_the_host() {
    let mut sb = Sandbox::new("mnt-rshared");
    let src = sb.dir.join("bidi");
    let host = HostTmpfs::shared(&src);
    let host_peer = optional_fields(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        src.to_str().unwrap(),
    );
    sb.bundle.set("/linux/rootfsPropagation", json!("shared"));
    sb.bundle.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_SYS_ADMIN"], "effective": ["CAP_SYS_ADMIN"], "permitted": ["CAP_SYS_ADMIN"]}),
    );
    sb.bundle.add_mount(json!({
        "destination": "/mnt/bidi", "type": "bind", "source": src, "options": ["rbind", "rshared"]
    }));
    sb.bundle.sh(
        "mkdir -p /mnt/bidi/sub && mount -t tmpfs made-inside /mnt/bidi/sub && cat /proc/self/mountinfo",
    );
    let info = run_ok(&sb);
    assert_eq!(
        optional_fields(&info, "/mnt/bidi"),
        host_peer,
        "the bind left the host's peer group:\n{info}"
    );
    let host_info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let sub = src.join("sub");
    assert!(
        host_info
            .lines()
            .any(|l| l.split(' ').nth(4) == sub.to_str() && l.contains("made-inside")),
        "the container's mount did not reach the host:\n{host_info}"
    );
    drop(host);
}

/// Under rslave, a mount the host makes after the container started shows up
/// inside it.
#[test]
fn rslave_bind_receives_host_mounts() {
    let mut sb = Sandbox::new("mnt-rslave");
    let src = sb.dir.join("fromhost");
    let host = HostTmpfs::shared(&src);
    sb.bundle.set("/linux/rootfsPropagation", json!("rslave"));
    sb.bundle.add_mount(json!({
        "destination": "/mnt/fromhost", "type": "bind", "source": src, "options": ["rbind", "rslave"]
    }));
    sb.bundle.sh(
        "touch /host/started; while [ ! -e /mnt/fromhost/late/marker ]; do sleep 0.05; done; echo seen",
    );
    let id = sb.id("m");
    sb.bundle.save();
    let _c = sb.guard(&id);
    let cmd = sb.cmd(&["run", "--bundle", &sb.bundle_arg(), &id]);
    let (mut child, out, _) = spawn_to_files(&sb, cmd, "rslave");
    assert!(wait_until(POLL_TIMEOUT, || sb
        .host
        .join("started")
        .exists()));
    let late = src.join("late");
    std::fs::create_dir(&late).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &late,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .unwrap();
    std::fs::write(late.join("marker"), "x").unwrap();
    let code = wait_child(&mut child, COMMAND_TIMEOUT, "berth run (rslave)");
    assert_eq!(code, 0);
    assert_eq!(std::fs::read_to_string(out).unwrap(), "seen\n");
    drop(host);
}

/// `shared`, `slave`, `private` and `unbindable` options on a bind mount set
/// its propagation (after pivot_root too).
#[test]
fn propagation_options_on_bind_mounts_apply() {
    let mut sb = Sandbox::new("mnt-bindprop");
    let src = sb.dir.join("src");
    let host = HostTmpfs::shared(&src);
    for (opt, dest) in [
        ("shared", "/mnt/shared"),
        ("slave", "/mnt/slave"),
        ("private", "/mnt/private"),
        ("unbindable", "/mnt/unbindable"),
    ] {
        sb.bundle.add_mount(
            json!({"destination": dest, "type": "bind", "source": src, "options": ["bind", opt]}),
        );
    }
    sb.bundle.args(&["cat", "/proc/self/mountinfo"]);
    let info = run_ok(&sb);
    // The default rootfsPropagation (rslave) makes the source a slave of the
    // host's mount first, so a shared bind is shared and a slave.
    let shared = optional_fields(&info, "/mnt/shared");
    assert!(shared.starts_with("shared:"), "{shared:?}");
    let slave = optional_fields(&info, "/mnt/slave");
    assert!(slave.starts_with("master:"), "{slave:?}");
    assert_eq!(optional_fields(&info, "/mnt/private"), "");
    assert_eq!(optional_fields(&info, "/mnt/unbindable"), "unbindable");
    drop(host);
}

/// Mounts are made in config order, so a bind whose source lies in the
/// rootfs sees the mounts made before it; a destination given as a path
/// inside the rootfs (as runc's own tests do) is taken relative to it.
#[test]
fn mounts_are_made_in_config_order() {
    mount_order(false);
}

/// The same with the binds of container sources idmapped: the detached
/// trees are made in the container's mount namespace, where the earlier
/// mounts are.
#[test]
fn mounts_are_made_in_config_order_with_idmapped_container_sources() {
    mount_order(true);
}

fn mount_order(idmapped: bool) {
    let mut sb = Sandbox::new("mnt-order");
    let rootfs = sb.bundle.rootfs();
    let src = sb.dir.join("bind-src");
    for sub in ["a/x", "b/y", "c/z"] {
        let d = src.join(sub);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("file"), format!("{sub}\n")).unwrap();
        let top = sub.split('/').next().unwrap();
        std::os::unix::fs::symlink(top, src.join(format!("sym-{top}"))).unwrap();
    }
    std::fs::create_dir_all(rootfs.join("mnt")).unwrap();
    std::fs::create_dir_all(rootfs.join("final")).unwrap();
    let r = rootfs.display().to_string();
    let s = src.display().to_string();
    for (source, dest) in [
        (format!("{s}/a"), "/mnt".to_string()),
        (format!("{s}/sym-b"), "/mnt/x".to_string()),
        (format!("{s}/c"), "/mnt/x/y".to_string()),
        (format!("{s}/sym-a"), "/mnt/x/y/z".to_string()),
        (format!("{r}/mnt/x"), format!("{r}/mnt/x/y/z/x")),
        (format!("{r}/mnt/x/y"), format!("{r}/mnt/x/y/z")),
        (format!("{r}/mnt"), format!("{r}/final")),
    ] {
        let mut m = json!({
            "source": source, "destination": dest, "type": "bind", "options": ["rbind", "rprivate"]
        });
        if idmapped && source.starts_with(&r) {
            m["options"].as_array_mut().unwrap().push(json!("idmap"));
            m["uidMappings"] = idmap(100000);
            m["gidMappings"] = idmap(100000);
        }
        sb.bundle.add_mount(m);
    }
    sb.bundle.args(&["cat", "/final/x/y/z/z/x/y/z/x/file"]);
    assert_eq!(run_ok(&sb), "a/x\n");
    assert!(
        !rootfs.join(rootfs.strip_prefix("/").unwrap()).exists(),
        "a rootfs-prefixed destination was created below the rootfs"
    );
}

/// The per-mount flags of the host mount a bind starts from.
fn set_host_flags(m: &HostTmpfs, flags: &str) {
    for opts in [
        "remount,bind,diratime,strictatime,rw,suid,dev,exec,symfollow",
        flags,
    ] {
        let st = std::process::Command::new("mount")
            .args(["-o", &format!("remount,bind,{opts}")])
            .arg(&m.0)
            .status()
            .unwrap();
        assert!(st.success(), "mount -o remount,bind,{opts}");
    }
}

/// The options of the mount at `mp` in /proc/self/mounts text.
fn mount_options(mounts: &str, mp: &str) -> Vec<String> {
    mounts
        .lines()
        .rfind(|l| l.split(' ').nth(1) == Some(mp))
        .map(|l| {
            l.split(' ')
                .nth(3)
                .unwrap()
                .split(',')
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_else(|| panic!("no {mp} in {mounts}"))
}

/// A bind remount applies exactly the flags asked for, as runc does: with
/// no flag at all the host mount's flags stay; with any flag, the others
/// are cleared (a ro source becomes rw unless `ro` is asked), except the
/// atime ones, which stay unless one is asked.
#[test]
fn bind_remount_sets_exactly_the_requested_flags() {
    let mut sb = Sandbox::new("mnt-remount");
    let src = sb.dir.join("flags");
    let host = HostTmpfs::shared(&src);
    sb.bundle.args(&["cat", "/proc/self/mounts"]);
    // (host flags, bind options, flags wanted, flags not wanted)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: [Case; 6] = [
        (
            "ro,noexec,nodiratime",
            &["bind"],
            &["ro", "noexec", "nodiratime"],
            &["rw"],
        ),
        (
            "ro,noexec,nodiratime",
            &["bind", "dev"],
            &["rw", "nodiratime"],
            &["ro", "noexec"],
        ),
        (
            "ro",
            &["bind", "nosuid", "nodev", "rprivate"],
            &["rw", "nosuid", "nodev"],
            &["ro"],
        ),
        (
            "nosuid,nodev,noexec,noatime",
            &["bind", "dev", "suid", "exec", "atime"],
            &["rw", "noatime"],
            &["nosuid", "nodev", "noexec"],
        ),
        (
            "nodev,nosuid,noexec,noatime",
            &["bind", "ro"],
            &["ro"],
            &["nosuid", "nodev", "noexec"],
        ),
        (
            "noatime",
            &["bind", "relatime"],
            &["relatime"],
            &["noatime"],
        ),
    ];
    for (host_flags, opts, want, not) in cases {
        set_host_flags(&host, host_flags);
        let mut b = sb.bundle.config.clone();
        b["mounts"].as_array_mut().unwrap().push(
            json!({"destination": "/mnt/flags", "type": "bind", "source": src, "options": opts}),
        );
        let saved = std::mem::replace(&mut sb.bundle.config, b);
        let got = mount_options(&run_ok(&sb), "/mnt/flags");
        sb.bundle.config = saved;
        for w in want {
            assert!(
                got.iter().any(|g| g == w),
                "host {host_flags}, bind {opts:?}: want {w} in {got:?}"
            );
        }
        for n in not {
            assert!(
                !got.iter().any(|g| g == n),
                "host {host_flags}, bind {opts:?}: {n} in {got:?}"
            );
        }
    }
    drop(host);
}

/// A tmpfs without `mode=` takes the mode of the directory it covers (and
/// says so in its options); an explicit `mode=` wins and leaves the directory
/// alone; a tmpfs on a new directory keeps tmpfs' default (1777).
#[test]
fn tmpfs_mode_comes_from_the_directory_it_covers() {
    let mut sb = Sandbox::new("mnt-tmpfsmode");
    let rootfs = sb.bundle.rootfs();
    std::fs::create_dir(rootfs.join("covered")).unwrap();
    std::fs::create_dir(rootfs.join("explicit")).unwrap();
    for d in ["covered", "explicit"] {
        std::fs::set_permissions(
            rootfs.join(d),
            std::os::unix::fs::PermissionsExt::from_mode(0o710),
        )
        .unwrap();
    }
    for (dest, opts) in [
        ("/covered", json!(["rw", "nodev", "nosuid"])),
        ("/explicit", json!(["rw", "nodev", "nosuid", "mode=1500"])),
        ("/non-existent/foo", json!(["rw", "nodev", "nosuid"])),
    ] {
        sb.bundle.add_mount(
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    sb.bundle
        .sh("stat -c %a /covered /explicit /non-existent/foo; grep -E ' /(covered|explicit|non-existent/foo) ' /proc/self/mounts");
    let out = run_ok(&sb);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..3], ["710", "1500", "1777"], "{out}");
    let opts = |mp: &str| mount_options(&out, mp);
    assert!(opts("/covered").contains(&"mode=710".to_string()), "{out}");
    assert!(
        opts("/explicit").contains(&"mode=1500".to_string()),
        "{out}"
    );
    assert!(
        !opts("/non-existent/foo")
            .iter()
            .any(|o| o.starts_with("mode=")),
        "{out}"
    );
    let mode = |p: &str| {
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(rootfs.join(p)).unwrap().permissions(),
        ) & 0o7777
    };
    assert_eq!(
        mode("explicit"),
        0o710,
        "the covered directory was chmod-ed"
    );
    assert_eq!(mode("non-existent/foo"), 0o755);
}

/// `tmpcopyup` (podman's --read-only, --tmpfs): the new tmpfs starts with a
/// copy of what the image has at its destination (modes and owners kept);
/// the image's directory is left untouched.
#[test]
fn tmpcopyup_copies_the_image_contents() {
    let mut sb = Sandbox::new("mnt-copyup");
    let rootfs = sb.bundle.rootfs();
    let d = rootfs.join("dir1");
    std::fs::create_dir_all(d.join("dir2")).unwrap();
    std::fs::set_permissions(
        d.join("dir2"),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    std::fs::write(d.join("dir2/file"), "from the image\n").unwrap();
    std::os::unix::fs::chown(d.join("dir2/file"), Some(1234), Some(5678)).unwrap();
    std::os::unix::fs::symlink("dir2/file", d.join("link")).unwrap();
    sb.bundle.add_mount(
        json!({"destination": "/dir1", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]}),
    );
    sb.bundle.sh(
        "stat -c '%a %u:%g' /dir1/dir2 /dir1/dir2/file; cat /dir1/link; echo new > /dir1/dir2/file; \
         grep ' /dir1 ' /proc/self/mounts | cut -d' ' -f3",
    );
    let out = run_ok(&sb);
    assert_eq!(
        out, "777 0:0\n644 1234:5678\nfrom the image\ntmpfs\n",
        "{out}"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("dir2/file")).unwrap(),
        "from the image\n",
        "the write went to the image"
    );
    // features lists the option.
    let f = sb.berth(&["features"]);
    assert!(f.stdout.contains("\"tmpcopyup\""), "{}", f.stdout);
}

/// `ro` on the /dev tmpfs and on other tmpfs mounts: the mount ends up
/// read-only, after the devices and /dev/pts were made in it.
#[test]
fn read_only_dev_and_tmpfs() {
    let mut sb = Sandbox::new("mnt-rodev");
    for m in sb.bundle.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    sb.bundle.add_mount(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nodev", "nosuid", "mode=755"]
    }));
    sb.bundle
        .sh("cat /proc/self/mounts; ls -l /dev/null; ls -d /dev/pts");
    let out = run_ok(&sb);
    assert!(
        mount_options(&out, "/dev").contains(&"ro".to_string()),
        "{out}"
    );
    assert!(
        mount_options(&out, "/mnt").contains(&"ro".to_string()),
        "{out}"
    );
    assert!(out.contains("/dev/pts"), "{out}");
}

/// Without a /dev tmpfs, the spec's default devices are still made, replacing
/// whatever the image had at their paths.
#[test]
fn default_devices_replace_image_entries_without_a_dev_tmpfs() {
    let mut sb = Sandbox::new("mnt-nodevfs");
    sb.bundle.without_mount("/dev");
    sb.bundle.without_mount("/dev/pts");
    sb.bundle.without_mount("/dev/shm");
    sb.bundle.without_mount("/dev/mqueue");
    let dev = sb.bundle.rootfs().join("dev");
    std::fs::write(dev.join("null"), "not a device").unwrap();
    std::fs::write(dev.join("zero"), "not a device").unwrap();
    sb.bundle
        .sh("for d in null zero full random urandom tty; do stat -c '%n %t:%T %F' /dev/$d; done");
    let out = run_ok(&sb);
    for (name, rdev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        assert!(
            out.contains(&format!("/dev/{name} {rdev} character special file")),
            "/dev/{name}: {out}"
        );
    }
}

/// The propagation fields of the host's "/" (in this test's namespace).
fn host_root_fields() -> String {
    optional_fields(
        &std::fs::read_to_string("/proc/self/mountinfo").unwrap(),
        "/",
    )
}

/// Without a mount namespace in the config the container stays in the
/// runtime's (as the spec says): it is chrooted into its rootfs, the mounts
/// of the config are made there, nothing else of the host's mount table
/// changes, and `delete` takes those mounts away again. `exec` lands in the
/// same root.
#[test]
fn no_mount_namespace_chroots_and_leaves_the_host_mounts_alone() {
    let mut sb = Sandbox::new("mnt-nomntns");
    sb.bundle.without_namespace("mount");
    std::fs::write(sb.bundle.rootfs().join("etc/marker"), "in the rootfs\n").unwrap();
    sb.bundle.sh(
        "cat /etc/marker; readlink /proc/self/ns/mnt; ls /dev/null && touch /host/started; exec sleep 1000",
    );
    let host_ns = std::fs::read_link("/proc/self/ns/mnt").unwrap();
    let root_before = host_root_fields();
    let id = sb.id("m");
    let base = sb.baseline(&id);
    {
        sb.bundle.save();
        let _c = sb.guard(&id);
        let o = sb.berth(&["run", "-d", "--bundle", &sb.bundle_arg(), &id]);
        assert_eq!(o.code, 0, "{o:?}");
        assert!(wait_until(POLL_TIMEOUT, || sb
            .host
            .join("started")
            .exists()));
        assert_eq!(
            host_root_fields(),
            root_before,
            "the host's / changed propagation"
        );
        let out = sb.berth(&[
            "exec",
            &id,
            "sh",
            "-c",
            "cat /etc/marker; readlink /proc/self/ns/mnt",
        ]);
        out.expect_ok();
        assert_eq!(
            out.stdout,
            format!("in the rootfs\n{}\n", host_ns.display()),
            "{out:?}"
        );
        sb.berth(&["delete", "--force", &id]).expect_ok();
    }
    assert_eq!(host_root_fields(), root_before);
    base.assert_clean(&sb);
}

/// A user namespace mapping container ids 0..65536 to host 100000..,
/// with the mount points the init (host uid 100000) cannot make itself in
/// the root-owned rootfs made beforehand.
fn with_user_namespace(sb: &mut Sandbox, mount_points: &[&str]) {
    for d in mount_points.iter().chain(&["host"]) {
        std::fs::create_dir_all(sb.bundle.rootfs().join(d.trim_start_matches('/'))).unwrap();
    }
    let mut ns = sb.bundle.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .clone();
    ns.push(json!({"type": "user"}));
    sb.bundle.set("/linux/namespaces", json!(ns));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    sb.bundle.set("/linux/uidMappings", map.clone());
    sb.bundle.set("/linux/gidMappings", map);
}

/// Two host directories: one owned by 0:0, one by 1:1, each with a foo.txt
/// of that owner.
fn idmap_sources(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let s1 = sb.dir.join("source-1");
    let s2 = sb.dir.join("source-2");
    for (d, id) in [(&s1, 0), (&s2, 1)] {
        std::fs::create_dir(d).unwrap();
        std::fs::write(d.join("foo.txt"), "x").unwrap();
        std::os::unix::fs::chown(d.join("foo.txt"), Some(id), Some(id)).unwrap();
        std::os::unix::fs::chown(d, Some(id), Some(id)).unwrap();
        std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    (s1, s2)
}

fn idmap(host: u32) -> serde_json::Value {
    json!([{"containerID": 0, "hostID": host, "size": 65536}])
}

/// Idmapped bind mounts (Kubernetes user namespaces need them): per-mount
/// uidMappings/gidMappings, or the `idmap` option taking the container's
/// own mappings; files written through the mount land with the on-disk ids.
#[test]
fn idmapped_bind_mounts_in_a_user_namespace() {
    let mut sb = Sandbox::new("mnt-idmap");
    with_user_namespace(
        &mut sb,
        &["/tmp/mount-1", "/tmp/mount-2", "/tmp/plain-2", "/tmp/opt-1"],
    );
    let (s1, s2) = idmap_sources(&sb);
    for (src, dest, extra) in [
        (&s1, "/tmp/mount-1", true),
        (&s2, "/tmp/mount-2", true),
        (&s2, "/tmp/plain-2", false),
    ] {
        let mut m =
            json!({"source": src, "destination": dest, "type": "bind", "options": ["bind"]});
        if extra {
            m["uidMappings"] = idmap(100000);
            m["gidMappings"] = idmap(100000);
        }
        sb.bundle.add_mount(m);
    }
    sb.bundle.add_mount(
        json!({"source": s1, "destination": "/tmp/opt-1", "type": "bind", "options": ["bind", "idmap"]}),
    );
    sb.bundle.sh(
        "stat -c =%u=%g= /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt /tmp/plain-2/foo.txt /tmp/opt-1/foo.txt; \
         touch /tmp/mount-1/bar && stat -c =%u=%g= /tmp/mount-1/bar",
    );
    let out = run_ok(&sb);
    assert_eq!(out, "=0=0=\n=1=1=\n=65534=65534=\n=0=0=\n=0=0=\n", "{out}");
    let md = std::fs::metadata(s1.join("bar")).unwrap();
    assert_eq!(
        (
            std::os::unix::fs::MetadataExt::uid(&md),
            std::os::unix::fs::MetadataExt::gid(&md)
        ),
        (0, 0),
        "a file written through the idmapped mount has the on-disk owner"
    );
}

/// Without a user namespace, an idmapped mount shows its files under the
/// mapped host ids; `ridmap` maps the submounts of an rbind too.
#[test]
fn idmapped_bind_mounts_without_a_user_namespace() {
    let mut sb = Sandbox::new("mnt-idmap-nouserns");
    let (s1, _) = idmap_sources(&sb);
    let sub = HostTmpfs::shared(&s1.join("sub"));
    std::fs::write(sub.0.join("in-sub"), "x").unwrap();
    sb.bundle.add_mount(json!({
        "source": s1, "destination": "/mnt/plain", "type": "bind", "options": ["rbind", "idmap"],
        "uidMappings": idmap(4242), "gidMappings": idmap(4343)
    }));
    sb.bundle.add_mount(json!({
        "source": s1, "destination": "/mnt/rec", "type": "bind", "options": ["rbind", "ridmap"],
        "uidMappings": idmap(4242), "gidMappings": idmap(4343)
    }));
    sb.bundle
        .sh("stat -c =%u=%g= /mnt/plain/foo.txt /mnt/plain/sub/in-sub /mnt/rec/sub/in-sub");
    let out = run_ok(&sb);
    assert_eq!(out, "=4242=4343=\n=0=0=\n=4242=4343=\n", "{out}");
    drop(sub);
}

/// Idmapped mounts the kernel could not make as asked fail `create` naming
/// the mount (runc's "invalid mount").
#[test]
fn invalid_idmapped_mounts_are_refused() {
    let mut sb = Sandbox::new("mnt-idmap-bad");
    let (s1, _) = idmap_sources(&sb);
    let base_cfg = sb.bundle.config.clone();
    let cases = [
        (
            json!({"source": "tmpfs", "destination": "/mnt/x", "type": "tmpfs",
                   "uidMappings": idmap(4242), "gidMappings": idmap(4242)}),
            "bind",
        ),
        (
            json!({"source": s1, "destination": "/mnt/x", "type": "bind", "options": ["bind"],
                   "uidMappings": idmap(4242)}),
            "gidMappings",
        ),
        (
            json!({"source": s1, "destination": "/mnt/x", "type": "bind", "options": ["bind", "idmap"]}),
            "user namespace",
        ),
    ];
    for (m, words) in cases {
        sb.bundle.config = base_cfg.clone();
        sb.bundle.add_mount(m);
        let id = sb.id("m");
        let base = sb.baseline(&id);
        sb.create(&id).expect_fail(&["invalid mount", words]);
        base.assert_clean(&sb);
    }
}

/// In a user namespace, a bind source the container's root cannot reach (a
/// directory of the host only root may enter) still mounts: the runtime
/// opens it on the container's behalf.
#[test]
fn unreachable_bind_source_mounts_in_a_user_namespace() {
    let mut sb = Sandbox::new("mnt-userns-src");
    with_user_namespace(&mut sb, &["/mnt/a"]);
    let locked = sb.dir.join("locked");
    std::fs::create_dir_all(locked.join("a")).unwrap();
    std::fs::write(locked.join("a/file"), "reachable\n").unwrap();
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    sb.bundle.add_mount(json!({
        "source": locked.join("a"), "destination": "/mnt/a", "type": "bind", "options": ["rbind", "ro"]
    }));
    sb.bundle.args(&["cat", "/mnt/a/file"]);
    assert_eq!(run_ok(&sb), "reachable\n");
}
