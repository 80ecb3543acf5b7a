//! quarry-store
