//! edgar (being written)
