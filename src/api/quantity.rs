//! Kubernetes resource quantities (`64Mi`, `1G`, `500m`, `1e3`) parsed to integers.

/// Parses a quantity and returns its value times `scale`, rounded up
/// (`scale` 1 for bytes, 1000 for millicores). `None` if it is not a valid quantity,
/// is negative, or overflows.
pub fn parse_scaled(s: &str, scale: u128) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    if num.is_empty() || num.starts_with('-') {
        return None;
    }
    let num = num.strip_prefix('+').unwrap_or(num);
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    if int_part.is_empty() && frac_part.is_empty() {
        return None;
    }
    if !int_part
        .chars()
        .chain(frac_part.chars())
        .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    // value = digits / 10^frac_len * multiplier; keep it as an exact fraction.
    let digits: u128 = format!("{int_part}{frac_part}").parse().ok()?;
    let mut denom: u128 = 10u128.checked_pow(frac_part.len().try_into().ok()?)?;
    let (mul, div): (u128, u128) = match suffix {
        "" => (1, 1),
        "m" => (1, 1000),
        "k" => (1000, 1),
        "M" => (1000u128.pow(2), 1),
        "G" => (1000u128.pow(3), 1),
        "T" => (1000u128.pow(4), 1),
        "P" => (1000u128.pow(5), 1),
        "E" => (1000u128.pow(6), 1),
        "Ki" => (1 << 10, 1),
        "Mi" => (1 << 20, 1),
        "Gi" => (1 << 30, 1),
        "Ti" => (1 << 40, 1),
        "Pi" => (1 << 50, 1),
        "Ei" => (1 << 60, 1),
        e if e.starts_with(['e', 'E']) => {
            let exp: i32 = e[1..].parse().ok()?;
            let p = 10u128.checked_pow(exp.unsigned_abs())?;
            if exp >= 0 { (p, 1) } else { (1, p) }
        }
        _ => return None,
    };
    denom = denom.checked_mul(div)?;
    let numer = digits.checked_mul(mul)?.checked_mul(scale)?;
    u64::try_from(numer.div_ceil(denom)).ok()
}

/// Bytes of a memory quantity.
pub fn parse_bytes(s: &str) -> Option<u64> {
    parse_scaled(s, 1)
}

/// Millicores of a CPU quantity.
pub fn parse_millis(s: &str) -> Option<u64> {
    parse_scaled(s, 1000)
}

/// A byte count the way Kubernetes users write it: `64Mi`, `1536Ki`, `100`.
pub fn format_bytes(n: u64) -> String {
    for (suffix, shift) in [("Gi", 30), ("Mi", 20), ("Ki", 10)] {
        if n >= 1 << shift && n.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", n >> shift);
        }
    }
    n.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_memory_and_cpu() {
        let cases: &[(&str, Option<u64>)] = &[
            ("64Mi", Some(64 << 20)),
            ("1Gi", Some(1 << 30)),
            ("1G", Some(1_000_000_000)),
            ("128974848", Some(128_974_848)),
            ("129e6", Some(129_000_000)),
            ("123Mi", Some(123 << 20)),
            ("1.5Ki", Some(1536)),
            ("0.5", Some(1)),
            ("", None),
            ("-1Mi", None),
            ("12XB", None),
            ("Mi", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_bytes(s), *want, "{s}");
        }
        assert_eq!(parse_millis("500m"), Some(500));
        assert_eq!(parse_millis("2"), Some(2000));
        assert_eq!(parse_millis("0.25"), Some(250));
    }

    #[test]
    fn formats_bytes() {
        assert_eq!(format_bytes(64 << 20), "64Mi");
        assert_eq!(format_bytes(1536), "1536");
        assert_eq!(format_bytes(3 << 30), "3Gi");
    }
}
