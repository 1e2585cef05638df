//! `strata new`: the service it writes builds on this checkout (in the shared target directory) and
//! passes its own tests, its rules without AWS and its HTTP walk on the emulator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

fn strata(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_new_service_builds_on_this_checkout_and_passes_its_tests() {
    let dir = std::env::temp_dir().join(strata_testing::unique("strata-new"));
    let dir_text = dir.to_str().unwrap();
    let (code, stdout, stderr) = strata(&["new", "help-desk", "--dir", dir_text]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("created"), "{stdout}");
    for file in [
        "Cargo.toml",
        "Cargo.lock",
        "domain/src/lib.rs",
        "domain/tests/rules.rs",
        "function/src/main.rs",
        "infra/package.json",
        "infra/lib/stack.ts",
        "infra/test/stack.test.ts",
    ] {
        assert!(dir.join(file).is_file(), "{file} not written");
    }
    let (code, _, stderr) = strata(&["new", "help-desk", "--dir", dir_text]);
    assert_eq!(code, 2, "an existing directory is refused: {stderr}");
    for bad in ["Help", "1st", "a--b", "a-", "a_b"] {
        let (code, _, stderr) = strata(&["new", bad, "--dir", &format!("{dir_text}-{bad}")]);
        assert_eq!(code, 2, "{bad}: {stderr}");
    }

    // Its CDK app names this checkout's packed construct (scripts/test installs it and runs its tests).
    let package: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("infra/package.json")).unwrap()).unwrap();
    let tarball = package["dependencies"]["strata-cdk"].as_str().unwrap();
    assert!(
        tarball.starts_with("file:/") && tarball.ends_with("/target/npm/strata-cdk-0.1.0.tgz"),
        "{tarball}"
    );

    // Its tests, in this workspace's target directory (the same dev profile): what matches this
    // workspace's build is reused; crates whose features unify differently here are built again.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["test", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", target)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo test in {dir_text}:\n{stdout}\n{stderr}");
    // Both of its tests ran (`--quiet` prints a dot per test and the results).
    assert_eq!(stdout.matches("test result: ok. 1 passed").count(), 2, "{stdout}");
    let _ = std::fs::remove_dir_all(&dir);
}
