//! Builds a byte-level BPE tokenizer from GGUF `tokenizer.ggml.*` metadata, shaped like the
//! `tokenizer.json` transformers writes for the same file (BPE model, ByteLevel pre-tokenizer and
//! decoder, template post-processor, control tokens as special added tokens).

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::AddedToken;

use crate::config::{metadata_string, metadata_usize};
use crate::error::{Error, Result};
use crate::tokenizer::Tokenizer;

/// `tokenizer.ggml.pre` values whose pre-tokenization is the GPT-2 regex that the ByteLevel
/// pre-tokenizer applies (llama.cpp groups these together).
const GPT2_REGEX_PRE: [&str; 3] = ["default", "gpt2", "smollm"];

/// llama.cpp token types (`llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Builds the tokenizer described by `metadata`; `origin` names the file in errors.
pub fn tokenizer_from_gguf(metadata: &HashMap<String, Value>, origin: &str) -> Result<Tokenizer> {
    let unsupported = |reason: String| Error::UnsupportedTokenizer { origin: origin.into(), reason };
    let model_kind = metadata_string(metadata, "tokenizer.ggml.model", origin)?;
    if model_kind != "gpt2" {
        return Err(unsupported(format!(
            "tokenizer.ggml.model {model_kind} is not supported (supported: gpt2 byte-level BPE)"
        )));
    }
    let pre = match metadata.get("tokenizer.ggml.pre") {
        Some(_) => metadata_string(metadata, "tokenizer.ggml.pre", origin)?,
        None => "default".to_string(),
    };
    if !GPT2_REGEX_PRE.contains(&pre.as_str()) {
        return Err(unsupported(format!(
            "tokenizer.ggml.pre {pre} is not supported (supported: {})",
            GPT2_REGEX_PRE.join(", ")
        )));
    }

    let tokens = string_array(metadata, "tokenizer.ggml.tokens", origin)?;
    let merges = string_array(metadata, "tokenizer.ggml.merges", origin)?
        .into_iter()
        .map(|merge| match merge.split_once(' ') {
            Some((left, right)) => Ok((left.to_string(), right.to_string())),
            None => Err(Error::InvalidMetadata {
                origin: origin.into(),
                key: "tokenizer.ggml.merges".into(),
                reason: format!("merge {merge:?} has no space"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    let token_types = match metadata.get("tokenizer.ggml.token_type") {
        Some(_) => integer_array(metadata, "tokenizer.ggml.token_type", origin)?,
        None => vec![1; tokens.len()],
    };
    if token_types.len() != tokens.len() {
        return Err(Error::InvalidMetadata {
            origin: origin.into(),
            key: "tokenizer.ggml.token_type".into(),
            reason: format!("{} types for {} tokens", token_types.len(), tokens.len()),
        });
    }

    let vocab: Vocab = tokens.iter().enumerate().map(|(id, token)| (token.clone(), id as u32)).collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|source| Error::Tokenizer { origin: origin.into(), source })?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    inner.with_decoder(Some(ByteLevelDecoder::new(true, true, true)));

    let special: Vec<AddedToken> = added_tokens(&tokens, &token_types, TOKEN_TYPE_CONTROL, true);
    let user_defined: Vec<AddedToken> = added_tokens(&tokens, &token_types, TOKEN_TYPE_USER_DEFINED, false);
    let _ = inner.add_special_tokens(special);
    let _ = inner.add_tokens(user_defined);

    let bos_id = optional_id(metadata, "tokenizer.ggml.bos_token_id", origin)?;
    let eos_id = optional_id(metadata, "tokenizer.ggml.eos_token_id", origin)?;
    let eot_id = optional_id(metadata, "tokenizer.ggml.eot_token_id", origin)?;
    let add_bos = matches!(metadata.get("tokenizer.ggml.add_bos_token"), Some(Value::Bool(true)));
    let bos = match (add_bos, bos_id) {
        (true, Some(id)) => tokens.get(id as usize).map(|text| (text.clone(), id)),
        _ => None,
    };
    inner.with_post_processor(Some(post_processor(bos, origin)?));

    let eos_ids: Vec<u32> = eos_id.into_iter().chain(eot_id).collect();
    Ok(Tokenizer::new(inner, origin.to_string(), bos_id, &eos_ids))
}

/// `$A` alone, or `BOS $A` when the file asks for a BOS token, like transformers' conversion.
fn post_processor(bos: Option<(String, u32)>, origin: &str) -> Result<TemplateProcessing> {
    let mut builder = TemplateProcessing::builder();
    let built = match bos {
        None => builder.try_single("$A").and_then(|b| b.try_pair("$A:0 $B:1")).map(|b| b.build()),
        Some((text, id)) => builder
            .try_single(format!("{text} $A"))
            .and_then(|b| b.try_pair(format!("{text} $A:0 {text}:1 $B:1")))
            .map(|b| b.special_tokens(vec![(text.clone(), id)]).build()),
    };
    let fail = |reason: String| Error::UnsupportedTokenizer {
        origin: origin.into(),
        reason: format!("cannot build the post-processor: {reason}"),
    };
    built.map_err(fail)?.map_err(|e| fail(e.to_string()))
}

fn added_tokens(tokens: &[String], token_types: &[i64], wanted: i64, special: bool) -> Vec<AddedToken> {
    tokens
        .iter()
        .zip(token_types)
        .filter(|(_, &token_type)| token_type == wanted)
        .map(|(token, _)| AddedToken::from(token.clone(), special).normalized(false))
        .collect()
}

fn array<'a>(metadata: &'a HashMap<String, Value>, key: &str, origin: &str) -> Result<&'a Vec<Value>> {
    let value =
        metadata.get(key).ok_or_else(|| Error::MissingMetadata { origin: origin.into(), key: key.into() })?;
    value.to_vec().map_err(|e| Error::InvalidMetadata {
        origin: origin.into(),
        key: key.into(),
        reason: e.to_string(),
    })
}

fn string_array(metadata: &HashMap<String, Value>, key: &str, origin: &str) -> Result<Vec<String>> {
    array(metadata, key, origin)?
        .iter()
        .enumerate()
        .map(|(idx, value)| match value {
            Value::String(text) => Ok(text.clone()),
            other => Err(Error::InvalidMetadata {
                origin: origin.into(),
                key: key.into(),
                reason: format!("element {idx} is {other:?}, expected a string"),
            }),
        })
        .collect()
}

fn integer_array(metadata: &HashMap<String, Value>, key: &str, origin: &str) -> Result<Vec<i64>> {
    array(metadata, key, origin)?
        .iter()
        .enumerate()
        .map(|(idx, value)| match value {
            Value::I32(v) => Ok(i64::from(*v)),
            Value::U32(v) => Ok(i64::from(*v)),
            Value::I64(v) => Ok(*v),
            Value::I8(v) => Ok(i64::from(*v)),
            Value::U8(v) => Ok(i64::from(*v)),
            other => Err(Error::InvalidMetadata {
                origin: origin.into(),
                key: key.into(),
                reason: format!("element {idx} is {other:?}, expected an integer"),
            }),
        })
        .collect()
}

fn optional_id(metadata: &HashMap<String, Value>, key: &str, origin: &str) -> Result<Option<u32>> {
    if !metadata.contains_key(key) {
        return Ok(None);
    }
    let id = metadata_usize(metadata, key, origin)?;
    u32::try_from(id).map(Some).map_err(|_| Error::InvalidMetadata {
        origin: origin.into(),
        key: key.into(),
        reason: format!("{id} is out of range"),
    })
}
