//! Durations as Flux writes them in specs (`30s`, `5m`, `1h30m`, `1m0s`, `500ms`): one type,
//! [`GoDuration`], for every `interval`, `retryInterval` and `timeout` field and for the source
//! server's config loader.
//!
//! The accepted language is exactly Flux's CRD pattern, [`PATTERN`], which the generated CRDs
//! carry, so the API server refuses at admission what the parser would refuse later. Parsing is
//! still needed: objects stored before the pattern existed, and the source server's config
//! file, never went through admission. A [`GoDuration`] therefore deserializes from any string
//! and is checked when read ([`GoDuration::field`]), so a bad value becomes a status condition
//! naming the field instead of an object the controller cannot even decode.
//!
//! Zero is refused as well: every field using a duration is a period or a deadline, and a zero
//! period requeues in a hot loop against the API server.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Flux's pattern for `metav1.Duration` fields (units `ms`, `s`, `m`, `h`).
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$";

/// The longest duration Go's `time.Duration` holds (~292 years), in nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

/// Why a duration string is refused.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DurationError {
    /// The string is empty.
    #[error("empty duration (expected a Go duration such as \"30s\", \"5m\" or \"1h30m\")")]
    Empty,
    /// The string is not a sequence of number-unit pairs with units `ms`, `s`, `m`, `h`.
    #[error(
        "{input:?} is not a duration: {why} (expected a Go duration such as \"30s\", \"5m\" or \
         \"1h30m\"; units ms, s, m, h)"
    )]
    Syntax {
        /// The refused string.
        input: String,
        /// What is wrong with it.
        why: String,
    },
    /// The duration is zero, which as a period would requeue in a hot loop.
    #[error("{input:?} is zero: use a positive duration such as \"1m\"")]
    Zero {
        /// The refused string.
        input: String,
    },
    /// The duration is longer than Go's `time.Duration` holds.
    #[error("{input:?} is out of range (at most about 292 years)")]
    OutOfRange {
        /// The refused string.
        input: String,
    },
}

/// A spec field whose value is refused; the message names the field's path.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {source}")]
pub struct FieldError {
    /// Path of the field, e.g. `spec.retryInterval`.
    pub field: &'static str,
    /// What is wrong with its value.
    pub source: DurationError,
}

/// A duration spec field, kept as written (`1m30s`). Deserializes from any string — see the
/// module docs for why — and is validated by [`GoDuration::to_duration`] and
/// [`GoDuration::field`]. The JSON schema is a string with [`PATTERN`]. The default is empty,
/// which is refused when read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct GoDuration(String);

impl GoDuration {
    /// The value as written in the object.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The duration, or why the value is refused.
    pub fn to_duration(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.0)
    }

    /// The duration of the field at path `field`, or an error naming it.
    pub fn field(&self, field: &'static str) -> Result<Duration, FieldError> {
        self.to_duration()
            .map_err(|source| FieldError { field, source })
    }

    /// An optional field: its duration, or `default` when absent.
    pub fn field_or(
        value: Option<&GoDuration>,
        field: &'static str,
        default: Duration,
    ) -> Result<Duration, FieldError> {
        value.map_or(Ok(default), |v| v.field(field))
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    /// A checked value: refuses what [`parse_duration`] refuses.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_duration(s)?;
        Ok(Self(s.to_string()))
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(format_duration(d))
    }
}

/// Unchecked, for literals in code and tests; reading it still validates.
impl From<&str> for GoDuration {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> Cow<'static, str> {
        "GoDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
        })
    }
}

/// Parses a duration in [`PATTERN`]'s language; zero and values beyond Go's range are refused.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    if input.is_empty() {
        return Err(DurationError::Empty);
    }
    let syntax = |why: &str| DurationError::Syntax {
        input: input.to_string(),
        why: why.to_string(),
    };
    let out_of_range = || DurationError::OutOfRange {
        input: input.to_string(),
    };
    let mut nanos: u128 = 0;
    let mut rest = input;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if int_len == 0 {
            return Err(syntax("expected a number"));
        }
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                if len == 0 {
                    return Err(syntax("expected digits after '.'"));
                }
                f.split_at(len)
            }
            None => ("", after),
        };
        let unit_len = after
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale: u128 = match unit {
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(syntax("missing unit")),
            _ => return Err(syntax(&format!("unknown unit {unit:?}"))),
        };
        let int: u128 = int.parse().map_err(|_| out_of_range())?;
        // Digits beyond nanosecond precision cannot change the result.
        let frac = &frac[..frac.len().min(13)];
        let frac_value: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<u128>().map_err(|_| out_of_range())? * scale
                / 10u128.pow(frac.len() as u32)
        };
        nanos = int
            .checked_mul(scale)
            .and_then(|n| n.checked_add(frac_value))
            .and_then(|n| n.checked_add(nanos))
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(out_of_range)?;
        rest = after;
    }
    if nanos == 0 {
        return Err(DurationError::Zero {
            input: input.to_string(),
        });
    }
    let secs = u64::try_from(nanos / 1_000_000_000).expect("bounded by MAX_NANOS");
    let sub = u32::try_from(nanos % 1_000_000_000).expect("below one second");
    Ok(Duration::new(secs, sub))
}

/// Formats like Go's `time.Duration.String()` for whole seconds (`1h0m0s`, `5m0s`, `30s`), and
/// in milliseconds below a second.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if secs == 0 {
        return format!("{}ms", d.as_millis());
    }
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1m0s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.5h"), Ok(Duration::from_secs(1800)));
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(
            parse_duration(&format_duration(Duration::from_secs(5400))),
            Ok(Duration::from_secs(5400))
        );
    }

    #[test]
    fn refuses_zero_typos_and_overflow() {
        for zero in ["0s", "0m0s", "0.0h", "0ms"] {
            assert!(
                matches!(parse_duration(zero), Err(DurationError::Zero { .. })),
                "{zero:?} must be refused as zero"
            );
        }
        for bad in [
            "", "0", "5", "m", "5x", "5mins", "-5s", "1h-3m", " 5m", "5m ", "5.m", ".5s", "5 m",
            "1us", "1ns", "1d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
        }
        assert!(matches!(
            parse_duration("3000000h"),
            Err(DurationError::OutOfRange { .. })
        ));
        assert!(matches!(
            parse_duration("99999999999999999999999999999999999999999h"),
            Err(DurationError::OutOfRange { .. })
        ));
        let msg = parse_duration("5mins").expect_err("typo").to_string();
        assert!(msg.contains("unknown unit \"mins\""), "{msg}");
    }

    #[test]
    fn field_errors_name_the_field() {
        let d = GoDuration::from("0s");
        let err = d.field("spec.interval").expect_err("zero");
        assert!(
            err.to_string().starts_with("spec.interval: \"0s\" is zero"),
            "{err}"
        );
        let absent = GoDuration::field_or(None, "spec.timeout", Duration::from_secs(7));
        assert_eq!(absent, Ok(Duration::from_secs(7)));
        assert!("1x".parse::<GoDuration>().is_err());
        let ok: GoDuration = serde_json::from_value(serde_json::json!("5mins"))
            .expect("any string deserializes; the check comes when the value is read");
        assert!(ok.to_duration().is_err());
    }

    /// The CRD pattern (checked by the API server at admission) and the parser (checked by
    /// Ferry when it reads a value) accept the same strings, zero aside.
    #[test]
    fn parser_and_crd_pattern_agree() {
        let re = regex::Regex::new(PATTERN).expect("valid pattern");
        for s in [
            "30s",
            "5m",
            "1h30m",
            "1m0s",
            "500ms",
            "1.5s",
            "10h5m3s250ms",
            "5",
            "m",
            "5x",
            "5mins",
            "-5s",
            "1h-3m",
            " 5m",
            "5.m",
            ".5s",
            "5 m",
            "1us",
            "1ns",
            "1d",
            "1h1h",
            "1.25m",
        ] {
            assert_eq!(
                re.is_match(s),
                parse_duration(s).is_ok(),
                "pattern and parser disagree on {s:?}"
            );
        }
        assert!(re.is_match("0s") && parse_duration("0s").is_err());
    }
}
