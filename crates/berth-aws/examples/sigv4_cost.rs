//! What verifying one SigV4 signature costs, alone (the request path's share is measured end to
//! end by `bench/sigv4.sh`): an invocation request signed once, verified many times.
//! Run: `cargo run --release -p berth-aws --example sigv4_cost`

use berth_aws::sigv4::{sign_for_tests, verify, Principals, SignedRequest};
use http::{HeaderMap, HeaderValue};
use std::time::{Instant, SystemTime};

fn main() {
    let mut principals = Principals::default();
    principals.insert("AKIDBENCH".into(), "bench-secret".into(), "bench".into());
    let now = SystemTime::now();
    let body = b"5.1,3.5,1.4,0.2";
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("127.0.0.1:8080"));
    headers.insert("content-type", HeaderValue::from_static("text/csv"));
    // An SDK signs x-amz-date with the rest: set it before signing.
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).expect("a valid time");
    let amz_date = format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second());
    headers.insert("x-amz-date", HeaderValue::from_str(&amz_date).unwrap());
    let req = SignedRequest { method: "POST", path: "/endpoints/demo/invocations", query: None, headers: &headers, body };
    let auth = sign_for_tests(&req, "AKIDBENCH", "bench-secret", "us-east-1", "sagemaker", now);
    headers.insert("authorization", HeaderValue::from_str(&auth).unwrap());
    let req = SignedRequest { method: "POST", path: "/endpoints/demo/invocations", query: None, headers: &headers, body };
    verify(&req, &principals, now).expect("the signature verifies");
    for round in 1..=3 {
        let n = 200_000;
        let began = Instant::now();
        for _ in 0..n {
            std::hint::black_box(verify(std::hint::black_box(&req), &principals, now).is_ok());
        }
        println!("round {round}: {:.2} µs per verification ({n} verifications)", began.elapsed().as_secs_f64() * 1e6 / n as f64);
    }
}
