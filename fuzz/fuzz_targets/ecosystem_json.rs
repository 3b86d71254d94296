//! Any bytes as a `.json` ecosystem file: specs, or errors that say why.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::ecosystem("ecosystem.json", data));
