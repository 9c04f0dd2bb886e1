//! Durations as the scenario and the control API write them: `90s`, `-3h`, `2d`, `200ms`,
//! `1h30m`, optionally signed; and ISO-8601 durations (`PT12H`, `P1D`) as the Log Analytics
//! `timespan` writes them.

use chrono::Duration;

/// Parses `[-|+]<n><unit>[<n><unit>…]` with units `ms`, `s`, `m`, `h`, `d`, `w`.
pub fn parse(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if body.is_empty() {
        return Err(format!("invalid duration {text:?}: empty"));
    }
    let mut total = Duration::zero();
    let mut rest = body;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!(
                "invalid duration {text:?}: expected a number like 90s, 3h, -2d"
            ));
        }
        let number: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let millis_per = match unit {
            "ms" => 1.0,
            "s" => 1_000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            "d" => 86_400_000.0,
            "w" => 7.0 * 86_400_000.0,
            _ => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {unit:?} (use ms, s, m, h, d)"
                ));
            }
        };
        let ms = (number * millis_per).round();
        total = Duration::try_milliseconds(ms as i64)
            .filter(|_| ms.abs() < 1e15)
            .and_then(|d| total.checked_add(&d))
            .ok_or_else(|| format!("invalid duration {text:?}: too large"))?;
    }
    Ok(if neg { -total } else { total })
}

/// Parses an ISO-8601 duration such as `PT1H`, `P1D`, `P2DT3H4M5.5S` (no years or months:
/// they have no fixed length).
pub fn parse_iso8601(text: &str) -> Result<Duration, String> {
    let err = || format!("invalid ISO-8601 duration {text:?}");
    let t = text.trim();
    let body = t
        .strip_prefix('P')
        .or_else(|| t.strip_prefix('p'))
        .ok_or_else(err)?;
    let mut total = Duration::zero();
    let mut in_time = false;
    let mut num = String::new();
    let mut any = false;
    for c in body.chars() {
        match c {
            'T' | 't' => {
                if !num.is_empty() {
                    return Err(err());
                }
                in_time = true;
            }
            '0'..='9' | '.' | ',' => num.push(if c == ',' { '.' } else { c }),
            _ => {
                let n: f64 = num.parse().map_err(|_| err())?;
                num.clear();
                let secs = match (c.to_ascii_uppercase(), in_time) {
                    ('W', false) => n * 7.0 * 86_400.0,
                    ('D', false) => n * 86_400.0,
                    ('H', true) => n * 3_600.0,
                    ('M', true) => n * 60.0,
                    ('S', true) => n,
                    _ => return Err(err()),
                };
                let ms = (secs * 1000.0).round();
                total = Duration::try_milliseconds(ms as i64)
                    .filter(|_| ms.abs() < 1e15)
                    .and_then(|d| total.checked_add(&d))
                    .ok_or_else(err)?;
                any = true;
            }
        }
    }
    if !num.is_empty() || !any {
        return Err(err());
    }
    Ok(total)
}

/// Formats a duration the way the scenario writes them (`1h`, `90s`, `200ms`).
pub fn format(d: Duration) -> String {
    let ms = d.num_milliseconds();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn parse_never_panics_and_round_trips(text in ".{0,12}", secs in -1_000_000i64..1_000_000) {
            let _ = parse(&text);
            let _ = parse_iso8601(&text);
            prop_assert_eq!(parse(&format(Duration::seconds(secs))).unwrap(), Duration::seconds(secs));
        }

        #[test]
        fn huge_numbers_are_errors_not_panics(n in "[0-9]{10,30}", unit in "(ms|s|m|h|d|w)") {
            let _ = parse(&format!("{n}{unit}"));
            let _ = parse(&format!("{n}{unit}{n}{unit}"));
            let _ = parse_iso8601(&format!("P{n}DT{n}H"));
        }
    }

    #[test]
    fn simple_units() {
        assert_eq!(parse("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse("-3h").unwrap(), Duration::hours(-3));
        assert_eq!(parse("2d").unwrap(), Duration::days(2));
        assert_eq!(parse("200ms").unwrap(), Duration::milliseconds(200));
        assert_eq!(parse("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse("0s").unwrap(), Duration::zero());
        assert!(parse("3").is_err());
        assert!(parse("h").is_err());
        assert!(parse("3y").is_err());
    }

    #[test]
    fn iso() {
        assert_eq!(parse_iso8601("PT1H").unwrap(), Duration::hours(1));
        assert_eq!(parse_iso8601("P1D").unwrap(), Duration::days(1));
        assert_eq!(
            parse_iso8601("P1DT2H3M4S").unwrap(),
            Duration::seconds(86_400 + 7_384)
        );
        assert!(parse_iso8601("P1M").is_err());
        assert!(parse_iso8601("1H").is_err());
    }
}
