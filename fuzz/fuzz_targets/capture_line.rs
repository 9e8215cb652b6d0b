//! Captured invocations (content types, bodies, configured CSV/JSON types) through the capture
//! encoder: JSON that gives each body back, never a panic.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_control::fuzzing::capture_line(data));
