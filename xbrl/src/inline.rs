//! inline (being written)
