//! The finagent agent: resolves questions about filings, retrieves facts, prompts the model and
//! checks its answer; also fetching filings and the model, and building the fact index.

pub mod acquire;
pub mod adapter;
pub mod ask;
pub mod check;
pub mod companies;
pub mod compute;
pub mod config;
pub mod indexing;
pub mod model_fetch;
pub mod question;
pub mod retrieve;
pub mod tag;
