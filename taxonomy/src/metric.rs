//! Financial metrics analysts ask about, the concepts companies file them under, and the phrases
//! that name them in a question.

use serde::{Deserialize, Serialize};

use crate::concept::PeriodType;
use crate::metric_table::Spec;

/// What a metric's value is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnitKind {
    /// A currency amount (`USD`).
    Monetary,
    /// Currency per share (`USD/shares`).
    PerShare,
    /// A number of shares.
    Shares,
}

/// A metric filed as a concept (derived ones such as free cash flow or margins are not here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Metric {
    Revenue,
    CostOfRevenue,
    GrossProfit,
    ResearchAndDevelopment,
    SellingGeneralAndAdministrative,
    OperatingExpenses,
    OperatingIncome,
    InterestExpense,
    PretaxIncome,
    IncomeTaxExpense,
    NetIncome,
    EpsBasic,
    EpsDiluted,
    WeightedAverageSharesBasic,
    WeightedAverageSharesDiluted,
    SharesOutstanding,
    DividendsPerShare,
    TotalAssets,
    CurrentAssets,
    Cash,
    AccountsReceivable,
    Inventory,
    TotalLiabilities,
    CurrentLiabilities,
    LongTermDebt,
    StockholdersEquity,
    RetainedEarnings,
    OperatingCashFlow,
    InvestingCashFlow,
    FinancingCashFlow,
    CapitalExpenditure,
    DepreciationAndAmortization,
    ShareBasedCompensation,
    Dividends,
    ShareRepurchase,
}

const ALL: [Metric; 35] = [
    Metric::Revenue,
    Metric::CostOfRevenue,
    Metric::GrossProfit,
    Metric::ResearchAndDevelopment,
    Metric::SellingGeneralAndAdministrative,
    Metric::OperatingExpenses,
    Metric::OperatingIncome,
    Metric::InterestExpense,
    Metric::PretaxIncome,
    Metric::IncomeTaxExpense,
    Metric::NetIncome,
    Metric::EpsBasic,
    Metric::EpsDiluted,
    Metric::WeightedAverageSharesBasic,
    Metric::WeightedAverageSharesDiluted,
    Metric::SharesOutstanding,
    Metric::DividendsPerShare,
    Metric::TotalAssets,
    Metric::CurrentAssets,
    Metric::Cash,
    Metric::AccountsReceivable,
    Metric::Inventory,
    Metric::TotalLiabilities,
    Metric::CurrentLiabilities,
    Metric::LongTermDebt,
    Metric::StockholdersEquity,
    Metric::RetainedEarnings,
    Metric::OperatingCashFlow,
    Metric::InvestingCashFlow,
    Metric::FinancingCashFlow,
    Metric::CapitalExpenditure,
    Metric::DepreciationAndAmortization,
    Metric::ShareBasedCompensation,
    Metric::Dividends,
    Metric::ShareRepurchase,
];

impl Metric {
    /// Every metric, income statement first, then balance sheet, then cash flow.
    pub fn all() -> &'static [Metric] {
        &ALL
    }

    /// A stable snake_case name (`net_income`), for command lines and files.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// A human label (`Net income`).
    pub fn label(self) -> &'static str {
        self.spec().label
    }

    /// The metric with this [`Metric::name`].
    pub fn from_name(name: &str) -> Option<Metric> {
        ALL.iter().copied().find(|metric| metric.name() == name)
    }

    /// Prefixed concepts companies file the metric under, most specific or common first
    /// (`us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax` before `us-gaap:Revenues`).
    pub fn concepts(self) -> &'static [&'static str] {
        self.spec().concepts
    }

    /// Phrases that name the metric in a question, lowercase.
    pub fn phrases(self) -> &'static [&'static str] {
        self.spec().phrases
    }

    pub fn period_type(self) -> PeriodType {
        self.spec().period_type
    }

    pub fn unit_kind(self) -> UnitKind {
        self.spec().unit_kind
    }

    /// The metric a question asks about: the longest phrase of any metric found on whole words,
    /// case-insensitive (`diluted EPS` beats `EPS`, `net income` beats `income`; `revenue growth`
    /// still finds revenue). `None` when no phrase occurs or the most specific one names a derived
    /// metric (`free cash flow`, see [`crate::derived::Asked`]).
    pub fn from_question(text: &str) -> Option<Metric> {
        match crate::derived::Asked::from_question(text)? {
            crate::derived::Asked::Filed(metric) => Some(metric),
            _ => None,
        }
    }

    fn spec(self) -> &'static Spec {
        crate::metric_table::spec(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_find_the_most_specific_metric() {
        let cases: &[(&str, Option<Metric>)] = &[
            ("What was Apple's revenue in FY2022?", Some(Metric::Revenue)),
            ("revenue growth from 2021 to 2022", Some(Metric::Revenue)),
            ("What were AAPL's total net sales?", Some(Metric::Revenue)),
            ("What is the diluted EPS for 2023?", Some(Metric::EpsDiluted)),
            ("basic EPS", Some(Metric::EpsBasic)),
            ("EPS", Some(Metric::EpsDiluted)),
            ("Net income of Amazon", Some(Metric::NetIncome)),
            ("operating income in 2022", Some(Metric::OperatingIncome)),
            ("How much did Apple spend on R&D?", Some(Metric::ResearchAndDevelopment)),
            ("research and development expense", Some(Metric::ResearchAndDevelopment)),
            ("cash from operations", Some(Metric::OperatingCashFlow)),
            ("Net cash provided by operating activities", Some(Metric::OperatingCashFlow)),
            ("cash and cash equivalents at year end", Some(Metric::Cash)),
            ("cost of sales", Some(Metric::CostOfRevenue)),
            ("shares outstanding", Some(Metric::SharesOutstanding)),
            ("diluted shares outstanding", Some(Metric::WeightedAverageSharesDiluted)),
            ("dividends per share", Some(Metric::DividendsPerShare)),
            ("total shareholders' equity", Some(Metric::StockholdersEquity)),
            ("retained earnings", Some(Metric::RetainedEarnings)),
            ("income tax expense", Some(Metric::IncomeTaxExpense)),
            ("income before income taxes", Some(Metric::PretaxIncome)),
            ("long-term debt", Some(Metric::LongTermDebt)),
            ("stock-based compensation", Some(Metric::ShareBasedCompensation)),
            ("How much did Boeing lose in 2023?", Some(Metric::NetIncome)),
            ("How much stock did Apple buy back in 2023?", Some(Metric::ShareRepurchase)),
            (
                "How many shares did Apple have outstanding at the end of 2022?",
                Some(Metric::SharesOutstanding),
            ),
            ("How many diluted shares did Apple have in 2022?", Some(Metric::WeightedAverageSharesDiluted)),
            ("How much money did Boeing lose in fiscal 2023?", Some(Metric::NetIncome)),
            ("free cash flow", None),
            ("What is the weather today?", None),
            ("", None),
        ];
        for (question, expected) in cases {
            assert_eq!(Metric::from_question(question), *expected, "{question}");
        }
    }

    #[test]
    fn names_round_trip_and_are_unique() {
        for metric in Metric::all() {
            assert_eq!(Metric::from_name(metric.name()), Some(*metric));
            assert!(!metric.concepts().is_empty() && !metric.phrases().is_empty(), "{metric:?}");
        }
        let mut names: Vec<&str> = Metric::all().iter().map(|metric| metric.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Metric::all().len());
    }

    #[test]
    fn every_phrase_finds_its_own_metric() {
        for metric in Metric::all() {
            for phrase in metric.phrases() {
                assert_eq!(Metric::from_question(phrase), Some(*metric), "phrase {phrase:?}");
            }
        }
    }

    #[test]
    fn period_and_unit_kinds() {
        assert_eq!(Metric::TotalAssets.period_type(), PeriodType::Instant);
        assert_eq!(Metric::Revenue.period_type(), PeriodType::Duration);
        assert_eq!(Metric::EpsDiluted.unit_kind(), UnitKind::PerShare);
        assert_eq!(Metric::SharesOutstanding.unit_kind(), UnitKind::Shares);
    }
}
