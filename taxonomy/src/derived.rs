//! Metrics computed from filed ones (margins, ratios, free cash flow): the formula over
//! [`Metric`]s and the phrases that name them in a question.

use serde::{Deserialize, Serialize};

use crate::metric::Metric;

/// How a derived metric combines its two operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Combine {
    /// `a / b`, times 100 when `percent`.
    Ratio { percent: bool },
    /// `a - b`.
    Difference,
    /// `(b - a) / b × 100`: the share of `b` left after `a` (a margin from a cost).
    ShareLeft,
}

/// A metric analysts ask for that no concept holds: computed from two filed metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DerivedMetric {
    GrossMargin,
    OperatingMargin,
    NetMargin,
    CurrentRatio,
    DebtToEquity,
    ReturnOnEquity,
    ReturnOnAssets,
    FreeCashFlow,
    EffectiveTaxRate,
    /// Gross profit as revenue less cost of revenue, for a company that files no gross profit
    /// (Amazon, most service companies); never named by a question, only stood in.
    GrossProfitFromCost,
    /// Gross margin from revenue and cost of revenue, for a company that files no gross profit.
    GrossMarginFromCost,
}

struct Spec {
    name: &'static str,
    label: &'static str,
    operands: [Metric; 2],
    combine: Combine,
    phrases: &'static [&'static str],
}

const ALL: [DerivedMetric; 9] = [
    DerivedMetric::GrossMargin,
    DerivedMetric::OperatingMargin,
    DerivedMetric::NetMargin,
    DerivedMetric::CurrentRatio,
    DerivedMetric::DebtToEquity,
    DerivedMetric::ReturnOnEquity,
    DerivedMetric::ReturnOnAssets,
    DerivedMetric::FreeCashFlow,
    DerivedMetric::EffectiveTaxRate,
];

const PERCENT: Combine = Combine::Ratio { percent: true };
const TIMES: Combine = Combine::Ratio { percent: false };

fn spec(metric: DerivedMetric) -> &'static Spec {
    use DerivedMetric::*;
    use Metric as M;
    match metric {
        GrossMargin => &Spec {
            name: "gross_margin",
            label: "Gross margin",
            operands: [M::GrossProfit, M::Revenue],
            combine: PERCENT,
            phrases: &["gross margin", "gross margin percentage", "gross profit margin"],
        },
        OperatingMargin => &Spec {
            name: "operating_margin",
            label: "Operating margin",
            operands: [M::OperatingIncome, M::Revenue],
            combine: PERCENT,
            phrases: &["operating margin", "operating profit margin", "ebit margin"],
        },
        NetMargin => &Spec {
            name: "net_margin",
            label: "Net margin",
            operands: [M::NetIncome, M::Revenue],
            combine: PERCENT,
            phrases: &["net margin", "profit margin", "net profit margin", "net income margin"],
        },
        CurrentRatio => &Spec {
            name: "current_ratio",
            label: "Current ratio",
            operands: [M::CurrentAssets, M::CurrentLiabilities],
            combine: TIMES,
            phrases: &["current ratio"],
        },
        DebtToEquity => &Spec {
            name: "debt_to_equity",
            label: "Debt-to-equity ratio",
            operands: [M::TotalLiabilities, M::StockholdersEquity],
            combine: TIMES,
            phrases: &["debt to equity", "debt to equity ratio", "leverage ratio"],
        },
        ReturnOnEquity => &Spec {
            name: "return_on_equity",
            label: "Return on equity",
            operands: [M::NetIncome, M::StockholdersEquity],
            combine: PERCENT,
            phrases: &["return on equity", "roe"],
        },
        ReturnOnAssets => &Spec {
            name: "return_on_assets",
            label: "Return on assets",
            operands: [M::NetIncome, M::TotalAssets],
            combine: PERCENT,
            phrases: &["return on assets", "roa"],
        },
        FreeCashFlow => &Spec {
            name: "free_cash_flow",
            label: "Free cash flow",
            operands: [M::OperatingCashFlow, M::CapitalExpenditure],
            combine: Combine::Difference,
            phrases: &["free cash flow", "fcf"],
        },
        EffectiveTaxRate => &Spec {
            name: "effective_tax_rate",
            label: "Effective tax rate",
            operands: [M::IncomeTaxExpense, M::PretaxIncome],
            combine: PERCENT,
            phrases: &["effective tax rate", "tax rate", "effective income tax rate", "income tax rate"],
        },
        GrossProfitFromCost => &Spec {
            name: "gross_profit",
            label: "Gross profit",
            operands: [M::Revenue, M::CostOfRevenue],
            combine: Combine::Difference,
            phrases: &[],
        },
        GrossMarginFromCost => &Spec {
            name: "gross_margin",
            label: "Gross margin",
            operands: [M::CostOfRevenue, M::Revenue],
            combine: Combine::ShareLeft,
            phrases: &[],
        },
    }
}

/// Phrases of derived metrics whose formula finagent does not compute; a question naming one is
/// about no filed metric either.
const UNSUPPORTED_PHRASES: &[&str] = &["ebitda", "price to earnings", "p e ratio"];

impl DerivedMetric {
    pub fn all() -> &'static [DerivedMetric] {
        &ALL
    }

    /// A stable snake_case name (`gross_margin`).
    pub fn name(self) -> &'static str {
        spec(self).name
    }

    /// A human label (`Gross margin`).
    pub fn label(self) -> &'static str {
        spec(self).label
    }

    /// The two filed metrics it is computed from, in formula order.
    pub fn operands(self) -> [Metric; 2] {
        spec(self).operands
    }

    pub fn combine(self) -> Combine {
        spec(self).combine
    }

    /// Phrases that name it in a question, lowercase.
    pub fn phrases(self) -> &'static [&'static str] {
        spec(self).phrases
    }

    /// The formula over metric labels: `Gross profit / Revenue × 100`.
    pub fn formula(self) -> String {
        let [a, b] = self.operands();
        self.combine().render(a.label(), b.label())
    }

    /// `a` and `b` combined; `None` for a ratio over zero.
    pub fn compute(self, a: f64, b: f64) -> Option<f64> {
        self.combine().apply(a, b)
    }

    /// What computes this metric when `missing` is not filed for the year: gross margin from
    /// revenue and cost of revenue when there is no gross profit.
    pub fn instead_without(self, missing: Metric) -> Option<DerivedMetric> {
        match (self, missing) {
            (DerivedMetric::GrossMargin, Metric::GrossProfit) => Some(DerivedMetric::GrossMarginFromCost),
            _ => None,
        }
    }

    /// What computes the filed `metric` for a company that does not file it: gross profit as
    /// revenue less cost of revenue.
    pub fn instead_of(metric: Metric) -> Option<DerivedMetric> {
        match metric {
            Metric::GrossProfit => Some(DerivedMetric::GrossProfitFromCost),
            _ => None,
        }
    }
}

impl Combine {
    /// The formula with `a` and `b` written in: `170782000000 / 394328000000 × 100`.
    pub fn render(self, a: &str, b: &str) -> String {
        match self {
            Combine::Ratio { percent: true } => format!("{a} / {b} × 100"),
            Combine::Ratio { percent: false } => format!("{a} / {b}"),
            Combine::Difference => format!("{a} - {b}"),
            Combine::ShareLeft => format!("({b} - {a}) / {b} × 100"),
        }
    }

    pub fn apply(self, a: f64, b: f64) -> Option<f64> {
        match self {
            Combine::Ratio { percent } => (b != 0.0).then(|| if percent { 100.0 * a / b } else { a / b }),
            Combine::Difference => Some(a - b),
            Combine::ShareLeft => (b != 0.0).then(|| 100.0 * (b - a) / b),
        }
    }
}

/// What a question's most specific metric phrase names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Filed(Metric),
    Derived(DerivedMetric),
    /// A derived metric finagent does not compute (`EBITDA`).
    Unsupported(&'static str),
}

impl Asked {
    /// The longest metric phrase in `text` on whole words, case-insensitive, over filed, derived
    /// and unsupported metrics alike (`gross margin` beats `margin`; `revenue growth` is revenue).
    pub fn from_question(text: &str) -> Option<Asked> {
        let filed = Metric::all()
            .iter()
            .flat_map(|metric| metric.phrases().iter().map(move |phrase| (*phrase, Asked::Filed(*metric))));
        let derived = ALL
            .iter()
            .flat_map(|metric| metric.phrases().iter().map(move |phrase| (*phrase, Asked::Derived(*metric))));
        let unsupported = UNSUPPORTED_PHRASES.iter().map(|phrase| (*phrase, Asked::Unsupported(phrase)));
        crate::phrase::best_match(text, filed.chain(derived).chain(unsupported))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_name_filed_and_derived_metrics() {
        let cases: &[(&str, Option<Asked>)] = &[
            ("What was Apple's gross margin in 2022?", Some(Asked::Derived(DerivedMetric::GrossMargin))),
            ("What was Apple's gross profit in 2022?", Some(Asked::Filed(Metric::GrossProfit))),
            ("NVDA operating margin FY2024", Some(Asked::Derived(DerivedMetric::OperatingMargin))),
            ("current ratio of Boeing", Some(Asked::Derived(DerivedMetric::CurrentRatio))),
            ("free cash flow in 2023", Some(Asked::Derived(DerivedMetric::FreeCashFlow))),
            ("Apple's effective tax rate in 2023", Some(Asked::Derived(DerivedMetric::EffectiveTaxRate))),
            ("What was Apple's income tax expense in 2023?", Some(Asked::Filed(Metric::IncomeTaxExpense))),
            ("Apple's income tax rate 2023", Some(Asked::Derived(DerivedMetric::EffectiveTaxRate))),
            ("How much did NVDA's revenue grow?", Some(Asked::Filed(Metric::Revenue))),
            ("Apple's EBITDA", Some(Asked::Unsupported("ebitda"))),
            ("the weather", None),
        ];
        for (text, expected) in cases {
            assert_eq!(Asked::from_question(text), *expected, "{text}");
        }
    }

    #[test]
    fn formulas_compute() {
        let margin = DerivedMetric::GrossMargin;
        assert_eq!(margin.formula(), "Gross profit / Revenue × 100");
        let value = margin.compute(170_782_000_000.0, 394_328_000_000.0).unwrap();
        assert!((value - 43.309_630_561).abs() < 1e-6, "{value}");
        assert_eq!(DerivedMetric::CurrentRatio.compute(1.0, 0.0), None);
        assert_eq!(DerivedMetric::FreeCashFlow.compute(10.0, 4.0), Some(6.0));
    }

    #[test]
    fn gross_profit_and_margin_stand_in_from_cost_of_revenue() {
        // Amazon FY2022: net sales 513,983 and cost of sales 288,831 (USD millions), no GrossProfit.
        let profit = DerivedMetric::instead_of(Metric::GrossProfit).unwrap();
        assert_eq!(profit.formula(), "Revenue - Cost of revenue");
        assert_eq!(profit.compute(513_983.0, 288_831.0), Some(225_152.0));
        let margin = DerivedMetric::GrossMargin.instead_without(Metric::GrossProfit).unwrap();
        assert_eq!(margin.formula(), "(Revenue - Cost of revenue) / Revenue × 100");
        let value = margin.compute(288_831.0, 513_983.0).unwrap();
        assert!((value - 43.805_340).abs() < 1e-5, "{value}");
        assert_eq!(margin.compute(1.0, 0.0), None);
        assert_eq!(DerivedMetric::instead_of(Metric::Revenue), None);
        assert_eq!(DerivedMetric::NetMargin.instead_without(Metric::GrossProfit), None);
        // Stand-ins are never what a question names, nor listed as metrics of their own.
        assert!(!DerivedMetric::all().contains(&profit) && !DerivedMetric::all().contains(&margin));
    }

    #[test]
    fn derived_and_filed_phrases_never_collide() {
        for derived in DerivedMetric::all() {
            for phrase in derived.phrases() {
                let filed = Metric::all().iter().find(|m| m.phrases().contains(phrase));
                assert!(filed.is_none(), "{phrase:?} names both {} and {filed:?}", derived.name());
            }
        }
    }
}
