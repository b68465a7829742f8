//! Helpers shared by the xbrl integration tests.

use std::path::PathBuf;

/// The shared data folder: `FINAGENT_SHARED`, else `<workspace>/../shared`. `None` (after printing
/// why) when it is absent outside CI; under CI its absence fails the test.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared")));
    if dir.join("xbrl/filings").is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "shared data missing at {} (set FINAGENT_SHARED)",
        dir.display()
    );
    eprintln!("skipping: shared data not found at {} (set FINAGENT_SHARED)", dir.display());
    None
}
