//! `finagent quantize`: write a model as the bitsandbytes 4-bit or 8-bit Hugging Face checkpoint
//! that transformers would save, into a new folder, atomically.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use trainer::hf_quantized::{write_quantized, QuantizedFormat};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// 4 (NF4, blocks of 64, double-quantized absmax) or 8 (LLM.int8 row-wise codes).
    #[arg(long, value_name = "BITS")]
    bits: u32,

    /// Folder to create; it must not exist or be empty.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    /// A GGUF file or a Hugging Face folder (config.json and safetensors weights).
    #[arg(value_name = "MODEL")]
    model: PathBuf,
}

pub fn run(_home: Option<&Path>, args: Args) -> Result<()> {
    let started = Instant::now();
    let format = QuantizedFormat::from_bits(args.bits)?;
    check_out_dir(&args.out)?;
    let staging = staging_dir(&args.out)?;
    let written = write_quantized(&args.model, format, &staging).and_then(|report| {
        std::fs::rename(&staging, &args.out)
            .map_err(|source| trainer::Error::Io { path: args.out.clone(), source })?;
        Ok(report)
    });
    let report = match written {
        Ok(report) => report,
        Err(err) => {
            // The staging folder is ours alone; a failed run leaves nothing behind.
            let _ = std::fs::remove_dir_all(&staging);
            return Err(err).with_context(|| format!("quantizing {} to {format}", args.model.display()));
        }
    };
    outln!(
        "wrote {} ({format}): {} tensors, {} bytes, {:.3} bytes/param over {} quantized params, {:.1} s",
        args.out.display(),
        report.n_tensors,
        report.safetensors_bytes,
        report.bytes_per_quantized_param(),
        report.n_quantized_params,
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

/// Refuses an `--out` that is a file or a folder with anything in it.
fn check_out_dir(out: &Path) -> Result<()> {
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        bail!("--out {} exists and is not a folder", out.display());
    }
    let mut entries = std::fs::read_dir(out).with_context(|| format!("reading --out {}", out.display()))?;
    if entries.next().is_some() {
        bail!("--out {} is not empty; choose a new folder", out.display());
    }
    Ok(())
}

/// A fresh folder next to `out` (same file system, so the final rename is atomic).
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let name = out.file_name().with_context(|| format!("--out {} has no folder name", out.display()))?;
    let parent = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
    let staging = parent.join(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).with_context(|| format!("removing stale {}", staging.display()))?;
    }
    std::fs::create_dir(&staging).with_context(|| format!("creating {}", staging.display()))?;
    Ok(staging)
}
