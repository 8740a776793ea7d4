//! Herd files (SPEC §7): TOML to a [`Herd`], with errors that name `file:line:column`.
//!
//! ```toml
//! [herd]
//! id = "finance"
//! [herd.resource_quotas]
//! slices_max = 16
//! cpu_limit = "4000m"      # or "4", "0.5"
//! memory_limit = "8Gi"     # or "512Mi", "1G", bytes
//! [[herd.rbac_policies]]
//! role = "analyst"
//! actions = ["read:datasets", "read:lineage"]
//! [herd.masking_policies]
//! default = "redact"       # redact | hash | tokenize
//! field_level_overrides = { trader_email = "hash" }
//! [herd.default_contract_policy]
//! block_on_drift = true
//! [herd.labels]
//! team = "risk"
//! ```
//! Unknown keys are errors (a misspelt quota must not silently mean "unlimited").

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{BarnError, Result};
use crate::state::{ContractPolicy, Herd, MaskKind, MaskingPolicy, RbacPolicy, ResourceQuotas};

/// Largest herd file read (a herd is a few hundred bytes; this bounds bad input).
pub const HERD_FILE_BYTES_MAX: usize = 1 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    herd: RawHerd,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHerd {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    resource_quotas: RawQuotas,
    #[serde(default)]
    rbac_policies: Vec<RawPolicy>,
    #[serde(default)]
    masking_policies: RawMasking,
    #[serde(default)]
    default_contract_policy: RawContractPolicy,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuotas {
    slices_max: Option<Spanned<u32>>,
    cpu_limit: Option<Spanned<String>>,
    memory_limit: Option<Spanned<String>>,
    isolation: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    role: Spanned<String>,
    actions: Vec<Spanned<String>>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMasking {
    default: Option<MaskKind>,
    #[serde(default)]
    field_level_overrides: BTreeMap<String, MaskKind>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContractPolicy {
    #[serde(default)]
    block_on_drift: bool,
}

/// The verbs an RBAC action may start with (`verb:object`, object may be `*`).
pub const RBAC_VERBS: &[&str] = &["read", "write", "execute", "access", "admin"];

/// The smallest `memory_limit` a herd may give (below it, limits are typos: `"1"` is bytes).
const MEMORY_LIMIT_MIN_BYTES: u64 = 1 << 20;

/// A TOML or serde message about a value, with the key it was given for (`slices_max:
/// invalid value …`) where the value's line says `key = value`, and Rust's type names in
/// words.
fn keyed_message(text: &str, span: Option<Range<usize>>, message: &str) -> String {
    let message = message
        .replace("expected u32", "expected a whole number, 0 or more")
        .replace("expected u64", "expected a whole number, 0 or more")
        .replace("expected a string", "expected text in quotes");
    let Some(start) = span.map(|s| s.start).filter(|&s| s <= text.len()) else {
        return message;
    };
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let before = &text[line_start..start];
    match before.split_once('=') {
        Some((key, rest)) if rest.trim().is_empty() && !key.trim().is_empty() => {
            let key = key.trim().trim_matches('"');
            if message.contains(&format!("`{key}`")) {
                message
            } else {
                format!("`{key}`: {message}")
            }
        }
        _ => message,
    }
}

/// Parses a herd file. `file` is for messages only.
pub fn parse_herd(file: &str, text: &str) -> Result<Herd> {
    let at = |span: Option<Range<usize>>, message: String| {
        let (line, column) = line_column(text, span.map_or(0, |s| s.start));
        BarnError::Herd {
            file: file.to_string(),
            line,
            column,
            message,
        }
    };
    if text.len() > HERD_FILE_BYTES_MAX {
        return Err(at(
            None,
            format!(
                "{} bytes is larger than the {HERD_FILE_BYTES_MAX}-byte limit",
                text.len()
            ),
        ));
    }
    let raw: RawFile = toml::from_str(text)
        .map_err(|e| at(e.span(), keyed_message(text, e.span(), e.message())))?;
    let h = raw.herd;

    let id = h.id.get_ref();
    if !valid_name(id) {
        return Err(at(
            Some(h.id.span()),
            format!(
                "herd id `{id}`: use lowercase letters, digits, `_` and `-`, starting with a letter"
            ),
        ));
    }
    if let Some(v) = &h.resource_quotas.slices_max
        && *v.get_ref() == 0
    {
        return Err(at(
            Some(v.span()),
            "slices_max = 0 would let no Scenario run: give at least 1 (1 runs each Scenario in the `runi run` process)".into(),
        ));
    }
    let cpu_millis = match &h.resource_quotas.cpu_limit {
        Some(v) => Some(parse_cpu_millis(v.get_ref()).ok_or_else(|| {
            at(
                Some(v.span()),
                format!(
                    "cpu_limit `{}` is not a CPU quantity of at least 1m, like \"4000m\", \"4\" or \"0.5\"",
                    v.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let memory_bytes = match &h.resource_quotas.memory_limit {
        Some(v) => {
            let bytes = parse_bytes(v.get_ref()).ok_or_else(|| {
                at(
                    Some(v.span()),
                    format!(
                        "memory_limit `{}` is not a size like \"8Gi\", \"512Mi\" or \"1G\"",
                        v.get_ref()
                    ),
                )
            })?;
            if bytes < MEMORY_LIMIT_MIN_BYTES {
                return Err(at(
                    Some(v.span()),
                    format!(
                        "memory_limit `{}` is {bytes} bytes, less than 1Mi: no slice runs in that (a size like \"512Mi\" or \"8Gi\"; a bare number is bytes)",
                        v.get_ref()
                    ),
                ));
            }
            Some(bytes)
        }
        None => None,
    };
    let isolation_required = match &h.resource_quotas.isolation {
        None => false,
        Some(v) => match v.get_ref().as_str() {
            "required" => true,
            "best_effort" => false,
            other => {
                return Err(at(
                    Some(v.span()),
                    format!("isolation `{other}` is not \"required\" or \"best_effort\""),
                ));
            }
        },
    };
    let mut rbac_policies = Vec::with_capacity(h.rbac_policies.len());
    for p in h.rbac_policies {
        if p.role.get_ref().trim().is_empty() {
            return Err(at(Some(p.role.span()), "an RBAC role needs a name".into()));
        }
        let mut actions = Vec::with_capacity(p.actions.len());
        for a in p.actions {
            let ok = a
                .get_ref()
                .split_once(':')
                .is_some_and(|(verb, object)| RBAC_VERBS.contains(&verb) && !object.is_empty());
            if !ok {
                return Err(at(
                    Some(a.span()),
                    format!(
                        "action `{}` is not VERB:OBJECT with VERB one of {}",
                        a.get_ref(),
                        RBAC_VERBS.join(", ")
                    ),
                ));
            }
            actions.push(a.into_inner());
        }
        rbac_policies.push(RbacPolicy {
            role: p.role.into_inner(),
            actions,
        });
    }
    Ok(Herd {
        id: h.id.into_inner(),
        description: h.description,
        resource_quotas: ResourceQuotas {
            slices_max: h.resource_quotas.slices_max.map(Spanned::into_inner),
            cpu_millis,
            memory_bytes,
            isolation_required,
        },
        rbac_policies,
        masking_policies: MaskingPolicy {
            default: h.masking_policies.default,
            field_level_overrides: h.masking_policies.field_level_overrides,
        },
        default_contract_policy: ContractPolicy {
            block_on_drift: h.default_contract_policy.block_on_drift,
        },
        labels: h.labels,
    })
}

/// Herd names: lowercase identifiers, so they work as SQL schema names unquoted.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        && name.len() <= 63
}

/// `"4000m"` → 4000, `"4"` → 4000, `"0.5"` → 500.
pub fn parse_cpu_millis(text: &str) -> Option<u64> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('m') {
        Some(n) => (n, 1.0),
        None => (text, 1000.0),
    };
    let value: f64 = number.parse().ok()?;
    let millis = value * scale;
    // Less than half a millicore rounds to none: not a quantity a slice can run with.
    (0.5..1e12).contains(&millis).then(|| millis.round() as u64)
}

/// `"8Gi"`, `"512Mi"`, `"1G"`, `"1000"` → bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().ok()?;
    let scale: f64 = match unit {
        "" => 1.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = value * scale;
    (bytes.is_finite() && bytes > 0.0 && bytes < 1.8e19).then_some(bytes as u64)
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

#[cfg(test)]
mod tests {
    use super::{parse_bytes, parse_cpu_millis};

    #[test]
    fn quantities() {
        assert_eq!(parse_bytes("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(parse_bytes("1G"), Some(1_000_000_000));
        assert_eq!(parse_bytes("42"), Some(42));
        assert_eq!(parse_bytes("12 parsecs"), None);
        assert_eq!(parse_bytes(""), None);
        assert_eq!(parse_cpu_millis("4000m"), Some(4000));
        assert_eq!(parse_cpu_millis("0.5"), Some(500));
        assert_eq!(parse_cpu_millis("-1"), None);
    }
}
