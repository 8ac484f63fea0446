//! km in containers (docs/deploy.md): a `FROM scratch` image holding only static
//! payloads, built locally with podman (no registry), run with the host's static km
//! bind-mounted read-only and `/dev/kvm` passed in; the output is compared with the
//! payload's own run in the same image. Needs podman and runc (`.ci/run` installs
//! them); skips with one line only where podman cannot run any container here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{payload, run, scratch, text};

const KM_IN_IMAGE: &str = "/opt/kontain/bin/km";
const PODMAN_FAILED: i32 = 125;
const IMAGE: &str = "localhost/km-deploy-test";

/// podman's state directory for this test: podman wants a short path (at most 50
/// bytes), so it is under /tmp, removed when the test ends.
struct RunRoot(PathBuf);

impl RunRoot {
    fn new() -> Self {
        RunRoot(std::env::temp_dir().join(format!("km-podman-{}", std::process::id())))
    }
}

impl Drop for RunRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// podman with its own storage and configuration under `dir` (and `runroot`), so
/// the test touches neither the host's images nor its containers.conf (runc: crun
/// refuses this kind of host's hybrid cgroups; no default ulimits: a container may
/// not raise them here).
fn podman(dir: &Path, runroot: &RunRoot) -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", dir.join("containers.conf"))
        .arg("--root")
        .arg(dir.join("storage"))
        .arg("--runroot")
        .arg(&runroot.0)
        .args(["--storage-driver", "vfs"])
        .stdin(std::process::Stdio::null());
    cmd
}

const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = []\n\n\
    [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";

/// The image: `/app/kgcc.km` (built with kontain-gcc), `/app/uname.km` (prints
/// uname), and `/app/kgcc -> km`, its entrypoint (the symlink trick).
fn build_image(dir: &Path, runroot: &RunRoot) {
    let app = dir.join("context/app");
    std::fs::create_dir_all(&app).unwrap();
    let built = run(
        Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/kontain-gcc"))
            .arg("-o")
            .arg(app.join("kgcc.km"))
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/payloads/kgcc.c")),
    );
    assert!(built.status.success(), "{}", text(&built.stderr));
    std::fs::copy(payload("hello.glibc"), app.join("uname.km")).unwrap();
    std::os::unix::fs::symlink(KM_IN_IMAGE, app.join("kgcc")).unwrap();
    std::fs::write(
        dir.join("context/Containerfile"),
        "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app/kgcc\"]\n",
    )
    .unwrap();
    let out = run(podman(dir, runroot)
        .args(["build", "-q", "-t", IMAGE])
        .arg(dir.join("context")));
    assert!(out.status.success(), "podman build: {}", text(&out.stderr));
}

/// `podman run` of the image with the host's km and /dev/kvm, then `args`.
fn run_with_km(dir: &Path, runroot: &RunRoot, args: &[&str]) -> Output {
    let km = PathBuf::from(env!("CARGO_BIN_EXE_km"));
    run(podman(dir, runroot)
        .args(["run", "--rm", "--device", "/dev/kvm", "-v"])
        .arg(format!("{}:{KM_IN_IMAGE}:ro", km.display()))
        .args(args))
}

fn assert_same(under_km: &Output, native: &Output, how: &str) {
    assert_eq!(
        text(&under_km.stdout),
        text(&native.stdout),
        "{how}: stderr {}",
        text(&under_km.stderr)
    );
    assert_eq!(under_km.status.code(), native.status.code(), "{how}");
}

#[test]
fn from_scratch_image_runs_under_bind_mounted_km() {
    let dir = scratch("containers");
    std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF).unwrap();
    let runroot = RunRoot::new();
    build_image(&dir, &runroot);

    let native = run(podman(&dir, &runroot).args([
        "run",
        "--rm",
        "--entrypoint",
        "/app/kgcc.km",
        IMAGE,
        "a",
        "b",
    ]));
    // 125: podman or the runtime failed, before anything of the image ran.
    if native.status.code() == Some(PODMAN_FAILED) {
        println!(
            "skipping: podman cannot run a container on this host: {}",
            text(&native.stderr).lines().last().unwrap_or("")
        );
        return;
    }
    assert_eq!(text(&native.stdout), "libc: glibc\nargs: a,b\n");

    let explicit = run_with_km(
        &dir,
        &runroot,
        &["--entrypoint", KM_IN_IMAGE, IMAGE, "/app/kgcc.km", "a", "b"],
    );
    assert_same(&explicit, &native, "km as the entrypoint");

    let own_entrypoint = run_with_km(&dir, &runroot, &[IMAGE, "a", "b"]);
    assert_same(
        &own_entrypoint,
        &native,
        "the image's entrypoint, a symlink to km",
    );

    let uname = run_with_km(
        &dir,
        &runroot,
        &["--entrypoint", KM_IN_IMAGE, IMAGE, "/app/uname.km"],
    );
    let out = text(&uname.stdout);
    assert!(
        out.contains("sysname: kontain-runtime\n"),
        "{out}{}",
        text(&uname.stderr)
    );
}
