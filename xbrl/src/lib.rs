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

pub use date::Date;
pub use error::{Error, Result};
pub use model::{
    Context, Dimension, DimensionContainer, DimensionValue, Document, Entity, Fact, Footnote, Issue,
    Location, Period, QName, SecFiling, SourceKind, Unit,
};
