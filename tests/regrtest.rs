//! CPython's own regression tests (Debian's libpython3.11-testsuite), the modules
//! CI runs (`scripts/regrtest --ci`), natively and under km in the same run: every
//! test case that passes natively must pass under km. `scripts/regrtest` alone runs
//! the full list of issue 13.

use std::process::Command;

#[test]
fn cpython_regrtest_ci_modules_pass_as_natively() {
    let out = Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/regrtest"))
        .args(["--ci", "--km", env!("CARGO_BIN_EXE_km")])
        .output()
        .expect("running scripts/regrtest (needs python3)");
    let shown = String::from_utf8_lossy(&out.stdout);
    println!("{shown}");
    assert!(
        out.status.success(),
        "{shown}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every module ran and none lost a case.
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("0 of ") && l.ends_with(" modules lose tests under km")),
        "{shown}"
    );
    assert!(!shown.contains("hung"), "{shown}");
}
