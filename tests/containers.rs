//! km in containers (docs/deploy.md): a `FROM scratch` image holding only static
//! payloads, built locally with podman (no registry), run with the host's static km
//! bind-mounted read-only and `/dev/kvm` passed in; the output is compared with the
//! payload's own run in the same image. Needs podman and runc (`.ci/run` installs
//! them); skips with one line only where podman cannot run any container here.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::podman::{Podman, cannot_run_containers};
use common::{payload, run, scratch, text};

const KM_IN_IMAGE: &str = "/opt/kontain/bin/km";
const IMAGE: &str = "localhost/km-deploy-test";

/// The image: `/app/kgcc.km` (built with kontain-gcc), `/app/uname.km` (prints
/// uname), and `/app/kgcc -> km`, its entrypoint (the symlink trick).
fn build_image(dir: &Path, podman: &Podman) {
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
    podman.build(&dir.join("context"), IMAGE);
}

/// `podman run` of the image with the host's km and /dev/kvm, then `args`.
fn run_with_km(podman: &Podman, args: &[&str]) -> Output {
    let km = PathBuf::from(env!("CARGO_BIN_EXE_km"));
    run(podman
        .command()
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
    let podman = Podman::new(&dir, "podman");
    build_image(&dir, &podman);

    let native = run(podman.command().args([
        "run",
        "--rm",
        "--entrypoint",
        "/app/kgcc.km",
        IMAGE,
        "a",
        "b",
    ]));
    if cannot_run_containers(&native) {
        return;
    }
    assert_eq!(text(&native.stdout), "libc: glibc\nargs: a,b\n");

    let explicit = run_with_km(
        &podman,
        &["--entrypoint", KM_IN_IMAGE, IMAGE, "/app/kgcc.km", "a", "b"],
    );
    assert_same(&explicit, &native, "km as the entrypoint");

    let own_entrypoint = run_with_km(&podman, &[IMAGE, "a", "b"]);
    assert_same(
        &own_entrypoint,
        &native,
        "the image's entrypoint, a symlink to km",
    );

    let uname = run_with_km(
        &podman,
        &["--entrypoint", KM_IN_IMAGE, IMAGE, "/app/uname.km"],
    );
    let out = text(&uname.stdout);
    assert!(
        out.contains("sysname: kontain-runtime\n"),
        "{out}{}",
        text(&uname.stderr)
    );
}
