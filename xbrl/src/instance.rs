//! instance (being written)
