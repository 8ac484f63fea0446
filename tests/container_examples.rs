//! The Dockerfile examples in examples/containers/ (docs/deploy.md), built with
//! podman (no registry) and run with the installed krun, each compared with the
//! same image's run under plain runc:
//! - hello: the Dockerfile's final stage as written; its builder stage (a Debian
//!   image with gcc, which cannot be pulled here) is replaced by a build context of
//!   the same name holding the payload kontain-gcc built on this host;
//! - python: Debian's python3 and its libraries copied into an image FROM scratch
//!   by make-rootfs.sh, running app.py.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::podman::{Podman, assert_ran_under_km, cannot_run_containers};
use common::{installed_krun, run, scratch, text};

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/containers");

/// `image` run with runc, then with krun; None when this host cannot run containers.
fn run_both(podman: &Podman, krun: &Path, image: &str, args: &[&str]) -> Option<(Output, Output)> {
    let native = run(podman.command().args(["run", "--rm", image]).args(args));
    if cannot_run_containers(&native) {
        return None;
    }
    let under_krun = run(podman
        .command()
        .arg(format!("--runtime={}", krun.display()))
        .args(["run", "--rm", image])
        .args(args));
    Some((native, under_krun))
}

#[test]
fn hello_example_built_with_kontain_gcc_runs_from_scratch_under_krun() {
    let dir = scratch("example-hello");
    let krun = installed_krun(&dir);
    // What the builder stage makes: /out/hello.km, from examples/hello.c.
    let stage = dir.join("build-stage");
    std::fs::create_dir_all(stage.join("out")).unwrap();
    let built = run(
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tools/kontain-gcc"))
            .args(["-O2", "-o"])
            .arg(stage.join("out/hello.km"))
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/hello.c")),
    );
    assert!(built.status.success(), "{}", text(&built.stderr));

    let podman = Podman::new(&dir, "exhello");
    let image = "localhost/km-example-hello";
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    let out = run(podman
        .command()
        .args(["build", "-q", "-t", image, "--build-context"])
        .arg(format!("build={}", stage.display()))
        .arg("-f")
        .arg(Path::new(EXAMPLES).join("hello/Dockerfile"))
        .arg(&context));
    assert!(out.status.success(), "podman build: {}", text(&out.stderr));

    let Some((native, under_krun)) = run_both(&podman, &krun, image, &["a", "b"]) else {
        return;
    };
    let native_out = text(&native.stdout);
    assert!(
        native_out.contains("argv[0]: /app/hello\nargv[1]: a\nargv[2]: b\n"),
        "{native_out}"
    );
    assert_ran_under_km(&under_krun, &native);
}

#[test]
fn python_example_runs_debians_python3_from_scratch_under_krun() {
    let dir = scratch("example-python");
    let krun = installed_krun(&dir);
    let context = dir.join("context");
    std::fs::create_dir_all(&context).unwrap();
    for file in ["Dockerfile", "app.py"] {
        std::fs::copy(
            Path::new(EXAMPLES).join("python").join(file),
            context.join(file),
        )
        .unwrap();
    }
    let made = run(
        Command::new(Path::new(EXAMPLES).join("python/make-rootfs.sh")).arg(context.join("rootfs")),
    );
    assert!(
        made.status.success(),
        "make-rootfs.sh: {}",
        text(&made.stderr)
    );

    let podman = Podman::new(&dir, "expy");
    let image = "localhost/km-example-python";
    podman.build(&context, image);

    let Some((native, under_krun)) = run_both(&podman, &krun, image, &["x", "y"]) else {
        return;
    };
    let native_out = text(&native.stdout);
    assert!(
        native_out.contains("\"args\": [\"x\", \"y\"]"),
        "{native_out}"
    );
    assert!(
        native_out.contains("zlib round trip: True\n"),
        "{native_out}"
    );
    assert_ran_under_km(&under_krun, &native);
}
