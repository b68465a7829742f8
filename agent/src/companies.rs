//! Which companies finagent knows, by ticker, CIK and name, and finding one named in a question.

use serde::Serialize;

use crate::question::words;

/// A company: ticker, CIK and registrant name, from the index, a local mirror or EDGAR.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Company {
    pub ticker: String,
    pub cik: Option<u64>,
    pub name: Option<String>,
}

/// Every company finagent can name, searchable by ticker or by name.
#[derive(Debug, Clone, Default)]
pub struct CompanyDirectory {
    companies: Vec<Company>,
}

/// Words that say what kind of company it is, not which one.
const LEGAL_WORDS: &[&str] = &[
    "the",
    "inc",
    "incorporated",
    "corp",
    "corporation",
    "co",
    "company",
    "com",
    "ltd",
    "limited",
    "plc",
    "llc",
    "lp",
    "sa",
    "nv",
    "ag",
    "de",
    "holdings",
    "group",
    "&",
];

impl CompanyDirectory {
    /// Adds a company, merging it with an entry of the same ticker (fields already known win).
    pub fn add(&mut self, company: Company) {
        let ticker = company.ticker.to_uppercase();
        if let Some(known) = self.companies.iter_mut().find(|known| known.ticker == ticker) {
            known.cik = known.cik.or(company.cik);
            if known.name.is_none() {
                known.name = company.name;
            }
            return;
        }
        self.companies.push(Company { ticker, ..company });
    }

    pub fn by_ticker(&self, ticker: &str) -> Option<&Company> {
        self.companies.iter().find(|company| company.ticker.eq_ignore_ascii_case(ticker))
    }

    pub fn by_cik(&self, cik: u64) -> Option<&Company> {
        self.companies.iter().find(|company| company.cik == Some(cik))
    }

    pub fn len(&self) -> usize {
        self.companies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.companies.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Company> {
        self.companies.iter()
    }

    /// The company a question names: an upper-case ticker token first (`AAPL`, `AAPL's`), else the
    /// company whose distinctive name words appear in the question in order ("Apple", "Coca-Cola").
    pub fn resolve(&self, question: &str) -> Option<Company> {
        for token in ticker_tokens(question) {
            if let Some(company) = self.by_ticker(token) {
                return Some(company.clone());
            }
        }
        let question_words = words(question);
        let mut best: Option<(usize, &Company)> = None;
        for company in &self.companies {
            let Some(name) = &company.name else { continue };
            let name_words = distinctive_words(name);
            let matched = matched_prefix_len(&question_words, &name_words);
            if matched > 0 && best.is_none_or(|(best_len, _)| matched > best_len) {
                best = Some((matched, company));
            }
        }
        best.map(|(_, company)| company.clone())
    }
}

/// Words that make a question about more than one company ("Compare Apple and NVIDIA revenue").
const COMPARISON_WORDS: &[&str] = &["and", "vs", "versus", "compare", "compared", "comparison", "against"];

/// Whether a question reads as being about more than one company ("and", "vs", "compare").
pub fn reads_as_comparison(question: &str) -> bool {
    words(question).iter().any(|word| COMPARISON_WORDS.contains(&word.as_str()))
}

impl CompanyDirectory {
    /// Every company a question names, in the order named: the one [`Self::resolve`] finds and,
    /// when the question reads as a comparison ("and", "vs", "compare"), every other company
    /// named by its upper-case ticker, by all the distinctive words of its name, or by the first
    /// of them capitalized as a name ("Goldman"). Without a comparison word only the one company
    /// is returned, so a stray word that is also a company's name ("revenue target") never adds
    /// a company.
    pub fn resolve_all(&self, question: &str) -> Vec<Company> {
        let Some(first) = self.resolve(question) else { return Vec::new() };
        if !reads_as_comparison(question) {
            return vec![first];
        }
        let question_words = words(question);
        let lowered = question.to_lowercase();
        let mut named: Vec<(usize, Company)> = Vec::new();
        for token in ticker_tokens(question) {
            if let Some(company) = self.by_ticker(token) {
                let position = question.find(token).unwrap_or(usize::MAX);
                named.push((position, company.clone()));
            }
        }
        for company in &self.companies {
            let Some(name) = &company.name else { continue };
            let name_words = distinctive_words(name);
            let matched = matched_prefix_len(&question_words, &name_words);
            let capitalized = |word: &str| {
                question.split(|c: char| !c.is_alphanumeric()).any(|token| {
                    token.to_lowercase() == word && token.chars().next().is_some_and(char::is_uppercase)
                })
            };
            // "Research and Development" names a metric, not Research Frontiers Inc.
            let names_a_metric = name_words[..matched].iter().all(|word| is_metric_word(word));
            if matched > 0 && !names_a_metric && (matched == name_words.len() || capitalized(&name_words[0]))
            {
                let position = lowered.find(name_words[0].as_str()).unwrap_or(usize::MAX);
                named.push((position, company.clone()));
            }
        }
        if !named.iter().any(|(_, company)| company.ticker == first.ticker) {
            named.push((0, first));
        }
        named.sort_by_key(|(position, _)| *position);
        let mut companies: Vec<Company> = Vec::new();
        for (_, company) in named {
            if !companies.iter().any(|known| known.ticker == company.ticker) {
                companies.push(company);
            }
        }
        companies
    }
}

/// Whether `word` is part of a phrase that names a metric ("research", "cash", "margin").
fn is_metric_word(word: &str) -> bool {
    static WORDS: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    WORDS
        .get_or_init(|| {
            let filed = taxonomy::Metric::all().iter().flat_map(|metric| metric.phrases());
            let derived = taxonomy::DerivedMetric::all().iter().flat_map(|metric| metric.phrases());
            filed.chain(derived).flat_map(|phrase| words(phrase)).collect()
        })
        .contains(word)
}

/// The all-upper-case tokens of a question that could be tickers (`AAPL`, `AAPL's` -> `AAPL`).
/// Abbreviations joined by `&` (`R&D`, `SG&A`) are not tickers: Ryder is `R`, Dominion `D`.
fn ticker_tokens(question: &str) -> impl Iterator<Item = &str> {
    question
        .split_whitespace()
        .filter(|chunk| !chunk.contains('&'))
        .flat_map(|chunk| chunk.split(|c: char| !c.is_ascii_alphanumeric() && c != '.'))
        .map(|token| token.trim_end_matches('.'))
        .filter(|token| !token.is_empty() && token.chars().all(|c| c.is_ascii_uppercase()))
}

/// The words of a registrant name without legal suffixes: "AMAZON COM INC" -> ["amazon"].
fn distinctive_words(name: &str) -> Vec<String> {
    words(name).into_iter().filter(|word| !LEGAL_WORDS.contains(&word.as_str())).collect()
}

/// How many leading name words appear consecutively in the question (0 when the first does not).
fn matched_prefix_len(question: &[String], name: &[String]) -> usize {
    (0..question.len())
        .map(|start| name.iter().zip(&question[start..]).take_while(|(a, b)| a == b).count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory() -> CompanyDirectory {
        let mut directory = CompanyDirectory::default();
        for (ticker, cik, name) in [
            ("AAPL", 320193, "Apple Inc."),
            ("AMZN", 1018724, "AMAZON COM INC"),
            ("BA", 12927, "BOEING CO"),
            ("NVDA", 1045810, "NVIDIA CORP"),
            ("KO", 21344, "COCA COLA CO"),
            ("GS", 886982, "GOLDMAN SACHS GROUP INC"),
        ] {
            directory.add(Company { ticker: ticker.into(), cik: Some(cik), name: Some(name.into()) });
        }
        directory
    }

    #[test]
    fn resolves_tickers_and_names() {
        let directory = directory();
        let ticker = |q: &str| directory.resolve(q).map(|c| c.ticker);
        assert_eq!(ticker("What was AAPL's 2022 revenue?").as_deref(), Some("AAPL"));
        assert_eq!(ticker("What was Apple's gross margin in 2022?").as_deref(), Some("AAPL"));
        assert_eq!(ticker("Boeing's 2023 operating cash flow").as_deref(), Some("BA"));
        assert_eq!(ticker("How much did Amazon earn?").as_deref(), Some("AMZN"));
        assert_eq!(ticker("Coca-Cola revenue 2023").as_deref(), Some("KO"));
        assert_eq!(ticker("Nvidia revenue").as_deref(), Some("NVDA"));
        assert_eq!(ticker("What was XYZW's revenue?"), None);
        // "BA" inside another word or lower-case "ba" is not Boeing.
        assert_eq!(ticker("the bank balance"), None);
        // "R&D" and "SG&A" are not Ryder's and Dominion's tickers.
        let mut directory = directory;
        directory.add(Company { ticker: "R".into(), cik: None, name: Some("RYDER SYSTEM INC".into()) });
        directory.add(Company { ticker: "D".into(), cik: None, name: Some("DOMINION ENERGY INC".into()) });
        let ticker = |q: &str| directory.resolve(q).map(|c| c.ticker);
        assert_eq!(ticker("What was Apple's R&D in 2022?").as_deref(), Some("AAPL"));
        assert_eq!(ticker("Apple SG&A 2022").as_deref(), Some("AAPL"));
        assert_eq!(ticker("What was D's revenue in 2022?").as_deref(), Some("D"));
    }

    #[test]
    fn comparisons_name_every_company_in_order() {
        let directory = directory();
        let tickers = |q: &str| directory.resolve_all(q).into_iter().map(|c| c.ticker).collect::<Vec<_>>();
        assert_eq!(tickers("Compare Apple and NVIDIA revenue in 2023"), ["AAPL", "NVDA"]);
        assert_eq!(tickers("NVDA vs AAPL net income 2022"), ["NVDA", "AAPL"]);
        assert_eq!(tickers("Revenue of Boeing, Coca-Cola and Amazon in 2022"), ["BA", "KO", "AMZN"]);
        // One company, or other names without a comparison word: the one company.
        assert_eq!(tickers("What was Apple's revenue in 2022?"), ["AAPL"]);
        assert_eq!(tickers("Apple revenue from the Amazon store in 2022"), ["AAPL"]);
        // Goldman by its first word, capitalized as a name; in lower case it is not a company.
        assert_eq!(tickers("Goldman and Apple revenue 2023"), ["GS", "AAPL"]);
        assert_eq!(tickers("Apple and Goldman revenue 2023"), ["AAPL", "GS"]);
        assert_eq!(tickers("Apple's revenue and goldman 2023"), ["AAPL"]);
        assert!(tickers("What was XYZW's revenue?").is_empty());
        // A company whose name is metric words is not named by the metric.
        let mut directory = directory;
        directory.add(Company {
            ticker: "RFIL".into(),
            cik: None,
            name: Some("Research Frontiers Inc".into()),
        });
        directory.add(Company { ticker: "CASH".into(), cik: None, name: Some("Cash Inc".into()) });
        let tickers = |q: &str| directory.resolve_all(q).into_iter().map(|c| c.ticker).collect::<Vec<_>>();
        assert_eq!(tickers("Apple's Research and Development expense in 2023"), ["AAPL"]);
        assert_eq!(tickers("Apple's Cash and cash equivalents in 2023"), ["AAPL"]);
    }

    #[test]
    fn merges_entries_by_ticker() {
        let mut directory = CompanyDirectory::default();
        directory.add(Company { ticker: "aapl".into(), cik: None, name: None });
        directory.add(Company { ticker: "AAPL".into(), cik: Some(320193), name: Some("Apple Inc.".into()) });
        assert_eq!(directory.len(), 1);
        assert_eq!(directory.by_cik(320193).map(|c| c.ticker.as_str()), Some("AAPL"));
    }
}
