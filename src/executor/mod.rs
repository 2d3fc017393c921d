//! executor

pub mod base64;
pub mod labels;
pub mod manifest;
pub mod overwrites;
