//! quarry-demo
