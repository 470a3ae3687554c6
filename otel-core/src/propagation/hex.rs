//! Hexadecimal digits for trace and span ids, shared by every propagator of this module.
//!
//! Hand-written rather than `u128::from_str_radix`: the W3C and B3 specifications accept
//! lower-case hex only (`from_str_radix` also takes upper case and a leading `+`), and a fixed
//! lookup keeps extraction well under the 250 ns budget.

/// The value of a lower-case hex digit (`0-9a-f`).
#[inline]
pub(super) fn lower_hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

/// The value of a hex digit of either case (`0-9a-fA-F`).
#[inline]
pub(super) fn any_hex_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => lower_hex_value(b),
    }
}

/// Parses 1 to 32 lower-case hex digits.
#[inline]
pub(super) fn parse_lower_u128(digits: &[u8]) -> Option<u128> {
    parse_u128_with(digits, lower_hex_value)
}

/// Parses 1 to 32 hex digits of either case.
#[inline]
pub(super) fn parse_any_u128(digits: &[u8]) -> Option<u128> {
    parse_u128_with(digits, any_hex_value)
}

/// Parses 1 to 16 lower-case hex digits.
#[inline]
pub(super) fn parse_lower_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() > 16 {
        return None;
    }
    parse_lower_u128(digits).map(|v| v as u64)
}

/// Parses 1 to 16 hex digits of either case.
#[inline]
pub(super) fn parse_any_u64(digits: &[u8]) -> Option<u64> {
    if digits.len() > 16 {
        return None;
    }
    parse_any_u128(digits).map(|v| v as u64)
}

/// Appends `bytes` as lower-case hex.
#[inline]
pub(super) fn push_lower(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
}

fn parse_u128_with(digits: &[u8], value: fn(u8) -> Option<u8>) -> Option<u128> {
    if digits.is_empty() || digits.len() > 32 {
        return None;
    }
    let mut acc: u128 = 0;
    for &b in digits {
        acc = (acc << 4) | u128::from(value(b)?);
    }
    Some(acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!(parse_lower_u128(b"00f"), Some(15));
        assert_eq!(parse_lower_u128(b"00F"), None);
        assert_eq!(parse_any_u128(b"00F"), Some(15));
        assert_eq!(parse_lower_u128(b""), None);
        assert_eq!(parse_lower_u128(&[b'1'; 33]), None);
        assert_eq!(parse_lower_u128(&[b'f'; 32]), Some(u128::MAX));
        assert_eq!(parse_lower_u64(&[b'f'; 16]), Some(u64::MAX));
        assert_eq!(parse_lower_u64(&[b'f'; 17]), None);
        assert_eq!(parse_any_u64(b"+1"), None);
        let mut s = String::new();
        push_lower(&mut s, &[0x00, 0xab, 0x7f]);
        assert_eq!(s, "00ab7f");
    }
}
