//! Smithy RPC v2 CBOR bodies of CloudWatch calls.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_aws::fuzzing::cbor(data));
