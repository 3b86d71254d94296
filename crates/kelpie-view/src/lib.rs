//! What users see of Kelpie's apps, built the same way whoever shows it: the CLI (`jlist`,
//! `prettylist`, `describe`) and the daemon (its web API, the bus's process descriptions).
//!
//! - [`jlist`]: PM2's process list shape, and `describe --json`.
//! - [`versioning`]: what PM2 calls vizion, read from the repository's files.
//! - [`secrets`]: which variables are masked, and how.
//! - [`tail`]: the last lines of a file, read backwards from its end.

pub mod jlist;
pub mod secrets;
pub mod tail;
pub mod terminal;
pub mod versioning;
