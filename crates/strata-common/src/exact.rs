//! Conversions that must not change a value: a key looked up, a bound
//! narrowed, a number bound to an integer parameter. A cast that rounds,
//! truncates or wraps (1.9 to 1, 1.555 to 1.56) would name another row.

use datafusion::scalar::ScalarValue;

/// Whether `converted` (a cast of `original`) is still `original`'s value:
/// cast back to `original`'s type, it compares equal. 1.0 → 1 is; 1.9 → 1 is
/// not, nor is anything that does not cast back.
pub fn keeps_value(converted: &ScalarValue, original: &ScalarValue) -> bool {
    converted
        .cast_to(&original.data_type())
        .is_ok_and(|back| back.partial_cmp(original) == Some(std::cmp::Ordering::Equal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_value_preserving_casts_keep_the_value() {
        let f = |v: f64| ScalarValue::Float64(Some(v));
        assert!(keeps_value(&ScalarValue::Int64(Some(1)), &f(1.0)));
        assert!(!keeps_value(&ScalarValue::Int64(Some(1)), &f(1.9)));
        assert!(!keeps_value(&ScalarValue::Int32(Some(0)), &f(f64::NAN)));
    }
}
