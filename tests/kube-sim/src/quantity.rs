//! Resource quantities (`500m`, `1Gi`, `2e3`) as k8s.io/apimachinery/pkg/api/resource reads them.

/// Parses a quantity into its value in base units; `None` when the text is not a quantity.
pub fn parse(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || *c == '.' || (*i == 0 && (*c == '+' || *c == '-'))))
        .map(|(i, _)| i)
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if !number.chars().any(|c| c.is_ascii_digit()) || number.matches('.').count() > 1 {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    Some(value * multiplier(suffix)?)
}

fn multiplier(suffix: &str) -> Option<f64> {
    let binary = |power: i32| Some(1024f64.powi(power));
    let decimal = |power: i32| Some(10f64.powi(power));
    match suffix {
        "" => Some(1.0),
        "Ki" => binary(1),
        "Mi" => binary(2),
        "Gi" => binary(3),
        "Ti" => binary(4),
        "Pi" => binary(5),
        "Ei" => binary(6),
        "n" => decimal(-9),
        "u" => decimal(-6),
        "m" => decimal(-3),
        "k" => decimal(3),
        "M" => decimal(6),
        "G" => decimal(9),
        "T" => decimal(12),
        "P" => decimal(15),
        "E" => decimal(18),
        _ => exponent(suffix),
    }
}

fn exponent(suffix: &str) -> Option<f64> {
    let digits = suffix
        .strip_prefix('e')
        .or_else(|| suffix.strip_prefix('E'))?;
    let power: i32 = digits.parse().ok()?;
    Some(10f64.powi(power))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_decimal_binary_and_exponent_suffixes() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1Gi"), Some(1073741824.0));
        assert_eq!(parse("2k"), Some(2000.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("-1"), Some(-1.0));
        assert_eq!(parse("1.5"), Some(1.5));
    }

    #[test]
    fn rejects_text_that_is_not_a_quantity() {
        assert_eq!(parse("abc"), None);
        assert_eq!(parse("1Gb"), None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("1..2"), None);
    }
}
