//! linkbase (being written)
