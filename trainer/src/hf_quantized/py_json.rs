//! JSON text exactly as Python's `json.dumps(indent=2, sort_keys=True)` writes it (transformers' config
//! files): floats in `repr` form, ASCII-only strings, `[]`/`{}` for empty containers.

use std::fmt::Write;

use serde_json::Value;

/// Python's `repr(float)`: the shortest digits that round-trip, positional for decimal exponents
/// -4..16 (`0.0001`, `100000.0`) and scientific outside it (`1e-05`, `1e+16`); as `json.dumps`
/// writes non-finite values, `NaN`, `Infinity` and `-Infinity`.
pub fn float_repr(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    // `{:e}` gives the shortest round-trip digits, e.g. "-4.9454712867736816e-1".
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if value == 0.0 {
        return format!("{sign}0.0");
    }
    if (-4..16).contains(&exponent) {
        let n_int_digits = exponent + 1;
        if n_int_digits <= 0 {
            let zeros = "0".repeat(n_int_digits.unsigned_abs() as usize);
            return format!("{sign}0.{zeros}{digits}");
        }
        let n_int_digits = n_int_digits as usize;
        if digits.len() <= n_int_digits {
            let zeros = "0".repeat(n_int_digits - digits.len());
            return format!("{sign}{digits}{zeros}.0");
        }
        return format!("{sign}{}.{}", &digits[..n_int_digits], &digits[n_int_digits..]);
    }
    let fraction = if digits.len() > 1 { format!(".{}", &digits[1..]) } else { String::new() };
    let exponent_sign = if exponent < 0 { '-' } else { '+' };
    format!("{sign}{}{fraction}e{exponent_sign}{:02}", &digits[..1], exponent.unsigned_abs())
}

/// `json.dumps(value, indent=2, sort_keys=True) + "\n"`, as transformers writes `config.json`.
pub fn to_pretty_sorted(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

/// Spaces per nesting level.
const INDENT: usize = 2;

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(flag) => out.push_str(if *flag { "true" } else { "false" }),
        Value::Number(number) => match (number.as_i64(), number.as_u64(), number.as_f64()) {
            (Some(int), _, _) => out.push_str(&int.to_string()),
            (None, Some(uint), _) => out.push_str(&uint.to_string()),
            (None, None, Some(float)) => out.push_str(&float_repr(float)),
            (None, None, None) => out.push_str(&number.to_string()),
        },
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            let items: Vec<&Value> = items.iter().collect();
            write_container(out, ('[', ']'), &items, depth, write_value);
        }
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|&(key, _)| key);
            write_container(out, ('{', '}'), &entries, depth, |out, (key, item), depth| {
                write_string(out, key);
                out.push_str(": ");
                write_value(out, item, depth);
            });
        }
    }
}

/// Python prints an empty container as `[]`/`{}` even when indenting.
fn write_container<T: Copy>(
    out: &mut String,
    (open, close): (char, char),
    items: &[T],
    depth: usize,
    write_item: impl Fn(&mut String, T, usize),
) {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return;
    }
    for (item_idx, &item) in items.iter().enumerate() {
        out.push_str(if item_idx == 0 { "\n" } else { ",\n" });
        out.push_str(&" ".repeat(INDENT * (depth + 1)));
        write_item(out, item, depth + 1);
    }
    out.push('\n');
    out.push_str(&" ".repeat(INDENT * depth));
    out.push(close);
}

/// A string with `ensure_ascii=True` escaping: non-ASCII as `\uXXXX` (surrogate pairs above U+FFFF).
fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(ch),
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (0.49454712867736816, "0.49454712867736816"),
            (9.999999747378752e-06, "9.999999747378752e-06"),
            (100000.0, "100000.0"),
            (0.02, "0.02"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (123456789012345.0, "123456789012345.0"),
            (-2.5e-7, "-2.5e-07"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (6.0, "6.0"),
            (1e300, "1e+300"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (value, expected) in cases {
            assert_eq!(float_repr(value), expected, "{value:e}");
        }
    }

    #[test]
    fn pretty_output_matches_json_dumps_indent_2_sort_keys() {
        let value = serde_json::json!({"b": [1, 2.0, "é😀"], "a": {}, "c": {"y": null, "x": [true]}});
        let expected =
            "{\n  \"a\": {},\n  \"b\": [\n    1,\n    2.0,\n    \"\\u00e9\\ud83d\\ude00\"\n  ],\n  \
                        \"c\": {\n    \"x\": [\n      true\n    ],\n    \"y\": null\n  }\n}\n";
        assert_eq!(to_pretty_sorted(&value), expected);
    }
}
