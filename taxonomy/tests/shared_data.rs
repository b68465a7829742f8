//! Reads the real taxonomy files under shared/xbrl: the compiled concept table, company and SRT
//! label linkbases, a company schema and the FiNER-139 lists; checks every metric alias exists.

use std::path::{Path, PathBuf};

use taxonomy::{Balance, Catalogue, FinerTags, Metric, PeriodType};

/// `shared/xbrl`, or `None` (after printing why) when the shared data is absent outside CI.
fn shared_xbrl() -> Option<PathBuf> {
    let root = std::env::var_os("FINAGENT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("../shared"));
    let dir = root.join("xbrl");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(std::env::var_os("CI").is_none(), "shared data missing at {} (CI is set)", dir.display());
    eprintln!("skipping: shared data missing at {}", dir.display());
    None
}

/// Every `*_lab.xml` under `filings/<ticker>/<year>/`.
fn filing_label_linkbases(xbrl: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let read_dir = |dir: &Path| std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.path());
    for ticker in read_dir(&xbrl.join("filings")) {
        for year in read_dir(&ticker) {
            found.extend(read_dir(&year).filter(|p| p.to_string_lossy().ends_with("_lab.xml")));
        }
    }
    found.sort();
    found
}

#[test]
fn partial_catalogue_loads() {
    let Some(xbrl) = shared_xbrl() else { return };
    let catalogue = Catalogue::load(&xbrl.join("taxonomy/us-gaap_concepts_partial.tsv")).unwrap();
    assert_eq!(catalogue.len(), 7507);
    let revenue = catalogue.get("RevenueFromContractWithCustomerExcludingAssessedTax").unwrap();
    assert_eq!(revenue.prefix, "us-gaap");
    assert_eq!(revenue.label(), "Revenue from Contract with Customer, Excluding Assessed Tax");
    assert!(revenue.documentation.is_some());
    let shares = catalogue.get("dei:EntityCommonStockSharesOutstanding").unwrap();
    assert!(shares.taxonomy_years.contains(&2022));
    let n_with_docs = catalogue.iter().filter(|c| c.documentation.is_some()).count();
    assert_eq!(n_with_docs, 4838);
    let found = catalogue.search_label("net income loss");
    assert_eq!(found.first().map(|c| c.name.as_str()), Some("NetIncomeLoss"));
}

#[test]
fn filing_label_linkbases_carry_standard_labels() {
    let Some(xbrl) = shared_xbrl() else { return };
    let paths = filing_label_linkbases(&xbrl);
    assert!(paths.len() >= 10, "found {paths:?}");
    for path in &paths {
        let catalogue = Catalogue::load(path).unwrap();
        let assets = catalogue.get("us-gaap:Assets");
        assert_eq!(assets.and_then(|c| c.standard_label.as_deref()), Some("Assets"), "{}", path.display());
    }
    let aapl = Catalogue::load(&xbrl.join("filings/AAPL/2022/aapl-20220924_lab.xml")).unwrap();
    let revenue = aapl.get("us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax").unwrap();
    assert_eq!(revenue.label(), "Revenue from Contract with Customer, Excluding Assessed Tax");
    assert!(aapl.iter().any(|concept| concept.prefix == "aapl"), "extension concepts are kept");
}

#[test]
fn company_taxonomy_joins_labels_and_schema() {
    let Some(xbrl) = shared_xbrl() else { return };
    let dir = xbrl.join("filings/AAPL/2022");
    let catalogue =
        Catalogue::load_taxonomy(&dir.join("aapl-20220924_lab.xml"), &dir.join("aapl-20220924.xsd")).unwrap();
    let netting = catalogue
        .get("aapl:DerivativeLiabilitiesReductionForMasterNettingArrangementsIncludingTheEffectsOfCollateral")
        .unwrap();
    assert_eq!(netting.period_type, Some(PeriodType::Instant));
    assert_eq!(netting.balance, Some(Balance::Debit));
    assert_eq!(netting.data_type.as_deref(), Some("xbrli:monetaryItemType"));
    assert_eq!(netting.is_abstract, Some(false));
    assert!(netting.standard_label.is_some(), "label from the linkbase");
}

#[test]
fn srt_label_and_documentation_linkbases_merge() {
    let Some(xbrl) = shared_xbrl() else { return };
    let mut srt = Catalogue::load(&xbrl.join("taxonomy/srt/srt-lab-2024.xml")).unwrap();
    srt.merge(Catalogue::load(&xbrl.join("taxonomy/srt/srt-doc-2024.xml")).unwrap());
    assert!(srt.len() > 500, "{} srt concepts", srt.len());
    assert!(srt.iter().all(|concept| concept.prefix == "srt"));
    let basis = srt.get("srt:RealEstateFederalIncomeTaxBasis").unwrap();
    assert!(basis.standard_label.is_some());
    assert!(basis.documentation.as_deref().unwrap_or_default().starts_with("Cost basis of real estate"));
}

#[test]
fn every_metric_alias_is_a_real_concept() {
    let Some(xbrl) = shared_xbrl() else { return };
    let mut known = Catalogue::load(&xbrl.join("taxonomy/us-gaap_concepts_partial.tsv")).unwrap();
    for path in filing_label_linkbases(&xbrl) {
        known.merge(Catalogue::load(&path).unwrap());
    }
    for metric in Metric::all() {
        for concept in metric.concepts() {
            assert!(known.get(concept).is_some(), "{metric:?} alias {concept} is not a known concept");
        }
    }
}

#[test]
fn finer_tags_follow_the_files() {
    let Some(xbrl) = shared_xbrl() else { return };
    let tags = FinerTags::load_dir(&xbrl).unwrap();
    assert_eq!(tags.len(), 139);
    assert_eq!(tags.num_bio_labels(), 279);
    assert_eq!(tags.iter().next(), Some("AccrualForEnvironmentalLossContingencies"));
    assert!(tags.contains("Revenues") && !tags.contains("NetIncomeLoss"));
    assert_eq!(tags.bio_label(0), Some("O"));
    assert_eq!(tags.bio_label(1), Some("B-AccrualForEnvironmentalLossContingencies"));
    // The I- block is in the dataset's own order, not the tag order.
    assert_eq!(tags.bio_label(278), Some("I-DerivativeNotionalAmount"));
    assert_eq!(tags.bio_id("I-AssetImpairmentCharges"), Some(277));
    assert_eq!(
        tags.tag_of_bio_id(139),
        Some("ShareBasedCompensationArrangementByShareBasedPaymentAwardAwardVestingPeriod1")
    );
    assert_eq!(tags.tag_of_bio_id(0), None);
    for (id, label) in tags.bio_labels() {
        assert_eq!(tags.bio_id(label), Some(id));
    }
}

#[test]
fn finer_files_with_bad_ids_are_rejected() {
    let dir = std::env::temp_dir().join(format!("taxonomy-finer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tags.txt"), "Revenues\nAssets\n").unwrap();
    std::fs::write(dir.join("good.tsv"), "id\tlabel\n0\tO\n1\tB-Revenues\n2\tI-Revenues\n").unwrap();
    std::fs::write(dir.join("gap.tsv"), "id\tlabel\n0\tO\n2\tB-Revenues\n").unwrap();
    std::fs::write(dir.join("unknown.tsv"), "id\tlabel\n0\tO\n1\tB-Liabilities\n").unwrap();
    let good = FinerTags::load(&dir.join("tags.txt"), &dir.join("good.tsv")).unwrap();
    assert_eq!(good.iter().collect::<Vec<_>>(), ["Revenues", "Assets"]);
    assert_eq!(good.position("Assets"), Some(1));
    let gap = FinerTags::load(&dir.join("tags.txt"), &dir.join("gap.tsv")).unwrap_err().to_string();
    assert!(gap.contains("gap.tsv line 3") && gap.contains("\"2\""), "{gap}");
    let unknown = FinerTags::load(&dir.join("tags.txt"), &dir.join("unknown.tsv")).unwrap_err().to_string();
    assert!(unknown.contains("B-Liabilities"), "{unknown}");
    let missing = FinerTags::load(&dir.join("none.txt"), &dir.join("good.tsv")).unwrap_err().to_string();
    assert!(missing.contains("none.txt"), "{missing}");
    std::fs::remove_dir_all(&dir).unwrap();
}
