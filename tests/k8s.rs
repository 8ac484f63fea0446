//! The Kubernetes deployment (deploy/k8s/, docs/deploy.md), checked offline: the
//! manifests validate against Kubernetes 1.29's JSON schemas vendored in
//! deploy/k8s/schemas (and the validator rejects a broken one); the installer's
//! script installs km and krun and registers the `kontain` runtime in a real
//! containerd configuration once, restarting containerd once, and containerd reads
//! the result. No cluster runs here: what a kubelet would do is not tested.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{krun_exe, run, scratch, text, write_executable};

const K8S: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/k8s");
const MANIFESTS: [&str; 5] = [
    "namespace.yaml",
    "runtimeclass.yaml",
    "installer.yaml",
    "kvm-device-plugin.yaml",
    "example-hello.yaml",
];

/// Debian's python3, which has python3-yaml and python3-jsonschema.
fn validate(files: &[PathBuf]) -> Output {
    run(Command::new("/usr/bin/python3")
        .arg(Path::new(K8S).join("validate.py"))
        .args(files))
}

#[test]
fn manifests_validate_against_kubernetes_schemas() {
    let files: Vec<PathBuf> = MANIFESTS.iter().map(|m| Path::new(K8S).join(m)).collect();
    let out = validate(&files);
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}{}", text(&out.stderr));
    for (manifest, object) in MANIFESTS.iter().zip([
        "Namespace kontain",
        "RuntimeClass kontain",
        "DaemonSet kontain-installer",
        "DaemonSet kvm-device-plugin",
        "Deployment hello-kontain",
    ]) {
        assert!(
            report.contains(&format!("{manifest} {object}\n")),
            "{report}"
        );
    }
    // The pieces name each other: the example's class is the RuntimeClass, whose
    // handler is the runtime the installer registers in containerd.
    let read = |name: &str| std::fs::read_to_string(Path::new(K8S).join(name)).unwrap();
    assert!(read("runtimeclass.yaml").contains("\nhandler: kontain\n"));
    assert!(read("example-hello.yaml").contains("runtimeClassName: kontain\n"));
    assert!(read("install-kontain.sh").contains(".containerd.runtimes.kontain\""));
}

#[test]
fn validator_rejects_unknown_fields_and_wrong_types() {
    let dir = scratch("k8s-invalid");
    for (name, manifest, from, to, error) in [
        (
            "typo.yaml",
            "installer.yaml",
            "hostPID:",
            "hostPIDs:",
            "'hostPIDs' was unexpected",
        ),
        (
            "type.yaml",
            "example-hello.yaml",
            "replicas: 1",
            "replicas: one",
            "spec.replicas: 'one' is not of type 'integer'",
        ),
        (
            "kind.yaml",
            "example-hello.yaml",
            "kind: Deployment",
            "kind: Deploymint",
            "no schema for apps/v1 Deploymint",
        ),
    ] {
        let source = std::fs::read_to_string(Path::new(K8S).join(manifest)).unwrap();
        let broken = source.replace(from, to);
        assert_ne!(broken, source, "{manifest} has {from}");
        let file = dir.join(name);
        std::fs::write(&file, broken).unwrap();
        let out = validate(&[file]);
        let report = text(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{name}: {report}");
        assert!(report.contains(error), "{name}: {report}");
    }
}

/// install-kontain.sh against `root`, a node's files, with km and krun from `src`
/// and containerd's restart recorded in `root/restarts`.
fn install(root: &Path, src: &Path) -> String {
    let out = run(Command::new(Path::new(K8S).join("install-kontain.sh"))
        .env("HOST", root)
        .env("SRC", src)
        .env("RESTART_CONTAINERD", root.join("restart")));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

#[test]
fn installer_script_registers_krun_in_containerd_once() {
    let dir = scratch("k8s-install");
    let (root, src) = (dir.join("node"), dir.join("image"));
    std::fs::create_dir_all(root.join("etc/containerd")).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    let krun = krun_exe();
    std::fs::copy(&krun, src.join("krun")).unwrap();
    std::fs::copy(krun.with_file_name("km"), src.join("km")).unwrap();
    write_executable(
        &root.join("restart"),
        format!("#!/bin/sh\necho restarted >> {}/restarts\n", root.display()).as_bytes(),
        0,
    );
    // The node's containerd configuration: containerd's own defaults.
    let config = root.join("etc/containerd/config.toml");
    let defaults = run(Command::new("containerd").args(["config", "default"]));
    assert!(defaults.status.success(), "{}", text(&defaults.stderr));
    std::fs::write(&config, &defaults.stdout).unwrap();

    let first = install(&root, &src);
    assert!(
        first.contains("installed /opt/kontain/bin/krun\n"),
        "{first}"
    );
    for name in ["km", "krun"] {
        let installed = std::fs::read(root.join("opt/kontain/bin").join(name)).unwrap();
        assert!(
            installed == std::fs::read(src.join(name)).unwrap(),
            "{name}"
        );
    }
    let configured = std::fs::read_to_string(&config).unwrap();
    let restarts = || std::fs::read_to_string(root.join("restarts")).unwrap();
    assert_eq!(restarts(), "restarted\n");

    let second = install(&root, &src);
    assert!(second.contains("already configured"), "{second}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), configured);
    assert_eq!(restarts(), "restarted\n", "no restart when nothing changed");

    // containerd reads the configuration with the runtime in it.
    let dump = run(Command::new("containerd")
        .arg("--config")
        .arg(&config)
        .args(["config", "dump"]));
    let dump = text(&dump.stdout);
    let runtime = dump
        .split("[plugins.\"io.containerd.grpc.v1.cri\".containerd.runtimes.kontain.options]")
        .nth(1)
        .unwrap_or_else(|| panic!("no kontain runtime in {dump}"));
    assert!(
        runtime
            .trim_start()
            .starts_with("BinaryName = \"/opt/kontain/bin/krun\""),
        "{runtime}"
    );
    assert!(
        dump.contains("pod_annotations = [\"app.kontain.*\"]"),
        "{dump}"
    );
}
