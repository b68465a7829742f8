//! The predictions log: one JSON line per answered example (id, prompt hash, output, parsed
//! label), appended as answers are made, so an interrupted evaluation resumes without redoing them.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One answered example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub id: String,
    /// [`prompt_hash`] of the prompt answered; a resumed run refuses a changed prompt.
    pub prompt_hash: String,
    /// The decoded continuation (generation) or the chosen label (scoring).
    pub output: String,
    /// The label read from `output` by strict parsing, `None` when it names none.
    pub parsed: Option<String>,
    /// Scoring mode: every label's summed token log-likelihood.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_log_likelihoods: Option<Vec<(String, f64)>>,
    /// This example's share of its batch's wall time.
    pub seconds: f64,
}

/// FNV-1a (64 bit) of the prompt's bytes, as 16 hex digits: stable across runs and platforms.
pub fn prompt_hash(prompt: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prompt.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// An append-only predictions file and the predictions already in it.
#[derive(Debug)]
pub struct PredictionLog {
    path: PathBuf,
    file: File,
    done: HashMap<String, Prediction>,
}

impl PredictionLog {
    /// Opens `path` for appending, reading the predictions already there. A last line cut short
    /// by an interruption is dropped (and cut from the file); any other unreadable line is an
    /// error naming the file and line.
    pub fn open(path: &Path) -> Result<Self> {
        let io_error = |source| Error::Io { path: path.to_path_buf(), source };
        let mut done = HashMap::new();
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(io_error)?;
            let complete_len = text.rfind('\n').map_or(0, |end| end + 1);
            for (line_idx, line) in text[..complete_len].lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let prediction: Prediction =
                    serde_json::from_str(line).map_err(|source| Error::InvalidInput {
                        reason: format!(
                            "{} line {}: not a prediction: {source}",
                            path.display(),
                            line_idx + 1
                        ),
                    })?;
                done.insert(prediction.id.clone(), prediction);
            }
            if complete_len < text.len() {
                let file = OpenOptions::new().write(true).open(path).map_err(io_error)?;
                file.set_len(complete_len as u64).map_err(io_error)?;
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(path).map_err(io_error)?;
        Ok(Self { path: path.to_path_buf(), file, done })
    }

    /// The predictions made so far, by example id.
    pub fn done(&self) -> &HashMap<String, Prediction> {
        &self.done
    }

    /// Whether `id` was answered for a prompt with hash `hash`; an answer for another prompt under
    /// the same id is an error (the data changed under a resumed run).
    pub fn is_done(&self, id: &str, hash: &str) -> Result<bool> {
        match self.done.get(id) {
            None => Ok(false),
            Some(prediction) if prediction.prompt_hash == hash => Ok(true),
            Some(prediction) => Err(Error::InvalidInput {
                reason: format!(
                    "{}: example {id} was answered for prompt hash {}, but its prompt now hashes to {hash}; \
                     evaluate into a new output folder",
                    self.path.display(),
                    prediction.prompt_hash
                ),
            }),
        }
    }

    /// Appends one prediction as one line, written through before returning.
    pub fn append(&mut self, prediction: Prediction) -> Result<()> {
        let mut line = serde_json::to_string(&prediction)
            .map_err(|source| Error::Json { path: self.path.clone(), source })?;
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|source| Error::Io { path: self.path.clone(), source })?;
        self.done.insert(prediction.id.clone(), prediction);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(id: &str) -> Prediction {
        Prediction {
            id: id.into(),
            prompt_hash: prompt_hash(id),
            output: "positive".into(),
            parsed: Some("positive".into()),
            label_log_likelihoods: None,
            seconds: 0.5,
        }
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_earlier_lines_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fpb.generate.jsonl");
        let mut log = PredictionLog::open(&path).unwrap();
        log.append(prediction("a")).unwrap();
        log.append(prediction("b")).unwrap();
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.extend_from_slice(b"{\"id\":\"c\",\"prom");
        std::fs::write(&path, bytes).unwrap();

        let mut log = PredictionLog::open(&path).unwrap();
        assert_eq!(log.done().len(), 2);
        assert!(log.is_done("a", &prompt_hash("a")).unwrap());
        assert!(!log.is_done("c", &prompt_hash("c")).unwrap());
        assert!(log.is_done("a", &prompt_hash("changed")).is_err());
        log.append(prediction("c")).unwrap();
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.lines().all(|line| serde_json::from_str::<Prediction>(line).is_ok()));
    }

    #[test]
    fn a_corrupt_inner_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        std::fs::write(&path, "not json\n").unwrap();
        let message = PredictionLog::open(&path).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn prompt_hash_is_fnv1a() {
        assert_eq!(prompt_hash(""), "cbf29ce484222325");
        assert_eq!(prompt_hash("a"), "af63dc4c8601ec8c");
    }
}
