//! filing (being written)
