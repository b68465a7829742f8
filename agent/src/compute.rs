//! Ratio and change questions: two filed values, each answered (and checked) on its own with its
//! provenance, then combined by a formula shown with its values substituted. The result is only
//! ever computed from values that agree with the filings.

use serde::Serialize;
use taxonomy::{Combine, DerivedMetric, Metric};

use crate::ask::{group_thousands, Answer};
use crate::companies::Company;
use crate::question::Question;

/// A value computed from two filed ones.
#[derive(Debug, Clone, Serialize)]
pub struct Computed {
    /// `ratio` (a derived metric in one year) or `change` (a metric between two years).
    pub kind: &'static str,
    pub question: String,
    /// One sentence for people.
    pub answer: String,
    /// The derived metric's name (`gross_margin`), or the changing metric's (`revenue`).
    pub metric: String,
    /// Over labels: `Gross profit / Revenue × 100`.
    pub formula: String,
    /// With the filed values written in; `None` when an operand has no confirmed value.
    pub substituted: Option<String>,
    /// The result as a decimal (a ratio to 4 decimals, a percentage to 2, amounts exact); for a
    /// change, the difference `to - from`.
    pub value: Option<String>,
    /// `%`, `ratio`, or the operands' unit.
    pub unit: Option<String>,
    /// For a change: `100 × (to - from) / |from|`, to 2 decimals.
    pub percent_change: Option<String>,
    /// The (last) fiscal year the result is about.
    pub fiscal_year: i32,
    pub ticker: String,
    pub entity: Option<String>,
    /// True when both operands agree with retrieved facts (and so the result is shown).
    pub agrees_with_facts: bool,
    /// The two operands, each with its own provenance.
    pub operands: Vec<Answer>,
    /// Why the metric was computed another way: the company files no gross profit, so it is
    /// revenue less cost of revenue. Also the start of `answer`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Computed {
    /// A computation not (yet) carried out: no result, no operands, not agreeing with facts.
    fn unanswered(
        kind: &'static str,
        question: &Question,
        company: &Company,
        metric: &str,
        formula: &str,
        fiscal_year: i32,
        entity: Option<String>,
    ) -> Self {
        Computed {
            kind,
            question: question.text.clone(),
            answer: String::new(),
            metric: metric.to_string(),
            formula: formula.to_string(),
            substituted: None,
            value: None,
            unit: None,
            percent_change: None,
            fiscal_year,
            ticker: company.ticker.clone(),
            entity,
            agrees_with_facts: false,
            operands: Vec::new(),
            note: None,
        }
    }
}

/// The filed values of both operands when both were confirmed and share a unit, else why not.
fn confirmed<'a>(operands: &'a [Answer; 2], what: &str) -> Result<[(f64, &'a str, &'a str); 2], String> {
    let mut out = Vec::with_capacity(2);
    for operand in operands {
        let Some(value) = operand.value.as_deref() else {
            return Err(format!(
                "cannot compute {what}: {} for fiscal {} has no value confirmed by the filings ({})",
                operand.metric.replace('_', " "),
                operand.fiscal_year,
                operand.answer
            ));
        };
        let number: f64 = value
            .parse()
            .map_err(|_| format!("cannot compute {what}: the filed value {value:?} is not a number"))?;
        out.push((number, value, operand.unit.as_deref().unwrap_or("")));
    }
    let [a, b]: [(f64, &str, &str); 2] = out.try_into().map_err(|_| format!("cannot compute {what}"))?;
    if a.2 != b.2 {
        return Err(format!(
            "cannot compute {what}: the values are in different units ({} and {})",
            a.2, b.2
        ));
    }
    Ok([a, b])
}

/// A derived metric from its two operand answers (in [`DerivedMetric::operands`] order).
pub fn derived(
    question: &Question,
    company: &Company,
    metric: DerivedMetric,
    operands: [Answer; 2],
) -> Computed {
    let entity = operands[0].entity.clone().or_else(|| company.name.clone());
    let who = entity.clone().unwrap_or_else(|| company.ticker.clone());
    let fiscal_year = operands[1].fiscal_year;
    let what = format!("{}'s {} for fiscal {fiscal_year}", who, metric.label().to_lowercase());
    let formula = metric.formula();
    let mut computed =
        Computed::unanswered("ratio", question, company, metric.name(), &formula, fiscal_year, entity);
    match confirmed(&operands, &what) {
        Err(reason) => computed.answer = format!("{reason}; no answer is given."),
        Ok([(a, a_text, unit), (b, b_text, _)]) => {
            let substituted = metric.combine().render(a_text, b_text);
            match metric.compute(a, b) {
                None => computed.answer = format!("cannot compute {what}: {substituted} divides by zero."),
                Some(result) => {
                    let (value, result_unit) = match metric.combine() {
                        Combine::Ratio { percent: true } | Combine::ShareLeft => {
                            (format!("{result:.2}"), "%".to_string())
                        }
                        Combine::Ratio { percent: false } => (format!("{result:.4}"), "ratio".to_string()),
                        Combine::Difference => (exact_difference(a_text, b_text, result), unit.to_string()),
                    };
                    let shown = match result_unit.as_str() {
                        "%" => format!("{value}%"),
                        "ratio" => value.clone(),
                        unit => format!("{} {unit}", group_thousands(&value)),
                    };
                    computed.answer = format!(
                        "{} {} for fiscal {fiscal_year} was {shown} = {formula} = {} ({}).",
                        who,
                        metric.label().to_lowercase(),
                        metric.combine().render(&group_thousands(a_text), &group_thousands(b_text)),
                        provenance(&operands)
                    );
                    // A ratio over a negative base (a pretax loss, negative equity) reads backwards.
                    if matches!(metric.combine(), Combine::Ratio { .. }) && b < 0.0 {
                        let base = metric.operands()[1].label().to_lowercase();
                        computed.answer.push_str(&format!(
                            " Its {base} is negative, so the ratio's sign does not read as usual."
                        ));
                    }
                    computed.substituted = Some(substituted);
                    computed.value = Some(value);
                    computed.unit = Some(result_unit);
                    computed.agrees_with_facts = true;
                }
            }
        }
    }
    computed.operands = operands.into();
    computed
}

impl Computed {
    /// Says first why the value was computed rather than read: `note` leads the answer.
    pub fn with_note(mut self, note: String) -> Self {
        self.answer = format!("{note} {}", self.answer);
        self.note = Some(note);
        self
    }
}

/// How `metric` changed from the first operand's year to the second's.
pub fn change(question: &Question, company: &Company, metric: Metric, operands: [Answer; 2]) -> Computed {
    let entity = operands[1].entity.clone().or_else(|| company.name.clone());
    let who = entity.clone().unwrap_or_else(|| company.ticker.clone());
    let (from_year, to_year) = (operands[0].fiscal_year, operands[1].fiscal_year);
    let label = metric.label();
    let what = format!("how {who}'s {} changed from fiscal {from_year} to {to_year}", label.to_lowercase());
    let formula = format!("{label} FY{to_year} - {label} FY{from_year}");
    let mut computed =
        Computed::unanswered("change", question, company, metric.name(), &formula, to_year, entity);
    match confirmed(&operands, &what) {
        Err(reason) => computed.answer = format!("{reason}; no answer is given."),
        Ok([(from, from_text, unit), (to, to_text, _)]) => {
            let difference = exact_difference(to_text, from_text, to - from);
            let percent = (from != 0.0).then(|| format!("{:.2}", 100.0 * (to - from) / from.abs()));
            let direction = if to > from {
                "grew"
            } else if to < from {
                "fell"
            } else {
                "was unchanged"
            };
            let magnitude = difference.trim_start_matches('-');
            let percent_text = percent
                .as_deref()
                .map(|p| format!(" ({}{p}%)", if to >= from { "+" } else { "" }))
                .unwrap_or_default();
            computed.answer = format!(
                "{who} {} {direction} by {} {unit}{percent_text} from {} {unit} in fiscal {from_year} to {} {unit} in fiscal {to_year}; {formula} = {} - {} ({}).",
                label.to_lowercase(),
                group_thousands(magnitude),
                group_thousands(from_text),
                group_thousands(to_text),
                group_thousands(to_text),
                group_thousands(from_text),
                provenance(&operands)
            );
            computed.substituted = Some(format!("{to_text} - {from_text}"));
            computed.value = Some(difference);
            computed.unit = Some(unit.to_string());
            computed.percent_change = percent;
            computed.agrees_with_facts = true;
        }
    }
    computed.operands = operands.into();
    computed
}

/// `a - b` written with as many decimals as the more precise operand, so integers stay exact.
fn exact_difference(a: &str, b: &str, difference: f64) -> String {
    let decimals = |text: &str| text.split_once('.').map_or(0, |(_, fraction)| fraction.len());
    let places = decimals(a).max(decimals(b));
    let text = format!("{difference:.places$}");
    if text.starts_with('-') && text.trim_start_matches(['-', '0', '.']).is_empty() {
        text[1..].to_string()
    } else {
        text
    }
}

/// `us-gaap:GrossProfit at aapl-20220924_htm.xml, us-gaap:Revenues ...`: where each operand came from.
fn provenance(operands: &[Answer; 2]) -> String {
    operands
        .iter()
        .map(|operand| match &operand.source {
            Some(fact) => {
                let file = fact.source.rsplit('/').next().unwrap_or(&fact.source);
                format!("{} FY{} from {file}, context {}", fact.concept, operand.fiscal_year, fact.context_id)
            }
            None => format!("{} FY{}", operand.metric, operand.fiscal_year),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_keep_the_operands_precision() {
        assert_eq!(exact_difference("394328000000", "365817000000", 28511000000.0), "28511000000");
        assert_eq!(exact_difference("6.11", "5.61", 6.11 - 5.61), "0.50");
        assert_eq!(exact_difference("5.61", "5.61", 0.0), "0.00");
        assert_eq!(exact_difference("1", "3", -2.0), "-2");
    }
}
