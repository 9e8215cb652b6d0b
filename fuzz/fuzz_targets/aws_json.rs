//! awsJson request bodies (SageMaker, CloudWatch, Application Auto Scaling), decoded and
//! converted as the control plane does.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_aws::fuzzing::aws_json_request(data));
