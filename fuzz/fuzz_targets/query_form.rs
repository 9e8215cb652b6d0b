//! CloudWatch query-protocol forms (`Action=...&A.member.1.B=...`).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_aws::fuzzing::query_form(data));
