//! krun, the OCI runtime (docs/deploy.md): its command line reaches the delegate
//! runtime unchanged but for krun's own option; `create` rewrites the bundle's
//! config.json (a real one, made by `runc spec`) to run the process under km with
//! /dev/kvm and nothing else changed; `exec` runs its process under km; and podman
//! with the installed krun as its runtime runs a `FROM scratch` image's own
//! entrypoint under km, with km's options from the container's annotation.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::podman::{Podman, assert_uname_image_ran_under_km, cannot_run_containers, uname_image};
use common::{installed_krun, krun_exe, payload, run, scratch, text, write_executable};

/// A delegate runtime that only records its arguments, one a line.
const RECORDER: &[u8] = b"#!/bin/sh\nprintf '%s\\n' \"$@\" > \"$KRUN_TEST_ARGS\"\n";

/// A directory with a recording delegate and a bundle whose config.json is
/// `runc spec`'s.
struct Setup {
    dir: PathBuf,
    bundle: PathBuf,
    recorder: PathBuf,
}

impl Setup {
    fn new(name: &str) -> Self {
        let dir = scratch(name);
        let recorder = dir.join("recorder");
        write_executable(&recorder, RECORDER, 0);
        let bundle = dir.join("bundle");
        std::fs::create_dir(&bundle).unwrap();
        let out = run(Command::new("runc")
            .arg("spec")
            .arg("--bundle")
            .arg(&bundle));
        assert!(out.status.success(), "runc spec: {}", text(&out.stderr));
        Setup {
            dir,
            bundle,
            recorder,
        }
    }

    fn config_path(&self) -> PathBuf {
        self.bundle.join("config.json")
    }

    fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.config_path()).unwrap()).unwrap()
    }

    fn set_config(&self, config: &Value) {
        std::fs::write(self.config_path(), serde_json::to_vec(config).unwrap()).unwrap();
    }

    /// krun with the recorder as its delegate, named by KRUN_RUNTIME.
    fn krun(&self) -> Command {
        let mut cmd = Command::new(krun_exe());
        cmd.env("KRUN_RUNTIME", &self.recorder)
            .env("KRUN_TEST_ARGS", self.dir.join("args"))
            .env_remove("KRUN_KM_OPTIONS");
        cmd
    }

    /// The arguments the recorder got, or None when it did not run.
    fn recorded(&self) -> Option<Vec<String>> {
        let args = std::fs::read_to_string(self.dir.join("args")).ok()?;
        std::fs::remove_file(self.dir.join("args")).unwrap();
        Some(args.lines().map(str::to_owned).collect())
    }
}

/// The km krun runs: the one beside it.
fn km_beside_krun() -> String {
    krun_exe().with_file_name("km").to_str().unwrap().to_owned()
}

fn succeeds(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
    out
}

#[test]
fn arguments_reach_the_delegate() {
    let setup = Setup::new("krun-args");
    let bundle = setup.bundle.to_str().unwrap();
    let passed = [
        "--root",
        "/run/krun-test",
        "--log=/dev/null",
        "--log-format",
        "json",
        "--systemd-cgroup",
        "create",
        "--bundle",
        bundle,
        "--pid-file",
        "/dev/null",
        "ctr1",
    ];
    succeeds(setup.krun().args(passed));
    assert_eq!(setup.recorded().unwrap(), passed);

    // --delegate names the runtime (over KRUN_RUNTIME) and is not passed on.
    for command in [
        &["state", "ctr1"][..],
        &["kill", "ctr1", "KILL"],
        &["delete", "--force", "ctr1"],
        &["start", "ctr1"],
    ] {
        succeeds(
            setup
                .krun()
                .env("KRUN_RUNTIME", "/nonexistent")
                .arg("--delegate")
                .arg(&setup.recorder)
                .args(command),
        );
        assert_eq!(setup.recorded().unwrap(), command);
    }
}

#[test]
fn exec_runs_its_process_under_km() {
    let setup = Setup::new("krun-exec");
    let km = km_beside_krun();
    succeeds(
        setup
            .krun()
            .args(["exec", "--cwd", "/", "-e", "A=1", "ctr1", "/app/x", "a"]),
    );
    assert_eq!(
        setup.recorded().unwrap(),
        [
            "exec", "--cwd", "/", "-e", "A=1", "ctr1", &km, "/app/x", "a"
        ]
    );

    // The way engines call it: the process in a file, which krun rewrites.
    let file = setup.dir.join("process.json");
    let process = json!({
        "args": ["/app/x", "a"], "cwd": "/", "env": ["A=1"],
        "user": {"uid": 0, "gid": 0}, "org.example.unknown": [3, 1, 2]
    });
    std::fs::write(&file, process.to_string()).unwrap();
    let file_arg = file.to_str().unwrap();
    succeeds(
        setup
            .krun()
            .args(["exec", "--process", file_arg, "--detach", "ctr1"]),
    );
    assert_eq!(
        setup.recorded().unwrap(),
        ["exec", "--process", file_arg, "--detach", "ctr1"]
    );
    let mut expected = process;
    expected["args"] = json!([km, "/app/x", "a"]);
    let rewritten: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(rewritten, expected);
}

/// The host's /dev/kvm as `linux.devices` and the cgroup allow rule name it.
fn host_kvm() -> (Value, Value) {
    let meta = std::fs::metadata("/dev/kvm").unwrap();
    let (major, minor) = (
        rustix::fs::major(meta.rdev()),
        rustix::fs::minor(meta.rdev()),
    );
    (
        json!({"path": "/dev/kvm", "type": "c", "major": major, "minor": minor,
               "fileMode": meta.mode() & 0o7777, "uid": 0, "gid": 0}),
        json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}),
    )
}

fn push(array: &mut Value, item: Value) {
    array.as_array_mut().unwrap().push(item);
}

#[test]
fn create_rewrites_the_config_for_km_only() {
    let setup = Setup::new("krun-config");
    let mut original = setup.config();
    original["annotations"] = json!({"app.kontain.km-options": " -X  --opt=1 "});
    original["org.example.unknown"] = json!({"kept": [3, 1, 2]});
    original["process"]["org.example.unknown"] = json!("kept");
    setup.set_config(&original);
    std::fs::set_permissions(setup.config_path(), PermissionsExt::from_mode(0o600)).unwrap();

    let bundle = setup.bundle.to_str().unwrap();
    let create = ["create", "--bundle", bundle, "ctr1"];
    succeeds(
        setup
            .krun()
            .env("KRUN_KM_OPTIONS", "--from-env")
            .args(create),
    );
    assert_eq!(setup.recorded().unwrap(), create);

    let km = km_beside_krun();
    let (device, rule) = host_kvm();
    let mut expected = original.clone();
    let args = original["process"]["args"].as_array().unwrap();
    let mut under_km = vec![
        json!(km),
        json!("--from-env"),
        json!("-X"),
        json!("--opt=1"),
    ];
    under_km.extend(args.iter().cloned());
    expected["process"]["args"] = Value::Array(under_km);
    push(
        &mut expected["mounts"],
        json!({"destination": km, "type": "bind", "source": km, "options": ["bind", "ro"]}),
    );
    expected["linux"]["devices"] = json!([device]);
    push(&mut expected["linux"]["resources"]["devices"], rule);
    assert_eq!(setup.config(), expected);
    let meta = std::fs::metadata(setup.config_path()).unwrap();
    assert_eq!(
        meta.mode() & 0o777,
        0o600,
        "config.json keeps its permissions"
    );

    // Once is enough: a second create (an engine retrying) changes nothing.
    let first = std::fs::read(setup.config_path()).unwrap();
    succeeds(setup.krun().args(create));
    assert_eq!(std::fs::read(setup.config_path()).unwrap(), first);
}

#[test]
fn a_bad_bundle_is_one_error_line_and_no_delegate() {
    let setup = Setup::new("krun-errors");
    let log = setup.dir.join("log.json");
    let bundle = setup.bundle.to_str().unwrap();
    let mut config = setup.config();
    config["process"]["args"] = json!([]);
    setup.set_config(&config);
    for (remove, error) in [(false, "the process has no args"), (true, "reading ")] {
        if remove {
            std::fs::remove_file(setup.config_path()).unwrap();
        }
        let out = run(setup.krun().arg("--log").arg(&log).args([
            "--log-format",
            "json",
            "create",
            "--bundle",
            bundle,
            "c",
        ]));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("krun: ") && stderr.contains(error),
            "{stderr}"
        );
        assert_eq!(setup.recorded(), None, "the delegate must not run");
        let logged = std::fs::read_to_string(&log).unwrap();
        let last: Value = serde_json::from_str(logged.lines().last().unwrap()).unwrap();
        assert_eq!(last["level"], "error");
        assert_eq!(last["msg"], stderr.trim_end());
    }
}

#[test]
fn podman_runs_an_images_own_entrypoint_under_installed_krun() {
    let dir = scratch("krun-podman");
    let krun = installed_krun(&dir);

    let podman = Podman::new(&dir, "krun");
    let image = "localhost/km-krun-test";
    uname_image(&podman, &dir, image);

    let native = run(podman.command().args(["run", "--rm", image]));
    if cannot_run_containers(&native) {
        return;
    }
    let under_krun = run(podman
        .command()
        .arg(format!("--runtime={}", krun.display()))
        .args(["run", "--rm", image]));
    assert_uname_image_ran_under_km(&under_krun, &native);

    // km's options from the container's annotation reach km: here its --argv0.
    let annotated = run(podman
        .command()
        .arg(format!("--runtime={}", krun.display()))
        .args(["run", "--rm", "--annotation"])
        .arg("app.kontain.km-options=--argv0=renamed-by-km")
        .arg(image));
    let out = text(&annotated.stdout);
    assert!(out.starts_with("sysname: kontain-runtime\n"), "{out}");
    assert!(
        out.contains("argv[0]: renamed-by-km\nargv[1]: from-image\n"),
        "{out}"
    );
}

/// `podman rm -f` of `names` when dropped, so that a failing test leaves no
/// container running.
struct Containers<'a>(&'a Podman, &'a [&'a str]);

impl Drop for Containers<'_> {
    fn drop(&mut self) {
        let _ = run(self.0.command().args(["rm", "-f", "-t", "0"]).args(self.1));
    }
}

#[test]
fn podman_exec_in_a_krun_container_runs_under_km() {
    let dir = scratch("krun-exec-podman");
    let krun = installed_krun(&dir);
    let context = dir.join("context");
    std::fs::create_dir_all(context.join("app")).unwrap();
    std::fs::copy(payload("waiter.glibc"), context.join("app/waiter")).unwrap();
    std::fs::copy(payload("hello.glibc"), context.join("app/uname")).unwrap();
    std::fs::write(
        context.join("Containerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app/waiter\"]\n",
    )
    .unwrap();
    let podman = Podman::new(&dir, "krunexec");
    let image = "localhost/km-krun-exec-test";
    podman.build(&context, image);

    let names = ["km-exec-runc", "km-exec-krun"];
    let _cleanup = Containers(&podman, &names);
    let with_runc = run(podman
        .command()
        .args(["run", "-d", "--name", names[0], image]));
    if cannot_run_containers(&with_runc) {
        return;
    }
    let with_krun = run(podman
        .command()
        .arg(format!("--runtime={}", krun.display()))
        .args(["run", "-d", "--name", names[1], image]));
    assert!(with_krun.status.success(), "{}", text(&with_krun.stderr));

    let exec = |name: &str| {
        run(podman
            .command()
            .arg(format!("--runtime={}", krun.display()))
            .args(["exec", name, "/app/uname", "from-image"]))
    };
    assert_uname_image_ran_under_km(&exec(names[1]), &exec(names[0]));
}
