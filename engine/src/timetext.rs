//! Timestamps as the text CSV and JSON sinks write, without going through `fmt`.
//!
//! Arrow's writers format each timestamp through chrono's `Debug` (or `to_rfc3339`), one
//! `write_char` at a time: on the bundled example that was most of what writing typed
//! timestamps to CSV cost, several times the price of the Parquet column. This writes the
//! same text (tested against Arrow's formatter) into one string buffer, for the common
//! cases: no time zone, or UTC. Anything else (other zones, years outside 0–9999) is left
//! to Arrow's writers, unchanged.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

/// `column` as the strings Arrow's CSV and JSON writers would write for it, if it is a
/// timestamp column this module formats; `None` otherwise (the writer formats it).
pub fn timestamps_as_text(column: &ArrayRef) -> Option<ArrayRef> {
    let DataType::Timestamp(unit, tz) = column.data_type() else {
        return None;
    };
    // With a zone Arrow writes RFC 3339, `Z` for UTC; without one, chrono's `Debug` form.
    let zone_suffix = match tz.as_deref() {
        None => "",
        Some("UTC" | "+00:00") => "Z",
        Some(_) => return None,
    };
    let (values, per_second): (&[i64], i64) = match unit {
        TimeUnit::Second => (column.as_primitive::<TimestampSecondType>().values(), 1),
        TimeUnit::Millisecond => (
            column.as_primitive::<TimestampMillisecondType>().values(),
            1_000,
        ),
        TimeUnit::Microsecond => (
            column.as_primitive::<TimestampMicrosecondType>().values(),
            1_000_000,
        ),
        TimeUnit::Nanosecond => (
            column.as_primitive::<TimestampNanosecondType>().values(),
            1_000_000_000,
        ),
    };
    let nulls = column.logical_nulls();
    let mut out = StringBuilder::with_capacity(values.len(), values.len() * 24);
    let mut text = [0u8; 40];
    for (i, &v) in values.iter().enumerate() {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            out.append_null();
            continue;
        }
        let mut len = write_timestamp(&mut text, v, per_second)?;
        text[len..len + zone_suffix.len()].copy_from_slice(zone_suffix.as_bytes());
        len += zone_suffix.len();
        // Only ASCII digits and separators were written.
        out.append_value(std::str::from_utf8(&text[..len]).ok()?);
    }
    Some(Arc::new(out.finish()))
}

/// Writes `value` (`per_second` units since the epoch) as `YYYY-MM-DDTHH:MM:SS` with the
/// fraction chrono shows: none, 3, 6 or 9 digits, the fewest that hold it; returns the
/// length written. `None` for a year outside 0–9999 (chrono signs those).
fn write_timestamp(out: &mut [u8; 40], value: i64, per_second: i64) -> Option<usize> {
    let seconds = value.div_euclid(per_second);
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(0..=9999).contains(&year) {
        return None;
    }
    *out.first_chunk_mut::<19>()? = *b"0000-00-00T00:00:00";
    digits(&mut out[0..4], year);
    digits(&mut out[5..7], month);
    digits(&mut out[8..10], day);
    digits(&mut out[11..13], of_day / 3600);
    digits(&mut out[14..16], of_day / 60 % 60);
    digits(&mut out[17..19], of_day % 60);
    if nanos == 0 {
        return Some(19);
    }
    out[19] = b'.';
    let (fraction, width) = if nanos % 1_000_000 == 0 {
        (nanos / 1_000_000, 3)
    } else if nanos % 1_000 == 0 {
        (nanos / 1_000, 6)
    } else {
        (nanos, 9)
    };
    digits(&mut out[20..20 + width], fraction);
    Some(20 + width)
}

/// `value` (0 or more) in `slots`' width of decimal digits, zero-padded.
fn digits(slots: &mut [u8], mut value: i64) {
    for slot in slots.iter_mut().rev() {
        *slot = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // test helpers: a failure is the test's
mod tests {
    use arrow::array::{
        TimestampMicrosecondArray, TimestampMillisecondArray, TimestampNanosecondArray,
        TimestampSecondArray,
    };
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    use proptest::prelude::*;

    use super::*;

    /// What Arrow's writers write for each value.
    fn arrow_text(column: &ArrayRef) -> Vec<Option<String>> {
        let f = ArrayFormatter::try_new(column.as_ref(), &FormatOptions::default()).unwrap();
        (0..column.len())
            .map(|i| column.is_valid(i).then(|| f.value(i).to_string()))
            .collect()
    }

    fn ours(column: &ArrayRef) -> Option<Vec<Option<String>>> {
        let text = timestamps_as_text(column)?;
        let s = text.as_string::<i32>();
        Some(
            (0..s.len())
                .map(|i| s.is_valid(i).then(|| s.value(i).to_string()))
                .collect(),
        )
    }

    fn columns(values: &[i64], tz: Option<&str>) -> Vec<ArrayRef> {
        let opt: Vec<Option<i64>> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i % 5 != 3).then_some(v))
            .collect();
        let with = |a: ArrayRef| match tz {
            Some(tz) => arrow::compute::cast(
                &a,
                &match a.data_type() {
                    DataType::Timestamp(u, _) => DataType::Timestamp(*u, Some(tz.into())),
                    _ => unreachable!(),
                },
            )
            .unwrap(),
            None => a,
        };
        vec![
            with(Arc::new(TimestampSecondArray::from(opt.clone()))),
            with(Arc::new(TimestampMillisecondArray::from(opt.clone()))),
            with(Arc::new(TimestampMicrosecondArray::from(opt.clone()))),
            with(Arc::new(TimestampNanosecondArray::from(opt))),
        ]
    }

    #[test]
    fn edges_read_as_arrow_writes_them() {
        let values = [
            0,
            1,
            -1,
            999,
            1_000,
            1_000_000,
            86_399,
            86_400,
            -86_400,
            951_782_400,     // 2000-02-29
            253_402_300_799, // 9999-12-31T23:59:59
            -62_167_219_200, // 0000-01-01
        ];
        for tz in [None, Some("UTC"), Some("+00:00")] {
            for column in columns(&values, tz) {
                let ours = ours(&column).expect("every value is in 0–9999");
                assert_eq!(ours, arrow_text(&column), "{:?}", column.data_type());
            }
        }
        // Years Arrow signs are left to it (the whole column), and so are other zones.
        for far in [253_402_300_800, -62_167_219_201, 1_764_547_200_123] {
            assert!(ours(&columns(&[0, far], None)[0]).is_none(), "{far}");
        }
        let paris = columns(&[0], Some("Europe/Paris"));
        assert!(paris.iter().all(|c| ours(c).is_none()));
    }

    proptest! {
        /// Values of years 0–9999 in every unit (the seconds, read as smaller units, fall
        /// near 1970): always formatted here, always as Arrow does.
        #[test]
        fn values_in_range_read_as_arrow_writes_them(
            values in proptest::collection::vec(
                prop_oneof![
                    -62_167_219_200i64..253_402_300_800,
                    (0i64..253_402_300).prop_map(|s| s * 1_000),
                ],
                1..20,
            ),
            utc in any::<bool>(),
        ) {
            for column in columns(&values, utc.then_some("UTC")) {
                let ours = ours(&column);
                prop_assert!(ours.is_some(), "{:?} declined", column.data_type());
                prop_assert_eq!(ours, Some(arrow_text(&column)), "{:?}", column.data_type());
            }
        }

        /// Any value: where it is formatted here, it reads as Arrow writes it.
        #[test]
        fn any_value_taken_reads_as_arrow_writes_it(value in any::<i64>(), utc in any::<bool>()) {
            for column in columns(&[value], utc.then_some("UTC")) {
                if let Some(ours) = ours(&column) {
                    prop_assert_eq!(ours, arrow_text(&column), "{:?}", column.data_type());
                }
            }
        }
    }
}
