//! The tokenizer built from GGUF metadata against the reference `tokenizer.json`: same ids on the
//! reference prompts and on well over 1,000 texts from the shared datasets (long XBRL prompts,
//! digits, tweets with emoji and URLs, chat-formatted prompts with special tokens), and exact decoding.

mod common;

use std::io::BufRead;
use std::path::Path;

use trainer::tokenizer::Tokenizer;

/// `(file relative to the data folder, JSON fields joined by a newline, every n-th line, max lines)`.
const SOURCES: [(&str, &[&str], usize, usize); 11] = [
    ("fpb/test.jsonl", &["text"], 1, 250),
    ("ner/test.jsonl", &["instruction", "text"], 3, 150),
    ("tfns/test.jsonl", &["text"], 5, 200),
    ("fiqa_sa/test.jsonl", &["text"], 1, 120),
    ("finer/test.jsonl", &["text"], 2, 100),
    ("nwgi/test.jsonl", &["text"], 20, 100),
    ("headline/test.jsonl", &["instruction", "text"], 97, 60),
    ("xbrl_extraction/test.jsonl", &["instruction", "input"], 71, 100),
    ("xbrl_extraction/with_xml_context/xbrl_value_test.jsonl", &["context"], 5, 20),
    ("xbrl_extraction/with_xml_context/xbrl_xbrl_tags_test.jsonl", &["context"], 5, 20),
    ("xbrl_extraction/with_xml_context/xbrl_formula_test.jsonl", &["context"], 5, 20),
];

/// Texts from `SOURCES`, plus a chat-formatted copy of every tenth one.
fn dataset_texts(data_dir: &Path) -> Vec<String> {
    let mut texts = Vec::new();
    for (file, fields, every, max_lines) in SOURCES {
        let path = data_dir.join(file);
        let reader = std::fs::File::open(&path)
            .map(std::io::BufReader::new)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let lines = reader.lines().step_by(every).take(max_lines);
        for (line_idx, line) in lines.enumerate() {
            let line = line.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let row: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{} line {line_idx}: {e}", path.display()));
            let parts: Vec<&str> = fields.iter().filter_map(|field| row[field].as_str()).collect();
            assert!(!parts.is_empty(), "{} line {line_idx} has none of {fields:?}", path.display());
            texts.push(parts.join("\n"));
        }
    }
    let chat: Vec<String> = texts
        .iter()
        .step_by(10)
        .map(|text| {
            format!("<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\nAnswer: 42<|im_end|>")
        })
        .collect();
    texts.extend(chat);
    texts.extend(
        [
            "",
            " ",
            "\n\n\t",
            "<|endoftext|><|im_start|><|im_end|><repo_name><empty_output>",
            "x<|im_start|>y <|im_end|> z",
            "<|im_start|",
            "1234567890 3.14159 -0.5e10 $1,234,567.89 (12.5)%",
            "Zürich 東京 Москва naïve café — “quotes” ‘single’ … ½ € ¥ £",
            "emoji 😀👍🏽 🇺🇸 family 👨‍👩‍👧",
            "it's we're they've I'm you'll he'd IT'S",
            "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
        ]
        .map(String::from),
    );
    texts
}

fn tokenizers() -> Option<(Tokenizer, Tokenizer)> {
    let model_path = common::model_path()?;
    let from_gguf = trainer::loader::load_gguf_tokenizer(&model_path).unwrap_or_else(|e| panic!("{e}"));
    let json_path = common::reference_dir()?.join("tokenizer.json");
    let from_json = Tokenizer::from_file(&json_path, None, &[2]).unwrap_or_else(|e| panic!("{e}"));
    Some((from_gguf, from_json))
}

fn encode(tokenizer: &Tokenizer, text: &str) -> Vec<u32> {
    tokenizer.encode(text, true).unwrap_or_else(|e| panic!("encoding {text:?}: {e}"))
}

fn decode(tokenizer: &Tokenizer, ids: &[u32]) -> String {
    tokenizer.decode(ids).unwrap_or_else(|e| panic!("decoding {ids:?}: {e}"))
}

#[test]
fn both_tokenizers_reproduce_reference_ids() {
    let (Some((from_gguf, from_json)), Some(cases)) = (tokenizers(), common::reference_cases()) else {
        return;
    };
    for (case_idx, case) in cases.iter().enumerate() {
        assert_eq!(encode(&from_gguf, &case.prompt), case.ids, "case {case_idx}: gguf tokenizer");
        assert_eq!(encode(&from_json, &case.prompt), case.ids, "case {case_idx}: tokenizer.json");
        assert_eq!(decode(&from_gguf, &case.ids), case.prompt, "case {case_idx}: gguf decode");
        assert_eq!(decode(&from_json, &case.ids), case.prompt, "case {case_idx}: tokenizer.json decode");
        assert_eq!(
            decode(&from_gguf, &case.greedy_next_12),
            case.greedy_text,
            "case {case_idx}: continuation"
        );
    }
}

#[test]
fn gguf_tokenizer_matches_tokenizer_json_on_dataset_texts() {
    let (Some((from_gguf, from_json)), Some(shared)) = (tokenizers(), common::shared_dir()) else {
        return;
    };
    let texts = dataset_texts(&shared.join("data"));
    assert!(texts.len() >= 1_000, "only {} texts collected", texts.len());
    let longest_chars = texts.iter().map(|text| text.chars().count()).max().unwrap_or(0);
    assert!(longest_chars > 5_000, "no long XBRL prompt among the texts (longest {longest_chars} chars)");
    let mut n_tokens = 0;
    for (text_idx, text) in texts.iter().enumerate() {
        let ids = encode(&from_json, text);
        assert_eq!(encode(&from_gguf, text), ids, "text {text_idx}: {text:?}");
        assert_eq!(decode(&from_gguf, &ids), *text, "text {text_idx}: gguf decode");
        assert_eq!(decode(&from_json, &ids), *text, "text {text_idx}: tokenizer.json decode");
        n_tokens += ids.len();
    }
    eprintln!("{} texts, {n_tokens} tokens, longest {longest_chars} chars: identical", texts.len());
}

#[test]
fn special_tokens_and_stop_ids() {
    let Some((from_gguf, from_json)) = tokenizers() else {
        return;
    };
    for tokenizer in [&from_gguf, &from_json] {
        assert_eq!(tokenizer.token_id("<|im_end|>"), Some(2));
        assert_eq!(encode(tokenizer, "<|im_start|>user"), vec![1, 4093]);
        assert_eq!(tokenizer.vocab_size(), 49_152);
        assert_eq!(tokenizer.eos_ids(), [2], "stop ids are <|im_end|> only, as transformers");
    }
    assert_eq!(from_gguf.bos_id(), Some(1));
    assert_eq!(from_gguf.eos_ids(), from_json.eos_ids());
}
