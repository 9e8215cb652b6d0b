//! Alarm settings within PutMetricAlarm's limits and arbitrary datapoints through the window
//! indexing and evaluation: one value per period, ALARM only with enough breaching periods.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| berth_domain::fuzz_alarm_evaluation(data));
