//! A small RFC 4180 reader for the original CSV / TSV releases (TFNS `sent_*.csv`, the FinLoRA
//! `xbrl_analysis_datasets/*.csv`), so loaders accept them without another dependency.
//!
//! Quoted fields may hold the delimiter, doubled quotes and line breaks; records end at LF or
//! CRLF; a leading UTF-8 BOM is dropped. A quote inside an unquoted field is kept as text (as
//! Python's `csv` module does), but text after a closing quote is an error.

/// One record and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvRecord {
    pub line: usize,
    pub fields: Vec<String>,
}

/// A record that cannot be read: the line it starts on and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvError {
    pub line: usize,
    pub message: String,
}

/// Splits `text` into records. Empty lines between records are skipped.
pub fn parse_csv(text: &str, delimiter: char) -> Result<Vec<CsvRecord>, CsvError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut records = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let record_line = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut record_done = false;
        while !record_done {
            // Start of a field.
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        None => {
                            return Err(CsvError {
                                line: record_line,
                                message: "unterminated quoted field".into(),
                            })
                        }
                        Some('"') if chars.peek() == Some(&'"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some('"') => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            field.push(c);
                        }
                    }
                }
                match chars.peek() {
                    None | Some('\n') | Some('\r') => {}
                    Some(&c) if c == delimiter => {}
                    Some(&c) => {
                        return Err(CsvError {
                            line,
                            message: format!("unexpected {c:?} after closing quote"),
                        })
                    }
                }
            }
            // Unquoted text up to the delimiter or end of record.
            loop {
                match chars.next() {
                    None => {
                        record_done = true;
                        break;
                    }
                    Some('\r') if chars.peek() == Some(&'\n') => {}
                    Some('\n') => {
                        line += 1;
                        record_done = true;
                        break;
                    }
                    Some(c) if c == delimiter => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(std::mem::take(&mut field));
        }
        let blank = fields.len() == 1 && fields[0].is_empty();
        if !blank {
            records.push(CsvRecord { line: record_line, fields });
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Vec<Vec<String>> {
        match parse_csv(text, ',') {
            Ok(records) => records.into_iter().map(|record| record.fields).collect(),
            Err(error) => panic!("line {}: {}", error.line, error.message),
        }
    }

    #[test]
    fn reads_quotes_delimiters_and_line_breaks() {
        let parsed = fields("text,label\r\n\"a, \"\"b\"\"\nc\",1\nplain,2\n");
        assert_eq!(parsed, vec![vec!["text", "label"], vec!["a, \"b\"\nc", "1"], vec!["plain", "2"]]);
    }

    #[test]
    fn counts_lines_across_quoted_breaks() {
        let records = parse_csv("h\n\"x\ny\"\nz\n", ',').unwrap_or_default();
        let lines: Vec<usize> = records.iter().map(|record| record.line).collect();
        assert_eq!(lines, vec![1, 2, 4]);
    }

    #[test]
    fn keeps_empty_fields_and_skips_blank_lines() {
        assert_eq!(fields("a,,c\n\n,\n"), vec![vec!["a", "", "c"], vec!["", ""]]);
    }

    #[test]
    fn strips_bom_and_reads_tabs() {
        let records = parse_csv("\u{feff}a\tb\n1\t2", '\t').unwrap_or_default();
        assert_eq!(records[0].fields, vec!["a", "b"]);
        assert_eq!(records[1].fields, vec!["1", "2"]);
    }

    #[test]
    fn rejects_unterminated_quote_with_its_line() {
        let error = parse_csv("a\nb\n\"open,1\n", ',').err();
        assert_eq!(error.map(|error| error.line), Some(3));
    }

    #[test]
    fn rejects_text_after_closing_quote() {
        assert!(parse_csv("\"a\"b,1\n", ',').is_err());
    }
}
