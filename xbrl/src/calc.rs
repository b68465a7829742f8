//! calc (being written)
