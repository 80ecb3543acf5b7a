//! quarry-parse
