//! The model's tokenizer: a `tokenizers::Tokenizer` plus the ids that end a generation.

use std::path::Path;

use crate::error::{Error, Result};

/// Special tokens that end an assistant turn in common chat vocabularies (ChatML, Llama 3).
const STOP_TOKEN_TEXTS: [&str; 2] = ["<|im_end|>", "<|eot_id|>"];

/// Text <-> token ids for one model.
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    origin: String,
    bos_id: Option<u32>,
    eos_ids: Vec<u32>,
}

impl Tokenizer {
    /// Wraps `inner`; `eos_ids` are the model's declared end ids, to which every special stop
    /// token of [`STOP_TOKEN_TEXTS`] present in the vocabulary is added.
    pub fn new(inner: tokenizers::Tokenizer, origin: String, bos_id: Option<u32>, eos_ids: &[u32]) -> Self {
        let mut all_eos: Vec<u32> = eos_ids.to_vec();
        for text in STOP_TOKEN_TEXTS {
            if let Some(id) = inner.token_to_id(text) {
                all_eos.push(id);
            }
        }
        all_eos.sort_unstable();
        all_eos.dedup();
        Self { inner, origin, bos_id, eos_ids: all_eos }
    }

    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path, bos_id: Option<u32>, eos_ids: &[u32]) -> Result<Self> {
        let origin = path.display().to_string();
        if !path.is_file() {
            return Err(Error::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|source| Error::Tokenizer { origin: origin.clone(), source })?;
        Ok(Self::new(inner, origin, bos_id, eos_ids))
    }

    /// Token ids of `text`; `add_special` applies the tokenizer's post-processor (e.g. a BOS token).
    /// Special tokens written in the text (`<|im_start|>`) are always recognised.
    pub fn encode(&self, text: &str, add_special: bool) -> Result<Vec<u32>> {
        let encoding = self
            .inner
            .encode_fast(text, add_special)
            .map_err(|source| Error::Tokenizer { origin: self.origin.clone(), source })?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens included.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|source| Error::Tokenizer { origin: self.origin.clone(), source })
    }

    /// The id of `token` (an exact vocabulary entry such as `<|im_end|>`), if present.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The beginning-of-sequence id, when the model declares one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos_id
    }

    /// Ids that end a generation: the declared EOS ids and end-of-turn specials such as `<|im_end|>`.
    pub fn eos_ids(&self) -> &[u32] {
        &self.eos_ids
    }

    /// Vocabulary size including added tokens.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The wrapped `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}
