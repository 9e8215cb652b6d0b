//! Headers and bodies of requests claiming a SigV4 signature.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_aws::fuzzing::sigv4(data));
