//! The first bytes of a connection, as berth's invocation server reads them.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_aws::fuzzing::invocation_head(data));
