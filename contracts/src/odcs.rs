//! ODCS v3.1 YAML reader: the native contract form.
//!
//! What is read (everything else ODCS allows is accepted and ignored):
//!
//! - top level: `id`, `version` (both required), `name` (defaults to `id`),
//!   `status`, `description` (a string, or ODCS's object whose `purpose`,
//!   `usage` or `limitations` is used), `kind` (must be `DataContract` if given).
//! - `schema[]`: the **first** schema object is the contract's table; a
//!   contract describes one dataset, and a file with several objects keeps
//!   the others for documentation.
//! - `schema[0].properties[]`: `name`, `logicalType`, `physicalType`,
//!   `required`, `unique`, `primaryKey` (implies required and unique),
//!   `classification`, `enum`, `logicalTypeOptions` (`pattern`, `minimum`,
//!   `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minLength`,
//!   `maxLength`, `minItems`, `maxItems`, `format`), `quality[]` and
//!   `customProperties[]` (`mask`, `access`, `lineage`, `join_key`).
//! - `quality[]` rules become row rules only when they demand zero bad rows
//!   (`mustBe: 0`, `mustBeLessThan: 1`, `mustBeLessOrEqualTo: 0` or no
//!   threshold): `invalidValues` with `arguments.validValues` or
//!   `arguments.pattern`, `nullValues` (required), `duplicateValues` (unique).
//!   Other thresholds are aggregate checks over a whole dataset, not row
//!   rules, and other metrics or types (`sql`, `custom`, `text`) are not
//!   enforced here.
//!
//! Types: `physicalType` wins when recognized (see `types::physical`), then
//! an integer/number `logicalTypeOptions.format` (`i32`, `f32`, ...), then the
//! logical type's default. `object` becomes a struct of its nested
//! properties (free-form objects are JSON text, `Utf8`), `array` a list of
//! its `items`. Rules on nested properties are not enforced.
//!
//! serde_yaml's `Value` has no positions, so errors about content are located
//! by scanning the text for the property (`- name: price`) and then the
//! offending key inside its block: best effort, always a line ≥ 1.

use arrow::datatypes::{DataType, Field as ArrowField, Fields};
use serde_yaml::{Mapping, Value};

use crate::error::{ContractError, Result};
use crate::model::{self, Contract, Field, SourceFormat, rule};
use crate::types;

/// The valid values (`enum`, `validValues`) of the first schema object's
/// properties as written. serde_yaml's `Value` reads `2.50` or `01` as numbers
/// and would give them back as `2.5` and `1`; a string column of codes needs
/// the text. Read as `String`, serde_yaml hands over any scalar's text.
#[derive(serde::Deserialize, Default)]
struct Written {
    /// `version: 1.10` is the text `1.10`, not the number 1.1.
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    schema: Vec<WrittenObject>,
}

#[derive(serde::Deserialize, Default)]
struct WrittenObject {
    #[serde(default)]
    properties: Vec<WrittenProperty>,
}

#[derive(serde::Deserialize, Default)]
struct WrittenProperty {
    #[serde(default, rename = "enum")]
    enumeration: Option<Vec<String>>,
    #[serde(default)]
    quality: Vec<WrittenCheck>,
}

#[derive(serde::Deserialize, Default)]
struct WrittenCheck {
    #[serde(default)]
    arguments: Option<WrittenArguments>,
}

#[derive(serde::Deserialize, Default)]
struct WrittenArguments {
    #[serde(default, rename = "validValues")]
    valid_values: Option<Vec<String>>,
}

/// `values` as written, when `written` is the same list read as text (it is
/// not when the document's shape is off, which the caller reports anyway).
fn as_written(values: Vec<String>, written: Option<&Vec<String>>) -> Vec<String> {
    match written {
        Some(w) if w.len() == values.len() => w.clone(),
        _ => values,
    }
}

pub(crate) fn parse(file: &str, text: &str) -> Result<Contract> {
    let loc = Locator::new(file, text);
    if let Some(at) = too_deep_flow(text) {
        return Err(loc.error(
            at,
            format!("invalid YAML: `[` and `{{` nest deeper than {FLOW_DEPTH_MAX} levels here"),
        ));
    }
    let mut doc: Value = serde_yaml::from_str(text).map_err(|e| yaml_error(file, &e))?;
    let written: Written = serde_yaml::from_str(text).unwrap_or_default();
    let written_version = written.version;
    let written = written.schema.into_iter().next().unwrap_or_default();
    // YAML merge keys (`<<: *defaults`) are a common way to share property settings.
    doc.apply_merge().map_err(|e| yaml_error(file, &e))?;
    let top = match untag(&doc) {
        Value::Mapping(m) => m,
        Value::Null => {
            return Err(loc.error((1, 1), "empty document: expected an ODCS data contract"));
        }
        _ => {
            return Err(loc.error(
                (1, 1),
                "expected an ODCS data contract (a mapping with `id`, `version`, `schema`)",
            ));
        }
    };
    if let Some(kind) = top.get("kind") {
        let kind = scalar_string(kind);
        if kind.as_deref() != Some("DataContract") {
            return Err(loc.error(
                loc.top_key("kind"),
                format!(
                    "`kind` is {}, expected `DataContract`",
                    kind.map_or_else(|| "not text".to_string(), |k| format!("`{k}`"))
                ),
            ));
        }
    }
    if let Some(api) = top.get("apiVersion").and_then(scalar_string)
        && api.starts_with("v2")
    {
        return Err(loc.error(
            loc.top_key("apiVersion"),
            format!("ODCS {api} contracts are not supported: convert the contract to v3.1"),
        ));
    }
    let id = required_top_string(&loc, top, "id")?;
    let version = match (top.get("version").map(untag), written_version) {
        // A number keeps its digits as written: `1.10` and `1.1` are two versions.
        (Some(Value::Number(_)), Some(text)) if !text.trim().is_empty() => text.trim().to_string(),
        _ => required_top_string(&loc, top, "version")?,
    };
    let name = optional_string(&loc, top, "name", None)?.unwrap_or_else(|| id.clone());
    let status = optional_string(&loc, top, "status", None)?;
    let description = match top.get("description").map(untag) {
        Some(Value::Mapping(d)) => ["purpose", "usage", "limitations"]
            .iter()
            .find_map(|k| d.get(*k).and_then(scalar_string)),
        Some(v) => scalar_string(v),
        None => None,
    };

    let schema = match top.get("schema").map(untag) {
        Some(Value::Sequence(s)) if !s.is_empty() => s,
        Some(Value::Sequence(_)) => {
            return Err(loc.error(
                loc.top_key("schema"),
                "`schema` is empty: a contract needs one schema object with properties",
            ));
        }
        Some(_) => {
            return Err(loc.error(
                loc.top_key("schema"),
                "`schema` must be a list of schema objects",
            ));
        }
        None => {
            return Err(loc.error(
                (1, 1),
                "no `schema`: a contract needs one schema object with properties",
            ));
        }
    };
    let Value::Mapping(object) = untag(&schema[0]) else {
        return Err(loc.error(
            loc.top_key("schema"),
            "the first `schema` entry must be a schema object (a mapping)",
        ));
    };
    let properties = match object.get("properties").map(untag) {
        Some(Value::Sequence(p)) if !p.is_empty() => p,
        Some(Value::Sequence(_)) | None => {
            return Err(loc.error(
                loc.top_key("schema"),
                "the first schema object has no `properties`: a contract needs at least one column",
            ));
        }
        Some(_) => {
            return Err(loc.error(
                loc.properties_line(),
                "`properties` must be a list of properties",
            ));
        }
    };

    let mut fields = Vec::with_capacity(properties.len());
    for (i, p) in properties.iter().enumerate() {
        fields.push(parse_property(
            &loc,
            untag(p),
            i,
            written.properties.get(i),
        )?);
    }
    if let Some(i) = model::duplicate_column(&fields) {
        let name = &fields[i].name;
        return Err(loc.error(
            loc.property_key(name, &[], Some(1)),
            format!("property `{name}` is declared twice"),
        ));
    }
    Ok(Contract {
        id,
        name,
        version,
        status,
        description,
        fields,
        format: SourceFormat::Yaml,
    })
}

/// One property. Nested properties (struct members, array items) are read
/// the same way; only their types and nullability reach the contract.
/// `written` is the property's valid values as written (top-level properties only).
fn parse_property(
    loc: &Locator<'_>,
    p: &Value,
    index: usize,
    written: Option<&WrittenProperty>,
) -> Result<Field> {
    let Value::Mapping(m) = p else {
        return Err(loc.error(
            loc.properties_line(),
            format!("property #{} must be a mapping with a `name`", index + 1),
        ));
    };
    let name = match m.get("name").and_then(scalar_string) {
        Some(n) if !n.is_empty() => n,
        _ => {
            return Err(loc.error(
                loc.properties_line(),
                format!("property #{} has no `name`", index + 1),
            ));
        }
    };
    let at = |keys: &[&str]| loc.property_key(&name, keys, None);
    let prop = Some(name.as_str());
    // A misspelt key (`requird`, `maxlength`) would otherwise drop its rule without a word.
    unknown_keys(loc, m, &[PROPERTY_KEYS], &name, "a property")?;

    let logical = optional_string(loc, m, "logicalType", prop)?;
    if let Some(l) = &logical
        && !types::LOGICAL_TYPES.contains(&l.as_str())
    {
        return Err(loc.error(
            at(&["logicalType"]),
            format!(
                "unknown logicalType `{l}` for property `{name}` (expected one of: {})",
                types::LOGICAL_TYPES.join(", ")
            ),
        ));
    }
    let physical = optional_string(loc, m, "physicalType", prop)?;
    let options = match m.get("logicalTypeOptions").map(untag) {
        None | Some(Value::Null) => None,
        Some(Value::Mapping(o)) => {
            unknown_keys(
                loc,
                o,
                &[LOGICAL_TYPE_OPTIONS_KEYS],
                &name,
                "`logicalTypeOptions`",
            )?;
            Some(o)
        }
        Some(_) => {
            return Err(loc.error(
                at(&["logicalTypeOptions"]),
                format!("`logicalTypeOptions` of `{name}` must be a mapping"),
            ));
        }
    };
    let format = match options {
        Some(o) => optional_string(loc, o, "format", prop)?,
        None => None,
    };
    // For integers and numbers the format picks the width: one that names none is a
    // mistake (`i7`), not a hint to keep.
    if let (Some(l @ ("integer" | "number")), Some(f)) = (logical.as_deref(), format.as_deref())
        && types::logical_format(l, f).is_none()
    {
        return Err(loc.error(
            loc.property_key(&name, &["format"], None),
            format!(
                "format `{f}` of `{name}` is not a width of {l} ({})",
                if l == "integer" {
                    "i8, i16, i32, i64, i128, u8, u16, u32, u64, u128"
                } else {
                    "f32, f64"
                }
            ),
        ));
    }

    let data_type = match logical.as_deref() {
        Some("object") => match m.get("properties").map(untag) {
            Some(Value::Sequence(children)) if !children.is_empty() => {
                let mut members = Vec::with_capacity(children.len());
                for (i, c) in children.iter().enumerate() {
                    let f = parse_property(loc, untag(c), i, None)?;
                    // Rules on members are not enforced (only their types are used), so
                    // a `required` member is no promise the data keeps: nullable.
                    members.push(ArrowField::new(f.name, f.data_type, true));
                }
                DataType::Struct(Fields::from(members))
            }
            // A free-form object has no column types to check; it travels as JSON text.
            _ => DataType::Utf8,
        },
        Some("array") => match m.get("items").map(untag) {
            Some(items @ Value::Mapping(_)) => {
                let mut items = items.clone();
                // Array items need no name in ODCS; give ours one so the reader accepts it.
                if let Value::Mapping(im) = &mut items
                    && !im.contains_key("name")
                {
                    im.insert(Value::from("name"), Value::from(name.as_str()));
                }
                let item = parse_property(loc, &items, index, None)?;
                types::list_of(item.data_type)
            }
            _ => types::list_of(DataType::Utf8),
        },
        logical => match (&physical, logical) {
            (Some(ph), _) if types::physical(ph).is_some() => {
                types::physical(ph).unwrap_or(DataType::Utf8)
            }
            // A decimal whose precision or scale cannot be is a mistake, not another
            // system's type name.
            (Some(ph), _)
                if ph.contains('(') && {
                    let lower = ph.to_ascii_lowercase();
                    ["decimal(", "numeric(", "number("]
                        .iter()
                        .any(|d| lower.starts_with(d))
                } =>
            {
                return Err(loc.error(
                    at(&["physicalType"]),
                    format!(
                        "physicalType `{ph}` for property `{name}`: a decimal takes a precision of 1 to 38 and a scale from 0 to the precision, e.g. decimal(18,2)"
                    ),
                ));
            }
            // Another system's type name (`uuid`, `jsonb`, `VARCHAR2(100)`): ODCS allows any,
            // so the logical type decides, as without a physical type.
            (Some(_), None) => DataType::Utf8,
            (Some(_), Some(l)) => format
                .as_deref()
                .and_then(|f| types::logical_format(l, f))
                .or_else(|| types::logical_default(l))
                .unwrap_or(DataType::Utf8),
            (None, Some(l)) => format
                .as_deref()
                .and_then(|f| types::logical_format(l, f))
                .or_else(|| types::logical_default(l))
                .unwrap_or(DataType::Utf8),
            // Neither type given: ODCS allows it; text is the one type every value has.
            (None, None) => DataType::Utf8,
        },
    };

    let mut f = Field::new(name.clone(), data_type);
    if let Some(l) = logical {
        f.logical_type = l;
    }
    f.physical_type = physical;
    f.format_hint = format;
    f.required = optional_bool(loc, m, "required", &name)?.unwrap_or(false);
    f.unique = optional_bool(loc, m, "unique", &name)?.unwrap_or(false);
    f.primary_key = optional_bool(loc, m, "primaryKey", &name)?.unwrap_or(false);
    f.classification = optional_string(loc, m, "classification", prop)?;

    if let Some(o) = options {
        // Row rules ODCS defines that this runi does not enforce yet: refused rather than
        // dropped, so nobody believes the data was checked against them.
        for key in ["multipleOf", "uniqueItems"] {
            if o.get(key)
                .map(untag)
                .is_some_and(|v| !matches!(v, Value::Null | Value::Bool(false)))
            {
                return Err(loc.error(
                    loc.property_key(&name, &[key], None),
                    format!(
                        "`{key}` of `{name}` is not enforced by this runi yet; remove it (or check it in a step) rather than have it ignored"
                    ),
                ));
            }
        }
        f.pattern = optional_string(loc, o, "pattern", prop)?;
        f.minimum = bound(loc, o, "minimum", &f)?;
        f.maximum = bound(loc, o, "maximum", &f)?;
        f.exclusive_minimum = bound(loc, o, "exclusiveMinimum", &f)?;
        f.exclusive_maximum = bound(loc, o, "exclusiveMaximum", &f)?;
        f.min_length = length(loc, o, &["minLength", "minItems"], &name)?;
        f.max_length = length(loc, o, &["maxLength", "maxItems"], &name)?;
    }
    if let Some(e) = m.get("enum") {
        let values = string_list(e).ok_or_else(|| {
            loc.error(
                at(&["enum"]),
                format!(
                    "`enum` of `{name}` must be a list of values{}",
                    list_detail(e)
                ),
            )
        })?;
        let values = as_written(values, written.and_then(|w| w.enumeration.as_ref()));
        set_valid_values(loc, &mut f, values, "enum")?;
    }
    if let Some(q) = m.get("quality") {
        read_quality(loc, &mut f, untag(q), written.map(|w| w.quality.as_slice()))?;
    }
    if let Some(c) = m.get("customProperties") {
        read_custom_properties(loc, &mut f, untag(c))?;
    }

    if f.primary_key {
        // A key is required and unique; a property that says otherwise contradicts itself.
        for key in ["required", "unique"] {
            if matches!(m.get(key).map(untag), Some(Value::Bool(false))) {
                return Err(loc.error(
                    loc.property_key(&f.name, &[key], None),
                    format!(
                        "`{}` is a primary key, which is required and unique, but says `{key}: false`",
                        f.name
                    ),
                ));
            }
        }
        f.required = true;
        f.unique = true;
    }
    f.nullable = !f.required;
    if let Err(problem) = model::validate_field(&f) {
        return Err(loc.error(at(yaml_keys(problem.rule)), problem.message));
    }
    Ok(f)
}

fn read_quality(
    loc: &Locator<'_>,
    f: &mut Field,
    q: &Value,
    written: Option<&[WrittenCheck]>,
) -> Result<()> {
    let name = f.name.clone();
    let Value::Sequence(checks) = q else {
        return Err(loc.error(
            loc.property_key(&name, &["quality"], None),
            format!("`quality` of `{name}` must be a list of checks"),
        ));
    };
    for (k, check) in checks.iter().enumerate() {
        let Value::Mapping(c) = untag(check) else {
            continue;
        };
        unknown_keys(
            loc,
            c,
            &[QUALITY_KEYS, THRESHOLD_KEYS],
            &name,
            "a `quality` check",
        )?;
        let kind = c.get("type").and_then(scalar_string);
        if kind.as_deref().is_some_and(|k| k != "library") {
            continue;
        }
        // `rule` is the deprecated spelling of `metric`.
        let metric = c
            .get("metric")
            .or_else(|| c.get("rule"))
            .and_then(scalar_string);
        if let Some(m) = &metric
            && !QUALITY_METRICS.contains(&m.as_str())
        {
            return Err(loc.error(
                loc.property_key(&name, &["metric", "rule"], None),
                format!(
                    "unknown quality metric `{m}` for `{name}` (ODCS library metrics: {})",
                    QUALITY_METRICS.join(", ")
                ),
            ));
        }
        if !demands_zero(c) {
            continue;
        }
        match metric.as_deref() {
            Some("invalidValues") => {
                let args = match c.get("arguments").map(untag) {
                    Some(Value::Mapping(args)) => args,
                    None => continue,
                    Some(_) => {
                        return Err(loc.error(
                            loc.property_key(&name, &["arguments"], None),
                            format!(
                                "`arguments` of an invalidValues check on `{name}` must be a mapping with `validValues` or `pattern`"
                            ),
                        ));
                    }
                };
                if let Some(v) = args.get("validValues") {
                    let values = string_list(v).ok_or_else(|| {
                        loc.error(
                            loc.property_key(&name, &["validValues"], None),
                            format!(
                                "`validValues` of `{name}` must be a list of values{}",
                                list_detail(v)
                            ),
                        )
                    })?;
                    let as_text = written
                        .and_then(|w| w.get(k))
                        .and_then(|c| c.arguments.as_ref())
                        .and_then(|a| a.valid_values.as_ref());
                    let values = as_written(values, as_text);
                    set_valid_values(loc, f, values, "validValues")?;
                }
                if let Some(p) = args.get("pattern") {
                    let p = scalar_string(p).ok_or_else(|| {
                        loc.error(
                            loc.property_key(&name, &["pattern"], None),
                            format!("`pattern` of `{name}` must be text"),
                        )
                    })?;
                    if f.pattern.as_ref().is_some_and(|old| *old != p) {
                        return Err(loc.error(
                            loc.property_key(&name, &["pattern"], None),
                            format!("`{name}` has two different patterns; keep one"),
                        ));
                    }
                    f.pattern = Some(p);
                }
            }
            Some("nullValues") => f.required = true,
            Some("duplicateValues") => f.unique = true,
            Some("missingValues") => {
                return Err(loc.error(
                    loc.property_key(&name, &["metric", "rule"], None),
                    format!(
                        "the `missingValues` check on `{name}` is not enforced by this runi yet; use `nullValues` (no nulls) and `invalidValues` with `validValues` instead of having it ignored"
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The keys of an ODCS v3.1 property (its JSON schema allows no others), and `enum`,
/// which Runink reads too.
const PROPERTY_KEYS: &[&str] = &[
    "name",
    "enum",
    "id",
    "physicalType",
    "physicalName",
    "logicalType",
    "logicalTypeOptions",
    "required",
    "unique",
    "primaryKey",
    "primaryKeyPosition",
    "partitioned",
    "partitionKeyPosition",
    "classification",
    "encryptedName",
    "transformSourceObjects",
    "transformLogic",
    "transformDescription",
    "examples",
    "criticalDataElement",
    "quality",
    "customProperties",
    "authoritativeDefinitions",
    "businessName",
    "description",
    "tags",
    "items",
    "properties",
    "relationships",
];

/// The keys of `logicalTypeOptions` in ODCS v3.1.
const LOGICAL_TYPE_OPTIONS_KEYS: &[&str] = &[
    "format",
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "required",
    "timezone",
    "defaultTimezone",
];

/// The keys of an ODCS v3.1 quality check.
const QUALITY_KEYS: &[&str] = &[
    "id",
    "name",
    "description",
    "type",
    "metric",
    "rule",
    "arguments",
    "unit",
    "validValues",
    "query",
    "engine",
    "implementation",
    "dimension",
    "method",
    "severity",
    "businessImpact",
    "customProperties",
    "authoritativeDefinitions",
    "tags",
    "scheduler",
    "schedule",
];

/// The threshold keys of an ODCS v3.1 quality check.
const THRESHOLD_KEYS: &[&str] = &[
    "mustBe",
    "mustNotBe",
    "mustBeGreaterThan",
    "mustBeGreaterOrEqualTo",
    "mustBeLessThan",
    "mustBeLessOrEqualTo",
    "mustBeBetween",
    "mustNotBeBetween",
];

/// ODCS v3.1's library metrics.
const QUALITY_METRICS: &[&str] = &[
    "nullValues",
    "missingValues",
    "invalidValues",
    "duplicateValues",
    "rowCount",
];

/// An error at the first key of `m` that is not in `allowed`.
fn unknown_keys(
    loc: &Locator<'_>,
    m: &Mapping,
    allowed: &[&[&str]],
    property: &str,
    what: &str,
) -> Result<()> {
    for key in m.keys() {
        let text = scalar_string(key).unwrap_or_default();
        if !allowed.iter().any(|list| list.contains(&text.as_str())) {
            return Err(loc.error(
                loc.property_key(property, &[text.as_str()], None),
                format!(
                    "unknown key `{text}` in {what} of `{property}` (ODCS v3.1 allows: {})",
                    allowed.concat().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// True when a quality check's threshold allows no bad row at all, which is
/// what a row-level rule enforces.
fn demands_zero(c: &Mapping) -> bool {
    let num = |k: &str| c.get(k).map(untag).and_then(Value::as_f64);
    if !THRESHOLD_KEYS.iter().any(|k| c.contains_key(*k)) {
        return true;
    }
    num("mustBe") == Some(0.0)
        || num("mustBeLessThan").is_some_and(|n| n <= 1.0)
        || num("mustBeLessOrEqualTo").is_some_and(|n| n < 1.0)
}

fn read_custom_properties(loc: &Locator<'_>, f: &mut Field, c: &Value) -> Result<()> {
    let name = f.name.clone();
    let Value::Sequence(entries) = c else {
        return Err(loc.error(
            loc.property_key(&name, &["customProperties"], None),
            format!("`customProperties` of `{name}` must be a list of {{property, value}}"),
        ));
    };
    for entry in entries {
        let Value::Mapping(e) = untag(entry) else {
            continue;
        };
        let Some(property) = e.get("property").and_then(scalar_string) else {
            continue;
        };
        let value = e.get("value").map(untag);
        let text = value.and_then(scalar_string);
        match property.as_str() {
            "mask" => f.mask = text,
            "access" => f.access = text,
            "lineage" => f.lineage = text,
            "join_key" | "joinKey" => {
                f.join_key = match text.as_deref() {
                    Some("true") => true,
                    Some("false") | None => false,
                    Some(other) => {
                        return Err(loc.error(
                            loc.property_key(&name, &["join_key", "joinKey"], None),
                            format!(
                                "custom property `join_key` of `{name}` must be true or false, not `{other}`"
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn set_valid_values(
    loc: &Locator<'_>,
    f: &mut Field,
    values: Vec<String>,
    key: &str,
) -> Result<()> {
    if let Some(old) = &f.valid_values
        && *old != values
    {
        return Err(loc.error(
            loc.property_key(&f.name, &[key], None),
            format!(
                "`{}` lists valid values twice, differently ([{}] and [{}]); keep one list",
                f.name,
                old.join(", "),
                values.join(", ")
            ),
        ));
    }
    f.valid_values = Some(values);
    Ok(())
}

/// A numeric bound; for date/time columns ODCS writes bounds as text, which
/// we store in Arrow's physical unit (see [`Field`]).
fn bound(loc: &Locator<'_>, o: &Mapping, key: &str, f: &Field) -> Result<Option<f64>> {
    let Some(v) = o.get(key).map(untag) else {
        return Ok(None);
    };
    let name = &f.name;
    let at = || loc.property_key(name, &[key], None);
    match v {
        Value::Null => Ok(None),
        Value::Number(n) if types::is_temporal(&f.data_type) => Err(loc.error(
            at(),
            format!(
                "`{key}` of `{name}` is the number {n}; bounds of {} columns are ISO text, such as \"{}\"",
                f.logical_type,
                match f.data_type {
                    DataType::Date32 | DataType::Date64 => "2024-01-31",
                    DataType::Time32(_) | DataType::Time64(_) => "09:30:00",
                    _ => "2024-01-31T09:30:00",
                }
            ),
        )),
        Value::Number(n) => match n.as_f64() {
            Some(_)
                if let Some(message) = n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .and_then(|i| model::inexact_integer_bound(i, key, name)) =>
            {
                Err(loc.error(at(), message))
            }
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(loc.error(at(), format!("`{key}` of `{name}` must be a finite number"))),
        },
        Value::String(s) if types::is_temporal(&f.data_type) => {
            model::parse_temporal_bound(s, &f.data_type)
                .map(Some)
                .ok_or_else(|| {
                    loc.error(
                        at(),
                        format!(
                            "`{key}` of `{name}` is `{s}`, not a valid {}",
                            types::type_name(&f.data_type)
                        ),
                    )
                })
        }
        _ => Err(loc.error(at(), format!("`{key}` of `{name}` must be a number"))),
    }
}

fn length(loc: &Locator<'_>, o: &Mapping, keys: &[&str], name: &str) -> Result<Option<u64>> {
    for key in keys {
        match o.get(*key).map(untag) {
            None | Some(Value::Null) => continue,
            Some(Value::Number(n)) if n.as_u64().is_some() => return Ok(n.as_u64()),
            Some(_) => {
                return Err(loc.error(
                    loc.property_key(name, &[key], None),
                    format!("`{key}` of `{name}` must be a whole number ≥ 0"),
                ));
            }
        }
    }
    Ok(None)
}

/// The YAML keys that may hold a rule, to locate errors about it.
fn yaml_keys(rule_id: &str) -> &'static [&'static str] {
    match rule_id {
        rule::PATTERN => &["pattern"],
        rule::MINIMUM => &["minimum"],
        rule::MAXIMUM => &["maximum"],
        rule::EXCLUSIVE_MINIMUM => &["exclusiveMinimum"],
        rule::EXCLUSIVE_MAXIMUM => &["exclusiveMaximum"],
        rule::MIN_LENGTH => &["minLength", "minItems"],
        rule::MAX_LENGTH => &["maxLength", "maxItems"],
        rule::VALID_VALUES => &["validValues", "enum"],
        _ => &[],
    }
}

fn required_top_string(loc: &Locator<'_>, top: &Mapping, key: &str) -> Result<String> {
    match optional_string(loc, top, key, None)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        Some(_) => Err(loc.error(loc.top_key(key), format!("`{key}` is empty"))),
        None => Err(loc.error(
            (1, 1),
            format!("missing `{key}`: an ODCS contract needs `id` and `version`"),
        )),
    }
}

/// A text value; numbers and booleans are taken as written (`version: 2`).
fn optional_string(
    loc: &Locator<'_>,
    m: &Mapping,
    key: &str,
    property: Option<&str>,
) -> Result<Option<String>> {
    match m.get(key).map(untag) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match scalar_string(v) {
            Some(s) => Ok(Some(s)),
            None => {
                let (at, what) = match property {
                    Some(p) => (
                        loc.property_key(p, &[key], None),
                        format!("`{key}` of `{p}`"),
                    ),
                    None => (loc.top_key(key), format!("`{key}`")),
                };
                Err(loc.error(at, format!("{what} must be text")))
            }
        },
    }
}

fn optional_bool(
    loc: &Locator<'_>,
    m: &Mapping,
    key: &str,
    property: &str,
) -> Result<Option<bool>> {
    match m.get(key).map(untag) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(loc.error(
            loc.property_key(property, &[key], None),
            format!("`{key}` of `{property}` must be true or false"),
        )),
    }
}

fn scalar_string(v: &Value) -> Option<String> {
    match untag(v) {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Why a list of valid values is not one, for its message: which item is not a value.
fn list_detail(v: &Value) -> String {
    let Value::Sequence(items) = untag(v) else {
        return String::new();
    };
    items
        .iter()
        .position(|i| scalar_string(i).is_none())
        .map(|i| match untag(&items[i]) {
            Value::Null => format!(
                ": item {} is null (nulls are never valid values; `required` decides whether nulls pass)",
                i + 1
            ),
            _ => format!(": item {} is a list or mapping, not a value", i + 1),
        })
        .unwrap_or_default()
}

fn string_list(v: &Value) -> Option<Vec<String>> {
    match untag(v) {
        Value::Sequence(items) => items.iter().map(scalar_string).collect(),
        _ => None,
    }
}

/// YAML tags (`!foo value`) carry no meaning in ODCS; look through them.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => untag(&t.value),
        other => other,
    }
}

/// serde_yaml's message carries the location in its text too; the error
/// already prints it in front, so drop the repeat.
/// How deep `[` and `{` may nest. A contract needs a few levels; the YAML parser's cost
/// grows with the square of the depth, so a document nested thousands deep took minutes to
/// be refused (at its own limit of 128).
const FLOW_DEPTH_MAX: usize = 100;

/// Where (line, column) flow collections first nest deeper than [`FLOW_DEPTH_MAX`]: a scan
/// that skips quoted scalars and comments, cheap next to parsing.
fn too_deep_flow(text: &str) -> Option<(u32, u32)> {
    let (mut depth, mut line, mut column) = (0usize, 1u32, 0u32);
    let mut chars = text.chars().peekable();
    // The character before the current one, for where a quote or comment may start.
    let mut previous = '\n';
    while let Some(c) = chars.next() {
        column += 1;
        let starts_token = previous.is_whitespace() || matches!(previous, '[' | '{' | ',' | ':');
        match c {
            '\n' => {
                line += 1;
                column = 0;
            }
            '#' if previous.is_whitespace() => while chars.next_if(|&n| n != '\n').is_some() {},
            '\'' | '"' if starts_token => {
                // To the closing quote ('' and \" are escaped quotes).
                while let Some(n) = chars.next() {
                    if n == '\n' {
                        line += 1;
                        column = 0;
                    } else {
                        column += 1;
                    }
                    if c == '"' && n == '\\' {
                        if chars.next().is_some() {
                            column += 1;
                        }
                    } else if n == c {
                        if c == '\'' && chars.next_if_eq(&'\'').is_some() {
                            column += 1;
                            continue;
                        }
                        break;
                    }
                }
            }
            '[' | '{' => {
                depth += 1;
                if depth > FLOW_DEPTH_MAX {
                    return Some((line, column));
                }
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        previous = c;
    }
    None
}

fn yaml_error(file: &str, e: &serde_yaml::Error) -> ContractError {
    let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
    let message = e.to_string();
    let message = match regex::Regex::new(r" at line \d+ column \d+") {
        Ok(re) => re.replace_all(&message, "").into_owned(),
        Err(_) => message,
    };
    ContractError::syntax(
        file,
        clamp_u32(line),
        clamp_u32(column),
        format!("invalid YAML: {message}"),
    )
}

fn clamp_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Finds lines and columns of keys in the YAML text (1-based).
struct Locator<'a> {
    file: &'a str,
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Locator {
            file,
            lines: text.lines().collect(),
        }
    }

    fn error(&self, (line, column): (u32, u32), message: impl Into<String>) -> ContractError {
        ContractError::syntax(self.file, line, column, message)
    }

    /// `key:` at the start of a line with no indentation.
    fn top_key(&self, key: &str) -> (u32, u32) {
        self.lines
            .iter()
            .position(|l| {
                l.strip_prefix(key)
                    .is_some_and(|rest| rest.trim_start().starts_with(':'))
            })
            .map_or((1, 1), |i| (clamp_u32(i + 1), 1))
    }

    /// The first `properties:` line, where property-list errors point.
    fn properties_line(&self) -> (u32, u32) {
        self.lines
            .iter()
            .enumerate()
            .find_map(|(i, l)| find_key(l, "properties").map(|c| (i, c)))
            .map_or((1, 1), |(i, c)| (clamp_u32(i + 1), clamp_u32(c + 1)))
    }

    /// The property's line (`name: <property>` after a `properties:` line) and
    /// the column of its `name` key.
    fn property(&self, property: &str) -> Option<(usize, usize)> {
        let start = self
            .lines
            .iter()
            .position(|l| find_key(l, "properties").is_some())?;
        self.lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .find_map(|(i, l)| {
                let col = find_key(l, "name")?;
                let value = key_value(l, col + "name".len() + 1);
                (value == property).then_some((i, col))
            })
    }

    /// The first of `keys` inside the property's block, else the property's
    /// `name` line, else the first `properties:` line. With `nth`, the nth
    /// occurrence of the property instead (for duplicates).
    fn property_key(&self, property: &str, keys: &[&str], nth: Option<usize>) -> (u32, u32) {
        let found = match nth {
            Some(n) => self.nth_property(property, n),
            None => self.property(property),
        };
        let Some((line, indent)) = found else {
            return self.properties_line();
        };
        let end = self.block_end(line, indent);
        for key in keys {
            for (i, l) in self.lines.iter().enumerate().take(end).skip(line) {
                if let Some(col) = find_key(l, key) {
                    return (clamp_u32(i + 1), clamp_u32(col + 1));
                }
            }
        }
        (clamp_u32(line + 1), clamp_u32(indent + 1))
    }

    fn nth_property(&self, property: &str, n: usize) -> Option<(usize, usize)> {
        self.lines
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                let col = find_key(l, "name")?;
                (key_value(l, col + "name".len() + 1) == property).then_some((i, col))
            })
            .nth(n)
    }

    /// The line after the last line of a block whose keys sit at `indent`.
    fn block_end(&self, start: usize, indent: usize) -> usize {
        self.lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .find(|(_, l)| {
                let trimmed = l.trim_start();
                !trimmed.is_empty()
                    && !trimmed.starts_with('#')
                    && l.chars().count() - trimmed.chars().count() < indent
            })
            .map_or(self.lines.len(), |(i, _)| i)
    }
}

/// The character column of `key:` in a line, if the line has that key (block
/// or flow style, not inside a longer key like `exclusiveMinimum`).
fn find_key(line: &str, key: &str) -> Option<usize> {
    let code = line.split(" #").next().unwrap_or(line);
    let mut from = 0;
    while let Some(pos) = code[from..].find(key) {
        let at = from + pos;
        let before_ok = code[..at]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, ' ' | '\t' | '-' | '{' | ',' | '"' | '\''));
        let after = &code[at + key.len()..];
        let after = after.strip_prefix(['"', '\'']).unwrap_or(after);
        if before_ok && after.starts_with(':') {
            return Some(code[..at].chars().count());
        }
        from = at + key.len();
    }
    None
}

/// The scalar after `key:` (block or flow style), unquoted.
fn key_value(line: &str, char_start: usize) -> String {
    let rest: String = line.chars().skip(char_start).collect();
    let rest = rest.trim_start_matches(['"', '\'', ':', ' ']);
    let end = rest.find([',', '}', '#']).unwrap_or(rest.len());
    rest[..end]
        .trim()
        .trim_matches(['"', '\''])
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_key_respects_word_boundaries() {
        assert_eq!(find_key("  exclusiveMinimum: 0", "minimum"), None);
        assert_eq!(find_key("  minimum: 0", "minimum"), Some(2));
        assert_eq!(find_key("- { name: x, minimum: 0 }", "minimum"), Some(13));
        assert_eq!(find_key("      - name: price", "name"), Some(8));
    }

    #[test]
    fn key_values_are_unquoted() {
        assert_eq!(key_value("- name: 'price' # c", 6), "price");
        assert_eq!(key_value("- { name: x, y: 1 }", 8), "x");
    }

    #[test]
    fn zero_thresholds() {
        let m = |y: &str| match serde_yaml::from_str::<Value>(y) {
            Ok(Value::Mapping(m)) => m,
            _ => Mapping::new(),
        };
        assert!(demands_zero(&m("metric: nullValues")));
        assert!(demands_zero(&m("mustBe: 0")));
        assert!(demands_zero(&m("mustBeLessThan: 1")));
        assert!(!demands_zero(&m("mustBeLessThan: 10")));
        assert!(!demands_zero(&m("mustBeGreaterThan: 0")));
    }
}
