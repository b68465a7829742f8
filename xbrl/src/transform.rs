//! transform (being written)
