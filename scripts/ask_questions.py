#!/usr/bin/env python3
"""Builds the held-out question set for `finagent ask`, with gold values read straight from filings.

Why: the agent's adapter is tuned on questions generated from AAPL FY2019-2023, BA FY2023 and NVDA
FY2023 filings. To measure it on data it never saw, this script asks about other (company, fiscal
year) pairs and computes every gold value independently of finagent's Rust code: XBRL instances are
read with xml.etree, SEC companyfacts JSON with json. Only the metric table (which concepts a
metric is filed under, in the order the agent prefers them, and the phrases it understands) is
shared, and it is read from taxonomy/src/metric_table.rs so the two cannot drift apart.

Held out:
  * NVDA FY2019-FY2022 from SEC companyfacts (CIK0001045810.json), 10-K facts only;
  * NVDA FY2024 from filings/NVDA/2024/nvda-20240128_htm.xml;
  * AMZN FY2022 from filings/AMZN/2022/amzn-20221231_htm.xml, and its FY2021 and FY2020
    comparative columns.

Usage (from the repository root; standard library only):
  python3 scripts/ask_questions.py [--xbrl-dir ../shared/xbrl] [--out docs/agent/heldout_questions.jsonl]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from decimal import Decimal, InvalidOperation
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
METRIC_TABLE = REPO_ROOT / "taxonomy/src/metric_table.rs"
METRIC_RS = REPO_ROOT / "taxonomy/src/metric.rs"
DERIVED_RS = REPO_ROOT / "taxonomy/src/derived.rs"

XBRLI = "http://www.xbrl.org/2003/instance"
XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
# A fiscal year is 52 or 53 weeks; the brief's window, as in the agent (datasets::retrieval).
YEAR_DAYS = range(350, 381)
ANNUAL_FORMS = ("10-K", "10-K/A")
SEED = "finagent-heldout-v1"

# The metrics an analyst asks first, in the order the set lists them.
METRICS = [
    "revenue",
    "cost_of_revenue",
    "gross_profit",
    "research_and_development",
    "operating_income",
    "net_income",
    "eps_basic",
    "eps_diluted",
    "weighted_average_shares_basic",
    "weighted_average_shares_diluted",
    "total_assets",
    "current_assets",
    "cash",
    "total_liabilities",
    "current_liabilities",
    "stockholders_equity",
    "shares_outstanding",
    "operating_cash_flow",
    "capital_expenditure",
]

# Metrics read only as ratio operands (the effective tax rate's), never asked on their own, so the
# value question set stays the one measured since session 3.
RATIO_ONLY_METRICS = ["income_tax_expense", "pretax_income"]

# How a question names each metric: (text, is_plural). Every text must resolve to its metric by
# the agent's phrase rule (checked below against the phrases read from metric_table.rs).
METRIC_WORDING = {
    "revenue": [("revenue", False), ("total revenue", False), ("net sales", True), ("revenues", True),
                ("net revenue", False)],
    "cost_of_revenue": [("cost of revenue", False), ("cost of sales", False), ("cost of goods sold", False),
                        ("cost of revenues", False)],
    "gross_profit": [("gross profit", False)],
    "research_and_development": [("R&D expense", False), ("research and development expenses", True),
                                 ("research and development spending", False), ("R&D spending", False)],
    "operating_income": [("operating income", False), ("income from operations", False),
                         ("operating profit", False)],
    "net_income": [("net income", False), ("net earnings", True), ("net profit", False)],
    "eps_basic": [("basic EPS", False), ("basic earnings per share", False),
                  ("basic net income per share", False)],
    "eps_diluted": [("diluted EPS", False), ("diluted earnings per share", False),
                    ("earnings per diluted share", False), ("diluted net income per share", False)],
    "weighted_average_shares_basic": [("basic weighted average shares", True),
                                      ("weighted-average basic shares", True),
                                      ("basic weighted-average shares outstanding", True)],
    "weighted_average_shares_diluted": [("diluted weighted average shares", True),
                                        ("weighted-average diluted shares", True),
                                        ("diluted share count", False)],
    "total_assets": [("total assets", True)],
    "current_assets": [("total current assets", True), ("current assets", True)],
    "cash": [("cash and cash equivalents", True), ("cash and equivalents", True), ("cash balance", False)],
    "total_liabilities": [("total liabilities", True)],
    "current_liabilities": [("total current liabilities", True), ("current liabilities", True)],
    "stockholders_equity": [("total stockholders' equity", False), ("shareholders' equity", False),
                            ("stockholders' equity", False)],
    "shares_outstanding": [("shares outstanding", True), ("common shares outstanding", True)],
    "operating_cash_flow": [("operating cash flow", False), ("cash from operations", False),
                            ("net cash provided by operating activities", False),
                            ("cash flow from operating activities", False)],
    "capital_expenditure": [("capital expenditures", True), ("capex", False),
                            ("purchases of property and equipment", True), ("capital spending", False)],
}

# {co} company as named, {cos} its possessive, {p} metric wording, {v} was/were, {yr} the year.
FLOW_TEMPLATES = [
    "What {v} {cos} {p} in {yr}?",
    "What {v} {cos} {p} for {yr}?",
    "What {v} the {p} of {co} in {yr}?",
    "In {yr}, what {v} {cos} {p}?",
    "Can you tell me {cos} {p} for {yr}?",
    "What did {co} report as {p} for {yr}?",
    "{co} {p} {yr}",
]
MONETARY_FLOW_TEMPLATES = ["How much {p} did {co} report in {yr}?"]
METRIC_TEMPLATES = {
    "revenue": ["How much revenue did {co} generate in {yr}?"],
    "research_and_development": ["How much did {co} spend on research and development in {yr}?"],
    "capital_expenditure": ["How much did {co} spend on capital expenditures in {yr}?"],
    "net_income": ["How much net income did {co} earn in {yr}?"],
    "operating_cash_flow": ["How much cash did {co} generate from operating activities in {yr}?"],
}
INSTANT_TEMPLATES = [
    "What {v} {cos} {p} at the end of {yr}?",
    "What {v} {cos} {p} as of the end of {yr}?",
    "What {v} the {p} of {co} at the end of {yr}?",
    "At the end of {yr}, what {v} {cos} {p}?",
    "{co} {p} at the end of {yr}",
]
METRIC_INSTANT_TEMPLATES = {
    "cash": ["How much cash did {co} have at the end of {yr}?"],
    "shares_outstanding": ["How many shares outstanding did {co} have at the end of {yr}?"],
}
YEAR_FORMS = ["{y}", "FY{y}", "fiscal {y}", "fiscal year {y}"]
COMPANY_FORMS = {
    "AMZN": ["AMZN", "Amazon", "Amazon.com"],
    "NVDA": ["NVDA", "NVIDIA", "Nvidia", "Nvidia Corp"],
}
# Name words of each company as the agent's directory would hold them (registrant names).
COMPANY_NAME_WORDS = {"AMZN": ["amazon"], "NVDA": ["nvidia"]}


class GoldError(Exception):
    """A source that cannot be read or a fact that contradicts itself."""


# ---------------------------------------------------------------------------------------------
# The metric table, read from the Rust source.


def read_metric_table(path: Path) -> dict:
    """name -> {concepts, phrases, period_type, unit_kind}, from taxonomy/src/metric_table.rs."""
    text = path.read_text(encoding="utf-8")
    specs = {}
    for block in re.split(r"Metric::\w+\s*=>\s*&Spec\s*\{", text)[1:]:
        name = re.search(r'name:\s*"(\w+)"', block)
        concepts = re.search(r"concepts:\s*&\[(.*?)\]", block, re.S)
        phrases = re.search(r"phrases:\s*&\[(.*?)\]", block, re.S)
        period = re.search(r"period_type:\s*(\w+)", block)
        unit = re.search(r"unit_kind:\s*(\w+)", block)
        if not (name and concepts and phrases and period and unit):
            raise GoldError(f"cannot read a metric spec in {path}: {block[:80]!r}")
        specs[name.group(1)] = {
            "concepts": re.findall(r'"([^"]+)"', concepts.group(1)),
            "phrases": re.findall(r'"([^"]+)"', phrases.group(1)),
            "period_type": period.group(1),
            "unit_kind": unit.group(1),
        }
    if not specs:
        raise GoldError(f"no metric specs found in {path}")
    return specs


def read_other_phrases() -> list[str]:
    """Phrases that name derived or unsupported metrics (metric.rs DERIVED_PHRASES, derived.rs)."""
    phrases = []
    metric_rs = METRIC_RS.read_text(encoding="utf-8")
    found = re.search(r"const DERIVED_PHRASES: &\[&str\] = &\[(.*?)\];", metric_rs, re.S)
    if found:
        phrases += re.findall(r'"([^"]+)"', found.group(1))
    if DERIVED_RS.exists():
        derived_rs = DERIVED_RS.read_text(encoding="utf-8").split("#[cfg(test)]")[0]
        for block in re.findall(r"phrases:\s*&\[(.*?)\]", derived_rs, re.S):
            phrases += re.findall(r'"([^"]+)"', block)
        found = re.search(r"UNSUPPORTED_PHRASES: &\[&str\] = &\[(.*?)\];", derived_rs, re.S)
        if found:
            phrases += re.findall(r'"([^"]+)"', found.group(1))
    return phrases


# ---------------------------------------------------------------------------------------------
# Values and periods.


def canonical_decimal(literal: str) -> str | None:
    """`394328000000.0` -> `394328000000`, `-0.50` -> `-0.5`; None when not a number."""
    try:
        number = Decimal(literal.strip())
    except InvalidOperation:
        return None
    if not number.is_finite():
        return None
    text = format(number.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError as err:
        raise GoldError(f"bad date {text!r}") from err


def unit_fits(unit: str | None, kind: str) -> bool:
    """The agent's unit rule (USD, USD/shares, shares), restated."""
    if unit is None:
        return False
    if kind == "Monetary":
        return "/" not in unit and unit not in ("shares", "pure")
    if kind == "PerShare":
        return unit.endswith("/shares")
    return unit == "shares"


# ---------------------------------------------------------------------------------------------
# XBRL instances.


def read_instance(path: Path) -> dict:
    """Contexts, units and facts of an XBRL instance, with concepts as `prefix:Name`."""
    prefixes = {}
    try:
        for _, (prefix, uri) in ET.iterparse(path, events=("start-ns",)):
            prefixes.setdefault(uri, prefix)
        root = ET.parse(path).getroot()
    except ET.ParseError as err:
        raise GoldError(f"cannot parse {path}: {err}") from err
    contexts = {}
    for context in root.iter(f"{{{XBRLI}}}context"):
        dimensional = context.find(f".//{{{XBRLI}}}segment") is not None or \
            context.find(f".//{{{XBRLI}}}scenario") is not None
        instant = context.findtext(f"{{{XBRLI}}}period/{{{XBRLI}}}instant")
        start = context.findtext(f"{{{XBRLI}}}period/{{{XBRLI}}}startDate")
        end = context.findtext(f"{{{XBRLI}}}period/{{{XBRLI}}}endDate")
        if instant:
            period = {"instant": parse_date(instant)}
        elif start and end:
            period = {"start": parse_date(start), "end": parse_date(end)}
        else:
            period = {}
        contexts[context.get("id")] = {"dimensional": dimensional, "period": period}
    units = {}
    for unit in root.iter(f"{{{XBRLI}}}unit"):
        def measures(node):
            return [m.text.strip().split(":")[-1] for m in node.iter(f"{{{XBRLI}}}measure") if m.text]
        numerator = unit.find(f".//{{{XBRLI}}}unitNumerator")
        denominator = unit.find(f".//{{{XBRLI}}}unitDenominator")
        if numerator is not None and denominator is not None:
            units[unit.get("id")] = "/".join(["*".join(measures(numerator)), "*".join(measures(denominator))])
        else:
            units[unit.get("id")] = "*".join(measures(unit))
    facts = []
    for element in root:
        context_id = element.get("contextRef")
        if context_id is None or not element.tag.startswith("{"):
            continue
        uri, local = element.tag[1:].split("}", 1)
        prefix = prefixes.get(uri)
        if prefix is None:
            continue
        nil = element.get(XSI_NIL) == "true"
        facts.append({
            "concept": f"{prefix}:{local}",
            "context": context_id,
            "unit": units.get(element.get("unitRef")) if element.get("unitRef") else None,
            "value": None if nil else (element.text or "").strip(),
            "decimals": element.get("decimals"),
        })
    return {"contexts": contexts, "facts": facts}


def dei_value(instance: dict, local: str) -> str:
    values = {f["value"] for f in instance["facts"] if f["concept"] == f"dei:{local}" and f["value"]}
    if len(values) != 1:
        raise GoldError(f"expected one dei:{local}, found {sorted(values)}")
    return values.pop()


def instance_fiscal_years(instance: dict, n_years: int) -> dict:
    """Fiscal year -> (start, end): the document's year ending at DocumentPeriodEndDate, then each
    prior year ending the day before the later one starts (the comparative columns)."""
    end = parse_date(dei_value(instance, "DocumentPeriodEndDate"))
    year = int(dei_value(instance, "DocumentFiscalYearFocus"))
    durations = {
        (c["period"]["start"], c["period"]["end"])
        for c in instance["contexts"].values()
        if not c["dimensional"] and "start" in c["period"]
        and (c["period"]["end"] - c["period"]["start"]).days in YEAR_DAYS
    }
    years = {}
    for offset in range(n_years):
        starts = sorted(start for start, stop in durations if stop == end)
        if len(starts) != 1:
            raise GoldError(f"fiscal year {year - offset}: expected one annual duration ending {end}, "
                            f"found starts {starts}")
        years[year - offset] = (starts[0], end)
        end = starts[0] - dt.timedelta(days=1)
    return years


def most_precise_if_consistent(found: dict) -> dict:
    """One value filed at several precisions (4791000000 at decimals -6 and 4800000000 at -8):
    the most precise, when every other rounds from it to its own decimals (the XBRL rule for
    consistent duplicates); otherwise `found` unchanged, a real conflict."""
    def precision(facts):
        decimals = {f.get("decimals") for f in facts}
        if "INF" in decimals:
            return 10 ** 6
        parsed = [int(d) for d in decimals if d not in (None, "")]
        return max(parsed) if parsed else -(10 ** 6)
    best_value = max(found, key=lambda value: precision(found[value]))
    best = Decimal(best_value)
    for value, facts in found.items():
        digits = precision(facts)
        if value != best_value and (abs(digits) > 30 or best.quantize(Decimal(1).scaleb(-digits))
                                    .compare(Decimal(value)) != 0):
            return found
    return {best_value: found[best_value]}


def instance_gold(instance: dict, spec: dict, period: tuple) -> dict | None:
    """The first concept of the metric with a dimensionless value for the period, or None."""
    start, end = period
    for concept in spec["concepts"]:
        found = {}
        for fact in instance["facts"]:
            if fact["concept"] != concept or fact["value"] is None:
                continue
            context = instance["contexts"].get(fact["context"])
            if context is None or context["dimensional"] or not unit_fits(fact["unit"], spec["unit_kind"]):
                continue
            cperiod = context["period"]
            if spec["period_type"] == "Duration":
                if cperiod.get("end") != end or cperiod.get("start") != start:
                    continue
            elif cperiod.get("instant") != end:
                continue
            value = canonical_decimal(fact["value"])
            if value is None:
                raise GoldError(f"{concept} in context {fact['context']} is not a number: {fact['value']!r}")
            found.setdefault(value, []).append(fact)
        if len(found) > 1:
            found = most_precise_if_consistent(found)
        if len(found) > 1:
            raise GoldError(f"{concept} has conflicting values {sorted(found)} for {period}")
        if found:
            value, facts = found.popitem()
            fact = sorted(facts, key=lambda f: f["context"])[0]
            return {"concept": concept, "expected": value, "unit": fact["unit"],
                    "period": period_json(spec, start, end), "context": fact["context"]}
    return None


# ---------------------------------------------------------------------------------------------
# SEC companyfacts.


def companyfacts_fiscal_year(companyfacts: dict, year: int) -> tuple:
    """(start, end) of fiscal `year`: the latest annual duration in that year's own 10-K."""
    own = set()
    ends = set()
    for concept_facts in companyfacts["facts"].get("us-gaap", {}).values():
        for unit_facts in concept_facts.get("units", {}).values():
            for fact in unit_facts:
                if fact.get("form") in ANNUAL_FORMS and fact.get("fy") == year and fact.get("fp") == "FY" \
                        and fact.get("start"):
                    start, end = parse_date(fact["start"]), parse_date(fact["end"])
                    if (end - start).days in YEAR_DAYS:
                        own.add(fact["accn"])
                        ends.add((end, start))
    if not ends:
        raise GoldError(f"no 10-K with fiscal year {year} in companyfacts")
    end, start = max(ends)
    if end.year != year:
        raise GoldError(f"fiscal year {year} ends {end}, not in {year}")
    return start, end


def companyfacts_gold(companyfacts: dict, spec: dict, period: tuple) -> dict | None:
    """The first concept with a 10-K value for the period; from the earliest-filed such 10-K (the
    year's own report), recording later 10-Ks that filed a different value (splits, restatements)."""
    start, end = period
    for concept in spec["concepts"]:
        prefix, local = concept.split(":", 1)
        units = companyfacts["facts"].get(prefix, {}).get(local, {}).get("units", {})
        candidates = []
        for unit, unit_facts in units.items():
            if not unit_fits(unit, spec["unit_kind"]):
                continue
            for fact in unit_facts:
                if fact.get("form") not in ANNUAL_FORMS or parse_date(fact["end"]) != end:
                    continue
                if spec["period_type"] == "Duration":
                    if not fact.get("start"):
                        continue
                    fact_start = parse_date(fact["start"])
                    if (end - fact_start).days not in YEAR_DAYS:
                        continue
                elif fact.get("start"):
                    continue
                value = canonical_decimal(str(fact["val"]))
                if value is None:
                    raise GoldError(f"{concept} in {fact['accn']} is not a number: {fact['val']!r}")
                candidates.append((fact["filed"], fact["accn"], value, unit, fact))
        if not candidates:
            continue
        candidates.sort(key=lambda c: (c[0], c[1]))
        filed, accn, value, unit, fact = candidates[0]
        same_filing = {c[2] for c in candidates if c[1] == accn}
        if len(same_filing) > 1:
            raise GoldError(f"{concept} has conflicting values {sorted(same_filing)} in {accn}")
        later = sorted({c[2] for c in candidates if c[2] != value})
        fact_start = parse_date(fact["start"]) if fact.get("start") else start
        return {"concept": concept, "expected": value, "unit": unit,
                "period": period_json(spec, fact_start, end), "accn": accn, "form": fact["form"],
                "filed": filed, "later_values": later}
    return None


def period_json(spec: dict, start: dt.date, end: dt.date) -> dict:
    if spec["period_type"] == "Duration":
        return {"start": start.isoformat(), "end": end.isoformat()}
    return {"instant": end.isoformat()}


# ---------------------------------------------------------------------------------------------
# Questions.


def label_words(text: str) -> list[str]:
    """taxonomy::label_words restated: split on anything not alphanumeric or `&`, lowercase."""
    return [w.lower() for w in re.split(r"[^\w&]|_", text) if w and w != "&"]


def best_phrase(text: str, phrases: list[tuple[str, str]]) -> str | None:
    """The agent's phrase rule restated: most words, then most characters, then earliest."""
    words = label_words(text)
    best = None
    for phrase, owner in phrases:
        pw = label_words(phrase)
        if not pw or len(pw) > len(words):
            continue
        positions = [i for i in range(len(words) - len(pw) + 1) if words[i:i + len(pw)] == pw]
        if not positions:
            continue
        score = (len(pw), len(phrase), -positions[0])
        if best is None or score > best[0]:
            best = (score, owner)
    return best[1] if best else None


def years_in(text: str) -> list[int]:
    """question::find_years restated (fiscal basis only: the set never says calendar)."""
    years = []
    for token in re.split(r"[^\w&]|_", text.lower()):
        digits = token[2:] if token[:2] in ("fy", "cy") else token
        if len(digits) == 4 and digits.isdigit() and 1990 <= int(digits) <= 2100:
            years.append(int(digits))
        elif len(digits) == 2 and digits.isdigit() and token[:2] in ("fy", "cy"):
            years.append(2000 + int(digits))
    return years


def question_problem(text: str, ticker: str, year: int, metric: str, phrase_owners: list) -> str | None:
    """Why the agent would misread `text`, or None. Conservative about tickers: an all-capital
    token that is not this company's ticker or name could be another company's ticker on EDGAR."""
    if best_phrase(text, phrase_owners) != metric:
        return f"phrase resolves to {best_phrase(text, phrase_owners)}"
    if years_in(text) != [year]:
        return f"years read as {years_in(text)}"
    lowered = text.lower()
    if "calendar" in lowered.split() or re.search(r"\bq[1-4]\b|\bquarter\b", lowered):
        return "calendar year or quarter named"
    capitals = [t.rstrip(".") for t in re.split(r"[^A-Za-z0-9.]", text)]
    capitals = [t for t in capitals if t and t.isalpha() and t.isupper()
                and t.lower() not in COMPANY_NAME_WORDS[ticker]]
    if capitals and capitals[0] != ticker:
        return f"capitalised token {capitals[0]} may be read as a ticker"
    if ticker not in capitals and not any(w in label_words(text) for w in COMPANY_NAME_WORDS[ticker]):
        return "company not named"
    return None


def pick(options: list, key: str):
    digest = hashlib.sha256(f"{SEED}:{key}".encode()).digest()
    return options[int.from_bytes(digest[:8], "big") % len(options)]


def possessive(company: str) -> str:
    return company + "'s"


def make_question(ticker: str, year: int, metric: str, spec: dict, variant: int,
                  phrase_owners: list, taken: set) -> str:
    """A natural question about the metric, chosen deterministically; retried until the agent's
    rules would read it as meant and it differs from the other variants."""
    if spec["period_type"] == "Duration":
        templates = FLOW_TEMPLATES + METRIC_TEMPLATES.get(metric, [])
        if spec["unit_kind"] == "Monetary":
            templates = templates + MONETARY_FLOW_TEMPLATES
    else:
        templates = INSTANT_TEMPLATES + METRIC_INSTANT_TEMPLATES.get(metric, [])
    for attempt in range(200):
        key = f"{ticker}:{year}:{metric}:{variant}:{attempt}"
        template = pick(templates, key + ":template")
        if template in taken and attempt < 100:
            continue  # variants of one gold value differ in shape, not just in one word
        wording, plural = pick(METRIC_WORDING[metric], key + ":wording")
        # An abbreviation (EPS, R&D) could itself be read as a ticker; the company's own ticker
        # written before it is what makes the question unambiguous.
        abbreviated = any(word.isupper() for word in re.split(r"[^A-Za-z]", wording) if word)
        company = ticker if abbreviated else pick(COMPANY_FORMS[ticker], key + ":company")
        year_text = pick(YEAR_FORMS, key + ":year").format(y=year)
        text = template.format(co=company, cos=possessive(company), p=wording,
                               v="were" if plural else "was", yr=year_text)
        text = text[0].upper() + text[1:]
        if text not in taken and question_problem(text, ticker, year, metric, phrase_owners) is None:
            taken.add(template)
            return text
    raise GoldError(f"no unambiguous question for {ticker} {year} {metric}")


# ---------------------------------------------------------------------------------------------


def read_gold(read, metric: str) -> dict | None:
    """`read()`'s gold for `metric`. Two values for one period fail the build, except for a
    ratio-only operand, which is left out rather than guessed."""
    try:
        return read()
    except GoldError:
        if metric not in RATIO_ONLY_METRICS:
            raise
        return None


def build(xbrl_dir: Path, variants: int) -> tuple[list[dict], list[tuple]]:
    table = read_metric_table(METRIC_TABLE)
    missing = [m for m in METRICS + RATIO_ONLY_METRICS if m not in table]
    if missing:
        raise GoldError(f"metrics missing from {METRIC_TABLE}: {missing}")
    phrase_owners = [(p, name) for name, spec in table.items() for p in spec["phrases"]]
    phrase_owners += [(p, None) for p in read_other_phrases()]
    for metric, wordings in METRIC_WORDING.items():
        for wording, _ in wordings:
            if best_phrase(wording, phrase_owners) != metric:
                raise GoldError(f"wording {wording!r} resolves to {best_phrase(wording, phrase_owners)}, "
                                f"not {metric}; add a phrase to {METRIC_TABLE}")

    golds = []  # (ticker, year, metric, gold)
    instances = [("AMZN", "filings/AMZN/2022/amzn-20221231_htm.xml", 3),
                 ("NVDA", "filings/NVDA/2024/nvda-20240128_htm.xml", 1)]
    for ticker, rel_path, n_years in instances:
        instance = read_instance(xbrl_dir / rel_path)
        for year, period in sorted(instance_fiscal_years(instance, n_years).items()):
            for metric in METRICS + RATIO_ONLY_METRICS:
                gold = read_gold(lambda: instance_gold(instance, table[metric], period), metric)
                if gold:
                    gold["source"] = {"file": rel_path, "context": gold.pop("context")}
                    golds.append((ticker, year, metric, gold))
    facts_path = "companyfacts/CIK0001045810.json"
    with open(xbrl_dir / facts_path, encoding="utf-8") as handle:
        companyfacts = json.load(handle, parse_float=Decimal)
    for year in (2019, 2020, 2021, 2022):
        period = companyfacts_fiscal_year(companyfacts, year)
        for metric in METRICS + RATIO_ONLY_METRICS:
            gold = read_gold(lambda: companyfacts_gold(companyfacts, table[metric], period), metric)
            if gold:
                gold["source"] = {"file": facts_path, "accn": gold.pop("accn"), "form": gold.pop("form"),
                                  "filed": gold.pop("filed")}
                later = gold.pop("later_values")
                if later:
                    gold["source"]["later_10k_values"] = later
                golds.append(("NVDA", year, metric, gold))

    rows = []
    asked = [g for g in golds if g[2] in METRICS]
    for ticker, year, metric, gold in sorted(asked, key=lambda g: (g[0], g[1], METRICS.index(g[2]))):
        taken = set()
        for variant in range(variants):
            question = make_question(ticker, year, metric, table[metric], variant, phrase_owners, taken)
            taken.add(question)
            rows.append({
                "id": f"{ticker.lower()}-fy{year}-{metric}-{variant + 1}",
                "question": question,
                "ticker": ticker,
                "fiscal_year": year,
                "metric": metric,
                "concept": gold["concept"],
                "expected": gold["expected"],
                "unit": gold["unit"],
                "period": gold["period"],
                "source": gold["source"],
            })
    return rows, golds


# Ratio questions: (name, operands, percent or not, wordings as the agent's derived.rs names them).
DERIVED = [
    ("gross_margin", ("gross_profit", "revenue"), True, ["gross margin", "gross profit margin"]),
    ("operating_margin", ("operating_income", "revenue"), True, ["operating margin"]),
    ("net_margin", ("net_income", "revenue"), True, ["net margin", "net profit margin"]),
    ("current_ratio", ("current_assets", "current_liabilities"), False, ["current ratio"]),
    ("debt_to_equity", ("total_liabilities", "stockholders_equity"), False, ["debt to equity ratio"]),
    ("return_on_equity", ("net_income", "stockholders_equity"), True, ["return on equity"]),
    ("return_on_assets", ("net_income", "total_assets"), True, ["return on assets"]),
    ("free_cash_flow", ("operating_cash_flow", "capital_expenditure"), None, ["free cash flow"]),
    ("effective_tax_rate", ("income_tax_expense", "pretax_income"), True, ["effective tax rate"]),
]
DERIVED_TEMPLATES = ["What was {cos} {p} in {yr}?", "What was {cos} {p} for {yr}?", "{co} {p} {yr}"]
CHANGE_METRICS = {"revenue": "revenue", "net_income": "net income", "total_assets": "total assets",
                  "operating_cash_flow": "operating cash flow"}
CHANGE_TEMPLATES = ["How much did {cos} {p} grow from {y0} to {y1}?",
                    "How did {cos} {p} change from fiscal {y0} to fiscal {y1}?"]


def build_derived(golds: list[tuple]) -> list[dict]:
    """Ratio and change questions over the same held-out gold values. The expected answers are
    computed here the way the agent states them: a percentage to 2 decimals and a ratio to 4
    (float arithmetic, a / b * 100), a difference exactly (decimal arithmetic)."""
    value = {(ticker, year, metric): gold for ticker, year, metric, gold in golds}
    rows = []
    for ticker, year in sorted({(t, y) for t, y, _ in value}):
        for name, (a_metric, b_metric), percent, wordings in DERIVED:
            a, b = value.get((ticker, year, a_metric)), value.get((ticker, year, b_metric))
            if not a or not b:
                continue
            a_num, b_num = Decimal(a["expected"]), Decimal(b["expected"])
            if percent is None:
                expected = str(a_num - b_num)
            elif float(b_num) == 0.0:
                continue
            elif percent:
                expected = f"{float(a_num) / float(b_num) * 100.0:.2f}"
            else:
                expected = f"{float(a_num) / float(b_num):.4f}"
            key = f"{ticker}:{year}:{name}"
            company = pick(COMPANY_FORMS[ticker], key + ":company")
            text = pick(DERIVED_TEMPLATES, key + ":template").format(
                co=company, cos=possessive(company), p=pick(wordings, key + ":wording"),
                yr=pick(YEAR_FORMS, key + ":year").format(y=year))
            rows.append({"id": f"{ticker.lower()}-fy{year}-{name}", "question": text[0].upper() + text[1:],
                         "ticker": ticker, "fiscal_year": year, "metric": name, "expected": expected,
                         "operands": [a["concept"], b["concept"]]})
        # A company that files no gross profit (AMZN): the agent computes it, and the gross
        # margin, from revenue and cost of revenue; asked here the way it states them
        # (100.0 * (revenue - cost) / revenue, to 2 decimals; the difference exactly).
        revenue, cost = value.get((ticker, year, "revenue")), value.get((ticker, year, "cost_of_revenue"))
        if revenue and cost and not value.get((ticker, year, "gross_profit")):
            rev_num, cost_num = Decimal(revenue["expected"]), Decimal(cost["expected"])
            for name, wordings, expected in [
                ("gross_margin", ["gross margin", "gross profit margin"],
                 f"{100.0 * (float(rev_num) - float(cost_num)) / float(rev_num):.2f}"),
                ("gross_profit", ["gross profit"], str(rev_num - cost_num)),
            ]:
                if name == "gross_margin" and float(rev_num) == 0.0:
                    continue
                key = f"{ticker}:{year}:{name}:from-cost"
                company = pick(COMPANY_FORMS[ticker], key + ":company")
                text = pick(DERIVED_TEMPLATES, key + ":template").format(
                    co=company, cos=possessive(company), p=pick(wordings, key + ":wording"),
                    yr=pick(YEAR_FORMS, key + ":year").format(y=year))
                rows.append({"id": f"{ticker.lower()}-fy{year}-{name}-from-cost",
                             "question": text[0].upper() + text[1:], "ticker": ticker, "fiscal_year": year,
                             "metric": f"{name}_from_cost", "expected": expected,
                             "operands": [revenue["concept"], cost["concept"]]})
        for metric, wording in CHANGE_METRICS.items():
            before, after = value.get((ticker, year - 1, metric)), value.get((ticker, year, metric))
            if not before or not after:
                continue
            key = f"{ticker}:{year}:{metric}:change"
            company = pick(COMPANY_FORMS[ticker], key + ":company")
            text = pick(CHANGE_TEMPLATES, key + ":template").format(
                cos=possessive(company), p=wording, y0=year - 1, y1=year)
            rows.append({"id": f"{ticker.lower()}-fy{year - 1}-fy{year}-{metric}-change", "question": text,
                         "ticker": ticker, "fiscal_year": year, "metric": f"{metric}_change",
                         "expected": str(Decimal(after["expected"]) - Decimal(before["expected"])),
                         "operands": [before["concept"], after["concept"]]})
    return rows


def main() -> int:
    default_dir = os.environ.get("FINAGENT_XBRL_MIRROR") or str(REPO_ROOT.parent / "shared/xbrl")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--xbrl-dir", type=Path, default=Path(default_dir),
                        help="shared XBRL data (filings/, companyfacts/); default $FINAGENT_XBRL_MIRROR "
                             "or ../shared/xbrl")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "docs/agent/heldout_questions.jsonl")
    parser.add_argument("--derived-out", type=Path, default=REPO_ROOT / "docs/agent/heldout_derived.jsonl",
                        help="ratio and change questions over the same gold values")
    parser.add_argument("--variants", type=int, default=2, help="differently phrased questions per gold value")
    args = parser.parse_args()
    if args.variants < 1:
        parser.error(f"--variants must be at least 1, got {args.variants}")
    try:
        rows, golds = build(args.xbrl_dir, args.variants)
        derived = build_derived(golds)
    except (GoldError, OSError, json.JSONDecodeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    with open(args.derived_out, "w", encoding="utf-8") as handle:
        for row in derived:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(derived)} ratio and change questions -> {args.derived_out}")
    counts = {}
    for row in rows:
        key = (row["ticker"], row["fiscal_year"])
        counts.setdefault(key, [0, set()])
        counts[key][0] += 1
        counts[key][1].add(row["metric"])
    print(f"{len(rows)} questions -> {args.out}")
    print("ticker  fiscal_year  questions  metrics")
    for (ticker, year), (n_questions, metrics) in sorted(counts.items()):
        print(f"{ticker:<6}  {year:<11}  {n_questions:<9}  {len(metrics)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
