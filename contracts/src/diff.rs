//! Contract drift: what changed between two versions of a contract, and whether it breaks
//! the producers or consumers that relied on the old one.
//!
//! A change is *breaking* when data valid under the old contract may be invalid under the
//! new one (a tightened rule, a new required field, a changed type), when a consumer loses
//! something it could rely on (a removed field, a dropped guarantee such as `required` or
//! `unique`), or when protection weakens (a lost PII classification, a changed mask or
//! access role). Adding a field breaks producers, optional or not: enforcement needs every
//! contract column in the data. Loosening a rule or widening a type is not breaking.

use std::collections::BTreeSet;

use arrow::datatypes::DataType;
use serde::Serialize;

use crate::model::{Contract, Field};
use crate::types::type_name;

/// One difference between two contracts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The column it concerns, if any.
    pub column: Option<String>,
    /// What changed, as a sentence.
    pub message: String,
    /// Whether it breaks producers or consumers of the old contract.
    pub breaking: bool,
}

/// Every difference, fields in the new contract's order, removed fields last.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ContractDiff {
    pub changes: Vec<Change>,
}

impl ContractDiff {
    /// Whether any change is breaking.
    pub fn is_breaking(&self) -> bool {
        self.changes.iter().any(|c| c.breaking)
    }
}

/// Compares `old` with `new`.
pub fn diff(old: &Contract, new: &Contract) -> ContractDiff {
    let mut out = Vec::new();
    let mut push = |column: Option<&str>, breaking: bool, message: String| {
        out.push(Change {
            column: column.map(str::to_string),
            message,
            breaking,
        })
    };
    if old.id != new.id {
        push(
            None,
            false,
            format!("id changed from `{}` to `{}`", old.id, new.id),
        );
    }
    for nf in &new.fields {
        match old.fields.iter().find(|f| f.name == nf.name) {
            // Enforcement needs every contract column in the data (required or not), so a
            // new field breaks producers that do not emit it yet.
            None => push(
                Some(&nf.name),
                true,
                format!(
                    "field `{}` added ({}{})",
                    nf.name,
                    type_name(&nf.data_type),
                    if nf.required {
                        ", required"
                    } else {
                        ", optional"
                    }
                ),
            ),
            Some(of) => field_changes(of, nf, &mut push),
        }
    }
    for of in &old.fields {
        if !new.fields.iter().any(|f| f.name == of.name) {
            push(Some(&of.name), true, format!("field `{}` removed", of.name));
        }
    }
    // The fields both have, in another order: enforcement finds columns by name, so no
    // data breaks, but the schema's column order (and the contract's hash) differs.
    let kept = |from: &Contract, other: &Contract| -> Vec<String> {
        from.fields
            .iter()
            .filter(|f| other.fields.iter().any(|g| g.name == f.name))
            .map(|f| f.name.clone())
            .collect()
    };
    let (was, is) = (kept(old, new), kept(new, old));
    if was != is {
        push(
            None,
            false,
            format!("fields reordered: {} -> {}", was.join(", "), is.join(", ")),
        );
    }
    // A version lower than the old one is worth a line: registries and readers take
    // versions to grow.
    if let (Some(was), Some(is)) = (semver(&old.version), semver(&new.version))
        && is < was
    {
        push(
            None,
            false,
            format!("version goes back: {} -> {}", old.version, new.version),
        );
    }
    let breaking = out.iter().any(|c| c.breaking);
    // A new major version is a higher one: the same, a lower one (0.5.0 after 1.0.0) or one
    // that is not a version number (`latest`) does not announce a break.
    let bumped = matches!(
        (major(&old.version), major(&new.version)),
        (Some(was), Some(is)) if is > was
    );
    if breaking && !bumped {
        out.push(Change {
            column: None,
            message: format!(
                "breaking changes without a new major version ({} -> {})",
                old.version, new.version
            ),
            breaking: true,
        });
    }
    ContractDiff { changes: out }
}

/// `MAJOR.MINOR.PATCH` as numbers (missing parts are 0), to compare versions.
fn semver(version: &str) -> Option<(u64, u64, u64)> {
    let mut parts = version
        .trim_start_matches('v')
        .split(['-', '+'])
        .next()?
        .split('.');
    let mut next = || -> Option<u64> {
        match parts.next() {
            Some(p) => p.parse().ok(),
            None => Some(0),
        }
    };
    Some((next()?, next()?, next()?))
}

fn major(version: &str) -> Option<u64> {
    version
        .trim_start_matches('v')
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn field_changes(o: &Field, n: &Field, push: &mut impl FnMut(Option<&str>, bool, String)) {
    let col = Some(n.name.as_str());
    let name = &n.name;
    if o.data_type != n.data_type {
        push(
            col,
            !widens(&o.data_type, &n.data_type),
            format!(
                "`{name}` type {} -> {}",
                type_name(&o.data_type),
                type_name(&n.data_type)
            ),
        );
    }
    flag(push, col, name, "required", o.required, n.required);
    flag(push, col, name, "unique", o.unique, n.unique);
    if o.classification != n.classification {
        let lost = o.classification.is_some() && n.classification.is_none();
        push(
            col,
            lost || o.classification.is_some(),
            match (&o.classification, &n.classification) {
                (Some(a), None) => format!("`{name}` lost its classification `{a}`"),
                (None, Some(b)) => format!("`{name}` is now classified `{b}`"),
                (a, b) => format!("`{name}` classification {} -> {}", show(a), show(b)),
            },
        );
    }
    for (what, a, b) in [("mask", &o.mask, &n.mask), ("access", &o.access, &n.access)] {
        if a != b {
            push(
                col,
                true,
                format!("`{name}` {what} {} -> {}", show(a), show(b)),
            );
        }
    }
    if o.valid_values != n.valid_values {
        match (&o.valid_values, &n.valid_values) {
            (Some(a), Some(b)) => {
                let (a, b): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
                let removed: Vec<_> = a.difference(&b).map(|s| s.as_str()).collect();
                let added: Vec<_> = b.difference(&a).map(|s| s.as_str()).collect();
                if !removed.is_empty() {
                    push(
                        col,
                        true,
                        format!("`{name}` no longer allows {}", removed.join(", ")),
                    );
                }
                if !added.is_empty() {
                    push(
                        col,
                        false,
                        format!("`{name}` now also allows {}", added.join(", ")),
                    );
                }
                if removed.is_empty() && added.is_empty() {
                    // The same values in another order: nothing changes for the data, but
                    // the order shows in messages and in the contract's hash.
                    push(
                        col,
                        false,
                        format!("`{name}` lists its valid values in another order"),
                    );
                }
            }
            (None, Some(b)) => push(
                col,
                true,
                format!("`{name}` now allows only {}", b.join(", ")),
            ),
            (Some(_), None) => push(
                col,
                false,
                format!("`{name}` no longer restricts its values"),
            ),
            (None, None) => {}
        }
    }
    if o.pattern != n.pattern {
        // Two regexes cannot be compared for inclusion: any change may reject old data.
        push(
            col,
            n.pattern.is_some(),
            format!(
                "`{name}` pattern {} -> {}",
                show(&o.pattern),
                show(&n.pattern)
            ),
        );
    }
    // Bounds as the column's type shows them (dates and times as ISO text); lengths as counts.
    let types = (Some(&o.data_type), Some(&n.data_type));
    for (what, old, new, is_lower) in [
        ("minimum", o.minimum, n.minimum, true),
        (
            "exclusive minimum",
            o.exclusive_minimum,
            n.exclusive_minimum,
            true,
        ),
        ("maximum", o.maximum, n.maximum, false),
        (
            "exclusive maximum",
            o.exclusive_maximum,
            n.exclusive_maximum,
            false,
        ),
    ] {
        bound(push, col, name, what, (old, new), types, is_lower);
    }
    let len = |v: Option<u64>| v.map(|x| x as f64);
    for (what, old, new, is_lower) in [
        ("min length", o.min_length, n.min_length, true),
        ("max length", o.max_length, n.max_length, false),
    ] {
        bound(
            push,
            col,
            name,
            what,
            (len(old), len(new)),
            (None, None),
            is_lower,
        );
    }
}

fn show(v: &Option<String>) -> String {
    v.as_deref()
        .map_or("(none)".to_string(), |s| format!("`{s}`"))
}

/// A flag such as `required`: gaining it tightens (producers), losing it drops a guarantee
/// (consumers); both break someone.
fn flag(
    push: &mut impl FnMut(Option<&str>, bool, String),
    col: Option<&str>,
    name: &str,
    what: &str,
    old: bool,
    new: bool,
) {
    if old != new {
        let message = if new {
            format!("`{name}` is now {what}")
        } else {
            format!("`{name}` is no longer {what}")
        };
        push(col, true, message);
    }
}

/// A lower (`is_lower`) or upper bound: tightening or adding one is breaking.
fn bound(
    push: &mut impl FnMut(Option<&str>, bool, String),
    col: Option<&str>,
    name: &str,
    what: &str,
    (old, new): (Option<f64>, Option<f64>),
    (old_type, new_type): (Option<&DataType>, Option<&DataType>),
    is_lower: bool,
) {
    if old == new {
        return;
    }
    let tighter = match (old, new) {
        (None, Some(_)) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => {
            if is_lower {
                b > a
            } else {
                b < a
            }
        }
        (None, None) => false,
    };
    let fmt = |v: Option<f64>, t: Option<&DataType>| match (v, t) {
        (None, _) => "(none)".to_string(),
        (Some(x), Some(t)) => crate::check::show_bound(x, t),
        (Some(x), None) => x.to_string(),
    };
    push(
        col,
        tighter,
        format!(
            "`{name}` {what} {} -> {}",
            fmt(old, old_type),
            fmt(new, new_type)
        ),
    );
}

/// Widening conversions every old value survives.
fn widens(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    matches!(
        (from, to),
        (Int8, Int16 | Int32 | Int64)
            | (Int16, Int32 | Int64)
            | (Int32, Int64)
            | (UInt8, UInt16 | UInt32 | UInt64 | Int16 | Int32 | Int64)
            | (UInt16, UInt32 | UInt64 | Int32 | Int64)
            | (UInt32, UInt64 | Int64)
            | (Float32, Float64)
            | (Utf8, LargeUtf8 | Utf8View)
    )
}
