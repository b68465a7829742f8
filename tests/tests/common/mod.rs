//! Helpers shared by the end-to-end tests: where the shared data and the model are, skipping
//! outside CI when they are absent, and running the freshly built `finagent` binary.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn workspace_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The shared data folder, or `None` (with a printed reason) outside CI when it is absent.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("../shared"));
    if dir.join("xbrl/filings").is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} under CI", dir.display());
    eprintln!("skipping: shared data not found at {}", dir.display());
    None
}

pub fn model() -> Option<PathBuf> {
    let path = std::env::var_os("FINAGENT_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    if path.is_file() {
        return Some(path);
    }
    assert!(std::env::var_os("CI").is_none(), "model missing at {} under CI", path.display());
    eprintln!("skipping: model not found at {}", path.display());
    None
}

/// The binary, built once per test run so it is never older than the sources
/// (`cargo test -p tests` alone does not rebuild another package's binary).
pub fn binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("test executable path");
            let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = Command::new(cargo)
                .args(["build", "--quiet", "-p", "agent", "--bin", "finagent"])
                .current_dir(workspace_root())
                .status()
                .expect("cargo build runs");
            assert!(status.success(), "building finagent failed");
            dir.join(format!("finagent{}", std::env::consts::EXE_SUFFIX))
        })
        .clone()
}

/// Runs finagent with a private home, no EDGAR, and the given environment.
pub fn finagent(home: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut command = Command::new(binary());
    command.args(args).env("FINAGENT_HOME", home).env_remove("FINAGENT_EDGAR_USER_AGENT");
    command.env_remove("FINAGENT_XBRL_MIRROR").env_remove("FINAGENT_INDEX").env_remove("FINAGENT_MODEL");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("finagent runs")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}
