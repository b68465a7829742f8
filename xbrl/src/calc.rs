//! Checks a document's numbers against its calculation linkbase: for every roll-up,
//! `sum(weight * child)` must equal the parent after rounding to the facts' precision.
//!
//! Rounding follows XBRL 2.1 as refined by Calculations 1.1 ("round to nearest"): all values of a
//! roll-up are rounded, half to even, to the lowest `decimals` among the parent and the children
//! used (`INF` or absent `decimals` means exact), then compared. Arithmetic is exact decimal.
//! Duplicate facts (same concept, context and unit) that agree at the lower precision count once, at
//! the higher precision; duplicates that disagree are reported as [`DuplicateConflict`]s and the
//! roll-ups that need them are not checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use crate::linkbase::CalculationLinkbase;
use crate::model::{Context, Document, Fact, Unit};

/// A roll-up whose children do not add up to the parent.
#[derive(Debug, Clone, PartialEq)]
pub struct CalcInconsistency {
    pub role: String,
    /// Prefixed concept name of the summation item.
    pub parent: String,
    pub context_id: String,
    pub unit_id: Option<String>,
    /// `sum(weight * child)` after rounding, as a canonical decimal.
    pub expected: String,
    /// The parent's value after rounding.
    pub reported: String,
    /// The children that had a fact in the context, with their unrounded values.
    pub children: Vec<CalcContribution>,
    /// The rounding unit the comparison used (`1000000` for `decimals="-6"`, `0` when exact).
    pub tolerance: String,
}

impl fmt::Display for CalcInconsistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in context {}: children sum to {} but {} is reported (rounding unit {}, role {})",
            self.parent, self.context_id, self.expected, self.reported, self.tolerance, self.role
        )
    }
}

/// One child's part in a roll-up.
#[derive(Debug, Clone, PartialEq)]
pub struct CalcContribution {
    pub concept: String,
    pub weight: f64,
    pub value: String,
}

/// Duplicate facts of one concept, context and unit whose values disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateConflict {
    pub concept: String,
    pub context_id: String,
    pub unit_id: Option<String>,
    /// The distinct values, in document order.
    pub values: Vec<String>,
}

/// Everything one calculation check found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CalcReport {
    pub inconsistencies: Vec<CalcInconsistency>,
    pub duplicate_conflicts: Vec<DuplicateConflict>,
    /// Roll-ups (role, parent, context, unit) that had a parent and at least one child and were compared.
    pub n_checked: usize,
}

/// The roll-ups of `calc` that do not add up in `doc`.
pub fn check_calculations(doc: &Document, calc: &CalculationLinkbase) -> Vec<CalcInconsistency> {
    check_calculations_report(doc, calc).inconsistencies
}

/// Like [`check_calculations`], also returning conflicting duplicates and the number of checks.
pub fn check_calculations_report(doc: &Document, calc: &CalculationLinkbase) -> CalcReport {
    let facts = FactTable::build(doc);
    let mut report = CalcReport::default();
    let mut conflicts_seen: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
    let mut note_conflict = |report: &mut CalcReport, key: &FactKey, values: &[String]| {
        if conflicts_seen.insert(key.clone()) {
            report.duplicate_conflicts.push(DuplicateConflict {
                concept: key.0.clone(),
                context_id: key.1.clone(),
                unit_id: key.2.clone(),
                values: values.to_vec(),
            });
        }
    };

    // (role, parent) -> children edges, in linkbase order.
    let mut rollups: BTreeMap<(&str, &str), Vec<(&str, f64)>> = BTreeMap::new();
    for edge in &calc.edges {
        rollups.entry((&edge.role, &edge.parent)).or_default().push((&edge.child, edge.weight));
    }
    for ((role, parent), children) in &rollups {
        for ((context_id, unit_id), parent_value) in facts.slots_of(parent) {
            let key = |concept: &str| (concept.to_string(), context_id.clone(), unit_id.clone());
            let present: Vec<(&str, f64, &Resolved)> = children
                .iter()
                .filter_map(|(child, weight)| facts.get(&key(child)).map(|value| (*child, *weight, value)))
                .collect();
            if present.is_empty() {
                continue;
            }
            let mut blocked = false;
            for (concept, value) in
                std::iter::once((*parent, parent_value)).chain(present.iter().map(|p| (p.0, p.2)))
            {
                if let Resolved::Conflict(values) = value {
                    note_conflict(&mut report, &key(concept), values);
                    blocked = true;
                }
            }
            let Resolved::Value(parent_fact) = parent_value else { continue };
            if blocked {
                continue;
            }
            let child_facts: Vec<(&str, f64, &NumericFact)> = present
                .iter()
                .filter_map(|(concept, weight, value)| match value {
                    Resolved::Value(fact) => Some((*concept, *weight, fact)),
                    Resolved::Conflict(_) => None,
                })
                .collect();
            report.n_checked += 1;
            if let Some(inconsistency) = compare(role, parent, context_id, unit_id, parent_fact, &child_facts)
            {
                report.inconsistencies.push(inconsistency);
            }
        }
    }
    report
}

fn compare(
    role: &str,
    parent: &str,
    context_id: &str,
    unit_id: &Option<String>,
    parent_fact: &NumericFact,
    children: &[(&str, f64, &NumericFact)],
) -> Option<CalcInconsistency> {
    let decimals =
        std::iter::once(parent_fact.decimals).chain(children.iter().map(|c| c.2.decimals)).flatten().min();
    let mut sum = Decimal::ZERO;
    for (_, weight, fact) in children {
        let weight = Decimal::parse(&weight.to_string())?;
        sum = sum.add(&fact.value.round(decimals)?.mul(&weight)?)?;
    }
    let expected = sum.round(decimals)?;
    let reported = parent_fact.value.round(decimals)?;
    if expected.cmp_value(&reported)? == std::cmp::Ordering::Equal {
        return None;
    }
    Some(CalcInconsistency {
        role: role.to_string(),
        parent: parent.to_string(),
        context_id: context_id.to_string(),
        unit_id: unit_id.clone(),
        expected: expected.to_string(),
        reported: reported.to_string(),
        children: children
            .iter()
            .map(|(concept, weight, fact)| CalcContribution {
                concept: concept.to_string(),
                weight: *weight,
                value: fact.value.to_string(),
            })
            .collect(),
        tolerance: match decimals {
            Some(d) => Decimal::power_of_ten(-d).map(|p| p.to_string()).unwrap_or_default(),
            None => "0".to_string(),
        },
    })
}

/// (concept, canonical context id, canonical unit id).
type FactKey = (String, String, Option<String>);

#[derive(Debug, Clone)]
struct NumericFact {
    value: Decimal,
    /// `None` = INF.
    decimals: Option<i32>,
}

#[derive(Debug, Clone)]
enum Resolved {
    Value(NumericFact),
    Conflict(Vec<String>),
}

/// Numeric facts by concept, context and unit, with duplicates resolved.
struct FactTable {
    facts: HashMap<FactKey, Resolved>,
    by_concept: HashMap<String, Vec<(String, Option<String>)>>,
}

impl FactTable {
    fn build(doc: &Document) -> Self {
        let context_ids = canonical_ids(doc.contexts.values().map(|c| (c.id.clone(), context_identity(c))));
        let unit_ids = canonical_ids(doc.units.values().map(|u| (u.id.clone(), unit_identity(u))));
        let mut grouped: BTreeMap<FactKey, Vec<(&Fact, NumericFact)>> = BTreeMap::new();
        for fact in doc.facts.iter().filter(|f| f.is_numeric() && !f.nil) {
            let Some(value) = fact.value.as_deref().and_then(Decimal::parse) else { continue };
            let decimals = fact.decimals.as_deref().and_then(|d| d.trim().parse::<i32>().ok());
            let context =
                context_ids.get(&fact.context_ref).cloned().unwrap_or_else(|| fact.context_ref.clone());
            let unit = fact.unit_ref.as_ref().map(|u| unit_ids.get(u).cloned().unwrap_or_else(|| u.clone()));
            grouped
                .entry((fact.concept.prefixed(), context, unit))
                .or_default()
                .push((fact, NumericFact { value, decimals }));
        }
        let mut facts = HashMap::new();
        let mut by_concept: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for (key, group) in grouped {
            by_concept.entry(key.0.clone()).or_default().push((key.1.clone(), key.2.clone()));
            facts.insert(key, resolve_duplicates(group));
        }
        Self { facts, by_concept }
    }

    fn get(&self, key: &FactKey) -> Option<&Resolved> {
        self.facts.get(key)
    }

    /// Every (context, unit) where `concept` has a fact, in a stable order.
    fn slots_of<'a>(&'a self, concept: &str) -> Vec<((&'a String, &'a Option<String>), &'a Resolved)> {
        let Some(slots) = self.by_concept.get(concept) else { return Vec::new() };
        slots
            .iter()
            .filter_map(|(context, unit)| {
                let key = (concept.to_string(), context.clone(), unit.clone());
                self.facts.get_key_value(&key).map(|(k, v)| ((&k.1, &k.2), v))
            })
            .collect()
    }
}

/// Duplicates agree when equal at the lowest precision among them; the most precise one is kept.
fn resolve_duplicates(group: Vec<(&Fact, NumericFact)>) -> Resolved {
    let decimals = group.iter().filter_map(|(_, f)| f.decimals).min();
    let rounded: Vec<Option<Decimal>> = group.iter().map(|(_, f)| f.value.round(decimals)).collect();
    let agree = rounded.windows(2).all(|pair| match (&pair[0], &pair[1]) {
        (Some(a), Some(b)) => a.cmp_value(b) == Some(std::cmp::Ordering::Equal),
        _ => false,
    });
    if agree {
        let best = group.iter().max_by_key(|(_, f)| f.decimals.unwrap_or(i32::MAX)).map(|(_, f)| f.clone());
        if let Some(best) = best {
            return Resolved::Value(best);
        }
    }
    let mut values: Vec<String> = Vec::new();
    for (fact, _) in &group {
        let value = fact.value.clone().unwrap_or_default();
        if !values.contains(&value) {
            values.push(value);
        }
    }
    Resolved::Conflict(values)
}

fn context_identity(context: &Context) -> String {
    let dims: Vec<String> = context.dimensions.iter().map(ToString::to_string).collect();
    format!("{}|{}|{}|{}", context.entity.scheme, context.entity.identifier, context.period, dims.join(","))
}

fn unit_identity(unit: &Unit) -> String {
    let mut numerator = unit.numerator.clone();
    let mut denominator = unit.denominator.clone();
    numerator.sort();
    denominator.sort();
    format!("{}/{}", numerator.join("*"), denominator.join("*"))
}

/// Maps every id to the smallest id with the same identity, so s-equal contexts and units match.
fn canonical_ids(items: impl Iterator<Item = (String, String)>) -> HashMap<String, String> {
    let mut first_by_identity: BTreeMap<String, String> = BTreeMap::new();
    let items: Vec<(String, String)> = items.collect();
    for (id, identity) in &items {
        let entry = first_by_identity.entry(identity.clone()).or_insert_with(|| id.clone());
        if id < entry {
            *entry = id.clone();
        }
    }
    items
        .into_iter()
        .filter_map(|(id, identity)| first_by_identity.get(&identity).map(|c| (id, c.clone())))
        .collect()
}

/// An exact decimal `units / 10^scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Decimal {
    units: i128,
    scale: u32,
}

/// Beyond this many digits an i128 could overflow; such values are not checked.
const MAX_SCALE: u32 = 30;

impl Decimal {
    const ZERO: Decimal = Decimal { units: 0, scale: 0 };

    /// Parses a plain decimal (`-2722000000`, `6.11`, `+1.0`); no exponents.
    fn parse(text: &str) -> Option<Decimal> {
        let text = text.trim();
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        let (int_part, frac_part) = unsigned.split_once('.').unwrap_or((unsigned, ""));
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        if !int_part.bytes().chain(frac_part.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let frac_part = frac_part.trim_end_matches('0');
        let scale = u32::try_from(frac_part.len()).ok().filter(|s| *s <= MAX_SCALE)?;
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        let magnitude: i128 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        Some(Decimal { units: if negative { -magnitude } else { magnitude }, scale })
    }

    /// `10^exponent` for exponents in [-MAX_SCALE, 38].
    fn power_of_ten(exponent: i32) -> Option<Decimal> {
        if exponent >= 0 {
            Some(Decimal { units: 10i128.checked_pow(exponent as u32)?, scale: 0 })
        } else {
            let scale = exponent.unsigned_abs();
            (scale <= MAX_SCALE).then_some(Decimal { units: 1, scale })
        }
    }

    fn rescaled(&self, scale: u32) -> Option<Decimal> {
        let factor = 10i128.checked_pow(scale.checked_sub(self.scale)?)?;
        Some(Decimal { units: self.units.checked_mul(factor)?, scale })
    }

    fn add(&self, other: &Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Decimal { units: a.units.checked_add(b.units)?, scale })
    }

    fn mul(&self, other: &Decimal) -> Option<Decimal> {
        let scale = self.scale + other.scale;
        (scale <= MAX_SCALE).then_some(())?;
        Some(Decimal { units: self.units.checked_mul(other.units)?, scale })
    }

    fn cmp_value(&self, other: &Decimal) -> Option<std::cmp::Ordering> {
        let scale = self.scale.max(other.scale);
        Some(self.rescaled(scale)?.units.cmp(&other.rescaled(scale)?.units))
    }

    /// Rounds half to even to `decimals` fractional digits (negative: tens, thousands...); `None`
    /// decimals (INF) leaves the value as it is.
    fn round(&self, decimals: Option<i32>) -> Option<Decimal> {
        let Some(decimals) = decimals else { return Some(*self) };
        if decimals >= 0 && decimals as u32 >= self.scale {
            return Some(*self);
        }
        let drop_digits = i64::from(self.scale) - i64::from(decimals);
        let factor = 10i128.checked_pow(u32::try_from(drop_digits).ok()?)?;
        let quotient = self.units.div_euclid(factor);
        let remainder = self.units.rem_euclid(factor);
        let twice = remainder.checked_mul(2)?;
        let rounded = match twice.cmp(&factor) {
            std::cmp::Ordering::Greater => quotient + 1,
            std::cmp::Ordering::Equal if quotient % 2 != 0 => quotient + 1,
            _ => quotient,
        };
        if decimals >= 0 {
            Some(Decimal { units: rounded, scale: decimals as u32 })
        } else {
            let back = 10i128.checked_pow(decimals.unsigned_abs())?;
            Some(Decimal { units: rounded.checked_mul(back)?, scale: 0 })
        }
    }
}

impl fmt::Display for Decimal {
    /// Canonical form: no trailing fractional zeros, no `-0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.units < 0 { "-" } else { "" };
        let digits = self.units.unsigned_abs().to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (int_digits, frac_digits) = padded.split_at(padded.len() - scale);
        let frac_digits = frac_digits.trim_end_matches('0');
        if frac_digits.is_empty() {
            write!(f, "{sign}{int_digits}")
        } else {
            write!(f, "{sign}{int_digits}.{frac_digits}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::parse(text).unwrap()
    }

    #[test]
    fn decimal_round_trip_and_arithmetic() {
        for text in ["0", "6.11", "-2722000000", "0.00001", "394328000000", "-0.5"] {
            assert_eq!(dec(text).to_string(), text);
        }
        assert_eq!(dec("1.10").to_string(), "1.1");
        assert_eq!(dec("6.11").add(&dec("-0.11")).unwrap().to_string(), "6");
        assert_eq!(dec("2.5").mul(&dec("-1")).unwrap().to_string(), "-2.5");
        assert!(Decimal::parse("1e5").is_none());
        assert!(Decimal::parse("").is_none());
    }

    #[test]
    fn rounds_half_to_even() {
        assert_eq!(dec("2500000").round(Some(-6)).unwrap().to_string(), "2000000");
        assert_eq!(dec("3500000").round(Some(-6)).unwrap().to_string(), "4000000");
        assert_eq!(dec("-1500001").round(Some(-6)).unwrap().to_string(), "-2000000");
        assert_eq!(dec("6.115").round(Some(2)).unwrap().to_string(), "6.12");
        assert_eq!(dec("6.125").round(Some(2)).unwrap().to_string(), "6.12");
        assert_eq!(dec("6.1").round(Some(2)).unwrap().to_string(), "6.1");
        assert_eq!(dec("6.1").round(None).unwrap().to_string(), "6.1");
    }
}
