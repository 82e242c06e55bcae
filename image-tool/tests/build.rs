//! `berth-image build` end to end: real builds with RUN steps in berth
//! containers on a locally built busybox image, the layer cache, multi-stage
//! builds, build args, errors naming lines, and the result as an ordinary OCI
//! image (pushed to a loopback registry, read by skopeo, run by podman).
//! Needs root.

mod common;

use common::registry::start_registry;
use common::world::{berth, entries, TestNet};
use common::{berth_image, busybox_layout, mounts_below, Scratch};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

struct World {
    scratch: Scratch,
    store: PathBuf,
    /// The bridge network of the containers the test runs.
    net: TestNet,
}

impl World {
    fn new() -> World {
        assert!(
            rustix::process::geteuid().is_root(),
            "builds run real containers and need root"
        );
        let scratch = Scratch::new();
        let store = scratch.join("store");
        let layout = scratch.join("layout");
        busybox_layout(&layout, "1");
        let w = World {
            scratch,
            store,
            net: TestNet::new(),
        };
        w.ok(&[
            "pull",
            &format!("oci:{}:1", layout.display()),
            "--name",
            "busybox",
        ]);
        w
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = berth_image();
        c.arg("--store").arg(&self.store).args(args);
        c.stdin(Stdio::null());
        self.net.apply(&mut c);
        c
    }

    fn out(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("spawn berth-image")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "berth-image {args:?}: {}\n{}\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Start a build of `ctx` in the background; returns once the
    /// container of its (first) RUN step runs.
    fn start_build_until_run_step(&self, ctx: &Path, stderr: Stdio) -> std::process::Child {
        let runtime = berth();
        let build = self
            .cmd(&["build", "--runtime", runtime.to_str().unwrap()])
            .arg(ctx)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !self.ok(&["ps"]).contains(" build-") {
            assert!(
                std::time::Instant::now() < deadline,
                "the RUN step did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        build
    }

    /// A context directory with these files (path, content).
    fn context(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.scratch.join(name);
        for (p, body) in files {
            let f = dir.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, body).unwrap();
        }
        dir
    }

    fn build(&self, ctx: &Path, extra: &[&str]) -> Output {
        let runtime = berth();
        let mut args = vec!["build", "--runtime", runtime.to_str().unwrap()];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        self.out(&args)
    }

    fn build_ok(&self, ctx: &Path, extra: &[&str]) -> String {
        let o = self.build(ctx, extra);
        assert!(
            o.status.success(),
            "build {extra:?}: {}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// Output of a command in a fresh container of `image`.
    fn run_in(&self, image: &str, script: &str) -> String {
        let b = berth();
        self.ok(&[
            "run",
            "--rm",
            "--runtime",
            b.to_str().unwrap(),
            image,
            "sh",
            "-c",
            script,
        ])
    }

    fn config(&self, image: &str) -> serde_json::Value {
        let v: serde_json::Value =
            serde_json::from_str(&self.ok(&["inspect", image, "--format", "json"])).unwrap();
        v["config"].clone()
    }

    fn images(&self) -> Vec<String> {
        self.ok(&["list"])
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_string())
            .collect()
    }

    /// Nothing of a build is left: no container, no mount, no temporary
    /// file, nothing of the network.
    fn assert_clean(&self) {
        let containers: Vec<String> = entries(&self.store, "containers")
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .chain(entries(&self.store, "containers/.names"))
            .collect();
        assert!(containers.is_empty(), "containers left: {containers:?}");
        assert!(
            mounts_below(&self.store).is_empty(),
            "mounts left: {:?}",
            mounts_below(&self.store)
        );
        let tmp = entries(&self.store, "tmp");
        assert!(tmp.is_empty(), "temporary files left: {tmp:?}");
        self.net.assert_nothing_left(&self.store);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        // Containers a failed test left (they hold addresses on the test's
        // network), before the bridge and the scratch directory go.
        for id in entries(&self.store, "containers") {
            if !id.starts_with('.') {
                let _ = self.cmd(&["rm", "-f", &id]).output();
            }
        }
    }
}

/// The steps (by their STEP line) that reported "Using cache".
fn cached_steps(out: &str) -> Vec<String> {
    let mut cached = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(i) = line.find("STEP ") {
            current = line[i..].to_string();
        } else if line.starts_with("--> Using cache") {
            cached.push(current.clone());
        }
    }
    cached
}

/// The steps that made a new layer.
fn built_steps(out: &str) -> Vec<String> {
    let mut built = Vec::new();
    let mut current = String::new();
    for line in out.lines() {
        if let Some(i) = line.find("STEP ") {
            current = line[i..].to_string();
        } else if line.starts_with("--> ") && !line.starts_with("--> Using cache") {
            built.push(current.clone());
        }
    }
    built
}

const CACHE_DOCKERFILE: &str = "FROM busybox
COPY one.txt /data/
RUN cat /data/one.txt > /data/first-run
COPY two.txt /data/
RUN cat /data/one.txt /data/two.txt > /data/second-run
CMD [\"cat\", \"/data/second-run\"]
";

#[test]
fn cache_is_used_and_a_changed_file_invalidates_from_its_step() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            ("Dockerfile", CACHE_DOCKERFILE),
            ("one.txt", "one\n"),
            ("two.txt", "two\n"),
        ],
    );
    let first = w.build_ok(&ctx, &["-t", "cached"]);
    assert!(cached_steps(&first).is_empty(), "{first}");
    assert_eq!(built_steps(&first).len(), 4, "{first}");

    let second = w.build_ok(&ctx, &["-t", "cached"]);
    assert_eq!(
        cached_steps(&second),
        vec![
            "STEP 2/6: COPY one.txt /data/",
            "STEP 3/6: RUN cat /data/one.txt > /data/first-run",
            "STEP 4/6: COPY two.txt /data/",
            "STEP 5/6: RUN cat /data/one.txt /data/two.txt > /data/second-run",
        ],
        "{second}"
    );
    assert!(built_steps(&second).is_empty(), "{second}");

    // Changing the second copied file rebuilds from its COPY on.
    std::fs::write(ctx.join("two.txt"), "two, changed\n").unwrap();
    let third = w.build_ok(&ctx, &["-t", "cached"]);
    assert_eq!(
        cached_steps(&third),
        vec![
            "STEP 2/6: COPY one.txt /data/",
            "STEP 3/6: RUN cat /data/one.txt > /data/first-run",
        ],
        "{third}"
    );
    assert_eq!(
        built_steps(&third),
        vec![
            "STEP 4/6: COPY two.txt /data/",
            "STEP 5/6: RUN cat /data/one.txt /data/two.txt > /data/second-run",
        ],
        "{third}"
    );
    assert_eq!(
        w.run_in("cached", "cat /data/second-run"),
        "one\ntwo, changed\n"
    );

    // Only the file's content counts: a new mtime keeps the cache.
    let f = std::fs::File::options()
        .append(true)
        .open(ctx.join("one.txt"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(60))
        .unwrap();
    let fourth = w.build_ok(&ctx, &["-t", "cached"]);
    assert_eq!(cached_steps(&fourth).len(), 4, "{fourth}");

    // A changed instruction misses from there on; --no-cache uses none.
    std::fs::write(
        ctx.join("Dockerfile"),
        CACHE_DOCKERFILE.replace("> /data/second-run", "> /data/second-run && echo x"),
    )
    .unwrap();
    let fifth = w.build_ok(&ctx, &["-t", "cached"]);
    assert_eq!(cached_steps(&fifth).len(), 3, "{fifth}");
    let none = w.build_ok(&ctx, &["-t", "cached", "--no-cache"]);
    assert!(cached_steps(&none).is_empty(), "{none}");
    assert_eq!(built_steps(&none).len(), 4, "{none}");
    w.assert_clean();
}

#[test]
fn multi_stage_target_and_build_args() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[(
            "Dockerfile",
            "ARG BASE=busybox
ARG VERSION=1.0
FROM ${BASE} AS builder
ARG VERSION
ARG FLAVOUR=plain
RUN mkdir /out && echo \"v$VERSION-$FLAVOUR\" > /out/version
FROM builder AS tester
RUN echo tested > /out/tested
FROM scratch AS unused
COPY missing-file /
FROM busybox
COPY --from=builder /out/version /version
ENV VERSION=from-env
ARG VERSION=arg-default
RUN echo \"$VERSION\" > /env-wins
",
        )],
    );
    let out = w.build_ok(
        &ctx,
        &[
            "-t",
            "final",
            "--build-arg",
            "FLAVOUR=special",
            "--build-arg",
            "NOBODY=x",
        ],
    );
    // The unused stage (with a COPY that would fail) is not built.
    assert!(!out.contains("STEP 2/2: COPY missing-file"), "{out}");
    assert!(!out.contains("[3/4]"), "{out}");
    assert!(!out.contains("[2/4]"), "{out}");
    assert!(
        out.contains("[Warning] One or more build-args [NOBODY] were not consumed"),
        "{out}"
    );
    assert_eq!(
        w.run_in("final", "cat /version /env-wins"),
        "v1.0-special\nfrom-env\n"
    );
    // Build args before FROM choose the version; --target stops at a stage.
    let out = w.build_ok(
        &ctx,
        &[
            "-t",
            "tester",
            "--target",
            "tester",
            "--build-arg",
            "VERSION=2.5",
        ],
    );
    assert!(!out.contains("[4/4]"), "{out}");
    assert_eq!(
        w.run_in("tester", "cat /out/version /out/tested"),
        "v2.5-plain\ntested\n"
    );
    let o = w.build(&ctx, &["-t", "x", "--target", "nonesuch"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("target stage \"nonesuch\" could not be found"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    w.assert_clean();
}

#[test]
fn errors_name_the_dockerfile_line_and_leave_nothing() {
    let w = World::new();
    let before = w.images();
    let cases: &[(&str, &str)] = &[
        ("FROM busybox\nRUN true\nBOGUS x\n", "Dockerfile:3: unknown instruction: BOGUS"),
        (
            "FROM busybox\n\n# comment\nRUN echo a \\\n  && exit 3\n",
            "Dockerfile:4: the command [\"/bin/sh\",\"-c\",\"echo a   && exit 3\"] returned a non-zero code: 3",
        ),
        ("FROM busybox\nCOPY nothere /x\n", "Dockerfile:2: \"nothere\" not found in the build context"),
        ("FROM busybox\nCOPY *.none /x/\n", "Dockerfile:2: no source files were specified"),
        ("FROM no-such-image\n", "Dockerfile:1: image not found: no-such-image"),
        ("FROM busybox\nENV A\n", "Dockerfile:2: ENV must have two arguments"),
        ("FROM busybox\nCOPY a b c\n", "Dockerfile:2: when using COPY with more than one source file"),
        ("# escape=x\nFROM busybox\n", "Dockerfile:1: invalid escape token"),
        ("RUN x\nFROM busybox\n", "Dockerfile:1: RUN before the first FROM"),
        ("FROM busybox\nEXPOSE 80/bogus\n", "Dockerfile:2: invalid proto: bogus"),
        ("FROM busybox\nWORKDIR ${UNSET:?must be set}\n", "Dockerfile:2: UNSET: must be set"),
    ];
    for (i, (dockerfile, want)) in cases.iter().enumerate() {
        let ctx = w.context(
            &format!("ctx{i}"),
            &[("Dockerfile", dockerfile), ("a", "a")],
        );
        let o = w.build(&ctx, &["-t", "broken"]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{dockerfile:?} built");
        assert!(err.contains(want), "{dockerfile:?}: want {want:?} in {err}");
    }
    assert_eq!(w.images(), before, "no image was made");
    w.assert_clean();
}

#[test]
fn copy_and_add_sources_owners_modes_ignore_and_archives() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox
WORKDIR /app
COPY *.txt ./
COPY dir /tree
COPY --chown=daemon:65534 --chmod=0750 script.sh /usr/local/bin/tool
COPY --chown=1234 a.txt relative/
COPY [\"with space.txt\", \"/json form/\"]
ADD bundle.tar.gz /unpacked
ADD plain.txt /added.txt
RUN ln -s /etc /app/etc-link
COPY a.txt etc-link/from-context
",
            ),
            ("a.txt", "a\n"),
            ("b.txt", "b\n"),
            ("skip.txt", "ignored\n"),
            ("dir/sub/f", "f\n"),
            ("dir/.hidden", "h\n"),
            ("dir/cache/junk", "junk\n"),
            ("script.sh", "#!/bin/sh\necho tool\n"),
            ("with space.txt", "spaced\n"),
            ("plain.txt", "plain\n"),
            (".dockerignore", "skip.txt\ndir/cache\n"),
        ],
    );
    // A gzip tar for ADD to unpack.
    let tar_path = ctx.join("bundle.tar.gz");
    {
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tar_path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut h = common::header(tar::EntryType::Regular, 0o600, 9);
        h.set_uid(7);
        h.set_gid(8);
        tar.append_data(&mut h, "inside/archived", &b"archived\n"[..])
            .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    // bzip2 and xz ones too, and a corrupt xz archive for an error.
    let small_tar = |name: &str| {
        let mut tar = tar::Builder::new(Vec::new());
        let mut h = common::header(tar::EntryType::Regular, 0o644, 3);
        tar.append_data(&mut h, name, &b"ok\n"[..]).unwrap();
        tar.into_inner().unwrap()
    };
    {
        use std::io::Write;
        let mut bz = bzip2::write::BzEncoder::new(
            std::fs::File::create(ctx.join("more.tar.bz2")).unwrap(),
            bzip2::Compression::fast(),
        );
        bz.write_all(&small_tar("from-bzip2")).unwrap();
        bz.finish().unwrap();
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut &small_tar("from-xz")[..], &mut xz).unwrap();
        std::fs::write(ctx.join("more.tar.xz"), &xz).unwrap();
        let cut = &xz[..xz.len() - 20];
        std::fs::write(ctx.join("broken.tar.xz"), cut).unwrap();
    }
    let df = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("{df}ADD more.tar.bz2 more.tar.xz /more/\n"),
    )
    .unwrap();
    w.build_ok(&ctx, &["-t", "copies"]);
    assert_eq!(
        w.run_in("copies", "cat /more/from-bzip2 /more/from-xz"),
        "ok\nok\n"
    );
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nADD broken.tar.xz /x/\n",
    )
    .unwrap();
    let o = w.build(&ctx, &["-t", "broken"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Dockerfile:2:") && err.contains("xz"), "{err}");
    let listing = w.run_in(
        "copies",
        "cd /app && ls -A; echo --; find /tree | sort; echo --; \
         stat -c '%u:%g %a %n' /usr/local/bin/tool /app/relative/a.txt /app/a.txt /tree/sub/f; \
         echo --; cat '/json form/with space.txt' /unpacked/inside/archived /added.txt /etc/from-context; \
         stat -c '%u:%g %a' /unpacked/inside/archived; /usr/local/bin/tool",
    );
    let parts: Vec<&str> = listing.split("--\n").collect();
    assert_eq!(
        parts[0], "a.txt\nb.txt\netc-link\nplain.txt\nrelative\nwith space.txt\n",
        "globs match files, .dockerignore hides skip.txt: {listing}"
    );
    assert_eq!(
        parts[1], "/tree\n/tree/.hidden\n/tree/sub\n/tree/sub/f\n",
        "a directory's contents, without the ignored dir/cache: {listing}"
    );
    assert_eq!(
        parts[2],
        "1:65534 750 /usr/local/bin/tool\n1234:1234 644 /app/relative/a.txt\n0:0 644 /app/a.txt\n0:0 644 /tree/sub/f\n",
        "{listing}"
    );
    assert_eq!(
        parts[3], "spaced\narchived\nplain\na\n7:8 600\ntool\n",
        "{listing}"
    );
    w.assert_clean();
}

#[test]
fn settings_are_recorded_and_onbuild_triggers_run_in_child_builds() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox
LABEL org.example.a=1 \"org.example.b\"=\"two words\"
ENV APP_HOME=/srv/app PATH=/srv/app/bin:$PATH
WORKDIR $APP_HOME
EXPOSE 8080 53/udp
VOLUME /data [\"/not-json\"]
USER nobody
RUN id -u > /tmp/uid
USER root
SHELL [\"/bin/sh\", \"-ec\"]
RUN echo \"$0 $-\" > /tmp/shell
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --retries=3 CMD wget -q -O- http://localhost:8080/
ONBUILD COPY trigger.txt /triggered.txt
ENTRYPOINT [\"/bin/sh\", \"-c\"]
CMD [\"echo hi\"]
",
            ),
            ("trigger.txt", "triggered\n"),
        ],
    );
    w.build_ok(&ctx, &["-t", "parent"]);
    let c = &w.config("parent")["config"];
    assert_eq!(c["Labels"]["org.example.a"], "1");
    assert_eq!(c["Labels"]["org.example.b"], "two words");
    let env: Vec<&str> = c["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(env.contains(&"APP_HOME=/srv/app"), "{env:?}");
    assert!(
        env.contains(
            &"PATH=/srv/app/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ),
        "{env:?}"
    );
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(
        c["Volumes"],
        serde_json::json!({"/data": {}, "[/not-json]": {}})
    );
    assert_eq!(c["User"], "root");
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-ec"]));
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "wget -q -O- http://localhost:8080/"],
                           "Interval": 30_000_000_000u64, "Retries": 3})
    );
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["COPY trigger.txt /triggered.txt"])
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh", "-c"]));
    assert_eq!(c["Cmd"], serde_json::json!(["echo hi"]));
    // USER applies to RUN, SHELL to later shell forms; the image's ENTRYPOINT
    // runs the command given to `run`.
    let b = berth();
    let out = w.ok(&[
        "run",
        "--rm",
        "--runtime",
        b.to_str().unwrap(),
        "parent",
        "cat /tmp/uid /tmp/shell",
    ]);
    assert_eq!(out, "65534\n/bin/sh ce\n");

    // A child build runs the trigger after its FROM; its image keeps none.
    let child = w.context(
        "child",
        &[
            (
                "Dockerfile",
                "FROM parent\nRUN cat /triggered.txt > /seen\n",
            ),
            ("trigger.txt", "from the child's context\n"),
        ],
    );
    let out = w.build_ok(&child, &["-t", "child"]);
    assert!(out.contains("--> Executing 1 build triggers"), "{out}");
    let out = w.ok(&[
        "run",
        "--rm",
        "--runtime",
        b.to_str().unwrap(),
        "child",
        "cat /seen",
    ]);
    assert_eq!(out, "from the child's context\n");
    assert!(w.config("child")["config"].get("OnBuild").is_none());
    let history = w.config("child")["history"].as_array().unwrap().len();
    assert!(history > 10, "the base image's history is kept");
    w.assert_clean();
}

/// podman with storage of its own under `dir`, runc as runtime, no network.
fn podman(dir: &Path, args: &[&str]) -> Output {
    for d in ["root", "runroot", "tmp"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let conf = dir.join("containers.conf");
    std::fs::write(
        &conf,
        format!(
            "[engine]\nevents_logger = \"file\"\nevents_logfile_path = \"{0}/events.log\"\ncgroup_manager = \"cgroupfs\"\ntmp_dir = \"{0}/tmp\"\n",
            dir.display()
        ),
    )
    .unwrap();
    Command::new("timeout")
        .args(["-k", "10", "120", "podman"])
        .env("CONTAINERS_CONF", &conf)
        .arg("--root")
        .arg(dir.join("root"))
        .arg("--runroot")
        .arg(dir.join("runroot"))
        .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
        .args(["--events-backend", "file", "--runtime", "runc"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("podman is installed (scripts/install-deps.sh)")
}

#[test]
fn built_image_pushes_to_a_registry_and_runs_under_podman() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox AS build\nRUN echo built-by-berth > /msg\nFROM busybox\nCOPY --from=build /msg /msg\nCOPY hello.sh /usr/bin/hello\nENV WHO=podman\nCMD [\"/usr/bin/hello\"]\n",
            ),
            ("hello.sh", "#!/bin/sh\necho \"$(cat /msg) for $WHO\"\n"),
        ],
    );
    std::fs::set_permissions(
        ctx.join("hello.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    w.build_ok(&ctx, &["-t", "hello:1"]);
    let reg = start_registry(&w.scratch, "registry", "");
    let target = format!("{}/berth/hello:1", reg.addr);
    w.ok(&[
        "push",
        "hello:1",
        &format!("docker://{target}"),
        "--insecure",
    ]);
    let o = Command::new("skopeo")
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{target}"),
        ])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(info["Layers"].as_array().unwrap().len(), 3, "{info}");
    assert!(
        info["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "WHO=podman"),
        "{info}"
    );
    let pdir = w.scratch.join("podman");
    let o = podman(
        &pdir,
        &[
            "run",
            "--rm",
            "--tls-verify=false",
            "--network",
            "none",
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=1024:1024",
            &target,
        ],
    );
    let _ = podman(&pdir, &["rmi", "-af"]);
    assert!(
        o.status.success(),
        "podman run: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "built-by-berth for podman\n"
    );
    w.assert_clean();
}

#[test]
fn a_killed_builds_step_overlay_is_swept_by_the_next_build() {
    let w = World::new();
    // What a build killed during a COPY leaves: a mounted step overlay in
    // tmp/ named after its (now dead) pid.
    let mut child = Command::new("true").spawn().unwrap();
    let dead = child.id();
    child.wait().unwrap();
    let stale = w.store.join(format!("tmp/build-mount-{dead}-0-0"));
    for d in ["rootfs", "upper", "work", "lower"] {
        std::fs::create_dir_all(stale.join(d)).unwrap();
    }
    common::run(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
                stale.display()
            ))
            .arg(stale.join("rootfs")),
    );
    assert_eq!(mounts_below(&w.store).len(), 1);
    let ctx = w.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nCOPY a /a\n"), ("a", "a")],
    );
    w.build_ok(&ctx, &["-t", "after"]);
    assert!(!stale.exists(), "the stale overlay is removed");
    w.assert_clean();
}

/// Every entry below `dir` (symlinks not followed) with its metadata.
fn walk(dir: &Path) -> Vec<(PathBuf, std::fs::Metadata)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                todo.push(p.clone());
            }
            out.push((p, m));
        }
    }
    out
}

/// The `trusted.overlay.*` extended attributes below `dir` (not compared by
/// `fstree`, which leaves out a mount's mechanism): `path name=value`, sorted.
fn overlay_xattrs(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for (p, _) in walk(dir) {
        let mut names = vec![0u8; 4096];
        let n = rustix::fs::llistxattr(&p, &mut names[..]).unwrap_or(0);
        for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
            let name = String::from_utf8_lossy(name).into_owned();
            if !name.starts_with("trusted.overlay.") {
                continue;
            }
            let mut value = vec![0u8; 4096];
            let len = rustix::fs::lgetxattr(&p, name.as_str(), &mut value[..]).unwrap();
            out.push(format!(
                "{} {name}={}",
                p.strip_prefix(dir).unwrap().display(),
                String::from_utf8_lossy(&value[..len])
            ));
        }
    }
    out.sort();
    out
}

/// A RUN/COPY/WORKDIR step's writable layer becomes its unpacked layer, named by
/// its chain ID: it must be what unpacking the step's blob on the layers below
/// makes (every file's type, mode, owner, content, xattrs and mtime to the
/// nanosecond; the root directory, which the layer's tar does not list, with the
/// lower root's metadata).
#[test]
fn layers_made_by_steps_equal_their_blobs_unpacked() {
    use common::fstree::{compare, scan, Fields};
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            (
                "Dockerfile",
                "FROM busybox\nCOPY a /etc/a\nRUN echo x >> /etc/passwd && rm /etc/group && mkdir -p /var/x && rm -rf /usr && mkdir /usr\nWORKDIR /srv/app\nCOPY --chown=1:1 a b/\n",
            ),
            ("a", "a\n"),
        ],
    );
    w.build_ok(&ctx, &["-t", "layers"]);
    let store = berth_image::Store::open(&w.store).unwrap();
    let rec = store.find_image("layers").unwrap();
    assert_eq!(rec.layers.len(), 5, "busybox + 4 steps");
    let chains = rec.chain_ids();
    let mut adopted = Vec::new();
    for (i, chain) in chains.iter().enumerate().skip(1) {
        let dir = store.layer_path(chain);
        assert!(dir.is_dir(), "step layer {i} is stored under its chain ID");
        assert!(
            !store.layer_path(&rec.layers[i].diff_id).exists(),
            "no layer directory named by the diff_id of step layer {i}"
        );
        assert!(
            !overlay_xattrs(&dir)
                .iter()
                .any(|e| e.contains("trusted.overlay.origin")
                    || e.contains("trusted.overlay.impure")),
            "no overlayfs bookkeeping left in step layer {i}"
        );
        let aside = w.scratch.join(&format!("adopted-{i}"));
        std::fs::rename(&dir, &aside).unwrap();
        adopted.push((i, aside));
    }
    // What the store makes of the same layers from their blobs, on their lower
    // layers (the bottom one stays as it was).
    store.ensure_layers(&rec.layers).unwrap();
    for (i, aside) in &adopted {
        let unpacked = store.layer_path(&chains[*i]);
        let adopted_tree = scan(aside);
        let unpacked_tree = scan(&unpacked);
        let differences: Vec<String> =
            compare(&adopted_tree, &unpacked_tree, Fields { data_map: false })
                .into_iter()
                // A whiteout's time is not in the layer: unpacking makes one anew.
                .filter(|d| !(d.field == "mtime" && unpacked_tree[&d.path].kind == "char"))
                .map(|d| d.to_string())
                .collect();
        assert!(
            differences.is_empty(),
            "step layer {i}: adopted directory (left) and its blob unpacked (right) differ:\n{}",
            differences.join("\n")
        );
        assert_eq!(
            overlay_xattrs(aside),
            overlay_xattrs(&unpacked),
            "step layer {i}: opaque directories"
        );
    }
    for (_, aside) in adopted {
        std::fs::remove_dir_all(aside).unwrap();
    }
    w.assert_clean();
}

/// A cached step whose layer directory is gone (a store from before layer
/// directories were named by chain ID has them under their diff_ids) is
/// unpacked again from its blob on the stage's layers, under its chain ID.
#[test]
fn cache_hit_unpacks_a_missing_layer_on_the_stage_layers() {
    use common::fstree::{compare, scan, Fields};
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[
            ("Dockerfile", "FROM busybox\nCOPY a /data/\nCOPY b /data/\n"),
            ("a", "a\n"),
            ("b", "b\n"),
        ],
    );
    w.build_ok(&ctx, &["-t", "relayered"]);
    let store = berth_image::Store::open(&w.store).unwrap();
    let rec = store.find_image("relayered").unwrap();
    let chains = rec.chain_ids();
    let aside: Vec<PathBuf> = (1..3)
        .map(|i| {
            let p = w.scratch.join(&format!("made-{i}"));
            std::fs::rename(store.layer_path(&chains[i]), &p).unwrap();
            p
        })
        .collect();
    let again = w.build_ok(&ctx, &["-t", "relayered"]);
    assert_eq!(
        cached_steps(&again),
        vec!["STEP 2/3: COPY a /data/", "STEP 3/3: COPY b /data/"],
        "{again}"
    );
    for (i, made) in (1..3).zip(&aside) {
        assert!(
            !store.layer_path(&rec.layers[i].diff_id).exists(),
            "layer {i} unpacked as a bottom layer, under its diff_id"
        );
        let dir = store.layer_path(&chains[i]);
        assert!(dir.is_dir(), "layer {i} unpacked again under its chain ID");
        let differences = compare(&scan(made), &scan(&dir), Fields { data_map: false });
        assert!(
            differences.is_empty(),
            "layer {i}: made by the step (left), unpacked again (right): {differences:?}"
        );
        std::fs::remove_dir_all(made).unwrap();
    }
    w.assert_clean();
}

#[test]
fn here_documents_in_run_and_copy() {
    let w = World::new();
    let ctx = w.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox
ARG WHO=world
RUN <<EOF
set -e
mkdir /out
echo \"hello $WHO\" > /out/run
EOF
RUN cat <<A > /out/fed && tr a-z A-Z <<-B >> /out/fed
first
A
\tsecond
\tB
COPY <<greeting <<'raw' /out/
hi $WHO \"quoted\"
greeting
not $WHO
raw
",
        )],
    );
    w.build_ok(&ctx, &["-t", "heredocs", "--build-arg", "WHO=berth"]);
    assert_eq!(
        w.run_in(
            "heredocs",
            "cat /out/run /out/fed /out/greeting /out/raw; stat -c '%a %u' /out/greeting"
        ),
        "hello berth\nfirst\nSECOND\nhi berth \"quoted\"\nnot $WHO\n644 0\n"
    );
    // The documents are part of the cache key.
    let again = w.build_ok(&ctx, &["-t", "heredocs", "--build-arg", "WHO=berth"]);
    assert_eq!(cached_steps(&again).len(), 3, "{again}");
    let df = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        df.replace("not $WHO", "still not $WHO"),
    )
    .unwrap();
    let changed = w.build_ok(&ctx, &["-t", "heredocs", "--build-arg", "WHO=berth"]);
    assert_eq!(cached_steps(&changed).len(), 2, "{changed}");
    w.assert_clean();
}

const WEB: &str =
    "mkdir -p /www && echo hello-from-web > /www/index.html && exec httpd -f -p 80 -h /www";

/// Whether `addr` answers HTTP with `body` in its page.
fn http_serves(addr: &str, body: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect_timeout(
        &addr.parse().unwrap(),
        std::time::Duration::from_secs(2),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(5)));
    let mut out = String::new();
    s.write_all(b"GET /index.html HTTP/1.0\r\n\r\n").is_ok()
        && s.read_to_string(&mut out).is_ok()
        && out.contains(body)
}

#[test]
fn run_steps_use_the_default_network_unless_told_otherwise() {
    let w = World::new();
    let b = berth();
    w.ok(&[
        "run",
        "-d",
        "--runtime",
        b.to_str().unwrap(),
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        WEB,
    ]);
    let doc: serde_json::Value = serde_json::from_str(&w.ok(&["inspect", "web"])).unwrap();
    let ip = doc[0]["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ip.starts_with(&w.net.prefix), "{ip}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !http_serves(&format!("{ip}:80"), "hello-from-web") {
        assert!(std::time::Instant::now() < deadline, "web does not answer");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // RUN reaches the container by name and address, as a container on the
    // default network does; --network=none and host are what they say.
    let ctx = w.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox
ARG WEB_IP
RUN wget -q -O /by-name http://web/index.html && wget -q -O /by-ip http://$WEB_IP/index.html && cat /proc/net/dev > /dev-default
RUN --network=none cat /proc/net/dev > /dev-none
RUN --network=host cat /proc/net/dev > /dev-host
",
        )],
    );
    let web_ip = format!("WEB_IP={ip}");
    w.build_ok(&ctx, &["-t", "fetched", "--build-arg", &web_ip]);
    let out = w.run_in(
        "fetched",
        "cat /by-name /by-ip; echo --; for f in default none host; do cut -d: -f1 /dev-$f | tr -d ' ' | sed 1,2d | sort | tr '\\n' ' '; echo; done",
    );
    let (pages, devices) = out.split_once("--\n").unwrap();
    assert_eq!(pages, "hello-from-web\nhello-from-web\n");
    let devices: Vec<&str> = devices.lines().collect();
    assert_eq!(devices[0], "eth0 lo ", "RUN on the bridge network");
    assert_eq!(devices[1], "lo ", "RUN --network=none");
    assert!(
        devices[2].split(' ').any(|d| d == w.net.bridge),
        "RUN --network=host sees the host's devices: {}",
        devices[2]
    );

    // `build --network` sets the network of RUN without --network=, and
    // the network is part of the step's cache key.
    let ctx = w.context(
        "ctx-page",
        &[(
            "Dockerfile",
            "FROM busybox\nARG WEB_IP\nRUN timeout 5 wget -q -O /page http://$WEB_IP/index.html\n",
        )],
    );
    let build = |network: &str| w.build(&ctx, &["--network", network, "--build-arg", &web_ip]);
    let stdout = |o: &Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let bridge = build("default");
    assert!(bridge.status.success(), "{}", stdout(&bridge));
    assert!(cached_steps(&stdout(&bridge)).is_empty());
    let again = stdout(&w.build(&ctx, &["-t", "online", "--build-arg", &web_ip]));
    assert_eq!(cached_steps(&again).len(), 1, "{again}");
    assert_eq!(w.run_in("online", "cat /page"), "hello-from-web\n");
    let host = build("host");
    assert!(host.status.success(), "{}", stdout(&host));
    assert!(cached_steps(&stdout(&host)).is_empty(), "{}", stdout(&host));
    let none = build("none");
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(!none.status.success(), "reached {ip} without a network");
    assert!(err.contains("Dockerfile:3: the command"), "{err}");

    for (args, dockerfile, want) in [
        (
            vec!["--network", "bogus"],
            "FROM busybox\nRUN true\n",
            "'bogus' for '--network <NETWORK>': expected default, none or host",
        ),
        (
            vec![],
            "FROM busybox\nRUN --network=bogus true\n",
            "Dockerfile:2: --network=bogus: expected default, none or host",
        ),
    ] {
        let ctx = w.context("ctx-bad", &[("Dockerfile", dockerfile)]);
        let o = w.build(&ctx, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(want), "{err}");
    }
    w.ok(&["rm", "-f", "web"]);
    w.assert_clean();
}

/// Paths below `dir` (relative, sorted), directories with a trailing `/`.
fn paths(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|(p, m)| {
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if m.is_dir() {
                format!("{rel}/")
            } else {
                rel
            }
        })
        .collect();
    out.sort();
    out
}

#[test]
fn run_step_layers_hold_only_what_the_command_changed() {
    let w = World::new();
    // The image has no /etc/hosts, /etc/hostname or /etc/resolv.conf: the
    // runtime makes empty files to mount the container's over, which are
    // not the command's doing (docker's layers do not have them either).
    let ctx = w.context(
        "ctx",
        &[(
            "Dockerfile",
            "FROM busybox\nRUN echo x > /x && cat /etc/hosts /etc/resolv.conf > /dev/null\nRUN echo '10.0.0.9 extra' >> /etc/hosts && mkdir -p /etc/app && echo 1 > /etc/app/conf\n",
        )],
    );
    w.build_ok(&ctx, &["-t", "stubs"]);
    let v: serde_json::Value =
        serde_json::from_str(&w.ok(&["inspect", "stubs", "--format", "json"])).unwrap();
    let layers: Vec<PathBuf> = v["record"]["layers"].as_array().unwrap()[1..]
        .iter()
        .map(|l| {
            let diff_id = l["diff_id"].as_str().unwrap();
            w.store
                .join("layers")
                .join(diff_id.trim_start_matches("sha256:"))
        })
        .collect();
    assert_eq!(paths(&layers[0]), vec!["x"]);
    assert_eq!(
        paths(&layers[1]),
        vec!["etc/", "etc/app/", "etc/app/conf"],
        "a write to /etc/hosts goes to the container's file, as under docker"
    );
    assert_eq!(
        w.run_in(
            "stubs",
            "ls /etc/hostname /etc/resolv.conf 2>&1 >/dev/null | wc -l; grep -c extra /etc/hosts; true"
        ),
        "0\n0\n",
        "run mounts its own files"
    );
    w.assert_clean();
}

#[test]
fn a_killed_builds_run_container_and_network_are_removed_by_the_next_build() {
    let w = World::new();
    let ctx = w.context("ctx", &[("Dockerfile", "FROM busybox\nRUN sleep 600\n")]);
    let mut build = w.start_build_until_run_step(&ctx, Stdio::null());
    build.kill().unwrap();
    build.wait().unwrap();
    // What it leaves: its RUN container, still running, on the network.
    assert!(w.ok(&["ps"]).contains(" build-"));
    assert_eq!(
        entries(&w.store, "net/attachments").len(),
        2,
        "record and lock"
    );
    assert_eq!(w.net.bridge_ports().len(), 1);
    let ctx = w.context(
        "ctx2",
        &[("Dockerfile", "FROM busybox\nCOPY Dockerfile /\n")],
    );
    w.build_ok(&ctx, &["-t", "after"]);
    w.assert_clean();
}

#[test]
fn an_interrupted_build_stops_its_run_step_and_leaves_nothing() {
    let w = World::new();
    // `sleep` is the container's pid 1: it ignores SIGTERM, as docker
    // build's RUN commands may; the build still stops.
    let ctx = w.context(
        "ctx",
        &[("Dockerfile", "FROM busybox\nRUN true\nRUN sleep 600\n")],
    );
    let mut build = w.start_build_until_run_step(&ctx, Stdio::piped());
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(build.id() as i32, libc::SIGTERM) };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(s) = build.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = build.kill();
            let _ = build.wait();
            panic!("the build did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut build.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains("Dockerfile:3: the build was interrupted"),
        "{err}"
    );
    w.assert_clean();
}
