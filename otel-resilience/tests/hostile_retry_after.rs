//! `Retry-After` values a hostile or odd server may send: parsed per RFC 9110 or refused,
//! never a panic. The leading-zeros case was found by the `retry_after` fuzz target.

use std::time::{Duration, SystemTime};

use otel_resilience::retry_policy::parse_retry_after;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

#[test]
fn delay_seconds_with_leading_zeros_of_any_length_are_accepted() {
    // Fuzz artifact: 33 zeros was refused (None) because of a 20-character cap.
    let zeros = "0".repeat(33);
    assert_eq!(
        parse_retry_after(zeros.as_bytes(), now()),
        Some(Duration::ZERO)
    );
    let padded = format!("{}120", "0".repeat(40));
    assert_eq!(
        parse_retry_after(padded.as_bytes(), now()),
        Some(Duration::from_secs(120))
    );
    assert_eq!(
        parse_retry_after(u64::MAX.to_string().as_bytes(), now()),
        Some(Duration::from_secs(u64::MAX))
    );
}

#[test]
fn values_past_u64_and_junk_are_refused() {
    for bad in [
        &b"18446744073709551616"[..], // u64::MAX + 1
        b"99999999999999999999999",
        b"1 2",
        b"+5",
        b"-5",
        b"5s",
        b"\xff",
        b"",
        b"   ",
        b"Wed, 21 Oct 2015 07:28:00 XYZ",
    ] {
        assert_eq!(parse_retry_after(bad, now()), None, "{bad:?}");
    }
    let huge = "9".repeat(1 << 20);
    assert_eq!(parse_retry_after(huge.as_bytes(), now()), None);
}
