//! coreutils' `sleep` operands: a decimal number of seconds with an optional unit suffix.

/// Nanoseconds per second.
const SECOND: u64 = 1_000_000_000;

/// Nanoseconds per unit of suffix `s`, `m`, `h` or `d`.
fn unit(suffix: u8) -> Option<u64> {
    // Compared one by one, not looked up in a table, which would be the module's only data.
    let seconds = if suffix == b's' {
        1
    } else if suffix == b'm' {
        60
    } else if suffix == b'h' {
        3600
    } else if suffix == b'd' {
        86_400
    } else {
        return None;
    };
    Some(core::hint::black_box(seconds) * SECOND)
}

/// Whether `arg` is `inf` or `infinity`, in any case (compared byte by byte: a string
/// constant would be the module's only data).
fn is_infinity(arg: &[u8]) -> bool {
    let is = |i: usize, c: u8| arg.get(i).is_some_and(|b| b.to_ascii_lowercase() == c);
    let inf = is(0, b'i') && is(1, b'n') && is(2, b'f');
    match arg.len() {
        3 => inf,
        8 => inf && is(3, b'i') && is(4, b'n') && is(5, b'i') && is(6, b't') && is(7, b'y'),
        _ => false,
    }
}

/// `1`, `0.5`, `.25s`, `2m`, `1.5h`, `1d` as nanoseconds (saturating; digits past the
/// ninth of the fraction are ignored), and `inf` or `infinity` (`sleep infinity`, a pod
/// that waits until it is stopped) as `u64::MAX`; `None` for anything else (no exponents,
/// signs or hexadecimal, which coreutils reads through `strtod`).
pub fn parse_nanos(arg: &[u8]) -> Option<u64> {
    if is_infinity(arg) {
        return Some(u64::MAX);
    }
    let (number, unit) = match arg.split_last() {
        Some((&last, rest)) if last.is_ascii_alphabetic() => (rest, unit(last)?),
        _ => (arg, SECOND),
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
            ("inf", Some(u64::MAX)),
            ("Infinity", Some(u64::MAX)),
            ("INF", Some(u64::MAX)),
            ("infinit", None),
            ("infinitys", None),
            ("1e3", None),
            ("+1", None),
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
