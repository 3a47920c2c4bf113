//! Strict reads of JSON documents: where in a document something is
//! ([`JsonPath`]), what is wrong there ([`SpecIssue`]), and typed reads of
//! values that say both ([`fields`]). Chain files, grants and policies are
//! read with them.

pub mod fields;
mod path;

pub use path::{JsonPath, SpecIssue};
