//! quarry-transport
