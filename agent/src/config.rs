//! Where finagent keeps things: its home, the fact index, the model, the filings mirror.
//!
//! Every path has a command-line flag and an environment variable; the defaults live under
//! `FINAGENT_HOME` (`~/.finagent`).

use std::path::{Path, PathBuf};

/// File name of the default model, SmolLM2-135M-Instruct quantized to Q4_1.
pub const DEFAULT_MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Environment variable naming a local directory laid out like EDGAR downloads
/// (`filings/<TICKER>/<FY>/...`, `companyfacts/CIK##########.json`), used when EDGAR is not reachable.
pub const MIRROR_ENV: &str = "FINAGENT_XBRL_MIRROR";

/// Environment variable with the User-Agent SEC requires (`"Name email@example.com"`).
pub const USER_AGENT_ENV: &str = "FINAGENT_EDGAR_USER_AGENT";

#[derive(Debug, Clone)]
pub struct Paths {
    pub home: PathBuf,
    pub index: PathBuf,
    pub model: PathBuf,
    /// Downloaded filings (`<home>/filings`).
    pub filings: PathBuf,
    /// EDGAR response cache (`<home>/cache`).
    pub cache: PathBuf,
    pub mirror: Option<PathBuf>,
}

impl Paths {
    /// Resolves every path from the flags given, then the environment, then the defaults.
    pub fn resolve(home: Option<&Path>, index: Option<&Path>, model: Option<&Path>) -> Paths {
        let home = home.map(Path::to_path_buf).unwrap_or_else(default_home);
        Paths {
            index: index.map(Path::to_path_buf).unwrap_or_else(|| home.join("index")),
            model: model
                .map(Path::to_path_buf)
                .unwrap_or_else(|| home.join("models").join(DEFAULT_MODEL_FILE)),
            filings: home.join("filings"),
            cache: home.join("cache"),
            mirror: std::env::var_os(MIRROR_ENV).filter(|v| !v.is_empty()).map(PathBuf::from),
            home,
        }
    }
}

fn default_home() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join(".finagent"),
        _ => PathBuf::from(".finagent"),
    }
}
