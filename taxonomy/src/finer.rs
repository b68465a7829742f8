//! The FiNER-139 entity types and the dataset's BIO label ids, read from the shared files.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{read_to_string, Error, Result};

/// File names of the two lists inside the shared xbrl folder.
pub const TAGS_FILE: &str = "finer139_tags.txt";
pub const BIO_LABELS_FILE: &str = "finer139_bio_labels.tsv";

/// The 139 entity types (us-gaap local names) and the BIO labels with the dataset's own ids.
/// Ids come from the file: the `I-` block is not in tag order, so sorting would break them.
#[derive(Debug, Clone)]
pub struct FinerTags {
    /// Entity types in file order.
    tags: Vec<String>,
    tag_positions: HashMap<String, usize>,
    /// BIO label by id; id 0 is `O`.
    bio_labels: Vec<String>,
    bio_ids: HashMap<String, u32>,
}

impl FinerTags {
    /// Reads the tag list (one entity type a line) and the BIO label table (`id<TAB>label` with a
    /// header). Ids must run 0, 1, 2... with 0 = `O`, and every `B-`/`I-` label must name a tag.
    pub fn load(tags_path: &Path, bio_labels_path: &Path) -> Result<Self> {
        let tags = Self::read_tags(tags_path)?;
        let tag_positions: HashMap<String, usize> =
            tags.iter().enumerate().map(|(pos, tag)| (tag.clone(), pos)).collect();
        let bio_labels = Self::read_bio_labels(bio_labels_path, &tag_positions)?;
        let bio_ids = bio_labels.iter().enumerate().map(|(id, label)| (label.clone(), id as u32)).collect();
        Ok(Self { tags, tag_positions, bio_labels, bio_ids })
    }

    /// Reads [`TAGS_FILE`] and [`BIO_LABELS_FILE`] from one folder (`shared/xbrl`).
    pub fn load_dir(dir: &Path) -> Result<Self> {
        Self::load(&dir.join(TAGS_FILE), &dir.join(BIO_LABELS_FILE))
    }

    pub fn contains(&self, tag: &str) -> bool {
        self.tag_positions.contains_key(tag)
    }

    /// Position of a tag in the file.
    pub fn position(&self, tag: &str) -> Option<usize> {
        self.tag_positions.get(tag).copied()
    }

    /// Entity types in file order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.tags.iter().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }

    pub fn bio_label(&self, id: u32) -> Option<&str> {
        self.bio_labels.get(id as usize).map(String::as_str)
    }

    pub fn bio_id(&self, label: &str) -> Option<u32> {
        self.bio_ids.get(label).copied()
    }

    /// The entity type of a BIO id (`None` for `O` and unknown ids).
    pub fn tag_of_bio_id(&self, id: u32) -> Option<&str> {
        let label = self.bio_label(id)?;
        label.strip_prefix("B-").or_else(|| label.strip_prefix("I-"))
    }

    /// `(id, label)` in id order.
    pub fn bio_labels(&self) -> impl Iterator<Item = (u32, &str)> {
        self.bio_labels.iter().enumerate().map(|(id, label)| (id as u32, label.as_str()))
    }

    pub fn num_bio_labels(&self) -> usize {
        self.bio_labels.len()
    }

    fn read_tags(path: &Path) -> Result<Vec<String>> {
        let mut tags: Vec<String> = Vec::new();
        for (line_idx, line) in read_to_string(path)?.lines().enumerate() {
            let tag = line.trim();
            if tag.is_empty() {
                continue;
            }
            if tags.iter().any(|known| known == tag) {
                return Err(format_error(path, line_idx + 1, format!("duplicate tag {tag}")));
            }
            tags.push(tag.to_string());
        }
        Ok(tags)
    }

    fn read_bio_labels(path: &Path, tags: &HashMap<String, usize>) -> Result<Vec<String>> {
        let text = read_to_string(path)?;
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, header)) if header.trim() == "id\tlabel" => {}
            other => {
                let header = other.map(|(_, line)| line).unwrap_or_default();
                return Err(format_error(path, 1, format!("header {header:?} is not \"id\\tlabel\"")));
            }
        }
        let mut labels = Vec::new();
        for (line_idx, line) in lines.filter(|(_, line)| !line.trim().is_empty()) {
            let line_no = line_idx + 1;
            let Some((id, label)) = line.trim().split_once('\t') else {
                return Err(format_error(path, line_no, format!("{line:?} is not id<TAB>label")));
            };
            if id.parse::<usize>().ok() != Some(labels.len()) {
                let message = format!("id {id:?} out of sequence (expected {})", labels.len());
                return Err(format_error(path, line_no, message));
            }
            let tag = label.strip_prefix("B-").or_else(|| label.strip_prefix("I-"));
            let valid = match tag {
                Some(tag) => tags.contains_key(tag),
                None => label == "O" && labels.is_empty(),
            };
            if !valid {
                return Err(format_error(
                    path,
                    line_no,
                    format!("label {label} is not O (id 0) or B-/I- of a tag"),
                ));
            }
            labels.push(label.to_string());
        }
        Ok(labels)
    }
}

fn format_error(path: &Path, line: usize, message: String) -> Error {
    Error::Format { path: path.to_path_buf(), line, message }
}
