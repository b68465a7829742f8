//! Locating the shared data for tests: `$FINAGENT_SHARED/data`, default `<workspace>/../shared/data`.

use std::path::PathBuf;

use datasets::DataDir;

/// The shared data folder, or `None` (after printing why) when it is absent outside CI.
pub fn shared_data() -> Option<DataDir> {
    let shared = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    let data = shared.join("data");
    if data.join("fpb/test.jsonl").is_file() {
        return Some(DataDir::new(data));
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} (CI is set)", data.display());
    eprintln!("skipping: shared data not found at {} (set FINAGENT_SHARED)", data.display());
    None
}
