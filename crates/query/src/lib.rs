//! quarry-query
