//! Reads an analyst's question: which company, which fiscal (or calendar) year, which metric.

use taxonomy::Asked;

use crate::companies::{Company, CompanyDirectory};

/// How a year in the question is meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum YearBasis {
    /// "2022", "FY2022", "fiscal 2022": the company's fiscal year 2022 (AAPL: ended 2022-09-24).
    Fiscal,
    /// "calendar 2022", "CY2022": the fiscal year that overlaps calendar 2022 the most.
    Calendar,
}

/// A question with its company, years and metric resolved as far as the text allows.
#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub company: Option<Company>,
    /// Every year named, in the order written.
    pub years: Vec<i32>,
    pub year_basis: YearBasis,
    /// `Some(1..=4)` when a quarter is named ("Q3 2023", "third quarter").
    pub quarter: Option<u8>,
    /// The metric named, filed or derived.
    pub asked: Option<Asked>,
    /// Asks how a metric changed ("grow", "change", "from 2021 to 2022").
    pub change: bool,
    /// Asks for the latest year reported ("latest", "most recent"), when it names no year.
    pub latest: bool,
}

impl Question {
    pub fn parse(text: &str, companies: &CompanyDirectory) -> Question {
        let (years, year_basis) = find_years(text);
        Question {
            text: text.to_string(),
            company: companies.resolve(text),
            years,
            year_basis,
            quarter: find_quarter(text),
            asked: Asked::from_question(text),
            change: asks_for_change(text),
            latest: asks_for_latest(text),
        }
    }

    /// The year the question is about: the last one named ("from 2021 to 2022" -> 2022).
    pub fn year(&self) -> Option<i32> {
        self.years.last().copied()
    }

    /// The two years a change question compares: the first and last named, or the year before
    /// the one named ("How much did revenue grow in 2022?").
    pub fn change_years(&self) -> Option<(i32, i32)> {
        let last = self.year()?;
        let first = self.years.first().copied().filter(|first| *first != last).unwrap_or(last - 1);
        Some((first, last))
    }
}

/// Words that ask how a value moved between two years.
const CHANGE_WORDS: &[&str] = &[
    "grow",
    "grew",
    "grown",
    "growth",
    "change",
    "changed",
    "increase",
    "increased",
    "decrease",
    "decreased",
    "decline",
    "declined",
    "rise",
    "rose",
    "fall",
    "fell",
    "drop",
    "dropped",
];

fn asks_for_change(text: &str) -> bool {
    let tokens = words(text);
    let (years, _) = find_years(text);
    let distinct_years = years.first() != years.last();
    tokens.iter().any(|token| CHANGE_WORDS.contains(&token.as_str()))
        || (distinct_years
            && tokens.iter().any(|t| t == "from" || t == "between" || t == "versus" || t == "vs"))
}

/// "latest", "newest", "most recent", "last reported": the latest fiscal year on file.
fn asks_for_latest(text: &str) -> bool {
    let tokens = words(text);
    tokens.iter().any(|token| token == "latest" || token == "newest")
        || tokens.windows(2).any(|pair| {
            (pair[0] == "most" && pair[1] == "recent") || (pair[0] == "last" && pair[1] == "reported")
        })
}

/// Words split on anything that is not a letter, digit or `&`, lowercased.
pub(crate) fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '&'))
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn find_years(text: &str) -> (Vec<i32>, YearBasis) {
    let lowered = text.to_lowercase();
    let tokens = words(&lowered);
    let mut years = Vec::new();
    let mut basis = YearBasis::Fiscal;
    for (idx, token) in tokens.iter().enumerate() {
        // "fy2022", "cy2022", "2022", "fy22" are all accepted; two-digit years only after fy/cy.
        let (prefix, digits) = match token.strip_prefix("fy").or_else(|| token.strip_prefix("cy")) {
            Some(rest) => (&token[..2], rest),
            None => ("", token.as_str()),
        };
        let year = match digits.len() {
            4 => digits.parse::<i32>().ok().filter(|y| (1990..=2100).contains(y)),
            2 if !prefix.is_empty() => digits.parse::<i32>().ok().map(|y| 2000 + y),
            _ => None,
        };
        let Some(year) = year else { continue };
        let previous = idx.checked_sub(1).map(|i| tokens[i].as_str());
        if prefix == "cy" || previous == Some("calendar") || previous == Some("cy") {
            basis = YearBasis::Calendar;
        }
        years.push(year);
    }
    (years, basis)
}

fn find_quarter(text: &str) -> Option<u8> {
    let tokens = words(text);
    for (idx, token) in tokens.iter().enumerate() {
        if let Some(digit) = token.strip_prefix('q') {
            if let Ok(quarter @ 1..=4) = digit.parse::<u8>() {
                return Some(quarter);
            }
        }
        let ordinal = match token.as_str() {
            "first" | "1st" => 1,
            "second" | "2nd" => 2,
            "third" | "3rd" => 3,
            "fourth" | "4th" => 4,
            _ => continue,
        };
        if tokens.get(idx + 1).map(String::as_str) == Some("quarter") {
            return Some(ordinal);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fiscal_and_calendar_years() {
        assert_eq!(find_years("What was AAPL's 2022 revenue?"), (vec![2022], YearBasis::Fiscal));
        assert_eq!(find_years("revenue in FY2023"), (vec![2023], YearBasis::Fiscal));
        assert_eq!(find_years("revenue in fy 23"), (vec![], YearBasis::Fiscal));
        assert_eq!(find_years("revenue in FY23"), (vec![2023], YearBasis::Fiscal));
        assert_eq!(find_years("calendar 2022 revenue"), (vec![2022], YearBasis::Calendar));
        assert_eq!(find_years("CY2022 revenue"), (vec![2022], YearBasis::Calendar));
        assert_eq!(find_years("growth from 2021 to 2022"), (vec![2021, 2022], YearBasis::Fiscal));
        assert_eq!(find_years("revenue of 394328 million"), (vec![], YearBasis::Fiscal));
    }

    #[test]
    fn change_questions() {
        assert!(asks_for_change("How much did NVDA's revenue grow from 2021 to 2022?"));
        assert!(asks_for_change("Apple net income 2021 vs 2022"));
        assert!(asks_for_change("How did AAPL's total assets change in 2023?"));
        assert!(!asks_for_change("What was AAPL's 2022 revenue?"));
        assert!(!asks_for_change("What were Boeing's revenues in fiscal 2023 and fiscal years before?"));
    }

    #[test]
    fn latest_questions() {
        assert!(asks_for_latest("What was Apple's latest revenue?"));
        assert!(asks_for_latest("Apple revenue in the most recent fiscal year"));
        assert!(asks_for_latest("NVDA's last reported net income"));
        assert!(!asks_for_latest("What was Apple's revenue last year?"));
        assert!(!asks_for_latest("the most revenue"));
    }

    #[test]
    fn quarters() {
        assert_eq!(find_quarter("AAPL Q3 2023 revenue"), Some(3));
        assert_eq!(find_quarter("revenue in the third quarter of 2023"), Some(3));
        assert_eq!(find_quarter("2023 revenue"), None);
        assert_eq!(find_quarter("the first revenue"), None);
    }
}
