//! `berth/onnx` request bodies in each content type, and `Accept` values. The first byte picks
//! the content type; the rest is the body.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    const TYPES: [&str; 5] = ["text/csv", "application/json", "application/x-npy", "application/jsonlines", "text/csv; charset=utf-8"];
    let Some((&pick, body)) = data.split_first() else { return };
    let _ = berth_onnx::codec::parse(Some(TYPES[usize::from(pick) % TYPES.len()]), body);
    if let Ok(accept) = std::str::from_utf8(body) {
        let _ = berth_onnx::codec::output_format(Some(accept));
    }
});
