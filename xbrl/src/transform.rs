//! Inline XBRL value transforms (`ixt:`, `ixt-sec:`) and exact decimal-string arithmetic for
//! `scale` and `sign`.
//!
//! Values stay strings end to end: `394,328` in millions becomes `394328000000` without passing
//! through `f64`, so the inline and instance readers produce byte-identical values.

#[path = "inline_words.rs"]
mod words;

/// Applies the transform named by `format` (`ixt:num-dot-decimal`, `ixt-sec:numwordsen`...) to the
/// displayed `text`. Numeric transforms return a canonical decimal; the others return the XML
/// Schema lexical form (`2022-09-24`, `--09-24`, `P1Y6M`, `true`, `NASDAQ`).
///
/// The prefix is ignored: transform local names are unique across the registries SEC filings use
/// (2010 `numdotdecimal`, 2011, 2015, 2020 `num-dot-decimal`, SEC 2015 `numwordsen`).
pub fn apply_format(format: &str, text: &str) -> Result<String, String> {
    let local = format.rsplit_once(':').map_or(format, |(_, local)| local);
    let trimmed = text.trim();
    match local {
        "num-dot-decimal" | "numdotdecimal" | "numcommadot" | "numspacedot" => {
            grouped_number(trimmed, '.').ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "num-comma-decimal" | "numcommadecimal" | "numdotcomma" | "numspacecomma" => {
            grouped_number(trimmed, ',').ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "fixed-zero" => Ok("0".to_string()),
        "zerodash" | "numdash" => {
            if !trimmed.is_empty() && trimmed.chars().all(words::is_dash) {
                Ok("0".to_string())
            } else {
                Err(format!("{format} expects a dash, found {trimmed:?}"))
            }
        }
        "nocontent" | "fixed-empty" => Ok(String::new()),
        "fixed-true" | "booleantrue" => Ok("true".to_string()),
        "fixed-false" | "booleanfalse" => Ok("false".to_string()),
        "numwordsen" => words::number_words(trimmed)
            .map(|n| n.to_string())
            .ok_or_else(|| format!("{format} cannot read {trimmed:?}")),
        "durwordsen" => {
            words::duration_words(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "duryear" | "durmonth" | "durweek" | "durday" | "durhour" => {
            words::duration_number(local, trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "boolballotbox" => {
            words::ballot_box(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "exchnameen" => {
            words::exchange_code(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "stateprovnameen" => {
            words::state_code(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "entityfilercategoryen" => {
            words::filer_category(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "date-monthname-day-en" | "datemonthdayen" => {
            words::month_day(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "date-monthname-day-year-en" | "datemonthdayyearen" | "datelongus" | "dateshortus" => {
            words::month_day_year(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "date-day-monthname-year-en" | "datedaymonthyearen" | "datelonguk" | "dateshortuk" => {
            words::day_month_year(trimmed).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "date-month-day-year" | "dateslashus" | "datedotus" => {
            words::numeric_date(trimmed, false).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        "date-day-month-year" | "dateslasheu" | "datedoteu" => {
            words::numeric_date(trimmed, true).ok_or_else(|| format!("{format} cannot read {trimmed:?}"))
        }
        _ => Err(format!("unsupported transform {format}")),
    }
}

/// Reads a number written with group separators and the given decimal mark (`1,234.5`,
/// `1.234,5`, `1 234`). Surrounding parentheses are accepted because some filers tag `(1,234)`
/// whole; the negation itself is carried by `sign="-"`, never by the text.
fn grouped_number(text: &str, decimal_mark: char) -> Option<String> {
    let inner = text.strip_prefix('(').and_then(|rest| rest.strip_suffix(')')).unwrap_or(text).trim();
    let mut plain = String::with_capacity(inner.len());
    for ch in inner.chars() {
        match ch {
            '0'..='9' => plain.push(ch),
            _ if ch == decimal_mark => plain.push('.'),
            ',' | '.' | ' ' | '\'' | '\u{a0}' | '\u{202f}' | '\u{2009}' => {}
            _ => return None,
        }
    }
    if !plain.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    canonical_decimal(&plain)
}

/// A decimal split into sign, all digits, and how many of them precede the decimal point.
pub(crate) struct Decimal {
    pub negative: bool,
    pub digits: Vec<u8>,
    pub point: usize,
}

impl Decimal {
    /// Reads `[+-]digits[.digits]` (either side of the point may be empty, not both).
    pub fn parse(text: &str) -> Option<Self> {
        let trimmed = text.trim();
        let (negative, body) = match trimmed.as_bytes().first()? {
            b'-' => (true, &trimmed[1..]),
            b'+' => (false, &trimmed[1..]),
            _ => (false, trimmed),
        };
        let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (int_part.is_empty() && frac_part.is_empty()) || !all_digits(int_part) || !all_digits(frac_part) {
            return None;
        }
        let mut digits = Vec::with_capacity(int_part.len() + frac_part.len());
        digits.extend(int_part.bytes().map(|b| b - b'0'));
        digits.extend(frac_part.bytes().map(|b| b - b'0'));
        Some(Self { negative, digits, point: int_part.len() })
    }

    /// The canonical form: no leading or trailing zeros, no `+`, no `-0`, no trailing `.`.
    pub fn render(&self) -> String {
        let (int_digits, frac_digits) = self.digits.split_at(self.point.min(self.digits.len()));
        let first_nonzero = int_digits.iter().position(|&d| d != 0).unwrap_or(int_digits.len());
        let int_digits = &int_digits[first_nonzero..];
        let last_nonzero = frac_digits.iter().rposition(|&d| d != 0).map_or(0, |idx| idx + 1);
        let frac_digits = &frac_digits[..last_nonzero];
        let is_zero = int_digits.is_empty() && frac_digits.is_empty();
        let mut out = String::with_capacity(int_digits.len() + frac_digits.len() + 3);
        if self.negative && !is_zero {
            out.push('-');
        }
        if int_digits.is_empty() {
            out.push('0');
        }
        out.extend(int_digits.iter().map(|&d| char::from(b'0' + d)));
        if !frac_digits.is_empty() {
            out.push('.');
            out.extend(frac_digits.iter().map(|&d| char::from(b'0' + d)));
        }
        out
    }
}

/// The canonical decimal string of `text`, or `None` when it is not an `xs:decimal`:
/// `"394328000000.00"` -> `394328000000`, `"-0.50"` -> `-0.5`, `"+7"` -> `7`, `".5"` -> `0.5`.
pub fn canonical_decimal(text: &str) -> Option<String> {
    Decimal::parse(text).map(|decimal| decimal.render())
}

/// Multiplies a decimal string by 10^`scale` and negates it when `negate` is set, exactly.
/// `scale_decimal("1234", 3, true)` is `-1234000`. Input that is not a decimal comes back
/// unchanged. The output has about `|scale|` more digits, so callers bound `scale`.
pub fn scale_decimal(canonical: &str, scale: i32, negate: bool) -> String {
    let Some(mut decimal) = Decimal::parse(canonical) else {
        return canonical.to_string();
    };
    let shift = i64::from(scale);
    let new_point = decimal.point as i64 + shift;
    if new_point < 0 {
        let pad = usize::try_from(-new_point).unwrap_or(0);
        decimal.digits.splice(0..0, std::iter::repeat_n(0, pad));
        decimal.point = 0;
    } else {
        let new_point = usize::try_from(new_point).unwrap_or(0);
        if new_point > decimal.digits.len() {
            decimal.digits.resize(new_point, 0);
        }
        decimal.point = new_point;
    }
    decimal.negative ^= negate;
    decimal.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms() {
        for (text, want) in [
            ("394328000000.00", Some("394328000000")),
            ("-0.50", Some("-0.5")),
            ("+7", Some("7")),
            (".5", Some("0.5")),
            ("5.", Some("5")),
            ("-0", Some("0")),
            ("007", Some("7")),
            (" 12 ", Some("12")),
            ("", None),
            (".", None),
            ("1.2.3", None),
            ("1e5", None),
            ("--1", None),
        ] {
            assert_eq!(canonical_decimal(text).as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn scale_and_sign() {
        for (value, scale, negate, want) in [
            ("1234", 3, true, "-1234000"),
            ("394328", 6, false, "394328000000"),
            ("64", -2, false, "0.64"),
            ("6.11", 0, false, "6.11"),
            ("1.5", -3, false, "0.0015"),
            ("0", 6, true, "0"),
            ("-2.5", 1, true, "25"),
            ("12.345", 2, false, "1234.5"),
        ] {
            assert_eq!(scale_decimal(value, scale, negate), want, "{value} {scale} {negate}");
        }
        assert_eq!(scale_decimal("n/a", 3, false), "n/a");
    }

    #[test]
    fn number_formats() {
        for (format, text, want) in [
            ("ixt:num-dot-decimal", "394,328", "394328"),
            ("ixt:num-dot-decimal", "(1,234)", "1234"),
            ("ixt:num-dot-decimal", "6.11", "6.11"),
            ("ixt:numdotdecimal", "4,443,265,000", "4443265000"),
            ("ixt:num-comma-decimal", "1.234,50", "1234.5"),
            ("ixt:fixed-zero", "\u{2014}", "0"),
            ("ixt:zerodash", "\u{2014}", "0"),
            ("ixt-sec:numwordsen", "three", "3"),
            ("ixt-sec:numwordsen", "no", "0"),
        ] {
            assert_eq!(apply_format(format, text).as_deref(), Ok(want), "{format} {text:?}");
        }
        for (format, text) in [("ixt:num-dot-decimal", "abc"), ("ixt:zerodash", "5"), ("ixt:nosuch", "1")] {
            assert!(apply_format(format, text).is_err(), "{format} {text:?}");
        }
    }
}
