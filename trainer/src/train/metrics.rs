//! The learning-rate schedule, the per-step metrics log (JSONL) and the loss-curve plot (SVG).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Warmup from 0 to `peak` over `warmup` steps, then `linear` or `cosine` decay to 0 at `total`,
/// or `constant`. `step` is 0-based, as in transformers' schedulers.
pub fn learning_rate(schedule: &str, peak: f32, warmup: usize, total: usize, step: usize) -> f32 {
    if step < warmup {
        return peak * step as f32 / warmup as f32;
    }
    let decay_steps = total.saturating_sub(warmup).max(1);
    let progress = ((step - warmup) as f64 / decay_steps as f64).min(1.0);
    let factor = match schedule {
        "cosine" => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        "constant" => 1.0,
        _ => 1.0 - progress,
    };
    (f64::from(peak) * factor) as f32
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    /// Optimizer steps completed.
    pub step: usize,
    /// Mean loss over the answer tokens of the step's global batch.
    pub loss: f64,
    pub lr: f32,
    /// Global gradient norm before clipping (of the gradient the optimizer saw).
    pub grad_norm: f64,
    /// Tokens (inputs, padding excluded) per second over all ranks.
    pub tokens_per_sec: f64,
    /// Answer tokens in the global batch.
    pub answer_tokens: usize,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub val_loss: Option<f64>,
    pub elapsed_sec: f64,
}

/// The append-only metrics file of a run.
#[derive(Debug, Clone)]
pub struct MetricsLog {
    path: PathBuf,
}

impl MetricsLog {
    pub fn new(run_dir: &Path) -> Self {
        MetricsLog { path: run_dir.join("metrics.jsonl") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every line recorded so far.
    pub fn read(&self) -> Result<Vec<StepMetrics>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => return Err(Error::Io { path: self.path.clone(), source }),
        };
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|source| Error::Json { path: self.path.clone(), source })
            })
            .collect()
    }

    /// Drops lines after `step` (a resumed run redoes them), rewriting the file atomically.
    pub fn truncate_after(&self, step: usize) -> Result<()> {
        let kept: Vec<StepMetrics> = self.read()?.into_iter().filter(|line| line.step <= step).collect();
        let mut text = String::new();
        for line in &kept {
            text.push_str(
                &serde_json::to_string(line)
                    .map_err(|source| Error::Json { path: self.path.clone(), source })?,
            );
            text.push('\n');
        }
        write_atomically(&self.path, text.as_bytes())
    }

    pub fn append(&self, metrics: &StepMetrics) -> Result<()> {
        let line = serde_json::to_string(metrics)
            .map_err(|source| Error::Json { path: self.path.clone(), source })?;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        writeln!(file, "{line}").map_err(|source| Error::Io { path: self.path.clone(), source })
    }
}

/// Whether output for `path` must be written into it rather than renamed over it: it exists and is
/// neither a regular file nor a folder (`/dev/null`, a pipe, a terminal).
pub fn writes_in_place(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| !meta.is_file() && !meta.is_dir())
}

/// Writes `bytes` to a temporary file beside `path` and renames it into place. An existing
/// `path` that is not a regular file (`/dev/null`, a pipe) is written in place instead: renaming
/// over it would replace the device with a plain file for every other program.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    if writes_in_place(path) {
        let io = |source| Error::Io { path: path.to_path_buf(), source };
        let mut file = std::fs::OpenOptions::new().write(true).open(path).map_err(io)?;
        return file.write_all(bytes).map_err(io);
    }
    let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).map_err(|source| Error::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

/// An SVG line chart of training loss (and validation loss where measured) against step.
pub fn loss_curve_svg(metrics: &[StepMetrics]) -> String {
    const WIDTH: f64 = 640.0;
    const HEIGHT: f64 = 360.0;
    const MARGIN: f64 = 48.0;
    let finite = |value: f64| value.is_finite();
    let losses: Vec<(f64, f64)> =
        metrics.iter().filter(|m| finite(m.loss)).map(|m| (m.step as f64, m.loss)).collect();
    let vals: Vec<(f64, f64)> = metrics
        .iter()
        .filter_map(|m| m.val_loss.filter(|v| finite(*v)).map(|v| (m.step as f64, v)))
        .collect();
    let all = losses.iter().chain(&vals);
    let (mut max_step, mut min_loss, mut max_loss) = (1f64, f64::INFINITY, f64::NEG_INFINITY);
    for &(step, loss) in all {
        max_step = max_step.max(step);
        min_loss = min_loss.min(loss);
        max_loss = max_loss.max(loss);
    }
    if !min_loss.is_finite() {
        (min_loss, max_loss) = (0.0, 1.0);
    }
    if max_loss - min_loss < 1e-9 {
        max_loss = min_loss + 1.0;
    }
    let x = |step: f64| MARGIN + step / max_step * (WIDTH - 2.0 * MARGIN);
    let y = |loss: f64| HEIGHT - MARGIN - (loss - min_loss) / (max_loss - min_loss) * (HEIGHT - 2.0 * MARGIN);
    let polyline = |points: &[(f64, f64)], color: &str| {
        let coords: Vec<String> =
            points.iter().map(|&(step, loss)| format!("{:.1},{:.1}", x(step), y(loss))).collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
            coords.join(" ")
        )
    };
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    svg.push_str(&format!(r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#));
    svg.push_str(&format!(
        r#"<line x1="{MARGIN}" y1="{b}" x2="{r}" y2="{b}" stroke="black"/><line x1="{MARGIN}" y1="{MARGIN}" x2="{MARGIN}" y2="{b}" stroke="black"/>"#,
        b = HEIGHT - MARGIN,
        r = WIDTH - MARGIN
    ));
    svg.push_str(&format!(
        r#"<text x="{MARGIN}" y="{t}">{max_loss:.3}</text><text x="{MARGIN}" y="{b}">{min_loss:.3}</text><text x="{r}" y="{s}" text-anchor="end">step {max_step}</text>"#,
        t = MARGIN - 6.0,
        b = HEIGHT - MARGIN + 14.0,
        r = WIDTH - MARGIN,
        s = HEIGHT - MARGIN + 28.0
    ));
    svg.push_str(&polyline(&losses, "#1f77b4"));
    if !vals.is_empty() {
        svg.push_str(&polyline(&vals, "#d62728"));
    }
    svg.push_str(&format!(
        r##"<text x="{l}" y="20" fill="#1f77b4">training loss</text><text x="{v}" y="20" fill="#d62728">validation loss</text></svg>"##,
        l = MARGIN,
        v = MARGIN + 110.0
    ));
    svg.push('\n');
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn writing_atomically_to_a_device_writes_through_it_and_keeps_it() {
        use std::os::unix::fs::FileTypeExt;
        let null = Path::new("/dev/null");
        if !std::fs::metadata(null).is_ok_and(|meta| meta.file_type().is_char_device()) {
            return; // no device to check against here
        }
        write_atomically(null, b"discarded\n").unwrap();
        assert!(std::fs::metadata(null).unwrap().file_type().is_char_device(), "/dev/null was replaced");
        assert!(!Path::new("/dev/.null.tmp").exists());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn schedules_warm_up_then_decay_to_zero() {
        assert_eq!(learning_rate("linear", 1.0, 10, 110, 0), 0.0);
        assert_eq!(learning_rate("linear", 1.0, 10, 110, 5), 0.5);
        assert_eq!(learning_rate("linear", 1.0, 10, 110, 10), 1.0);
        assert!((learning_rate("linear", 1.0, 10, 110, 60) - 0.5).abs() < 1e-6);
        assert!((learning_rate("cosine", 1.0, 10, 110, 60) - 0.5).abs() < 1e-6);
        assert!(learning_rate("cosine", 1.0, 10, 110, 110).abs() < 1e-6);
        assert_eq!(learning_rate("constant", 2.0, 0, 10, 9), 2.0);
    }

    #[test]
    fn the_plot_has_one_line_per_series() {
        let line = |step, loss, val_loss| StepMetrics {
            step,
            loss,
            lr: 0.0,
            grad_norm: 0.0,
            tokens_per_sec: 0.0,
            answer_tokens: 1,
            val_loss,
            elapsed_sec: 0.0,
        };
        let svg = loss_curve_svg(&[line(1, 2.0, None), line(2, 1.0, Some(1.5)), line(3, f64::NAN, None)]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }
}
