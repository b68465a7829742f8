//! The financial formulas of XBRL-Agent's list that a filing's own facts can fill in, and how
//! FinLoRA writes a formula with values (`(50000000 / 3590000000) * 100`, formula calculation) or
//! tags (`us-gaap:AssetsCurrent / us-gaap:LiabilitiesCurrent`, formula construction) substituted.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result, RowProblem};

/// Revenue as us-gaap tags it, most specific first.
const REVENUE: &[&str] = &["us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax", "us-gaap:Revenues"];
const NET_INCOME: &[&str] = &["us-gaap:NetIncomeLoss", "us-gaap:ProfitLoss"];
const EQUITY: &[&str] = &[
    "us-gaap:StockholdersEquity",
    "us-gaap:StockholdersEquityIncludingPortionAttributableToNoncontrollingInterest",
];

/// How each XBRL-Agent formula maps to us-gaap concepts: its name in the list, FinLoRA's
/// target shape with `{0}`, `{1}`... for the operands, and each operand's candidate concepts.
const MAPPINGS: &[(&str, &str, &[&[&str]])] = &[
    ("Debt-to-Equity Ratio", "{0} / {1}", &[&["us-gaap:Liabilities"], EQUITY]),
    ("Current Ratio", "{0} / {1}", &[&["us-gaap:AssetsCurrent"], &["us-gaap:LiabilitiesCurrent"]]),
    (
        "Quick Ratio (Acid-Test Ratio)",
        "({0} - {1}) / {2}",
        &[&["us-gaap:AssetsCurrent"], &["us-gaap:InventoryNet"], &["us-gaap:LiabilitiesCurrent"]],
    ),
    (
        "Free Cash Flow (FCF)",
        "{0} - {1}",
        &[
            &["us-gaap:NetCashProvidedByUsedInOperatingActivities"],
            &[
                "us-gaap:PaymentsToAcquirePropertyPlantAndEquipment",
                "us-gaap:PaymentsToAcquireProductiveAssets",
            ],
        ],
    ),
    ("Gross Profit Margin", "({0} / {1}) * 100", &[&["us-gaap:GrossProfit"], REVENUE]),
    ("Operating Margin", "({0} / {1}) * 100", &[&["us-gaap:OperatingIncomeLoss"], REVENUE]),
    ("Net Profit Margin", "({0} / {1}) * 100", &[NET_INCOME, REVENUE]),
    ("Return on Assets (ROA)", "({0} / {1}) * 100", &[NET_INCOME, &["us-gaap:Assets"]]),
    ("Return on Equity (ROE)", "({0} / {1}) * 100", &[NET_INCOME, EQUITY]),
    (
        "Interest Coverage Ratio",
        "{0} / {1}",
        &[
            &["us-gaap:OperatingIncomeLoss"],
            &["us-gaap:InterestExpense", "us-gaap:InterestExpenseNonoperating"],
        ],
    ),
    ("Working Capital", "{0} - {1}", &[&["us-gaap:AssetsCurrent"], &["us-gaap:LiabilitiesCurrent"]]),
];

/// A formula a filing can answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formula {
    /// The name as questions write it: XBRL-Agent's name with parenthesised spans removed, as
    /// FinLoRA removes them (`Return on Assets`).
    pub name: String,
    /// FinLoRA's target shape, `({0} / {1}) * 100`.
    pub template: &'static str,
    /// Candidate prefixed concepts per operand, in order of preference.
    pub operands: Vec<&'static [&'static str]>,
}

impl Formula {
    /// The template with each operand replaced by its value (or its concept).
    pub fn substitute(&self, values: &[&str]) -> String {
        values
            .iter()
            .enumerate()
            .fold(self.template.to_string(), |text, (idx, value)| text.replace(&format!("{{{idx}}}"), value))
    }
}

#[derive(Deserialize)]
struct FormulaRow {
    formula_name: String,
}

/// The formulas of XBRL-Agent's list (`formulas_with_explanations_with_questions_with_gt.jsonl`)
/// that map to us-gaap concepts, in file order; the others (NPV, CAPM, ...) need no filing.
pub fn read_formulas(path: &Path) -> Result<Vec<Formula>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io(path, source))?;
    let mut formulas = Vec::new();
    for (line_idx, line) in text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()) {
        let row: FormulaRow = serde_json::from_str(line).map_err(|error| Error::Row {
            path: path.to_path_buf(),
            line: line_idx + 1,
            problem: RowProblem::BrokenJson(error.to_string()),
        })?;
        formulas.extend(formula_named(&row.formula_name));
    }
    Ok(formulas)
}

/// The mapped formula of an XBRL-Agent formula name, if it is one finagent can fill from facts.
pub fn formula_named(name: &str) -> Option<Formula> {
    let (_, template, operands) = MAPPINGS.iter().find(|(mapped, _, _)| *mapped == name.trim())?;
    Some(Formula { name: without_parentheses(name), template, operands: operands.to_vec() })
}

/// FinLoRA's `re.sub(r"\(.*?\)", "", q)` followed by a trim.
fn without_parentheses(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('(') {
        let Some(close) = rest[open..].find(')') else { break };
        out.push_str(&rest[..open]);
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    out.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_values_into_finlora_shapes() {
        let margin = formula_named("Operating Margin");
        let target = margin.as_ref().map(|f| f.substitute(&["50000000", "3590000000"]));
        assert_eq!(target.as_deref(), Some("(50000000 / 3590000000) * 100"));
        let quick = formula_named("Quick Ratio (Acid-Test Ratio)");
        assert_eq!(quick.as_ref().map(|f| f.name.as_str()), Some("Quick Ratio"));
        assert_eq!(quick.map(|f| f.substitute(&["5", "2", "3"])).as_deref(), Some("(5 - 2) / 3"));
        assert!(formula_named("Net Present Value (NPV)").is_none());
    }
}
