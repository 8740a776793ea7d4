//! Text to timestamps as Arrow's safe cast reads it, fast where the text is plain ISO 8601.
//!
//! Arrow reads each value through a general parser (many layouts, offsets, time zones);
//! on a million rows that was the largest single cost of enforcing the example contract.
//! Most timestamp text is one layout, `YYYY-MM-DD[T ]HH:MM:SS[.fffffffff]`, which is read
//! here digit by digit. Every other value (another layout, an offset, a leap second, a
//! value out of the unit's range, text that is no time at all) is read by Arrow's cast, so
//! the result is the one Arrow gives: the fast path only decides *who* reads a value, never
//! *what* it reads as. One exception: Arrow reads a 60th second (`12:30:60`) as the next
//! minute's first; that changes the value, so here it does not convert (a `type` violation).

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Int64Array, StringArray,
    make_array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{CastOptions, cast, cast_with_options};
use arrow::datatypes::{DataType, Int64Type, TimeUnit};
use arrow::error::ArrowError;

use crate::check::Strs;

/// `input` cast to `to` exactly as `cast_with_options(input, to, options)` would, when
/// `input` is text and `to` a timestamp without a zone or in UTC; `None` for any other
/// pair (the caller casts as usual).
pub(crate) fn text_to_timestamp(
    input: &dyn Array,
    to: &DataType,
    options: &CastOptions<'_>,
) -> Result<Option<ArrayRef>, ArrowError> {
    let DataType::Timestamp(unit, tz) = to else {
        return Ok(None);
    };
    // A zone other than UTC reads zone-less text as local time there: Arrow's business.
    if !tz.as_deref().is_none_or(|z| matches!(z, "UTC" | "+00:00")) {
        return Ok(None);
    }
    // Without Arrow's `chrono-tz` feature, "UTC" is no zone it knows: its cast fails, and
    // so must this one.
    if let Some(zone) = tz.as_deref()
        && zone.parse::<arrow::array::timezone::Tz>().is_err()
    {
        return Ok(None);
    }
    let Some(strs) = Strs::new(input) else {
        return Ok(None);
    };
    let nulls = input.logical_nulls();
    let rows = input.len();
    // Values as 64-bit integers and which of them are set, built in place: collecting
    // `Option`s and then an array from them cost as much as reading the text.
    let mut values = vec![0i64; rows];
    let mut set = BooleanBufferBuilder::new(rows);
    set.append_n(rows, false);
    // Values the fast path declined: non-null text it did not read.
    let mut declined = Vec::new();
    let mut months = MonthStart::default();
    for (i, value) in values.iter_mut().enumerate() {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            continue;
        }
        match plain_iso(strs.value(i).as_bytes(), &mut months)
            .and_then(|(s, n)| in_unit(s, n, *unit))
        {
            Some(v) => {
                *value = v;
                set.set_bit(i, true);
            }
            None => declined.push(i),
        }
    }
    if !declined.is_empty() {
        let odd = StringArray::from_iter_values(declined.iter().map(|&i| strs.value(i)));
        let read = cast(&cast_with_options(&odd, to, options)?, &DataType::Int64)?;
        let read = read.as_primitive::<Int64Type>();
        for (k, &i) in declined.iter().enumerate() {
            // Arrow reads a 60th second as the next minute's first (`12:30:60` is 12:31:00,
            // `23:59:60` tomorrow): a changed value, which the `type` rule rejects.
            let sixtieth = strs.value(i).as_bytes().get(16..19) == Some(b":60");
            if read.is_valid(k) && !sixtieth {
                values[i] = read.value(k);
                set.set_bit(i, true);
            }
        }
    }
    // The values as 64-bit integers, relabelled as `to` (the same layout): no copy.
    let data = Int64Array::new(values.into(), Some(NullBuffer::new(set.finish())))
        .into_data()
        .into_builder()
        .data_type(to.clone())
        .build()?;
    Ok(Some(make_array(data)))
}

/// `cast`, text read as a time of day, with what is no time of day set to null so the
/// `type` rule rejects it: Arrow reads `12:30:60` as 12:31:00 and `23:59:60` as a time past
/// the end of the day, and text without a `:` (`86400000000`, `-1`) as a count of the unit,
/// in or out of the day; no sink could write a time outside it.
pub(crate) fn null_bad_times(input: &dyn Array, cast: ArrayRef) -> Result<ArrayRef, ArrowError> {
    let day: i64 = match cast.data_type() {
        DataType::Time32(TimeUnit::Second) => 86_400,
        DataType::Time32(_) => 86_400_000,
        DataType::Time64(TimeUnit::Microsecond) => 86_400_000_000,
        DataType::Time64(_) => 86_400_000_000_000,
        _ => return Ok(cast),
    };
    let Some(strs) = Strs::new(input) else {
        return Ok(cast);
    };
    let values = arrow::compute::cast(&cast, &DataType::Int64)?;
    let values = values.as_primitive::<Int64Type>();
    let bad = BooleanArray::from(
        (0..cast.len())
            .map(|i| {
                cast.is_valid(i) && {
                    let text = strs.value(i);
                    !text.contains(':')
                        || sixtieth_second(text)
                        || !(0..day).contains(&values.value(i))
                }
            })
            .collect::<Vec<_>>(),
    );
    if bad.true_count() == 0 {
        return Ok(cast);
    }
    arrow::compute::nullif(&cast, &bad)
}

/// Whether a time of day's text (`HH:MM:SS[.f]`, with or without AM/PM) has 60 seconds.
fn sixtieth_second(text: &str) -> bool {
    let mut fields = text.trim().splitn(3, ':');
    let (Some(_), Some(_), Some(seconds)) = (fields.next(), fields.next(), fields.next()) else {
        return false;
    };
    let s = seconds.as_bytes();
    s.get(..2) == Some(b"60") && !s.get(2).is_some_and(u8::is_ascii_digit)
}

/// The day number of the first of the month last read: a column's timestamps mostly fall
/// in a few months, so the calendar arithmetic runs once per change of month.
#[derive(Default)]
struct MonthStart {
    /// `YYYY-MM` as read, and the days from 1970-01-01 to its first day.
    last: Option<([u8; 7], i64)>,
}

impl MonthStart {
    fn days(&mut self, text: [u8; 7], year: i64, month: i64) -> i64 {
        match self.last {
            Some((t, days)) if t == text => days,
            _ => {
                let days = days_from_civil(year, month, 1);
                self.last = Some((text, days));
                days
            }
        }
    }
}

/// Seconds since the epoch and nanoseconds of `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}]`, a valid
/// calendar date and a time of day without a leap second; `None` for anything else.
fn plain_iso(b: &[u8], months: &mut MonthStart) -> Option<(i64, u32)> {
    if b.len() < 19 || b.len() == 20 || b.len() > 29 {
        return None;
    }
    let head: &[u8; 19] = b[..19].try_into().ok()?;
    // Every digit position at once: the layout is fixed.
    const DIGITS: [usize; 14] = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if !DIGITS.iter().all(|&i| head[i].is_ascii_digit())
        || head[4] != b'-'
        || head[7] != b'-'
        || !matches!(head[10], b'T' | b' ')
        || head[13] != b':'
        || head[16] != b':'
    {
        return None;
    }
    let d = |i: usize| i64::from(head[i] - b'0');
    let two = |i: usize| d(i) * 10 + d(i + 1);
    let year = d(0) * 1000 + d(1) * 100 + two(2);
    let (month, day) = (two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let nanos = match b.get(19..) {
        Some([b'.', fraction @ ..]) if !fraction.is_empty() => {
            let n = fraction.iter().try_fold(0u32, |n, &c| {
                c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
            })?;
            // Scale to nine digits: `.5` is 500 000 000 ns.
            n * 10u32.pow(9 - fraction.len() as u32)
        }
        Some([]) => 0,
        _ => return None,
    };
    let month_text: [u8; 7] = head[..7].try_into().ok()?;
    let days = months.days(month_text, year, month) + day - 1;
    Some((days * 86_400 + hour * 3_600 + minute * 60 + second, nanos))
}

/// The value in `unit`, fractions below it cut toward the past, as Arrow does; `None` where
/// it overflows (nanoseconds beyond 2262).
fn in_unit(seconds: i64, nanos: u32, unit: TimeUnit) -> Option<i64> {
    let nanos = i64::from(nanos);
    match unit {
        TimeUnit::Second => Some(seconds),
        TimeUnit::Millisecond => seconds.checked_mul(1_000)?.checked_add(nanos / 1_000_000),
        TimeUnit::Microsecond => seconds.checked_mul(1_000_000)?.checked_add(nanos / 1_000),
        TimeUnit::Nanosecond => seconds.checked_mul(1_000_000_000)?.checked_add(nanos),
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let month_from_march = (month + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::text_to_timestamp;
    use arrow::array::{Array, ArrayRef, StringArray, StringViewArray};
    use arrow::compute::{CastOptions, cast_with_options};
    use arrow::datatypes::{DataType, TimeUnit};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn targets() -> Vec<DataType> {
        let mut t = Vec::new();
        for unit in [
            TimeUnit::Second,
            TimeUnit::Millisecond,
            TimeUnit::Microsecond,
            TimeUnit::Nanosecond,
        ] {
            t.push(DataType::Timestamp(unit, None));
            t.push(DataType::Timestamp(unit, Some("UTC".into())));
            t.push(DataType::Timestamp(unit, Some("+00:00".into())));
        }
        t
    }

    /// The fast cast and Arrow's agree on every value, for every unit.
    fn agrees(values: &[Option<&str>]) {
        let safe = CastOptions {
            safe: true,
            ..Default::default()
        };
        let inputs: [ArrayRef; 2] = [
            Arc::new(StringArray::from(values.to_vec())),
            Arc::new(StringViewArray::from(values.to_vec())),
        ];
        for input in &inputs {
            for to in targets() {
                let arrow = cast_with_options(input, &to, &safe);
                let fast = match text_to_timestamp(input.as_ref(), &to, &safe) {
                    Ok(Some(fast)) => fast,
                    // The zone is unknown to this build of Arrow: the caller's cast fails.
                    Ok(None) if arrow.is_err() => continue,
                    other => panic!("no fast cast of {:?} to {to}: {other:?}", input.data_type()),
                };
                let Ok(arrow) = arrow else {
                    panic!("arrow cannot cast to {to}");
                };
                // Arrow rolls a 60th second into the next minute; this cast rejects it.
                let sixtieth = arrow::array::BooleanArray::from(
                    values
                        .iter()
                        .map(|v| v.is_some_and(|t| t.as_bytes().get(16..19) == Some(b":60")))
                        .collect::<Vec<_>>(),
                );
                let Ok(arrow) = arrow::compute::nullif(&arrow, &sixtieth) else {
                    panic!("nullif");
                };
                assert_eq!(fast.to_data(), arrow.to_data(), "{values:?} to {to}");
            }
        }
    }

    #[test]
    fn plain_text_takes_the_fast_path() {
        for text in [
            "2026-11-09T21:38:49",
            "2026-11-09 21:38:49.123",
            "2024-02-29T00:00:00",
        ] {
            let mut months = super::MonthStart::default();
            assert!(
                super::plain_iso(text.as_bytes(), &mut months).is_some(),
                "{text}"
            );
        }
        for text in [
            "2023-02-29T00:00:00",
            "2016-12-31T23:59:60",
            "2026-01-01T00:00:00Z",
        ] {
            let mut months = super::MonthStart::default();
            assert!(
                super::plain_iso(text.as_bytes(), &mut months).is_none(),
                "{text}"
            );
        }
    }

    #[test]
    fn calendar_edges_read_as_arrow_reads_them() {
        agrees(&[
            Some("2026-11-09T21:38:49"),
            Some("2026-11-09 21:38:49"),
            Some("2024-02-29T00:00:00"),
            Some("2023-02-29T00:00:00"),
            Some("1900-02-29T12:00:00"),
            Some("2000-02-29T12:00:00"),
            Some("0000-01-01T00:00:00"),
            Some("9999-12-31T23:59:59.999999999"),
            Some("1969-12-31T23:59:59.5"),
            Some("1677-09-21T00:12:43.145224191"),
            Some("2262-04-11T23:47:16.854775808"),
            Some("2016-12-31T23:59:60"),
            Some("2026-01-01T24:00:00"),
            Some("2026-13-01T00:00:00"),
            Some("2026-00-10T00:00:00"),
            Some("2026-01-01T00:00:00.1234567891"),
            Some("2026-01-01T00:00:00."),
            Some("2026-01-01T00:00:00Z"),
            Some("2026-01-01T00:00:00+02:00"),
            Some("2026-01-01t00:00:00"),
            Some("2026-01-01"),
            Some("not-a-time"),
            Some(""),
            None,
        ]);
    }

    proptest! {
        #[test]
        fn any_iso_like_text_reads_as_arrow_reads_it(
            values in proptest::collection::vec(
                proptest::option::of(
                    "[0-9]{4}-[0-2][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?[Z]?"
                ),
                1..40,
            )
        ) {
            let values: Vec<Option<&str>> = values.iter().map(|v| v.as_deref()).collect();
            agrees(&values);
        }

        /// Any byte in any place, a digit's or a separator's.
        #[test]
        fn iso_text_with_a_byte_changed_reads_as_arrow_reads_it(
            text in "[0-9]{4}-[0-1][0-9]-[0-2][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?",
            at in 0usize..29,
            byte in 0x20u8..0x7f,
        ) {
            let mut chars: Vec<char> = text.chars().collect();
            let at = at % chars.len();
            chars[at] = char::from(byte);
            let text: String = chars.into_iter().collect();
            agrees(&[Some(&text), Some("2026-11-09T21:38:49")]);
        }
    }
}
