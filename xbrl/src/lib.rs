//! Reads XBRL: instance documents, inline XBRL 10-Ks, SEC companyfacts JSON and linkbases, into one
//! fact model; indexes facts with tantivy; fetches filings from EDGAR.
//!
//! Nothing here knows about machine learning; the crate never panics on a filing.

pub mod calc;
pub mod companyfacts;
pub mod date;
pub mod edgar;
pub mod error;
pub mod filing;
pub mod index;
pub mod inline;
pub mod instance;
pub mod linkbase;
pub mod model;
pub mod transform;

pub use calc::{
    check_calculations, check_calculations_report, CalcInconsistency, CalcReport, DuplicateConflict,
};
pub use companyfacts::{parse_companyfacts, read_companyfacts, CompanyFacts};
pub use date::Date;
pub use edgar::{DownloadReport, DownloadRequest, DownloadedFiling, EdgarClient, EdgarConfig};
pub use error::{Error, Result};
pub use filing::{fiscal_year_of, load_filing, FilingFiles, FilingInfo, FiscalCalendar};
pub use index::{FactHit, FactIndex, FactQuery, FilingMeta};
pub use linkbase::{
    read_calculation_linkbase, read_label_linkbase, CalculationEdge, CalculationLinkbase, LabelLinkbase,
};
pub use model::{
    Context, Dimension, DimensionContainer, DimensionValue, Document, Entity, Fact, Footnote, Issue,
    Location, Period, QName, SecFiling, SourceKind, Unit,
};
