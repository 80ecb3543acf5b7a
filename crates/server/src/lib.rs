//! quarry-server
