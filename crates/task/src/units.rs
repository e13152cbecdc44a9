//! Sizes and rates as users write them (CLI flags and task files): `512M`, `1.5G`,
//! `10MiB`, `1000KB`, `10M/s`.
//!
//! Binary units (`K`, `KiB`, `k` = 1024; `M`, `MiB`, `m` = 2^20; `G`, `GiB`, `g` = 2^30;
//! `T`, `TiB`, `t` = 2^40) are the default reading of a bare letter, as in `free` and
//! cgroups; the decimal units `KB`/`kB`, `MB`, `GB`, `TB` are powers of 1000. A number
//! without a unit (or with `B`) is bytes. Decimals are allowed (`1.5G`); a result that is
//! not a whole number of bytes is rounded to the nearest byte.

/// What every error message ends with: how a size is written.
const EXPECTED: &str = "expected a number with an optional unit, e.g. 512M, 1.5G, 10MiB, 1000KB";

/// Parses a size in bytes, e.g. `512M` or `1.5G`. The error is a sentence for clap.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if s.is_empty() {
        return Err(format!("empty size: {EXPECTED}"));
    }
    let number_len = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(number_len);
    if number.is_empty() {
        return Err(format!("{text:?} does not start with a number: {EXPECTED}"));
    }
    let multiplier = unit_multiplier(unit.trim_start()).ok_or_else(|| {
        format!(
            "unknown unit {:?}: use B, K/KiB, M/MiB, G/GiB, T/TiB (powers of 1024) or \
             KB, MB, GB, TB (powers of 1000)",
            unit.trim_start()
        )
    })?;
    let (whole, fraction) = match number.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (number, ""),
    };
    if (whole.is_empty() && fraction.is_empty()) || fraction.contains('.') {
        return Err(format!("{number:?} is not a number: {EXPECTED}"));
    }
    let too_large = || format!("{text:?} is too large (the maximum is {} bytes)", u64::MAX);
    // Whole part times the unit, in u128 so that only the final check can overflow.
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| too_large())?
    };
    let mut bytes = whole.checked_mul(multiplier).ok_or_else(too_large)?;
    // Fraction: at most 18 digits matter for a u64 (the rest cannot change the rounding
    // of a value this size by more than a byte, and keeps the arithmetic in range).
    let fraction = &fraction[..fraction.len().min(18)];
    if !fraction.is_empty() {
        // `fraction` is 1 to 18 ASCII digits, so this parse cannot fail and fits a u128.
        let digits: u128 = fraction.parse().map_err(|_| too_large())?;
        let scale = 10u128.pow(fraction.len() as u32);
        // Rounded to the nearest byte: (digits * multiplier + scale / 2) / scale.
        bytes = bytes
            .checked_add((digits * multiplier + scale / 2) / scale)
            .ok_or_else(too_large)?;
    }
    u64::try_from(bytes).map_err(|_| too_large())
}

/// Parses a rate in bytes per second: a size, optionally followed by `/s` (`10M/s`).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let s = s.strip_suffix("/s").unwrap_or(s);
    parse_size(s)
}

/// The number of bytes one `unit` stands for, or `None` for an unknown unit.
fn unit_multiplier(unit: &str) -> Option<u128> {
    const KI: u128 = 1 << 10;
    const KB: u128 = 1000;
    Some(match unit {
        "" | "B" => 1,
        "K" | "KiB" | "k" => KI,
        "M" | "MiB" | "m" => KI.pow(2),
        "G" | "GiB" | "g" => KI.pow(3),
        "T" | "TiB" | "t" => KI.pow(4),
        "KB" | "kB" => KB,
        "MB" => KB.pow(2),
        "GB" => KB.pow(3),
        "TB" => KB.pow(4),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_units() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("4k"), Ok(4096));
        assert_eq!(parse_size("2KiB"), Ok(2048));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("3g"), Ok(3 << 30));
    }

    #[test]
    fn decimal_units_and_bytes() {
        assert_eq!(parse_size("1000KB"), Ok(1_000_000));
        assert_eq!(parse_size("2MB"), Ok(2_000_000));
        assert_eq!(parse_size("1GB"), Ok(1_000_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("4096B"), Ok(4096));
        assert_eq!(parse_size(" 64M "), Ok(64 << 20));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn decimals() {
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5K"), Ok(512));
        assert_eq!(parse_size(".5M"), Ok(512 << 10));
        assert_eq!(parse_size("2."), Ok(2));
        // 0.1 KiB = 102.4 bytes, rounded to the nearest byte.
        assert_eq!(parse_size("0.1K"), Ok(102));
        assert_eq!(parse_size("1.25KB"), Ok(1250));
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("10M/s"), Ok(10 << 20));
        assert_eq!(parse_rate("10M"), Ok(10 << 20));
        assert_eq!(parse_rate("1MB/s"), Ok(1_000_000));
        assert!(parse_rate("/s").is_err());
        assert!(parse_rate("10M/h").is_err());
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            "", "  ", "12X", "-1M", "M", "1.2.3G", ".", "1 Mb", "1e6", "+5M",
        ] {
            let err = parse_size(bad).expect_err(bad);
            assert!(!err.is_empty(), "{bad}: empty message");
        }
        assert!(
            parse_size("12X")
                .unwrap_err()
                .contains("unknown unit \"X\"")
        );
        assert!(
            parse_size("-1M")
                .unwrap_err()
                .contains("does not start with a number")
        );
    }

    #[test]
    fn too_large() {
        assert_eq!(parse_size("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_size("18446744073709551616").is_err());
        assert!(parse_size("16777216T").is_err());
        assert!(parse_size("99999999999999999999999999999999999999999").is_err());
    }
}
