//! The `ferry-applier` binary's command line: failures a user hits first name what is wrong.
//! (Having an integration test also makes `cargo test` build the binary the e2e tests run.)

use std::process::Command;

fn applier() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferry-applier"))
}

#[test]
fn run_with_a_missing_kubeconfig_names_the_file() {
    let out = applier()
        .args([
            "run",
            "--namespace",
            "team-a",
            "--source-server",
            "http://127.0.0.1:9",
            "--kubeconfig",
            "/nonexistent/ferry-kubeconfig",
        ])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/ferry-kubeconfig"), "{err}");
}

#[test]
fn run_requires_a_namespace_and_a_source_server() {
    let out = applier()
        .arg("run")
        .env_remove("FERRY_NAMESPACE")
        .env_remove("FERRY_SOURCE_SERVER")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--namespace") && err.contains("--source-server"),
        "{err}"
    );
}

#[test]
fn diff_requires_the_kustomization_name() {
    let out = applier()
        .args([
            "diff",
            "--namespace",
            "team-a",
            "--source-server",
            "http://127.0.0.1:9",
        ])
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--kustomization"), "{err}");
}

#[test]
fn log_format_accepts_only_text_or_json() {
    let out = applier()
        .args([
            "run",
            "--namespace",
            "team-a",
            "--source-server",
            "http://127.0.0.1:9",
            "--log-format",
            "yaml",
        ])
        .env_remove("FERRY_LOG_FORMAT")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("yaml") && err.contains("text") && err.contains("json"),
        "{err}"
    );
}
