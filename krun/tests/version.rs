//! krun answers `--version` and `features` as OCI runtimes do, from its delegate
//! (runc on PATH, as `.ci/run` installs it) with its own lines added.

use std::process::Command;

fn krun(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_krun"))
        .args(args)
        .env_remove("KRUN_RUNTIME")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn runc(args: &[&str]) -> String {
    let out = Command::new("runc").args(args).output().unwrap();
    assert!(out.status.success(), "runc {args:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn version_names_krun_and_its_delegate() {
    let version = krun(&["--version"]);
    let expected = format!(
        "krun version {}\ndelegate: {}",
        env!("CARGO_PKG_VERSION"),
        runc(&["--version"])
    );
    assert_eq!(version, expected);
}

#[test]
fn features_are_the_delegates_with_krun_annotations() {
    let mut ours: serde_json::Value = serde_json::from_str(&krun(&["features"])).unwrap();
    let theirs: serde_json::Value = serde_json::from_str(&runc(&["features"])).unwrap();
    let annotations = ours["annotations"].as_object_mut().unwrap();
    assert_eq!(
        annotations.remove("app.kontain.krun.version"),
        Some(env!("CARGO_PKG_VERSION").into())
    );
    assert_eq!(
        annotations.remove("app.kontain.krun.km-options-annotation"),
        Some("app.kontain.km-options".into())
    );
    assert_eq!(ours, theirs);
}
