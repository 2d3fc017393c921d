//! Kubernetes quantities (`500m`, `1.5`, `1Gi`, `129e6`): parse, compare, print.
//!
//! The grammar is the one of `k8s.io/apimachinery/pkg/api/resource/quantity.go`: an optional
//! sign, a decimal number, then either a binary suffix (`Ki` .. `Ei`), a decimal SI suffix
//! (`n`, `u`, `m`, `k`, `M` .. `E`) or a decimal exponent (`e3`, `E-2`). Values are kept as an
//! exact count of nano-units, so comparisons never go through floating point.

use std::cmp::Ordering;
use std::fmt;

/// Nano-units per unit: the smallest step a quantity may express is `1n`.
const NANOS_PER_UNIT_EXP: i32 = 9;

/// What the error messages say a quantity may look like.
const ACCEPTED: &str = "accepted: a non-negative decimal number with an optional suffix \
    Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent such as e6";

/// A parsed, non-negative quantity. It keeps the text as written (what goes into the
/// manifest) and an exact value for comparisons; equality and order are by value, so
/// `1Gi == 1024Mi`.
#[derive(Debug, Clone)]
pub struct Quantity {
    text: String,
    nanos: i128,
}

/// Why a text is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuantityError {
    /// Nothing was written.
    Empty,
    /// The number part is not a decimal number (`1.5.`, `abc`).
    Number { number: String },
    /// The text after the number is not a known suffix (`100j`, `1.5.Gi`).
    Suffix { suffix: String },
    /// The value is below zero.
    Negative,
    /// The value is finer than one nano-unit (`0.1n`).
    TooPrecise,
    /// The value does not fit the runner's range (about 1.7e29).
    TooLarge,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QuantityError::Empty => write!(f, "empty quantity ({ACCEPTED})"),
            QuantityError::Number { number } => {
                write!(f, "{number:?} is not a decimal number ({ACCEPTED})")
            }
            QuantityError::Suffix { suffix } => {
                write!(f, "unknown suffix {suffix:?} ({ACCEPTED})")
            }
            QuantityError::Negative => write!(f, "negative quantity ({ACCEPTED})"),
            QuantityError::TooPrecise => write!(f, "finer than the smallest step 1n"),
            QuantityError::TooLarge => write!(f, "too large"),
        }
    }
}

impl std::error::Error for QuantityError {}

impl Quantity {
    /// Parses `text` as a non-negative Kubernetes quantity.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        if text.is_empty() {
            return Err(QuantityError::Empty);
        }
        let (negative, unsigned) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let split = unsigned.find(|c: char| !c.is_ascii_digit() && c != '.');
        let (number, suffix) = unsigned.split_at(split.unwrap_or(unsigned.len()));

        let (mantissa, fraction_digits) = parse_decimal(number)?;
        let scale = parse_suffix(suffix)?;
        let nanos = scale_to_nanos(mantissa, fraction_digits, scale)?;
        if negative && nanos != 0 {
            return Err(QuantityError::Negative);
        }
        Ok(Quantity {
            text: text.to_string(),
            nanos,
        })
    }

    /// The quantity as written in the config file.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exact value in nano-units (`1` is 1_000_000_000, `500m` is 500_000_000).
    pub fn nanos(&self) -> i128 {
        self.nanos
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Quantity {
    fn eq(&self, other: &Self) -> bool {
        self.nanos == other.nanos
    }
}

impl Eq for Quantity {}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Quantity {
    fn cmp(&self, other: &Self) -> Ordering {
        self.nanos.cmp(&other.nanos)
    }
}

/// The multiplier a suffix stands for: `2^binary * 10^decimal`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Scale {
    binary: u32,
    decimal: i32,
}

/// Splits `digits[.digits]` into its digits as one integer and the count of fraction digits.
fn parse_decimal(number: &str) -> Result<(i128, i32), QuantityError> {
    let invalid = || QuantityError::Number {
        number: number.to_string(),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
        return Err(invalid());
    }

    let mut mantissa: i128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(i128::from(digit - b'0')))
            .ok_or(QuantityError::TooLarge)?;
    }
    let fraction_digits = i32::try_from(fraction.len()).map_err(|_| QuantityError::TooLarge)?;
    Ok((mantissa, fraction_digits))
}

/// Reads the suffix after the number.
fn parse_suffix(suffix: &str) -> Result<Scale, QuantityError> {
    let binary = |power: u32| {
        Ok(Scale {
            binary: power,
            decimal: 0,
        })
    };
    let decimal = |power: i32| {
        Ok::<_, QuantityError>(Scale {
            binary: 0,
            decimal: power,
        })
    };
    match suffix {
        "" => decimal(0),
        "Ki" => binary(10),
        "Mi" => binary(20),
        "Gi" => binary(30),
        "Ti" => binary(40),
        "Pi" => binary(50),
        "Ei" => binary(60),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => parse_exponent(suffix).and_then(decimal),
    }
}

/// Reads a decimal exponent such as `e6`, `E-3` or `e+2`.
fn parse_exponent(suffix: &str) -> Result<i32, QuantityError> {
    let invalid = || QuantityError::Suffix {
        suffix: suffix.to_string(),
    };
    let rest = suffix.strip_prefix(['e', 'E']).ok_or_else(invalid)?;
    let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let exponent: i32 = rest.parse().map_err(|_| QuantityError::TooLarge)?;
    if exponent.abs() > 100 {
        return Err(QuantityError::TooLarge);
    }
    Ok(exponent)
}

/// Computes `mantissa * 10^-fraction_digits * scale` in nano-units, exactly.
fn scale_to_nanos(
    mantissa: i128,
    fraction_digits: i32,
    scale: Scale,
) -> Result<i128, QuantityError> {
    let shifted = 1i128
        .checked_shl(scale.binary)
        .and_then(|factor| mantissa.checked_mul(factor))
        .ok_or(QuantityError::TooLarge)?;
    let exponent = NANOS_PER_UNIT_EXP + scale.decimal - fraction_digits;
    if shifted == 0 {
        return Ok(0);
    }
    if exponent >= 0 {
        let factor = 10i128
            .checked_pow(exponent.unsigned_abs())
            .ok_or(QuantityError::TooLarge)?;
        return shifted.checked_mul(factor).ok_or(QuantityError::TooLarge);
    }
    let divisor = 10i128
        .checked_pow(exponent.unsigned_abs())
        .ok_or(QuantityError::TooPrecise)?;
    if shifted % divisor != 0 {
        return Err(QuantityError::TooPrecise);
    }
    Ok(shifted / divisor)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn parses_the_usual_forms_to_exact_values() {
        assert_eq!(q("500m").nanos(), 500_000_000);
        assert_eq!(q("1.5").nanos(), 1_500_000_000);
        assert_eq!(q("0.1").nanos(), 100_000_000);
        assert_eq!(q("1Gi").nanos(), (1i128 << 30) * 1_000_000_000);
        assert_eq!(q("129e6").nanos(), 129_000_000 * 1_000_000_000);
        assert_eq!(q("129M"), q("129e6"));
        assert_eq!(q("1E3"), q("1k"));
        assert_eq!(q("1E").nanos(), 10i128.pow(27));
        assert_eq!(q(".5"), q("500m"));
        assert_eq!(q("+2"), q("2"));
        assert_eq!(q("0"), q("-0"));
        assert_eq!(q("1.5Ki").nanos(), 1536 * 1_000_000_000);
        assert_eq!(q("100n").nanos(), 100);
    }

    #[test]
    fn compares_by_value_not_text() {
        assert!(q("1500m") < q("2"));
        assert!(q("1Gi") > q("1000Mi"));
        assert!(q("1G") < q("1Gi"));
        assert!(q("100Mi") < q("1Gi"));
        assert_eq!(q("1Gi"), q("1024Mi"));
        assert_eq!(q("1Gi").as_str(), "1Gi");
        assert_eq!(q("1024Mi").to_string(), "1024Mi");
    }

    #[test]
    fn rejects_unknown_suffixes_and_malformed_numbers() {
        assert_eq!(
            Quantity::parse("100j"),
            Err(QuantityError::Suffix { suffix: "j".into() })
        );
        assert_eq!(
            Quantity::parse("1.5.Gi"),
            Err(QuantityError::Number {
                number: "1.5.".into()
            })
        );
        assert_eq!(Quantity::parse(""), Err(QuantityError::Empty));
        assert_eq!(
            Quantity::parse("."),
            Err(QuantityError::Number { number: ".".into() })
        );
        assert_eq!(
            Quantity::parse("Gi"),
            Err(QuantityError::Number { number: "".into() })
        );
        assert_eq!(
            Quantity::parse("1 Gi"),
            Err(QuantityError::Suffix {
                suffix: " Gi".into()
            })
        );
        assert_eq!(
            Quantity::parse("1e"),
            Err(QuantityError::Suffix { suffix: "e".into() })
        );
        assert_eq!(
            Quantity::parse("1gi"),
            Err(QuantityError::Suffix {
                suffix: "gi".into()
            })
        );
        assert_eq!(
            Quantity::parse("1Gi2"),
            Err(QuantityError::Suffix {
                suffix: "Gi2".into()
            })
        );
    }

    #[test]
    fn rejects_negative_too_precise_and_huge_values() {
        assert_eq!(Quantity::parse("-1"), Err(QuantityError::Negative));
        assert_eq!(Quantity::parse("-500m"), Err(QuantityError::Negative));
        assert_eq!(Quantity::parse("0.1n"), Err(QuantityError::TooPrecise));
        assert_eq!(Quantity::parse("1e99"), Err(QuantityError::TooLarge));
        assert_eq!(Quantity::parse("1e1000"), Err(QuantityError::TooLarge));
        assert_eq!(
            Quantity::parse(&"9".repeat(60)),
            Err(QuantityError::TooLarge)
        );
    }
}
