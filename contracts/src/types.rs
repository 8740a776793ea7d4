//! Type mapping: ODCS logical/physical types and Go types to Arrow, and the stable type spelling used in hashes and messages.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field as ArrowField, TimeUnit};

/// ODCS v3.1 `logicalType` values.
pub(crate) const LOGICAL_TYPES: &[&str] = &[
    "string",
    "integer",
    "number",
    "boolean",
    "date",
    "timestamp",
    "time",
    "object",
    "array",
];

/// Go types we map, for error messages.
pub(crate) const GO_TYPES_HELP: &str = "string, bool, int, int8, int16, int32, int64, uint, \
uint8, uint16, uint32, uint64, byte, rune, float32, float64, time.Time, decimal.Decimal, \
sql.NullString, sql.NullInt64, sql.NullInt32, sql.NullInt16, sql.NullFloat64, sql.NullBool, \
sql.NullTime, []byte, []T, *T";

/// The precision and scale used when a decimal has none (Go's `decimal.Decimal`,
/// a bare `decimal` physical type): wide enough for money and rates.
pub(crate) const DEFAULT_DECIMAL: (u8, i8) = (38, 10);

/// Arrow type for a scalar ODCS logical type, when no physical type says otherwise.
/// `object` and `array` are structural and handled by the ODCS reader.
pub(crate) fn logical_default(logical: &str) -> Option<DataType> {
    Some(match logical {
        "string" => DataType::Utf8,
        "integer" => DataType::Int64,
        "number" => DataType::Float64,
        "boolean" => DataType::Boolean,
        "date" => DataType::Date32,
        "timestamp" => timestamp(None),
        "time" => DataType::Time64(TimeUnit::Microsecond),
        _ => return None,
    })
}

/// Arrow type for an ODCS `logicalTypeOptions.format` of an integer or number
/// (ODCS spells these like Rust's primitive types). `i128`/`u128` have no
/// Arrow integer, so they are exact decimals.
pub(crate) fn logical_format(logical: &str, format: &str) -> Option<DataType> {
    Some(match (logical, format) {
        ("integer", "i8") => DataType::Int8,
        ("integer", "i16") => DataType::Int16,
        ("integer", "i32") => DataType::Int32,
        ("integer", "i64") => DataType::Int64,
        ("integer", "u8") => DataType::UInt8,
        ("integer", "u16") => DataType::UInt16,
        ("integer", "u32") => DataType::UInt32,
        ("integer", "u64") => DataType::UInt64,
        ("integer", "i128" | "u128") => DataType::Decimal128(38, 0),
        ("number", "f32") => DataType::Float32,
        ("number", "f64") => DataType::Float64,
        _ => return None,
    })
}

/// Arrow type for an ODCS `physicalType`. Physical types are free text in ODCS
/// (they name the source system's types), so this accepts the common SQL and
/// Arrow spellings, case-insensitively, with `(n)` lengths ignored.
pub(crate) fn physical(text: &str) -> Option<DataType> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower.split_whitespace().collect::<Vec<_>>().join(" ");
    let (base, args) = match lower.find('(') {
        Some(open) => {
            let close = lower.rfind(')')?;
            if close < open || !lower[close + 1..].trim().is_empty() {
                return None;
            }
            (lower[..open].trim(), Some(&lower[open + 1..close]))
        }
        None => (lower.as_str(), None),
    };
    let no_args = args.is_none();
    Some(match base {
        "int8" | "tinyint" | "byte" if no_args => DataType::Int8,
        "int16" | "smallint" | "short" | "int2" if no_args => DataType::Int16,
        "int32" | "int" | "integer" | "int4" if no_args => DataType::Int32,
        "int64" | "bigint" | "long" if no_args => DataType::Int64,
        "uint8" if no_args => DataType::UInt8,
        "uint16" if no_args => DataType::UInt16,
        "uint32" if no_args => DataType::UInt32,
        "uint64" if no_args => DataType::UInt64,
        "float" | "float32" | "real" if no_args => DataType::Float32,
        "double" | "float64" | "double precision" if no_args => DataType::Float64,
        "decimal" | "numeric" | "number" => match args {
            None => DataType::Decimal128(DEFAULT_DECIMAL.0, DEFAULT_DECIMAL.1),
            Some(args) => decimal_args(args)?,
        },
        "string" | "varchar" | "char" | "text" | "nvarchar" | "nchar" | "character"
        | "character varying" | "utf8" => DataType::Utf8,
        "bool" | "boolean" if no_args => DataType::Boolean,
        "date" if no_args => DataType::Date32,
        "timestamp" | "datetime" | "timestamp_ntz" | "timestamp without time zone" => {
            timestamp(None)
        }
        "timestamptz" | "timestamp_tz" | "timestamp_ltz" | "timestamp with time zone" => {
            timestamp(Some("UTC"))
        }
        "time" if no_args => DataType::Time64(TimeUnit::Microsecond),
        "binary" | "varbinary" | "bytes" | "blob" | "bytea" => DataType::Binary,
        _ => return None,
    })
}

/// `p,s` or `p` of a decimal physical type.
fn decimal_args(args: &str) -> Option<DataType> {
    let mut parts = args.split(',').map(str::trim);
    let precision: u8 = parts.next()?.parse().ok()?;
    let scale: i8 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some()
        || precision == 0
        || precision > 38
        || scale < 0
        || scale as u8 > precision
    {
        return None;
    }
    Some(DataType::Decimal128(precision, scale))
}

/// Arrow type for a Go scalar type name (`string`, `time.Time`, ...).
/// Slices and pointers are handled by the Go reader.
pub(crate) fn go_scalar(name: &str) -> Option<DataType> {
    Some(match name {
        "string" | "sql.NullString" => DataType::Utf8,
        "bool" | "sql.NullBool" => DataType::Boolean,
        "int" | "int64" | "sql.NullInt64" => DataType::Int64,
        "int32" | "rune" | "sql.NullInt32" => DataType::Int32,
        "int16" | "sql.NullInt16" => DataType::Int16,
        "int8" => DataType::Int8,
        "uint" | "uint64" => DataType::UInt64,
        "uint32" => DataType::UInt32,
        "uint16" => DataType::UInt16,
        "uint8" | "byte" => DataType::UInt8,
        "float64" | "sql.NullFloat64" => DataType::Float64,
        "float32" => DataType::Float32,
        "time.Time" | "sql.NullTime" => timestamp(None),
        "decimal.Decimal" => DataType::Decimal128(DEFAULT_DECIMAL.0, DEFAULT_DECIMAL.1),
        _ => return None,
    })
}

/// The timestamp type contracts use: microseconds, like most SQL engines and Parquet writers.
pub(crate) fn timestamp(tz: Option<&str>) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, tz.map(Arc::from))
}

/// The list type contracts use; items are nullable, named `item` like Arrow's default.
pub(crate) fn list_of(item: DataType) -> DataType {
    DataType::List(Arc::new(ArrowField::new("item", item, true)))
}

/// The ODCS logical type that best describes an Arrow type, for contracts
/// read from Go (which has no logical types of its own).
pub(crate) fn logical_of(data_type: &DataType) -> &'static str {
    match data_type {
        t if is_integer(t) => "integer",
        t if is_numeric(t) => "number",
        DataType::Boolean => "boolean",
        DataType::Date32 | DataType::Date64 => "date",
        DataType::Timestamp(..) => "timestamp",
        DataType::Time32(_) | DataType::Time64(_) => "time",
        DataType::List(_) | DataType::LargeList(_) => "array",
        DataType::Struct(_) => "object",
        _ => "string",
    }
}

pub(crate) fn is_integer(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Types that numeric bounds (`minimum`, ...) compare against as numbers.
pub(crate) fn is_numeric(t: &DataType) -> bool {
    is_integer(t)
        || matches!(
            t,
            DataType::Float16
                | DataType::Float32
                | DataType::Float64
                | DataType::Decimal32(..)
                | DataType::Decimal64(..)
                | DataType::Decimal128(..)
                | DataType::Decimal256(..)
        )
}

/// Types whose bounds are written as text (ISO dates and times) and stored in
/// Arrow's physical unit (days, or microseconds since the epoch or midnight).
pub(crate) fn is_temporal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Date32 | DataType::Timestamp(..) | DataType::Time64(_)
    )
}

pub(crate) fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

pub(crate) fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Types with a length: characters for strings, bytes for binary, items for lists.
pub(crate) fn has_length(t: &DataType) -> bool {
    is_string(t) || is_binary(t) || matches!(t, DataType::List(_) | DataType::LargeList(_))
}

/// Runink's spelling of an Arrow type, for people: messages, `contract inspect`,
/// diffs. A time zone is written `Timestamp(Microsecond, "UTC")`.
pub fn type_name(t: &DataType) -> String {
    let mut out = String::new();
    write_type(&mut out, t, false);
    out
}

/// The spelling a contract's hash is made of.
///
/// Contract hashes are stored and compared across releases, so they must not
/// move when Arrow changes its `Display` (it did in arrow 57) or when the
/// spelling for people changes. This one is ours and only changes on purpose:
/// it differs from [`type_name`] only in writing a time zone `Some("UTC")`.
pub fn canonical_type_name(t: &DataType) -> String {
    let mut out = String::new();
    write_type(&mut out, t, true);
    out
}

fn write_type(out: &mut String, t: &DataType, canonical: bool) {
    // `write!` into a String cannot fail.
    let _ = match t {
        DataType::Decimal128(p, s) => write!(out, "Decimal128({p}, {s})"),
        DataType::Decimal256(p, s) => write!(out, "Decimal256({p}, {s})"),
        DataType::Timestamp(unit, tz) => {
            let tz = match tz {
                Some(tz) if canonical => format!("Some(\"{tz}\")"),
                Some(tz) => format!("\"{tz}\""),
                None => "None".to_string(),
            };
            write!(out, "Timestamp({}, {tz})", unit_name(unit))
        }
        DataType::Time32(unit) => write!(out, "Time32({})", unit_name(unit)),
        DataType::Time64(unit) => write!(out, "Time64({})", unit_name(unit)),
        DataType::List(item) | DataType::LargeList(item) => {
            out.push_str(if matches!(t, DataType::List(_)) {
                "List("
            } else {
                "LargeList("
            });
            write_type(out, item.data_type(), canonical);
            out.push(')');
            Ok(())
        }
        DataType::Struct(fields) => {
            out.push_str("Struct(");
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(f.name());
                out.push(' ');
                write_type(out, f.data_type(), canonical);
            }
            out.push(')');
            Ok(())
        }
        // The remaining types we produce are unit-like variants whose Debug
        // spelling is just the variant name (`Utf8`, `Int64`, `Date32`, ...).
        other => write!(out, "{other:?}"),
    };
}

fn unit_name(unit: &TimeUnit) -> &'static str {
    match unit {
        TimeUnit::Second => "Second",
        TimeUnit::Millisecond => "Millisecond",
        TimeUnit::Microsecond => "Microsecond",
        TimeUnit::Nanosecond => "Nanosecond",
    }
}

/// `TradeID` → `trade_id`, `HTTPServer` → `http_server`: Go names to column names.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1).copied();
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                // End of an acronym: the `S` in `HTTPServer` starts a new word.
                Some(p) if p.is_uppercase() => next.is_some_and(|n| n.is_lowercase()),
                _ => false,
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snake_case_handles_acronyms() {
        assert_eq!(snake_case("TradeID"), "trade_id");
        assert_eq!(snake_case("TraderEmail"), "trader_email");
        assert_eq!(snake_case("HTTPServer"), "http_server");
        assert_eq!(snake_case("Trade"), "trade");
        assert_eq!(snake_case("price2Usd"), "price2_usd");
    }

    #[test]
    fn physical_types() {
        assert_eq!(physical("VARCHAR(255)"), Some(DataType::Utf8));
        assert_eq!(
            physical("numeric(10, 2)"),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(physical("Double Precision"), Some(DataType::Float64));
        assert_eq!(physical("timestamptz"), Some(timestamp(Some("UTC"))));
        assert_eq!(physical("decimal(39,2)"), None);
        assert_eq!(physical("money"), None);
        assert_eq!(physical("int(3"), None);
    }

    #[test]
    fn type_names_are_stable() {
        assert_eq!(type_name(&DataType::Utf8), "Utf8");
        assert_eq!(type_name(&timestamp(None)), "Timestamp(Microsecond, None)");
        assert_eq!(
            type_name(&timestamp(Some("UTC"))),
            "Timestamp(Microsecond, \"UTC\")"
        );
        assert_eq!(
            canonical_type_name(&timestamp(Some("UTC"))),
            "Timestamp(Microsecond, Some(\"UTC\"))"
        );
        assert_eq!(type_name(&list_of(DataType::Int64)), "List(Int64)");
        assert_eq!(
            type_name(&DataType::Decimal128(38, 10)),
            "Decimal128(38, 10)"
        );
    }
}
