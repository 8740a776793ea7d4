//! Contract identity: a canonical JSON text of what the contract enforces, and its SHA-256.
//!
//! The canonical text covers the id, the version and, per field in declared
//! order, everything that changes what data passes or how it is protected:
//! name, Arrow type (in [`crate::types::canonical_type_name`]'s stable spelling), `required`,
//! `unique`, `primary_key`, `classification`, `mask`, `access`, `lineage`,
//! `join_key`, valid values (as written, order kept), pattern, bounds and
//! lengths. It leaves out the display name, status, description, logical and
//! physical type strings, format hints and the source format, so an ODCS YAML
//! contract and the Go struct it was written from hash the same.
//!
//! Keys are in a fixed order with no whitespace. Bounds are printed by
//! `model::number`, so `0` and `0.0` are the same bound. Changing this text changes
//! every stored hash: do it only on purpose (a test pins the example's hash).

use sha2::{Digest, Sha256};

use crate::model::{Contract, number};
use crate::types::canonical_type_name;

pub(crate) fn canonical_json(c: &Contract) -> String {
    let mut out = String::with_capacity(256 + 256 * c.fields.len());
    out.push_str("{\"id\":");
    push_str(&mut out, &c.id);
    out.push_str(",\"version\":");
    push_str(&mut out, &c.version);
    out.push_str(",\"fields\":[");
    for (i, f) in c.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"name\":");
        push_str(&mut out, &f.name);
        out.push_str(",\"data_type\":");
        push_str(&mut out, &canonical_type_name(&f.data_type));
        push_bool(&mut out, "required", f.required);
        push_bool(&mut out, "unique", f.unique);
        push_bool(&mut out, "primary_key", f.primary_key);
        push_opt_str(&mut out, "classification", f.classification.as_deref());
        push_opt_str(&mut out, "mask", f.mask.as_deref());
        push_opt_str(&mut out, "access", f.access.as_deref());
        push_opt_str(&mut out, "lineage", f.lineage.as_deref());
        push_bool(&mut out, "join_key", f.join_key);
        out.push_str(",\"valid_values\":");
        match &f.valid_values {
            None => out.push_str("null"),
            Some(values) => {
                out.push('[');
                for (j, v) in values.iter().enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    push_str(&mut out, v);
                }
                out.push(']');
            }
        }
        push_opt_str(&mut out, "pattern", f.pattern.as_deref());
        push_opt_num(&mut out, "minimum", f.minimum);
        push_opt_num(&mut out, "maximum", f.maximum);
        push_opt_num(&mut out, "exclusive_minimum", f.exclusive_minimum);
        push_opt_num(&mut out, "exclusive_maximum", f.exclusive_maximum);
        push_opt_u64(&mut out, "min_length", f.min_length);
        push_opt_u64(&mut out, "max_length", f.max_length);
        out.push('}');
    }
    out.push_str("]}");
    out
}

pub(crate) fn hash(c: &Contract) -> String {
    let digest = Sha256::digest(canonical_json(c).as_bytes());
    format!("sha256:{}", hex::encode(digest))
}

/// A JSON string literal. serde_json's escaping is the standard one.
fn push_str(out: &mut String, s: &str) {
    match serde_json::to_string(s) {
        Ok(quoted) => out.push_str(&quoted),
        // Serializing a &str cannot fail; keep the text deterministic anyway.
        Err(_) => out.push_str("null"),
    }
}

fn push_bool(out: &mut String, key: &str, v: bool) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    out.push_str(if v { "true" } else { "false" });
}

fn push_opt_str(out: &mut String, key: &str, v: Option<&str>) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    match v {
        Some(s) => push_str(out, s),
        None => out.push_str("null"),
    }
}

fn push_opt_num(out: &mut String, key: &str, v: Option<f64>) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    match v {
        // Bounds are validated finite when read, so this is valid JSON.
        Some(n) => out.push_str(&number(n)),
        None => out.push_str("null"),
    }
}

fn push_opt_u64(out: &mut String, key: &str, v: Option<u64>) {
    out.push_str(",\"");
    out.push_str(key);
    out.push_str("\":");
    match v {
        Some(n) => out.push_str(&n.to_string()),
        None => out.push_str("null"),
    }
}
