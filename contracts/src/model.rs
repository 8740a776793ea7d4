//! The contract model: a versioned list of typed fields with rules, the same whichever file format it came from.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Schema};
use arrow::util::display::FormatOptions;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::types;

/// The file format a contract was read from. Not part of the hash: the same
/// contract in either form is the same contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SourceFormat {
    /// ODCS v3.1 YAML, the native form.
    Yaml,
    /// A Go struct with tags, imported from the seed project.
    Go,
}

/// A data contract: an id, a semver version and the fields a dataset must have.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contract {
    pub id: String,
    pub name: String,
    pub version: String,
    pub status: Option<String>,
    pub description: Option<String>,
    /// Columns in declared order.
    pub fields: Vec<Field>,
    pub format: SourceFormat,
}

/// One column of a contract with the rules enforced on it.
///
/// Bounds of `date`, `time` and `timestamp` columns are stored in Arrow's
/// physical unit: days since the epoch, microseconds since midnight, or
/// microseconds since the epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    /// ODCS logical type (`string`, `integer`, ...); derived from the Arrow type for Go contracts.
    pub logical_type: String,
    /// Physical type as written in ODCS, if any. Informational: `data_type` is what counts.
    pub physical_type: Option<String>,
    pub data_type: DataType,
    /// Always `!required`.
    pub nullable: bool,
    pub required: bool,
    pub unique: bool,
    /// Implies `required` and `unique` (already folded in).
    pub primary_key: bool,
    pub classification: Option<String>,
    pub mask: Option<String>,
    pub access: Option<String>,
    pub lineage: Option<String>,
    pub join_key: bool,
    /// Allowed values as written in the contract, order preserved.
    pub valid_values: Option<Vec<String>>,
    /// A regular expression with `regex` crate syntax; matched like
    /// `Regex::is_match`, so anchor it (`^...$`) to match whole values.
    pub pattern: Option<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub exclusive_minimum: Option<f64>,
    pub exclusive_maximum: Option<f64>,
    /// Characters for strings, bytes for binary, items for lists.
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    /// ODCS `logicalTypeOptions.format`; a hint, not enforced.
    pub format_hint: Option<String>,
}

/// Rule ids: the `rule` of a violation and the second half of a count key.
pub mod rule {
    pub const TYPE: &str = "type";
    pub const REQUIRED: &str = "required";
    pub const UNIQUE: &str = "unique";
    pub const VALID_VALUES: &str = "valid_values";
    pub const PATTERN: &str = "pattern";
    pub const MINIMUM: &str = "minimum";
    pub const MAXIMUM: &str = "maximum";
    pub const EXCLUSIVE_MINIMUM: &str = "exclusive_minimum";
    pub const EXCLUSIVE_MAXIMUM: &str = "exclusive_maximum";
    pub const MIN_LENGTH: &str = "min_length";
    pub const MAX_LENGTH: &str = "max_length";
    /// Every rule id, in the order rules are listed and reported.
    pub const ALL: [&str; 11] = [
        TYPE,
        REQUIRED,
        UNIQUE,
        VALID_VALUES,
        PATTERN,
        MINIMUM,
        MAXIMUM,
        EXCLUSIVE_MINIMUM,
        EXCLUSIVE_MAXIMUM,
        MIN_LENGTH,
        MAX_LENGTH,
    ];
}

/// One enforced rule on one column.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RuleRef {
    pub column: String,
    pub rule: &'static str,
}

impl RuleRef {
    /// The key used in [`CheckOutcome::counts`](crate::CheckOutcome): `column:rule`.
    pub fn key(&self) -> String {
        format!("{}:{}", self.column, self.rule)
    }
}

impl Contract {
    /// Reads a contract from `text`; `file` names it in errors and picks the
    /// form: a `.go` extension is the Go-struct form, anything else ODCS YAML.
    pub fn load(file: &str, text: &str) -> Result<Contract> {
        // Editors on Windows start UTF-8 files with a byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        if file.to_ascii_lowercase().ends_with(".go") {
            Contract::from_go(file, text)
        } else {
            Contract::from_yaml(file, text)
        }
    }

    /// Reads an ODCS v3.1 YAML contract. See [`crate::odcs`] for what is read.
    pub fn from_yaml(file: &str, text: &str) -> Result<Contract> {
        crate::odcs::parse(file, text.strip_prefix('\u{feff}').unwrap_or(text))
    }

    /// Reads a Go-struct contract. See [`crate::go`] for what is read.
    pub fn from_go(file: &str, text: &str) -> Result<Contract> {
        crate::go::parse(file, text.strip_prefix('\u{feff}').unwrap_or(text))
    }

    /// The Arrow schema of conforming data: fields in declared order,
    /// nullable unless required.
    pub fn arrow_schema(&self) -> Schema {
        Schema::new(
            self.fields
                .iter()
                .map(|f| arrow::datatypes::Field::new(&f.name, f.data_type.clone(), !f.required))
                .collect::<Vec<_>>(),
        )
    }

    /// The canonical JSON text that [`Contract::hash`] hashes; see [`crate::hash`].
    pub fn canonical_json(&self) -> String {
        crate::hash::canonical_json(self)
    }

    /// `sha256:<64 hex>` of [`Contract::canonical_json`].
    pub fn hash(&self) -> String {
        crate::hash::hash(self)
    }

    /// Every enforced (column, rule) in a stable order: fields in declared
    /// order, rules in [`rule::ALL`] order. Every column has a `type` rule.
    pub fn rules(&self) -> Vec<RuleRef> {
        self.fields
            .iter()
            .flat_map(|f| {
                f.rules().into_iter().map(|rule| RuleRef {
                    column: f.name.clone(),
                    rule,
                })
            })
            .collect()
    }

    /// The field named `name`, if any.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

impl Field {
    /// A field with no rules.
    pub fn new(name: impl Into<String>, data_type: DataType) -> Field {
        Field {
            name: name.into(),
            logical_type: types::logical_of(&data_type).to_string(),
            physical_type: None,
            data_type,
            nullable: true,
            required: false,
            unique: false,
            primary_key: false,
            classification: None,
            mask: None,
            access: None,
            lineage: None,
            join_key: false,
            valid_values: None,
            pattern: None,
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            min_length: None,
            max_length: None,
            format_hint: None,
        }
    }

    /// The rule ids enforced on this field, in [`rule::ALL`] order.
    pub fn rules(&self) -> Vec<&'static str> {
        let set = [
            true,
            self.required,
            self.unique,
            self.valid_values.is_some(),
            self.pattern.is_some(),
            self.minimum.is_some(),
            self.maximum.is_some(),
            self.exclusive_minimum.is_some(),
            self.exclusive_maximum.is_some(),
            self.min_length.is_some(),
            self.max_length.is_some(),
        ];
        rule::ALL
            .iter()
            .zip(set)
            .filter(|(_, on)| *on)
            .map(|(r, _)| *r)
            .collect()
    }
}

/// A rule that makes no sense for its field, found after parsing. The
/// readers turn it into a located syntax error.
#[derive(Debug)]
pub(crate) struct Problem {
    pub rule: &'static str,
    pub message: String,
}

impl Problem {
    fn new(rule: &'static str, message: String) -> Problem {
        Problem { rule, message }
    }
}

/// Checks that every rule of `f` applies to its type and is well formed.
pub(crate) fn validate_field(f: &Field) -> std::result::Result<(), Problem> {
    let t = &f.data_type;
    let tn = types::type_name(t);
    if let Some(p) = &f.pattern {
        if !types::is_string(t) {
            return Err(Problem::new(
                rule::PATTERN,
                format!(
                    "pattern applies to string columns, but `{}` is {tn}",
                    f.name
                ),
            ));
        }
        if let Err(e) = crate::pattern::compile_regex(p) {
            return Err(Problem::new(
                rule::PATTERN,
                format!("invalid pattern for `{}`: {}", f.name, regex_message(&e)),
            ));
        }
    }
    let bounds = [
        (rule::MINIMUM, f.minimum),
        (rule::MAXIMUM, f.maximum),
        (rule::EXCLUSIVE_MINIMUM, f.exclusive_minimum),
        (rule::EXCLUSIVE_MAXIMUM, f.exclusive_maximum),
    ];
    for (r, b) in bounds {
        let Some(b) = b else { continue };
        if !(types::is_numeric(t) || types::is_temporal(t)) {
            return Err(Problem::new(
                r,
                format!(
                    "{r} applies to numeric, date and time columns, but `{}` is {tn}",
                    f.name
                ),
            ));
        }
        if !b.is_finite() {
            return Err(Problem::new(
                r,
                format!("{r} of `{}` must be a finite number", f.name),
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (f.minimum, f.maximum)
        && lo > hi
    {
        return Err(Problem::new(
            rule::MINIMUM,
            format!(
                "minimum {} of `{}` is greater than its maximum {}",
                crate::check::show_bound(lo, t),
                f.name,
                crate::check::show_bound(hi, t)
            ),
        ));
    }
    // With an exclusive bound, meeting the other bound exactly leaves no value either.
    let lows = [
        (rule::MINIMUM, f.minimum, false),
        (rule::EXCLUSIVE_MINIMUM, f.exclusive_minimum, true),
    ];
    let highs = [
        (rule::MAXIMUM, f.maximum, false),
        (rule::EXCLUSIVE_MAXIMUM, f.exclusive_maximum, true),
    ];
    for (lo_rule, lo, lo_open) in lows {
        for (hi_rule, hi, hi_open) in highs {
            let (Some(lo), Some(hi)) = (lo, hi) else {
                continue;
            };
            if lo > hi || (lo == hi && (lo_open || hi_open)) {
                return Err(Problem::new(
                    lo_rule,
                    format!(
                        "{lo_rule} {} and {hi_rule} {} of `{}` allow no value at all",
                        crate::check::show_bound(lo, t),
                        crate::check::show_bound(hi, t),
                        f.name
                    ),
                ));
            }
        }
    }
    for (r, l) in [
        (rule::MIN_LENGTH, f.min_length),
        (rule::MAX_LENGTH, f.max_length),
    ] {
        if l.is_some() && !types::has_length(t) {
            return Err(Problem::new(
                r,
                format!(
                    "{r} applies to string, binary and array columns, but `{}` is {tn}",
                    f.name
                ),
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (f.min_length, f.max_length)
        && lo > hi
    {
        return Err(Problem::new(
            rule::MIN_LENGTH,
            format!(
                "min_length {lo} of `{}` is greater than its max_length {hi}",
                f.name
            ),
        ));
    }
    if let Some(values) = &f.valid_values {
        if values.is_empty() {
            return Err(Problem::new(
                rule::VALID_VALUES,
                format!(
                    "valid values of `{}` are empty: no value could pass",
                    f.name
                ),
            ));
        }
        if let Err(bad) = cast_valid_values(values, t) {
            return Err(Problem::new(
                rule::VALID_VALUES,
                format!("valid value {bad:?} of `{}` is not a valid {tn}", f.name),
            ));
        }
    }
    Ok(())
}

/// Checks that column names are unique; returns the index of the first repeat.
pub(crate) fn duplicate_column(fields: &[Field]) -> Option<usize> {
    let mut seen = HashSet::new();
    fields.iter().position(|f| !seen.insert(f.name.as_str()))
}

/// The valid values as an array of `data_type`, or the first value that does not parse.
pub(crate) fn cast_valid_values(
    values: &[String],
    data_type: &DataType,
) -> std::result::Result<ArrayRef, String> {
    let strings: ArrayRef = Arc::new(StringArray::from_iter_values(values));
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    if let Ok(array) = cast_with_options(&strings, data_type, &strict) {
        return Ok(array);
    }
    // Find which value failed, for the message.
    for v in values {
        let one: ArrayRef = Arc::new(StringArray::from(vec![v.as_str()]));
        if cast_with_options(&one, data_type, &strict).is_err() {
            return Err(v.clone());
        }
    }
    Err(values.first().cloned().unwrap_or_default())
}

/// Parses an ODCS date/time bound (`2024-01-01`, `09:30:00`, ...) into the
/// physical unit of `data_type` (see [`Field`]).
pub(crate) fn parse_temporal_bound(text: &str, data_type: &DataType) -> Option<f64> {
    // Written as the data is: a date without a time of day (Arrow would cut one off), a
    // time with its `:` (Arrow reads `2024` as a count of microseconds), a timestamp with
    // its date.
    let t = text.trim();
    let written_as_data = match data_type {
        DataType::Date32 | DataType::Date64 => !t.contains(':'),
        DataType::Time32(_) | DataType::Time64(_) => t.contains(':'),
        DataType::Timestamp(..) => t
            .trim_start_matches(['+', '-'])
            .split_once('-')
            .is_some_and(|(year, _)| year.len() >= 4 && year.bytes().all(|b| b.is_ascii_digit())),
        _ => true,
    };
    if !written_as_data {
        return None;
    }
    let strings: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let strict = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let cast = cast_with_options(&strings, data_type, &strict).ok()?;
    let physical = match data_type {
        DataType::Date32 => cast_with_options(&cast, &DataType::Int32, &strict).ok()?,
        _ => cast_with_options(&cast, &DataType::Int64, &strict).ok()?,
    };
    let as_f64 = cast_with_options(&physical, &DataType::Float64, &strict).ok()?;
    let values = as_f64
        .as_any()
        .downcast_ref::<arrow::array::Float64Array>()?;
    let value = (values.len() == 1 && values.is_valid(0)).then(|| values.value(0))?;
    // A time bound is a time of day, as a time value must be (`23:59:60` is not one).
    let in_day = match data_type {
        DataType::Time32(_) | DataType::Time64(_) => {
            let kept = crate::timestamp::null_bad_times(strings.as_ref(), cast).ok()?;
            kept.is_valid(0)
        }
        _ => true,
    };
    in_day.then_some(value)
}

/// A bound as people write it: `0`, `0.5`, `100000` — shortest round-trip
/// form, no exponent, `-0` folded into `0`. Used in hashes and messages.
/// Bounds are held as 64-bit floats: an integer bound beyond 2^53 that a float cannot
/// hold exactly would be rounded, and values next to it judged wrongly. `None` when
/// `value` is held exactly; otherwise the message for a bound `key` of `name`.
pub(crate) fn inexact_integer_bound(value: i128, key: &str, name: &str) -> Option<String> {
    ((value as f64) as i128 != value).then(|| {
        format!(
            "`{key}` of `{name}` is {value}, which a bound cannot hold exactly (integer bounds must be within ±9007199254740992, or a multiple of a power of two a 64-bit float holds)"
        )
    })
}

pub(crate) fn number(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v };
    format!("{v}")
}

/// Regex and YAML errors span lines; errors here are one line each.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The useful line of a regex error ("unclosed character class"), without
/// the multi-line caret drawing that makes no sense inside `file:line:col: ...`.
pub(crate) fn regex_message(e: &regex::Error) -> String {
    let text = e.to_string();
    match text.lines().find_map(|l| l.trim().strip_prefix("error: ")) {
        Some(m) => m.to_string(),
        None => one_line(&text),
    }
}
