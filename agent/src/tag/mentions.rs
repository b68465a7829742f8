//! Numeric mentions in running text: the numbers a tagger would put an XBRL tag on, with the
//! value an XBRL fact would hold for them, and not years, dates, note numbers or form names.
//!
//! The span is the number alone, as FiNER marks it (`$ 200,000` -> `200,000`, `(2,722)` ->
//! `2,722`, `1.798 %` -> `1.798`); the cues around it (currency, percent, scale word, per share,
//! parentheses) go into [`Mention::unit`] and [`Mention::value`].

use serde::Serialize;

/// What the words around a number say it measures; candidate tags must fit it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitCue {
    /// `$`, `USD`, `dollars`.
    Money,
    /// `$ 0.3750 per share`.
    MoneyPerShare,
    /// `%`, `percent`, `basis points`.
    Percent,
    /// `shares`.
    Shares,
    /// `years`, `months`, `days` right after the number.
    Duration,
    /// Nothing says what the number counts.
    Plain,
}

/// One number in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mention {
    /// The number as written (`200,000`).
    pub span: String,
    /// Byte range of `span` in its sentence.
    pub start: usize,
    pub end: usize,
    /// The value an XBRL fact would hold: scale words applied, percent as a fraction, written in
    /// parentheses negated (`3.5 billion` -> `3500000000`, `1.798 %` -> `0.01798`).
    pub value: Option<String>,
    pub unit: UnitCue,
}

/// Words before a number that make it a name, not a quantity (`Note 13`, `Level 3`, `Topic 842`).
const NAMING_WORDS: [&str; 21] = [
    "note",
    "notes",
    "item",
    "items",
    "section",
    "level",
    "topic",
    "asu",
    "form",
    "rule",
    "page",
    "article",
    "schedule",
    "exhibit",
    "part",
    "phase",
    "tier",
    "no",
    "number",
    "amendment",
    "sfas",
];
const MONTHS: [&str; 21] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
];
/// Scale words and the power of ten each stands for.
const SCALE_WORDS: [(&str, i32); 7] = [
    ("thousand", 3),
    ("million", 6),
    ("millions", 6),
    ("billion", 9),
    ("billions", 9),
    ("trillion", 12),
    ("mm", 6),
];

/// Every numeric mention of `sentence`, in order.
pub fn find_mentions(sentence: &str) -> Vec<Mention> {
    let bytes = sentence.as_bytes();
    let mut mentions = Vec::new();
    let mut idx = 0;
    while idx < bytes.len() {
        let starts_number = bytes[idx].is_ascii_digit()
            || (bytes[idx] == b'.' && bytes.get(idx + 1).is_some_and(u8::is_ascii_digit));
        if !starts_number {
            idx += 1;
            continue;
        }
        if idx > 0 && is_word_byte(bytes[idx - 1]) {
            // The rest of a word such as `Q4`, `10b5` or `COVID19`.
            while idx < bytes.len() && (is_word_byte(bytes[idx]) || bytes[idx] == b'.') {
                idx += 1;
            }
            continue;
        }
        let end = number_end(bytes, idx);
        if let Some(mention) = mention_at(sentence, idx, end) {
            mentions.push(mention);
        }
        idx = end.max(idx + 1);
    }
    mentions
}

/// The mention for `entity`, FiNER's number as written, at its first whole-token occurrence in
/// `sentence`; numbers the finder would skip (a year, `one`) are still mentions here, since the
/// dataset says they are.
pub fn mention_of(sentence: &str, entity: &str) -> Option<Mention> {
    let mut from = 0;
    while let Some(found) = sentence[from..].find(entity) {
        let start = from + found;
        let end = start + entity.len();
        let before_ok = sentence[..start].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after_ok = sentence[end..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            let (value, unit) = read_value(sentence, start, end);
            return Some(Mention { span: entity.to_string(), start, end, value, unit });
        }
        from = end;
    }
    None
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// End of the number starting at `start`: digits with `,` thousands groups and one decimal point.
fn number_end(bytes: &[u8], start: usize) -> usize {
    let mut end = start;
    let mut seen_point = false;
    while end < bytes.len() {
        let byte = bytes[end];
        let next_is_digit = bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        let thousands_comma = byte == b','
            && !seen_point
            && bytes[end + 1..].iter().take_while(|b| b.is_ascii_digit()).count() == 3;
        if byte.is_ascii_digit() || thousands_comma {
            end += 1;
        } else if byte == b'.' && !seen_point && next_is_digit {
            seen_point = true;
            end += 1;
        } else {
            break;
        }
    }
    end
}

/// The mention for the number at `start..end`, or `None` when it names or dates something.
fn mention_at(sentence: &str, start: usize, end: usize) -> Option<Mention> {
    let span = &sentence[start..end];
    let before = sentence[..start].trim_end();
    let after = &sentence[end..];
    // Glued to a letter or a hyphenated word: `10-K`, `1st`, `S-1`, `2016-13`.
    let next = after.chars().next();
    if next.is_some_and(|c| c.is_alphabetic() && !matches!(c, 'x' | 'X'))
        || (next == Some('-') && after[1..].chars().next().is_some_and(char::is_alphanumeric))
        || sentence[..start].ends_with('-')
        || next == Some('/')
        || sentence[..start].ends_with('/')
    {
        return None;
    }
    let previous_word = last_word(before).to_lowercase();
    let next_word = first_word(after).to_lowercase();
    if NAMING_WORDS.contains(&previous_word.as_str()) || MONTHS.contains(&previous_word.as_str()) {
        return None;
    }
    let is_integer = span.bytes().all(|b| b.is_ascii_digit());
    let (value, unit) = read_value(sentence, start, end);
    let has_cue = unit != UnitCue::Plain || scale_of(&next_word).is_some();
    // A day before a month (`31 March`) or a bare year (`2020`, `fiscal 2021`).
    if is_integer && MONTHS.contains(&next_word.as_str()) {
        return None;
    }
    if is_integer && span.len() == 4 && !has_cue && (1900..=2100).contains(&span.parse::<u32>().unwrap_or(0))
    {
        return None;
    }
    Some(Mention { span: span.to_string(), start, end, value, unit })
}

/// The XBRL value and unit cue of the number at `start..end` from the words around it.
fn read_value(sentence: &str, start: usize, end: usize) -> (Option<String>, UnitCue) {
    let before = sentence[..start].trim_end();
    let after = sentence[end..].trim_start();
    let after_lower = after.to_lowercase();
    let next_word = first_word(after).to_lowercase();
    let scale = scale_of(&next_word).unwrap_or(0);
    let after_scale =
        if scale != 0 { after_lower[next_word.len()..].trim_start() } else { after_lower.as_str() };
    let money =
        before.ends_with('$') || before.to_lowercase().ends_with("usd") || after_scale.starts_with("dollars");
    let unit = if after.starts_with('%')
        || after_lower.starts_with("percent")
        || after_lower.starts_with("basis point")
    {
        UnitCue::Percent
    } else if money && (after_scale.starts_with("per share") || after_scale.starts_with("per diluted")) {
        UnitCue::MoneyPerShare
    } else if money {
        UnitCue::Money
    } else if after_scale.starts_with("shares") || after_scale.starts_with("share ") {
        UnitCue::Shares
    } else if ["year", "years", "month", "months", "day", "days"].contains(&first_word(after_scale)) {
        UnitCue::Duration
    } else {
        UnitCue::Plain
    };
    let negated = before.ends_with('(') && after.starts_with(')');
    let value = xbrl::transform::canonical_decimal(&sentence[start..end].replace(',', "")).map(|canonical| {
        let scale = match unit {
            UnitCue::Percent if after_lower.starts_with("basis point") => -4,
            UnitCue::Percent => -2,
            _ => scale,
        };
        xbrl::transform::scale_decimal(&canonical, scale, negated)
    });
    (value, unit)
}

fn scale_of(word: &str) -> Option<i32> {
    SCALE_WORDS.iter().find(|(name, _)| *name == word).map(|&(_, power)| power)
}

fn last_word(text: &str) -> &str {
    text.rsplit(|c: char| !c.is_alphanumeric()).find(|word| !word.is_empty()).unwrap_or("")
}

fn first_word(text: &str) -> &str {
    text.trim_start().split(|c: char| !c.is_alphanumeric()).next().unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(sentence: &str) -> Vec<(String, Option<String>, UnitCue)> {
        find_mentions(sentence).into_iter().map(|m| (m.span, m.value, m.unit)).collect()
    }

    fn one(span: &str, value: &str, unit: UnitCue) -> (String, Option<String>, UnitCue) {
        (span.to_string(), Some(value.to_string()), unit)
    }

    #[test]
    fn money_and_percent_from_finer_text() {
        assert_eq!(
            spans("effectively converts $ 200,000 of variable rate debt to a fixed rate of 1.798 % ."),
            [one("200,000", "200000", UnitCue::Money), one("1.798", "0.01798", UnitCue::Percent)]
        );
    }

    #[test]
    fn parentheses_negate_and_scale_words_scale() {
        assert_eq!(spans("a loss of (2,722) in total"), [one("2,722", "-2722", UnitCue::Plain)]);
        assert_eq!(spans("revenue of $3.5 billion rose"), [one("3.5", "3500000000", UnitCue::Money)]);
        assert_eq!(
            spans("a dividend of $ 0.3750 per share of common stock"),
            [one("0.3750", "0.375", UnitCue::MoneyPerShare)]
        );
        assert_eq!(spans("issued 1,000 shares"), [one("1,000", "1000", UnitCue::Shares)]);
        assert_eq!(spans("over 5 years"), [one("5", "5", UnitCue::Duration)]);
    }

    #[test]
    fn years_dates_and_names_are_not_mentions() {
        assert!(spans("In 2020 and fiscal 2021 the notes matured.").is_empty());
        assert!(spans("On May 1 , 2020 and 31 March 2019 it paid.").is_empty());
        assert!(spans("See Note 13 and Item 7 of the Form 10-K, ASU 2016-13 and Level 3.").is_empty());
        assert!(spans("on 12/31/2020 for the 1st time in Q4 under COVID-19").is_empty());
    }

    #[test]
    fn a_year_with_a_money_cue_is_a_mention() {
        assert_eq!(spans("it paid $ 2020 million"), [one("2020", "2020000000", UnitCue::Money)]);
    }

    #[test]
    fn mention_of_finds_the_whole_token() {
        let mention = mention_of("rates of 11.5 % and 1.5 %", "1.5").expect("found");
        assert_eq!((mention.start, mention.end), (20, 23));
        assert_eq!(mention.value.as_deref(), Some("0.015"));
        assert!(mention_of("no such number", "7").is_none());
    }
}
