//! The word, date, duration and name transforms of inline XBRL (`ixt-sec:numwordsen`,
//! `ixt-sec:duryear`, `ixt:date-monthname-day-year-en`, `ixt-sec:exchnameen`...).
//!
//! Outputs follow the SEC transformation registry as Arelle implements it, so the values equal
//! those in the instance documents SEC derives from the inline filings.

use crate::date::Date;

use super::Decimal;

/// Hyphens and dashes a filer may type for "none" or between number words.
pub(super) fn is_dash(ch: char) -> bool {
    matches!(
        ch,
        '-' | '\u{058a}' | '\u{05be}' | '\u{2010}'
            ..='\u{2015}' | '\u{2212}' | '\u{fe58}' | '\u{fe63}' | '\u{ff0d}'
    )
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|ch: char| ch.is_whitespace() || ch == ',' || is_dash(ch))
        .filter(|token| !token.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn small_number(word: &str) -> Option<u64> {
    const WORDS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 8] = ["twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"];
    if let Some(idx) = WORDS.iter().position(|w| *w == word) {
        return Some(idx as u64);
    }
    TENS.iter().position(|w| *w == word).map(|idx| 20 + 10 * idx as u64)
}

/// The value of English number words already split into lowercase tokens
/// (`["two", "hundred", "and", "five"]` -> 205). Plain numerals are accepted too.
fn words_value(tokens: &[String]) -> Option<u64> {
    if let [only] = tokens {
        if matches!(only.as_str(), "no" | "none" | "nil") {
            return Some(0);
        }
        if !only.is_empty() && only.bytes().all(|b| b.is_ascii_digit()) {
            return only.parse().ok();
        }
    }
    let (mut total, mut current, mut any) = (0u64, 0u64, false);
    for token in tokens {
        match token.as_str() {
            "and" | "a" => {}
            "hundred" => current = current.max(1).checked_mul(100)?,
            "thousand" | "million" | "billion" | "trillion" | "quadrillion" => {
                let scale: u64 = match token.as_str() {
                    "thousand" => 1_000,
                    "million" => 1_000_000,
                    "billion" => 1_000_000_000,
                    "trillion" => 1_000_000_000_000,
                    _ => 1_000_000_000_000_000,
                };
                total = total.checked_add(current.max(1).checked_mul(scale)?)?;
                current = 0;
            }
            word => current = current.checked_add(small_number(word)?)?,
        }
        any = true;
    }
    any.then(|| total.checked_add(current)).flatten()
}

/// `ixt-sec:numwordsen`: `three` -> 3, `no` / `none` -> 0, `twenty-one` -> 21.
pub(super) fn number_words(text: &str) -> Option<u64> {
    words_value(&tokens(text))
}

/// `ixt-sec:durwordsen`: `five years` -> `P5Y`, `six-month` -> `P6M`,
/// `one year and six months` -> `P1Y6M`.
pub(super) fn duration_words(text: &str) -> Option<String> {
    let (mut years, mut months, mut days) = (None, None, None);
    let mut pending: Vec<String> = Vec::new();
    for token in tokens(text) {
        let slot = match token.as_str() {
            "year" | "years" => &mut years,
            "month" | "months" => &mut months,
            "day" | "days" => &mut days,
            "and" if pending.is_empty() => continue,
            _ => {
                pending.push(token);
                continue;
            }
        };
        if slot.is_some() || pending.is_empty() {
            return None;
        }
        *slot = Some(words_value(&pending)?);
        pending.clear();
    }
    if !pending.is_empty() || (years.is_none() && months.is_none() && days.is_none()) {
        return None;
    }
    let mut out = String::from("P");
    for (value, unit) in [(years, 'Y'), (months, 'M'), (days, 'D')] {
        if let Some(value) = value.filter(|v| *v != 0) {
            out.push_str(&value.to_string());
            out.push(unit);
        }
    }
    if out.len() == 1 {
        out.push_str("0D");
    }
    Some(out)
}

/// `ixt-sec:duryear` and friends: a decimal count of years (months, weeks...) as an
/// `xs:duration`. Fractions spill into the next unit down, with 30.4375 days a month and the
/// remainder truncated, as the SEC registry specifies (`10.1` years -> `P10Y1M6D`).
pub(super) fn duration_number(transform: &str, text: &str) -> Option<String> {
    let decimal = Decimal::parse(text)?;
    if decimal.digits.len() > 24 {
        return None;
    }
    let frac_len = u32::try_from(decimal.digits.len() - decimal.point).ok()?;
    let denominator = 10u128.pow(frac_len);
    let numerator = decimal.digits.iter().fold(0u128, |acc, &d| acc * 10 + u128::from(d));
    let whole = numerator / denominator;
    let rest = numerator % denominator;
    // 30.4375 days per month = 304375 / 10000.
    let spill = |rest: u128, factor: u128, divisor: u128| rest * factor / (denominator * divisor);
    let (y, m, d, h) = match transform {
        "duryear" => {
            let months_scaled = rest * 12;
            let months = months_scaled / denominator;
            let days = spill(months_scaled % denominator, 304_375, 10_000);
            (Some(whole), Some(months), Some(days), None)
        }
        "durmonth" => (None, Some(whole), Some(spill(rest, 304_375, 10_000)), None),
        "durweek" => (None, None, Some(numerator * 7 / denominator), None),
        "durday" => (None, None, Some(whole), Some(spill(rest, 24, 1))),
        _ => (None, None, None, Some(whole)),
    };
    Some(duration_value([y, m, d, h], decimal.negative))
}

/// Writes an `xs:duration` the way the SEC registry does: zero parts after the first are left
/// out, and an all-zero duration is `P0Y` (or `P0M`...) without a sign.
fn duration_value(parts: [Option<u128>; 4], negative: bool) -> String {
    let [y, mut m, mut d, mut h] = parts;
    let all_zero = parts.iter().all(|part| part.is_none_or(|v| v == 0));
    let mut out = String::new();
    if all_zero {
        let mut hit_zero = y == Some(0);
        for part in [&mut m, &mut d, &mut h] {
            if *part == Some(0) {
                if hit_zero {
                    *part = None;
                } else {
                    hit_zero = true;
                }
            }
        }
    } else if negative {
        out.push('-');
    }
    out.push('P');
    if let Some(years) = y {
        out.push_str(&format!("{years}Y"));
    }
    if let Some(months) = m.filter(|v| *v != 0 || y.is_none()) {
        out.push_str(&format!("{months}M"));
    }
    if let Some(days) = d.filter(|v| *v != 0 || (y.is_none() && m.is_none())) {
        out.push_str(&format!("{days}D"));
    }
    if let Some(hours) = h.filter(|v| *v != 0 || (y.is_none() && m.is_none() && d.is_none())) {
        out.push_str(&format!("T{hours}H"));
    }
    out
}

/// `ixt-sec:boolballotbox`: an empty box is false, a checked or crossed box true.
pub(super) fn ballot_box(text: &str) -> Option<String> {
    match text {
        "\u{2610}" => Some("false".to_string()),
        "\u{2611}" | "\u{2612}" => Some("true".to_string()),
        _ => None,
    }
}

/// Lowercase words with `the` and corporate suffixes dropped, for name lookups.
fn name_key(text: &str) -> String {
    let words: Vec<String> = text
        .split(|ch: char| ch.is_whitespace() || ch == ',')
        .filter(|word| !word.is_empty())
        .map(|word| word.trim_end_matches('.').to_lowercase())
        .collect();
    let start = usize::from(words.first().is_some_and(|w| w == "the"));
    let end = words.len()
        - usize::from(words.len() > start && matches!(words[words.len() - 1].as_str(), "llc" | "inc"));
    words[start..end].join(" ")
}

/// `ixt-sec:exchnameen`: `The Nasdaq Stock Market LLC` -> `NASDAQ`.
pub(super) fn exchange_code(text: &str) -> Option<String> {
    const EXCHANGES: [(&str, &str); 21] = [
        ("box exchange", "BOX"),
        ("cboe byx exchange", "CboeBYX"),
        ("cboe bzx exchange", "CboeBZX"),
        ("cboe c2 exchange", "C2"),
        ("cboe edga exchange", "CboeEDGA"),
        ("cboe edgx exchange", "CboeEDGX"),
        ("cboe exchange", "CBOE"),
        ("chicago stock exchange", "CHX"),
        ("investors exchange", "IEX"),
        ("miami international securities exchange", "MIAX"),
        ("miax pearl", "PEARL"),
        ("nasdaq bx", "BX"),
        ("nasdaq gemx", "GEMX"),
        ("nasdaq ise", "ISE"),
        ("nasdaq mrx", "MRX"),
        ("nasdaq phlx", "Phlx"),
        ("new york stock exchange", "NYSE"),
        ("nyse american", "NYSEAMER"),
        ("nyse arca", "NYSEArca"),
        ("nyse national", "NYSENAT"),
        ("nyse", "NYSE"),
    ];
    let key = name_key(text);
    if matches!(
        key.as_str(),
        "nasdaq" | "nasdaq stock market" | "nasdaq global market" | "nasdaq global select market"
    ) {
        return Some("NASDAQ".to_string());
    }
    EXCHANGES.iter().find(|(name, _)| *name == key).map(|(_, code)| code.to_string())
}

/// `ixt-sec:stateprovnameen`: `California` -> `CA` (US states and territories, Canadian provinces).
pub(super) fn state_code(text: &str) -> Option<String> {
    const STATES: [(&str, &str); 70] = [
        ("alabama", "AL"),
        ("alaska", "AK"),
        ("arizona", "AZ"),
        ("arkansas", "AR"),
        ("california", "CA"),
        ("colorado", "CO"),
        ("connecticut", "CT"),
        ("delaware", "DE"),
        ("florida", "FL"),
        ("georgia", "GA"),
        ("hawaii", "HI"),
        ("idaho", "ID"),
        ("illinois", "IL"),
        ("indiana", "IN"),
        ("iowa", "IA"),
        ("kansas", "KS"),
        ("kentucky", "KY"),
        ("louisiana", "LA"),
        ("maine", "ME"),
        ("maryland", "MD"),
        ("massachusetts", "MA"),
        ("michigan", "MI"),
        ("minnesota", "MN"),
        ("mississippi", "MS"),
        ("missouri", "MO"),
        ("montana", "MT"),
        ("nebraska", "NE"),
        ("nevada", "NV"),
        ("new hampshire", "NH"),
        ("new jersey", "NJ"),
        ("new mexico", "NM"),
        ("new york", "NY"),
        ("north carolina", "NC"),
        ("north dakota", "ND"),
        ("ohio", "OH"),
        ("oklahoma", "OK"),
        ("oregon", "OR"),
        ("pennsylvania", "PA"),
        ("rhode island", "RI"),
        ("south carolina", "SC"),
        ("south dakota", "SD"),
        ("tennessee", "TN"),
        ("texas", "TX"),
        ("utah", "UT"),
        ("vermont", "VT"),
        ("virginia", "VA"),
        ("washington", "WA"),
        ("west virginia", "WV"),
        ("wisconsin", "WI"),
        ("wyoming", "WY"),
        ("district of columbia", "DC"),
        ("american samoa", "AS"),
        ("samoa", "AS"),
        ("guam", "GU"),
        ("northern mariana islands", "MP"),
        ("puerto rico", "PR"),
        ("united states minor outlying islands", "UM"),
        ("virgin islands u.s", "VI"),
        ("alberta", "AB"),
        ("british columbia", "BC"),
        ("manitoba", "MB"),
        ("new brunswick", "NB"),
        ("newfoundland", "NL"),
        ("newfoundland and labrador", "NL"),
        ("nova scotia", "NS"),
        ("northwest territories", "NT"),
        ("nunavut", "NU"),
        ("ontario", "ON"),
        ("prince edward island", "PE"),
        ("quebec", "QC"),
    ];
    let key = name_key(text).replace('é', "e");
    match key.as_str() {
        "saskatchewan" => Some("SK".to_string()),
        "yukon" => Some("YT".to_string()),
        _ => STATES.iter().find(|(name, _)| *name == key).map(|(_, code)| code.to_string()),
    }
}

/// `ixt-sec:entityfilercategoryen`: `Large accelerated filer` -> `Large Accelerated Filer`.
pub(super) fn filer_category(text: &str) -> Option<String> {
    let words: Vec<String> = text.split_whitespace().map(str::to_lowercase).collect();
    let category = match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["large", "accelerated", "filer"] => "Large Accelerated Filer",
        ["accelerated", "filer"] => "Accelerated Filer",
        ["non", "accelerated", "filer"] | ["non-accelerated", "filer"] => "Non-accelerated Filer",
        _ => return None,
    };
    Some(category.to_string())
}

fn month_number(word: &str) -> Option<u8> {
    const MONTHS: [&str; 12] = [
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
    ];
    let word = word.trim_end_matches('.').to_lowercase();
    if word.len() < 3 {
        return None;
    }
    let idx = MONTHS.iter().position(|m| *m == word || (word.len() <= 4 && m.starts_with(word.as_str())))?;
    u8::try_from(idx + 1).ok()
}

fn day_number(word: &str) -> Option<u8> {
    let digits = word.trim_end_matches(|ch: char| ch.is_ascii_alphabetic());
    if digits.is_empty() || digits.len() > 2 {
        return None;
    }
    digits.parse().ok()
}

fn year_number(word: &str) -> Option<i32> {
    match word.len() {
        4 => word.parse().ok(),
        2 => word.parse::<i32>().ok().map(|yy| 2000 + yy),
        _ => None,
    }
}

fn date_words(text: &str) -> Vec<&str> {
    text.split(|ch: char| ch.is_whitespace() || ch == ',').filter(|w| !w.is_empty()).collect()
}

/// `ixt:date-monthname-day-en`: `September 24` -> `--09-24`.
pub(super) fn month_day(text: &str) -> Option<String> {
    let [month, day] = date_words(text)[..] else { return None };
    let (month, day) = (month_number(month)?, day_number(day)?);
    // A leap year, so February 29 is a valid month-day.
    Date::new(2000, month, day)?;
    Some(format!("--{month:02}-{day:02}"))
}

/// `ixt:date-monthname-day-year-en`: `September 24, 2022` -> `2022-09-24`.
pub(super) fn month_day_year(text: &str) -> Option<String> {
    let [month, day, year] = date_words(text)[..] else { return None };
    Date::new(year_number(year)?, month_number(month)?, day_number(day)?).map(|date| date.to_string())
}

/// `ixt:date-day-monthname-year-en`: `24 September 2022` -> `2022-09-24`.
pub(super) fn day_month_year(text: &str) -> Option<String> {
    let [day, month, year] = date_words(text)[..] else { return None };
    Date::new(year_number(year)?, month_number(month)?, day_number(day)?).map(|date| date.to_string())
}

/// `ixt:date-month-day-year` (`09/24/2022`) or, with `day_first`, `ixt:date-day-month-year`.
pub(super) fn numeric_date(text: &str, day_first: bool) -> Option<String> {
    let parts: Vec<&str> = text.split(['/', '.', '-', ' ']).filter(|p| !p.is_empty()).collect();
    let [first, second, year] = parts[..] else { return None };
    let (month, day) = if day_first { (second, first) } else { (first, second) };
    Date::new(year_number(year)?, day_number(month)?, day_number(day)?).map(|date| date.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_durations() {
        assert_eq!(number_words("twenty-one"), Some(21));
        assert_eq!(number_words("two hundred and five"), Some(205));
        assert_eq!(number_words("none"), Some(0));
        assert_eq!(number_words("many"), None);
        for (text, want) in [
            ("five years", "P5Y"),
            ("six-month", "P6M"),
            ("nine months", "P9M"),
            ("one year and six months", "P1Y6M"),
            ("4 years", "P4Y"),
        ] {
            assert_eq!(duration_words(text).as_deref(), Some(want), "{text}");
        }
        for (transform, text, want) in [
            ("duryear", "10.1", "P10Y1M6D"),
            ("duryear", "10.8", "P10Y9M18D"),
            ("duryear", "2.6", "P2Y7M6D"),
            ("duryear", "2.5", "P2Y6M"),
            ("duryear", "40", "P40Y"),
            ("duryear", "0", "P0Y"),
            ("durmonth", "12", "P12M"),
            ("durmonth", "-1.5", "-P1M15D"),
        ] {
            assert_eq!(duration_number(transform, text).as_deref(), Some(want), "{transform} {text}");
        }
    }

    #[test]
    fn names_and_dates() {
        assert_eq!(exchange_code("The Nasdaq Stock Market LLC").as_deref(), Some("NASDAQ"));
        assert_eq!(exchange_code("New York Stock Exchange").as_deref(), Some("NYSE"));
        assert_eq!(state_code("California").as_deref(), Some("CA"));
        assert_eq!(filer_category("Large accelerated filer").as_deref(), Some("Large Accelerated Filer"));
        assert_eq!(month_day("September\u{a0}24").as_deref(), Some("--09-24"));
        assert_eq!(month_day_year("September\u{a0}24, 2022").as_deref(), Some("2022-09-24"));
        assert_eq!(day_month_year("24 Sept 2022").as_deref(), Some("2022-09-24"));
        assert_eq!(numeric_date("09/24/2022", false).as_deref(), Some("2022-09-24"));
        assert_eq!(month_day_year("Smarch 40, 2022"), None);
        assert_eq!(ballot_box("\u{2612}").as_deref(), Some("true"));
    }
}
