//! us-gaap concept catalogue, the FiNER-139 tag set and metric aliases.
//!
//! A leaf crate: it reads taxonomy files (a compiled TSV, label linkbases, element schemas) and
//! knows which concepts companies file a metric under. It knows nothing of XBRL instances or ML.

pub mod catalogue;
pub mod concept;
pub mod derived;
pub mod error;
pub mod finer;
pub mod metric;
mod metric_table;
mod phrase;
mod xml;

pub use catalogue::Catalogue;
pub use concept::{label_words, Balance, Concept, PeriodType};
pub use derived::{Asked, Combine, DerivedMetric};
pub use error::{Error, Result};
pub use finer::FinerTags;
pub use metric::{Metric, UnitKind};
