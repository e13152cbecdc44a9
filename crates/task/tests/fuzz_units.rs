//! Property tests ("fuzzing" on stable Rust) of the size and rate parsers people type on
//! the command line and in task files. Short by default (CI); longer runs:
//! `PROPTEST_CASES=100000 cargo test -p tandem-task --test fuzz_units` (docs/TESTING.md).

use proptest::prelude::*;
use tandem_task::units::{parse_rate, parse_size};

/// `default` cases unless PROPTEST_CASES asks for more (or fewer).
fn cases(default: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        // Failures are saved beside this file (`*.proptest-regressions`) and replayed first.
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("proptest-regressions"),
        )),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = default;
    }
    config
}

/// Every unit and what it multiplies by.
const UNITS: &[(&str, u128)] = &[
    ("", 1),
    ("B", 1),
    ("K", 1 << 10),
    ("KiB", 1 << 10),
    ("k", 1 << 10),
    ("M", 1 << 20),
    ("MiB", 1 << 20),
    ("m", 1 << 20),
    ("G", 1 << 30),
    ("GiB", 1 << 30),
    ("g", 1 << 30),
    ("T", 1 << 40),
    ("TiB", 1 << 40),
    ("t", 1 << 40),
    ("KB", 1000),
    ("kB", 1000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

proptest! {
    #![proptest_config(cases(2_000))]

    /// Whatever the text, the parsers answer (no panic), and an error is a sentence.
    #[test]
    fn any_text_is_answered(text in any::<String>()) {
        match parse_size(&text) {
            Ok(_) => {
                let t = text.trim();
                prop_assert!(t.starts_with(|c: char| c.is_ascii_digit() || c == '.'), "{text:?}");
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
        let _ = parse_rate(&text);
    }

    /// Text made of the characters sizes are written with: still no panic.
    #[test]
    fn size_like_text_is_answered(text in "[ 0-9.KMGTBikmgt/s+-]{0,40}") {
        if let Ok(bytes) = parse_size(&text) {
            // Whatever parses also parses as a rate, per second.
            prop_assert_eq!(parse_rate(&format!("{text}/s")), Ok(bytes));
        }
    }

    /// An integer with a unit is exactly the product, or "too large" past u64::MAX.
    #[test]
    fn integers_with_units_are_exact(n in any::<u64>(), unit in 0..UNITS.len(), spaces in 0..3usize) {
        let (suffix, multiplier) = UNITS[unit];
        let text = format!("{}{n}{}{suffix}{}", " ".repeat(spaces), " ".repeat(spaces % 2), " ".repeat(spaces));
        let expected = u128::from(n) * multiplier;
        match parse_size(&text) {
            Ok(bytes) => prop_assert_eq!(u128::from(bytes), expected, "{}", text),
            Err(e) => {
                prop_assert!(expected > u128::from(u64::MAX), "{text:?}: {e}");
                prop_assert!(e.contains("too large"), "{e}");
            }
        }
    }

    /// Small numbers: a big multiplier is still exact.
    #[test]
    fn small_integers_with_units_are_exact(n in 0u64..1_000_000, unit in 0..UNITS.len()) {
        let (suffix, multiplier) = UNITS[unit];
        prop_assert_eq!(parse_size(&format!("{n}{suffix}")).map(u128::from), Ok(u128::from(n) * multiplier));
    }

    /// A decimal rounds to the nearest byte: within half a byte of the exact value, and
    /// between the whole numbers around it.
    #[test]
    fn decimals_round_to_the_nearest_byte(
        whole in 0u64..100_000,
        fraction in "[0-9]{1,30}",
        unit in 0..UNITS.len(),
    ) {
        let (suffix, multiplier) = UNITS[unit];
        let text = format!("{whole}.{fraction}{suffix}");
        let bytes = u128::from(parse_size(&text).unwrap());
        let low = u128::from(whole) * multiplier;
        prop_assert!(low <= bytes && bytes <= low + multiplier, "{text}: {bytes}");
        // Exact value from the first 18 digits (what the parser reads), scaled by 2*10^18
        // so that "within half a byte" is an integer comparison.
        let digits = &fraction[..fraction.len().min(18)];
        let scale = 10u128.pow(digits.len() as u32);
        let exact_twice = 2 * (low * scale + digits.parse::<u128>().unwrap() * multiplier);
        let got_twice = 2 * bytes * scale;
        prop_assert!(got_twice.abs_diff(exact_twice) <= scale, "{text}: {bytes}");
    }

    /// Unknown units and signs are refused with a message naming them.
    #[test]
    fn unknown_units_are_named(n in 0u64..1000, unit in "[A-Za-z]{1,4}") {
        // A generated unit that happens to be a real one gets a letter more.
        let unit = if UNITS.iter().any(|(u, _)| *u == unit) { format!("{unit}x") } else { unit };
        let err = parse_size(&format!("{n}{unit}")).unwrap_err();
        let quoted = format!("{unit:?}");
        prop_assert!(err.contains(&quoted), "{}", err);
        let negative = format!("-{n}{unit}");
        prop_assert!(parse_size(&negative).is_err());
    }
}
