//! Checks the model's answer against the facts it was shown: a number the model wrote must be one
//! of the retrieved values (as filed, or rounded the way people write it: "394.3 billion").

/// A number read from the model's answer, with how precisely it was written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReadNumber {
    pub value: f64,
    /// Half a unit of the last digit written, times the multiplier ("394.3 billion" -> 0.05e9).
    pub tolerance: f64,
}

/// Every number in `text`, reading thousands separators, a leading `$`, parentheses or a minus
/// sign for negatives, and a trailing multiplier word (thousand, million, billion, trillion).
pub fn read_numbers(text: &str) -> Vec<ReadNumber> {
    let chars: Vec<char> = text.chars().collect();
    let mut numbers = Vec::new();
    let mut idx = 0;
    while idx < chars.len() {
        if !chars[idx].is_ascii_digit() {
            idx += 1;
            continue;
        }
        let start = idx;
        let mut digits = String::new();
        let mut fraction_digits: Option<i32> = None;
        while idx < chars.len() {
            let c = chars[idx];
            let next_is_digit = chars.get(idx + 1).is_some_and(|n| n.is_ascii_digit());
            if c.is_ascii_digit() {
                digits.push(c);
                if let Some(n) = fraction_digits.as_mut() {
                    *n += 1;
                }
            } else if c == ',' && next_is_digit && fraction_digits.is_none() {
                // thousands separator
            } else if c == '.' && next_is_digit && fraction_digits.is_none() {
                digits.push('.');
                fraction_digits = Some(0);
            } else {
                break;
            }
            idx += 1;
        }
        let Ok(mut value) = digits.parse::<f64>() else { continue };
        let negative = (start > 0 && chars[start - 1] == '-')
            || (start > 1 && chars[start - 1] == '$' && chars[start - 2] == '-')
            || (start > 0 && chars[start - 1] == '(' && chars.get(idx) == Some(&')'));
        let rest: String = chars[idx..].iter().collect::<String>().to_lowercase();
        let rest = rest.strip_prefix(')').unwrap_or(&rest).trim_start();
        let multiplier = [("trillion", 1e12), ("billion", 1e9), ("million", 1e6), ("thousand", 1e3)]
            .iter()
            .find(|(word, _)| rest.starts_with(word))
            .map_or(1.0, |(_, m)| *m);
        value *= multiplier;
        if negative {
            value = -value;
        }
        let tolerance = 0.5 * 10f64.powi(-fraction_digits.unwrap_or(0)) * multiplier;
        numbers.push(ReadNumber { value, tolerance });
    }
    numbers
}

impl ReadNumber {
    /// True when `fact_value` rounds to what was written. Exact integers in the answer must match
    /// exactly; a multiplier or decimals allow the rounding they imply.
    pub fn matches(&self, fact_value: f64) -> bool {
        let written_exactly = self.tolerance <= 0.5;
        if written_exactly {
            // Same number up to float rounding of the parse (values are at most ~1e15).
            (self.value - fact_value).abs() <= 4.0 * f64::EPSILON * fact_value.abs().max(1.0)
        } else {
            (self.value - fact_value).abs() <= self.tolerance * (1.0 + 1e-12)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(text: &str) -> Vec<f64> {
        read_numbers(text).into_iter().map(|n| n.value).collect()
    }

    #[test]
    fn reads_the_ways_numbers_are_written() {
        assert_eq!(values("394328000000"), vec![394328000000.0]);
        assert_eq!(values("$394,328,000,000 USD"), vec![394328000000.0]);
        assert_eq!(values("394.3 billion"), vec![394.3e9]);
        assert_eq!(values("-2722000000"), vec![-2722000000.0]);
        assert_eq!(values("(2,722) million"), vec![-2722e6]);
        assert_eq!(values("EPS was 6.11, up from 5.61."), vec![6.11, 5.61]);
        assert_eq!(values("no number here"), Vec::<f64>::new());
    }

    #[test]
    fn matching_respects_written_precision() {
        let exact = read_numbers("394328000000")[0];
        assert!(exact.matches(394328000000.0));
        assert!(!exact.matches(394328000001.0));
        let rounded = read_numbers("394.3 billion")[0];
        assert!(rounded.matches(394328000000.0));
        assert!(!rounded.matches(383285000000.0));
        let eps = read_numbers("6.11")[0];
        assert!(eps.matches(6.11));
        assert!(!eps.matches(6.15));
    }
}
