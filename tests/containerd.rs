//! krun under containerd, the way a Kubernetes RuntimeClass uses it
//! (docs/deploy.md): containerd's runc shim (`io.containerd.runc.v2`) with its
//! `BinaryName` option naming the installed krun (`ctr run --runc-binary`). The test
//! starts its own containerd (private configuration, root, state and sockets: a
//! system containerd is not touched), imports a `FROM scratch` image that podman
//! built and saved (no registry), and runs the image's entrypoint with runc and
//! with krun. Needs containerd, podman and runc (`.ci/run` installs them).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::podman::{Podman, assert_uname_image_ran_under_km, cannot_run_containers, uname_image};
use common::{installed_krun, run, scratch, text};

const IMAGE: &str = "localhost/km-containerd-test:latest";
/// How long containerd may take to answer at start (a bound on a hang, not a
/// measure: it answers in well under a second when idle).
const START_TRIES: u32 = 1200;
const START_PAUSE: Duration = Duration::from_millis(100);

/// A containerd of the test's own, stopped (and its state removed) when dropped.
struct Containerd {
    /// State and sockets: a short path under /tmp (a socket's path is at most 108 bytes).
    state: PathBuf,
    child: Child,
}

impl Containerd {
    /// Starts containerd with its root (images, snapshots) under `dir`, without
    /// the CRI plugin (Kubernetes' side, which this test does not need).
    fn start(dir: &Path) -> Self {
        let state = std::env::temp_dir().join(format!("km-ctd-{}", std::process::id()));
        std::fs::create_dir_all(&state).unwrap();
        let config = dir.join("containerd.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {root:?}\nstate = {state:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = {grpc:?}\n[ttrpc]\n  address = {ttrpc:?}\n",
                root = dir.join("root"),
                state = state.join("state"),
                grpc = state.join("grpc.sock"),
                ttrpc = state.join("ttrpc.sock"),
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting containerd (Debian's containerd; .ci/run installs it)");
        let containerd = Containerd { state, child };
        containerd.wait_until_serving(dir);
        containerd
    }

    fn wait_until_serving(&self, dir: &Path) {
        for _ in 0..START_TRIES {
            if run(self.ctr().arg("version")).status.success() {
                return;
            }
            std::thread::sleep(START_PAUSE);
        }
        let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
        panic!("containerd does not answer: {log}");
    }

    /// ctr talking to this containerd, in a namespace of the test's own.
    fn ctr(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.state.join("grpc.sock"))
            .args(["--namespace", "km-test"])
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn succeeds(cmd: &mut Command) {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?}: {}", text(&out.stderr));
}

#[test]
fn containerd_runc_shim_runs_an_image_with_krun_as_its_binary() {
    let dir = scratch("containerd");
    let krun = installed_krun(&dir);

    let podman = Podman::new(&dir, "ctd");
    uname_image(&podman, &dir, IMAGE);
    if cannot_run_containers(&run(podman.command().args(["run", "--rm", IMAGE]))) {
        return;
    }
    let archive = dir.join("image.tar");
    succeeds(
        podman
            .command()
            .args(["save", "--format", "docker-archive", "-o"])
            .arg(&archive)
            .arg(IMAGE),
    );

    let containerd = Containerd::start(&dir);
    succeeds(
        containerd
            .ctr()
            .args(["images", "import", "--snapshotter", "native"])
            .arg(&archive),
    );
    let ctr_run = |id: &str, runc_binary: Option<&Path>| {
        let mut cmd = containerd.ctr();
        cmd.args(["run", "--rm", "--snapshotter", "native"])
            .args(["--runtime", "io.containerd.runc.v2"]);
        if let Some(binary) = runc_binary {
            cmd.arg("--runc-binary").arg(binary);
        }
        run(cmd.args([IMAGE, id]))
    };
    let native = ctr_run("with-runc", None);
    assert!(native.status.success(), "ctr run: {}", text(&native.stderr));
    let under_krun = ctr_run("with-krun", Some(&krun));
    assert_uname_image_ran_under_km(&under_krun, &native);
}
