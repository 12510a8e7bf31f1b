//! coreutils' `sleep` operands: a decimal number of seconds with an optional unit suffix.

/// Nanoseconds per unit suffix.
const UNITS: [(u8, u64); 4] = [
    (b's', 1_000_000_000),
    (b'm', 60_000_000_000),
    (b'h', 3_600_000_000_000),
    (b'd', 86_400_000_000_000),
];

/// `1`, `0.5`, `.25s`, `2m`, `1.5h`, `1d` as nanoseconds (saturating; digits past the
/// ninth of the fraction are ignored); `None` for anything else.
pub fn parse_nanos(arg: &[u8]) -> Option<u64> {
    let (number, unit) = match arg.split_last() {
        Some((last, rest)) if last.is_ascii_alphabetic() => {
            (rest, UNITS.iter().find(|(s, _)| s == last)?.1)
        }
        _ => (arg, UNITS[0].1),
    };
    let (whole, fraction) = match number.iter().position(|&b| b == b'.') {
        Some(dot) => (&number[..dot], &number[dot + 1..]),
        None => (number, &[][..]),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.iter().chain(fraction).all(u8::is_ascii_digit) {
        return None;
    }
    let mut seconds: u64 = 0;
    for &d in whole {
        seconds = seconds
            .saturating_mul(10)
            .saturating_add(u64::from(d - b'0'));
    }
    // The fraction in units of 1e-9, then scaled by the unit.
    let mut nanos: u64 = 0;
    for i in 0..9 {
        let d = fraction.get(i).map_or(0, |&d| u64::from(d - b'0'));
        nanos = nanos * 10 + d;
    }
    let fraction_ns = u128::from(nanos) * u128::from(unit) / 1_000_000_000;
    let total = u128::from(seconds) * u128::from(unit) + fraction_ns;
    Some(u64::try_from(total).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::parse_nanos;

    const S: u64 = 1_000_000_000;

    #[test]
    fn operands_read_as_coreutils_sleep_reads_them() {
        for (arg, want) in [
            ("1", Some(S)),
            ("0", Some(0)),
            ("0.5", Some(S / 2)),
            (".25", Some(S / 4)),
            ("2.", Some(2 * S)),
            ("1.5s", Some(3 * S / 2)),
            ("2m", Some(120 * S)),
            ("0.5m", Some(30 * S)),
            ("1h", Some(3600 * S)),
            ("1d", Some(86_400 * S)),
            ("0.000000001", Some(1)),
            ("0.0000000019", Some(1)),
            ("99999999999999999999d", Some(u64::MAX)),
            ("", None),
            (".", None),
            ("s", None),
            ("x", None),
            ("1q", None),
            ("-1", None),
            ("1.2.3", None),
            ("1 ", None),
            ("1ss", None),
        ] {
            assert_eq!(parse_nanos(arg.as_bytes()), want, "{arg:?}");
        }
    }
}
