//! podman for tests that run containers: its own storage, state and configuration
//! (no registry: images are built locally), touching neither the host's images
//! nor its containers.conf.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{payload, run, text};

/// podman's exit status when podman or the runtime failed before anything of the
/// image ran.
pub const PODMAN_FAILED: i32 = 125;

/// runc: crun refuses this kind of host's hybrid cgroups; no default ulimits: a
/// container may not raise them here.
const CONTAINERS_CONF: &str = "[containers]\ndefault_ulimits = []\n\n\
    [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n";

/// A private podman: storage and configuration under a test's directory, state
/// under /tmp (podman wants a short path there, at most 50 bytes), removed when
/// dropped.
pub struct Podman {
    dir: PathBuf,
    runroot: PathBuf,
}

impl Podman {
    /// A podman keeping its files in `dir` (a test's scratch directory), named
    /// `tag` in its state directory.
    pub fn new(dir: &Path, tag: &str) -> Self {
        std::fs::write(dir.join("containers.conf"), CONTAINERS_CONF).unwrap();
        let runroot = std::env::temp_dir().join(format!("km-{tag}-{}", std::process::id()));
        Podman {
            dir: dir.to_owned(),
            runroot,
        }
    }

    pub fn command(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "vfs"])
            .stdin(std::process::Stdio::null());
        cmd
    }

    /// `podman build -t tag context`, which must succeed.
    pub fn build(&self, context: &Path, tag: &str) {
        let out = run(self.command().args(["build", "-q", "-t", tag]).arg(context));
        assert!(out.status.success(), "podman build: {}", text(&out.stderr));
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.runroot);
    }
}

/// Whether `out`, a container's run, failed in podman or the runtime before the
/// image ran: then this host cannot run containers, and the caller says so in
/// one line and skips.
pub fn cannot_run_containers(out: &Output) -> bool {
    if out.status.code() != Some(PODMAN_FAILED) {
        return false;
    }
    println!(
        "skipping: podman cannot run a container on this host: {}",
        text(&out.stderr).lines().last().unwrap_or("")
    );
    true
}

/// The entrypoint of [`uname_image`] and the argument it gives.
const UNAME_ENTRYPOINT: &str = "[\"/app/uname\", \"from-image\"]";

/// Builds `tag`, a `FROM scratch` image holding only a static payload that prints
/// its uname, arguments and environment, as its entrypoint.
pub fn uname_image(podman: &Podman, dir: &Path, tag: &str) {
    let context = dir.join("context");
    std::fs::create_dir_all(context.join("app")).unwrap();
    std::fs::copy(payload("hello.glibc"), context.join("app/uname")).unwrap();
    std::fs::write(
        context.join("Containerfile"),
        format!("FROM scratch\nCOPY app /app\nENTRYPOINT {UNAME_ENTRYPOINT}\n"),
    )
    .unwrap();
    podman.build(&context, tag);
}

/// Checks that `under_km`, a run of [`uname_image`] under km, says so in its
/// uname and otherwise shows what `native`, its run under runc, shows.
pub fn assert_uname_image_ran_under_km(under_km: &Output, native: &Output) {
    let native_out = text(&native.stdout);
    assert!(native_out.contains("argv[1]: from-image\n"), "{native_out}");
    assert_ran_under_km(under_km, native);
}

/// Checks that `under_km`, a container's run under km, printed `sysname:
/// kontain-runtime` first where `native`, the same container's run under runc,
/// printed `sysname: Linux`, and otherwise the same lines (the uname fields and
/// the host name aside, which differ between km and Linux and between containers),
/// with the same status.
pub fn assert_ran_under_km(under_km: &Output, native: &Output) {
    let (native_out, km_out) = (text(&native.stdout), text(&under_km.stdout));
    assert!(native_out.starts_with("sysname: Linux\n"), "{native_out}");
    assert!(
        km_out.starts_with("sysname: kontain-runtime\n"),
        "{km_out}{}",
        text(&under_km.stderr)
    );
    assert_eq!(
        same_in_any_container(&km_out),
        same_in_any_container(&native_out)
    );
    assert_eq!(under_km.status.code(), native.status.code());
}

/// What a run prints, less what differs between two containers or between km and
/// Linux, sorted: each line is labelled (`argv[1]: `, `env: `), and podman gives
/// a container its environment in no fixed order.
fn same_in_any_container(out: &str) -> Vec<&str> {
    const DIFFERENT: [&str; 6] = [
        "sysname: ",
        "nodename: ",
        "release: ",
        "version: ",
        "machine: ",
        "env: HOSTNAME=",
    ];
    let mut lines: Vec<&str> = out
        .lines()
        .filter(|l| !DIFFERENT.iter().any(|d| l.starts_with(d)))
        .collect();
    lines.sort_unstable();
    lines
}
