//! Financial metrics analysts ask about, the concepts companies file them under, and the phrases
//! that name them in a question.

use serde::{Deserialize, Serialize};

use crate::concept::PeriodType;
use crate::phrase::best_match;

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

/// Everything known about one metric.
struct Spec {
    name: &'static str,
    label: &'static str,
    /// Most specific / most common first.
    concepts: &'static [&'static str],
    phrases: &'static [&'static str],
    period_type: PeriodType,
    unit_kind: UnitKind,
}

use PeriodType::{Duration, Instant};
use UnitKind::{Monetary, PerShare, Shares};

/// Phrases of metrics computed from filed ones. A question whose most specific phrase is one of
/// these is not about a filed metric, even though it contains `cash` or `profit`.
const DERIVED_PHRASES: &[&str] = &[
    "free cash flow",
    "fcf",
    "ebitda",
    "operating margin",
    "profit margin",
    "net margin",
    "net profit margin",
    "gross margin percentage",
    "return on equity",
    "return on assets",
    "debt to equity",
    "current ratio",
    "price to earnings",
    "p e ratio",
];

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
    /// metric (`free cash flow`).
    pub fn from_question(text: &str) -> Option<Metric> {
        let metric_phrases =
            ALL.iter().flat_map(|metric| metric.phrases().iter().map(move |phrase| (*phrase, Some(*metric))));
        let derived_phrases = DERIVED_PHRASES.iter().map(|phrase| (*phrase, None));
        best_match(text, metric_phrases.chain(derived_phrases)).flatten()
    }

    fn spec(self) -> &'static Spec {
        match self {
            Metric::Revenue => &Spec {
                name: "revenue",
                label: "Revenue",
                concepts: &[
                    "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
                    "us-gaap:Revenues",
                    "us-gaap:SalesRevenueNet",
                    "us-gaap:RevenueFromContractWithCustomerIncludingAssessedTax",
                    "us-gaap:SalesRevenueGoodsNet",
                    "us-gaap:SalesRevenueServicesNet",
                    "us-gaap:RevenuesNetOfInterestExpense",
                ],
                phrases: &[
                    "revenue",
                    "revenues",
                    "sales",
                    "net sales",
                    "total net sales",
                    "total revenue",
                    "total revenues",
                    "net revenue",
                    "net revenues",
                    "top line",
                    "turnover",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::CostOfRevenue => &Spec {
                name: "cost_of_revenue",
                label: "Cost of revenue",
                concepts: &[
                    "us-gaap:CostOfGoodsAndServicesSold",
                    "us-gaap:CostOfRevenue",
                    "us-gaap:CostOfGoodsSold",
                    "us-gaap:CostOfServices",
                ],
                phrases: &[
                    "cost of revenue",
                    "cost of revenues",
                    "cost of sales",
                    "total cost of sales",
                    "cost of goods sold",
                    "cost of goods and services sold",
                    "cogs",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::GrossProfit => &Spec {
                name: "gross_profit",
                label: "Gross profit",
                concepts: &["us-gaap:GrossProfit"],
                phrases: &["gross profit", "gross margin", "total gross margin"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::ResearchAndDevelopment => &Spec {
                name: "research_and_development",
                label: "Research and development expense",
                concepts: &[
                    "us-gaap:ResearchAndDevelopmentExpense",
                    "us-gaap:ResearchAndDevelopmentExpenseExcludingAcquiredInProcessCost",
                ],
                phrases: &["r&d", "r d", "research and development", "research & development", "research"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::SellingGeneralAndAdministrative => &Spec {
                name: "selling_general_and_administrative",
                label: "Selling, general and administrative expense",
                concepts: &["us-gaap:SellingGeneralAndAdministrativeExpense"],
                phrases: &["sg&a", "sga", "selling general and administrative", "selling general & administrative"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::OperatingExpenses => &Spec {
                name: "operating_expenses",
                label: "Operating expenses",
                concepts: &[
                    "us-gaap:OperatingExpenses",
                    "us-gaap:CostsAndExpenses",
                    "us-gaap:OperatingCostsAndExpenses",
                ],
                phrases: &[
                    "operating expenses",
                    "operating expense",
                    "total operating expenses",
                    "opex",
                    "operating costs",
                    "costs and expenses",
                    "total costs and expenses",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::OperatingIncome => &Spec {
                name: "operating_income",
                label: "Operating income",
                concepts: &["us-gaap:OperatingIncomeLoss"],
                phrases: &[
                    "operating income",
                    "operating profit",
                    "operating loss",
                    "income from operations",
                    "operating earnings",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::InterestExpense => &Spec {
                name: "interest_expense",
                label: "Interest expense",
                concepts: &["us-gaap:InterestExpense", "us-gaap:InterestExpenseDebt"],
                phrases: &["interest expense", "interest expenses", "interest cost"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::PretaxIncome => &Spec {
                name: "pretax_income",
                label: "Income before income taxes",
                concepts: &[
                    "us-gaap:IncomeLossFromContinuingOperationsBeforeIncomeTaxesExtraordinaryItemsNoncontrollingInterest",
                    "us-gaap:IncomeLossFromContinuingOperationsBeforeIncomeTaxesMinorityInterestAndIncomeLossFromEquityMethodInvestments",
                ],
                phrases: &[
                    "pretax income",
                    "pre tax income",
                    "income before taxes",
                    "income before income taxes",
                    "earnings before taxes",
                    "earnings before income taxes",
                    "ebt",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::IncomeTaxExpense => &Spec {
                name: "income_tax_expense",
                label: "Income tax expense",
                concepts: &["us-gaap:IncomeTaxExpenseBenefit"],
                phrases: &[
                    "income tax",
                    "income taxes",
                    "income tax expense",
                    "provision for income taxes",
                    "tax expense",
                    "taxes",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::NetIncome => &Spec {
                name: "net_income",
                label: "Net income",
                concepts: &[
                    "us-gaap:NetIncomeLoss",
                    "us-gaap:ProfitLoss",
                    "us-gaap:NetIncomeLossAvailableToCommonStockholdersBasic",
                ],
                phrases: &[
                    "net income",
                    "net earnings",
                    "net profit",
                    "net loss",
                    "profit",
                    "earnings",
                    "income",
                    "bottom line",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::EpsBasic => &Spec {
                name: "eps_basic",
                label: "Earnings per share, basic",
                concepts: &["us-gaap:EarningsPerShareBasic", "us-gaap:EarningsPerShareBasicAndDiluted"],
                phrases: &["basic eps", "eps basic", "basic earnings per share", "earnings per share basic"],
                period_type: Duration,
                unit_kind: PerShare,
            },
            Metric::EpsDiluted => &Spec {
                name: "eps_diluted",
                label: "Earnings per share, diluted",
                concepts: &["us-gaap:EarningsPerShareDiluted", "us-gaap:EarningsPerShareBasicAndDiluted"],
                phrases: &[
                    "eps",
                    "earnings per share",
                    "diluted eps",
                    "eps diluted",
                    "diluted earnings per share",
                    "earnings per share diluted",
                ],
                period_type: Duration,
                unit_kind: PerShare,
            },
            Metric::WeightedAverageSharesBasic => &Spec {
                name: "weighted_average_shares_basic",
                label: "Weighted-average shares outstanding, basic",
                concepts: &["us-gaap:WeightedAverageNumberOfSharesOutstandingBasic"],
                phrases: &["basic shares", "weighted average basic shares", "basic weighted average shares"],
                period_type: Duration,
                unit_kind: Shares,
            },
            Metric::WeightedAverageSharesDiluted => &Spec {
                name: "weighted_average_shares_diluted",
                label: "Weighted-average shares outstanding, diluted",
                concepts: &["us-gaap:WeightedAverageNumberOfDilutedSharesOutstanding"],
                phrases: &[
                    "diluted shares",
                    "diluted share count",
                    "diluted shares outstanding",
                    "weighted average diluted shares",
                    "diluted weighted average shares",
                    "weighted average shares",
                ],
                period_type: Duration,
                unit_kind: Shares,
            },
            Metric::SharesOutstanding => &Spec {
                name: "shares_outstanding",
                label: "Shares outstanding",
                concepts: &["dei:EntityCommonStockSharesOutstanding", "us-gaap:CommonStockSharesOutstanding"],
                phrases: &[
                    "shares outstanding",
                    "outstanding shares",
                    "share count",
                    "common shares outstanding",
                    "common stock outstanding",
                ],
                period_type: Instant,
                unit_kind: Shares,
            },
            Metric::DividendsPerShare => &Spec {
                name: "dividends_per_share",
                label: "Dividends per share",
                concepts: &[
                    "us-gaap:CommonStockDividendsPerShareDeclared",
                    "us-gaap:CommonStockDividendsPerShareCashPaid",
                ],
                phrases: &["dividends per share", "dividend per share", "dps", "dividends declared per share"],
                period_type: Duration,
                unit_kind: PerShare,
            },
            Metric::TotalAssets => &Spec {
                name: "total_assets",
                label: "Total assets",
                concepts: &["us-gaap:Assets"],
                phrases: &["total assets", "assets"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::CurrentAssets => &Spec {
                name: "current_assets",
                label: "Current assets",
                concepts: &["us-gaap:AssetsCurrent"],
                phrases: &["current assets", "total current assets"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::Cash => &Spec {
                name: "cash",
                label: "Cash and cash equivalents",
                concepts: &[
                    "us-gaap:CashAndCashEquivalentsAtCarryingValue",
                    "us-gaap:CashCashEquivalentsRestrictedCashAndRestrictedCashEquivalents",
                    "us-gaap:Cash",
                ],
                phrases: &["cash", "cash and cash equivalents", "cash and equivalents", "cash on hand", "cash balance"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::AccountsReceivable => &Spec {
                name: "accounts_receivable",
                label: "Accounts receivable",
                concepts: &["us-gaap:AccountsReceivableNetCurrent"],
                phrases: &["accounts receivable", "receivables", "trade receivables"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::Inventory => &Spec {
                name: "inventory",
                label: "Inventory",
                concepts: &["us-gaap:InventoryNet"],
                phrases: &["inventory", "inventories"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::TotalLiabilities => &Spec {
                name: "total_liabilities",
                label: "Total liabilities",
                concepts: &["us-gaap:Liabilities"],
                phrases: &["total liabilities", "liabilities"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::CurrentLiabilities => &Spec {
                name: "current_liabilities",
                label: "Current liabilities",
                concepts: &["us-gaap:LiabilitiesCurrent"],
                phrases: &["current liabilities", "total current liabilities"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::LongTermDebt => &Spec {
                name: "long_term_debt",
                label: "Long-term debt",
                concepts: &[
                    "us-gaap:LongTermDebtNoncurrent",
                    "us-gaap:LongTermDebt",
                    "us-gaap:LongTermDebtAndCapitalLeaseObligations",
                ],
                phrases: &["long term debt", "term debt", "debt", "non current debt", "noncurrent debt"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::StockholdersEquity => &Spec {
                name: "stockholders_equity",
                label: "Stockholders' equity",
                concepts: &[
                    "us-gaap:StockholdersEquity",
                    "us-gaap:StockholdersEquityIncludingPortionAttributableToNoncontrollingInterest",
                ],
                phrases: &[
                    "stockholders equity",
                    "shareholders equity",
                    "total stockholders equity",
                    "total shareholders equity",
                    "total equity",
                    "equity",
                    "book value",
                    "net worth",
                ],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::RetainedEarnings => &Spec {
                name: "retained_earnings",
                label: "Retained earnings",
                concepts: &["us-gaap:RetainedEarningsAccumulatedDeficit"],
                phrases: &["retained earnings", "accumulated deficit"],
                period_type: Instant,
                unit_kind: Monetary,
            },
            Metric::OperatingCashFlow => &Spec {
                name: "operating_cash_flow",
                label: "Cash from operating activities",
                concepts: &[
                    "us-gaap:NetCashProvidedByUsedInOperatingActivities",
                    "us-gaap:NetCashProvidedByUsedInOperatingActivitiesContinuingOperations",
                ],
                phrases: &[
                    "operating cash flow",
                    "operating cash flows",
                    "cash from operations",
                    "cash from operating activities",
                    "cash flow from operations",
                    "cash flows from operations",
                    "cash flow from operating activities",
                    "cash flows from operating activities",
                    "cash generated by operating activities",
                    "cash provided by operating activities",
                    "net cash provided by operating activities",
                    "operating activities",
                    "cfo",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::InvestingCashFlow => &Spec {
                name: "investing_cash_flow",
                label: "Cash from investing activities",
                concepts: &[
                    "us-gaap:NetCashProvidedByUsedInInvestingActivities",
                    "us-gaap:NetCashProvidedByUsedInInvestingActivitiesContinuingOperations",
                ],
                phrases: &[
                    "investing cash flow",
                    "cash from investing",
                    "cash from investing activities",
                    "cash flow from investing activities",
                    "cash used in investing activities",
                    "investing activities",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::FinancingCashFlow => &Spec {
                name: "financing_cash_flow",
                label: "Cash from financing activities",
                concepts: &[
                    "us-gaap:NetCashProvidedByUsedInFinancingActivities",
                    "us-gaap:NetCashProvidedByUsedInFinancingActivitiesContinuingOperations",
                ],
                phrases: &[
                    "financing cash flow",
                    "cash from financing",
                    "cash from financing activities",
                    "cash flow from financing activities",
                    "cash used in financing activities",
                    "financing activities",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::CapitalExpenditure => &Spec {
                name: "capital_expenditure",
                label: "Capital expenditure",
                concepts: &[
                    "us-gaap:PaymentsToAcquirePropertyPlantAndEquipment",
                    "us-gaap:PaymentsToAcquireProductiveAssets",
                ],
                phrases: &[
                    "capex",
                    "capital expenditure",
                    "capital expenditures",
                    "capital spending",
                    "purchases of property plant and equipment",
                    "payments for acquisition of property plant and equipment",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::DepreciationAndAmortization => &Spec {
                name: "depreciation_and_amortization",
                label: "Depreciation and amortization",
                concepts: &[
                    "us-gaap:DepreciationDepletionAndAmortization",
                    "us-gaap:DepreciationAndAmortization",
                    "us-gaap:DepreciationAmortizationAndAccretionNet",
                ],
                phrases: &["depreciation and amortization", "d&a", "depreciation", "amortization"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::ShareBasedCompensation => &Spec {
                name: "share_based_compensation",
                label: "Share-based compensation",
                concepts: &["us-gaap:ShareBasedCompensation", "us-gaap:AllocatedShareBasedCompensationExpense"],
                phrases: &[
                    "share based compensation",
                    "stock based compensation",
                    "share based compensation expense",
                    "stock based compensation expense",
                    "stock compensation",
                    "sbc",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::Dividends => &Spec {
                name: "dividends",
                label: "Dividends paid",
                concepts: &[
                    "us-gaap:PaymentsOfDividends",
                    "us-gaap:PaymentsOfDividendsCommonStock",
                    "us-gaap:DividendsCommonStock",
                    "us-gaap:DividendsCommonStockCash",
                ],
                phrases: &["dividends", "dividend", "dividends paid", "dividend payments", "payments of dividends"],
                period_type: Duration,
                unit_kind: Monetary,
            },
            Metric::ShareRepurchase => &Spec {
                name: "share_repurchase",
                label: "Repurchases of common stock",
                concepts: &["us-gaap:PaymentsForRepurchaseOfCommonStock"],
                phrases: &[
                    "share repurchases",
                    "share repurchase",
                    "stock repurchases",
                    "buybacks",
                    "buyback",
                    "share buybacks",
                    "stock buybacks",
                    "repurchases of common stock",
                    "repurchase of common stock",
                ],
                period_type: Duration,
                unit_kind: Monetary,
            },
        }
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
