//! companyfacts (being written)
