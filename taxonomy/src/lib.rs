//! us-gaap concept catalogue, the FiNER-139 tag set and metric aliases (being written).
