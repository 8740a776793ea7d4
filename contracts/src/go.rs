//! Go-struct reader: imports the seed project's contracts, Go structs whose field tags carry the rules.
//!
//! ```go
//! // Trade is one executed trade.
//! // @contract_id:"trade"
//! // @contract_version:"1.2.0"
//! type Trade struct {
//!     TradeID string `json:"trade_id" validate:"required,unique" primary_key:"true"`
//! }
//! ```
//!
//! - The contract is the struct whose doc comment (the `//` or `/* */` lines
//!   right above `type`) has `@contract_version:"x.y.z"`. Exactly one struct
//!   in the file may carry it. Other `@key:"value"` annotations: `contract_id`
//!   (default: the struct name in snake_case), `status`, `description`
//!   (default: the comment's prose); the rest are ignored.
//! - Column name: the `json` tag's name, else the field name in snake_case;
//!   `json:"-"` and unexported fields are skipped, as `encoding/json` does.
//! - Types: `string`, `bool`, the sized and unsized integers, `float32`,
//!   `float64`, `time.Time` (microsecond timestamp), `decimal.Decimal`
//!   (`Decimal128(38, 10)`) and the `database/sql` `Null*` wrappers. `*T` is
//!   `T` (nullability comes from `validate:"required"`, not from the
//!   pointer), `[]byte` is binary and `[]T` a list. Anything else is an
//!   error at the type.
//! - Tags: `validate` (`required`, `unique`, `omitempty`, `gt`, `gte`, `lt`,
//!   `lte`, `min`, `max`, `len`, `oneof`; on strings, binary and slices the
//!   size validators bound the length, as go-playground/validator does),
//!   `enum:"A,B"`, `pattern`, `pii`, `mask`, `access`, `lineage`, `join_key`,
//!   `primary_key`. Other tag keys (`db`, `gorm`, ...) are ignored; unknown
//!   validators are errors, because ignoring one would silently drop a rule.
//!
//! The reader is a small tokenizer plus a scan for `type Name struct {`; it
//! does not type-check Go, it only needs struct declarations.

use std::collections::HashMap;

use arrow::datatypes::DataType;

use crate::error::{ContractError, Result};
use crate::model::{self, Contract, Field, SourceFormat, rule};
use crate::types;

pub(crate) fn parse(file: &str, text: &str) -> Result<Contract> {
    let tokens = lex(file, text)?;
    let code: Vec<usize> = (0..tokens.len())
        .filter(|&i| tokens[i].kind != Kind::Comment)
        .collect();
    let closing = closing_brackets(&tokens, &code);
    // An unclosed bracket (a struct missing its `}`) would otherwise hide the struct.
    if let Some(open) = code.iter().enumerate().find_map(|(k, &i)| {
        let t = &tokens[i];
        (t.kind == Kind::Punct && matches!(t.text, "{" | "(" | "[") && closing[k].is_none())
            .then_some(t)
    }) {
        return Err(ContractError::syntax(
            file,
            open.line,
            open.col,
            format!("this `{}` is never closed", open.text),
        ));
    }
    let p = Parser {
        file,
        tokens: &tokens,
        code: &code,
        closing,
    };
    let structs = p.find_structs();
    let annotated: Vec<&StructDecl> = structs
        .iter()
        .filter(|s| s.annotations.contains_key("contract_version"))
        .collect();
    let decl = match annotated.as_slice() {
        [one] => *one,
        [] => {
            let hint = "mark the contract struct with a `// @contract_version:\"x.y.z\"` comment right above it";
            return Err(if structs.is_empty() {
                ContractError::syntax(file, 1, 1, format!("no struct declaration found; {hint}"))
            } else {
                let names: Vec<&str> = structs.iter().map(|s| s.name.as_str()).collect();
                ContractError::syntax(
                    file,
                    1,
                    1,
                    format!(
                        "no struct is annotated as a contract (found {}); {hint}",
                        names.join(", ")
                    ),
                )
            });
        }
        [first, second, ..] => {
            let t = &tokens[second.name_tok];
            return Err(ContractError::syntax(
                file,
                t.line,
                t.col,
                format!(
                    "several structs are annotated with @contract_version (`{}` and `{}`); put one contract in each file",
                    first.name, second.name
                ),
            ));
        }
    };
    p.contract(decl)
}

/// Deepest `*`/`[]` nesting of a field type; real contracts use one or two.
const GO_TYPE_DEPTH_MAX: usize = 16;

/// One `type Name struct { ... }` declaration.
struct StructDecl {
    name: String,
    /// Index into the token list (not the code list) of the name.
    name_tok: usize,
    generic: bool,
    annotations: HashMap<String, String>,
    prose: Vec<String>,
    /// Code-list indices of `{` and its matching `}`.
    open: usize,
    close: usize,
}

struct Parser<'a> {
    file: &'a str,
    tokens: &'a [Tok<'a>],
    /// Indices of non-comment tokens.
    code: &'a [usize],
    /// For each code index of an opening bracket, the code index of its
    /// closing bracket. Computed once so that no input makes the scan quadratic.
    closing: Vec<Option<usize>>,
}

impl<'a> Parser<'a> {
    fn tok(&self, k: usize) -> Option<&'a Tok<'a>> {
        self.code.get(k).map(|&i| &self.tokens[i])
    }

    fn is_punct(&self, k: usize, c: char) -> bool {
        self.tok(k)
            .is_some_and(|t| t.kind == Kind::Punct && t.text.starts_with(c))
    }

    fn is_ident(&self, k: usize, s: &str) -> bool {
        self.tok(k)
            .is_some_and(|t| t.kind == Kind::Ident && t.text == s)
    }

    fn error_at(&self, t: &Tok<'_>, message: impl Into<String>) -> ContractError {
        ContractError::syntax(self.file, t.line, t.col, message)
    }

    /// Every struct type declared at the top level or in a `type ( ... )` group.
    fn find_structs(&self) -> Vec<StructDecl> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut in_group = false;
        for k in 0..self.code.len() {
            let Some(t) = self.tok(k) else { break };
            if t.kind == Kind::Punct {
                match t.text {
                    "{" | "(" | "[" => depth += 1,
                    "}" | ")" | "]" => {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            in_group = false;
                        }
                    }
                    _ => {}
                }
                continue;
            }
            if t.kind != Kind::Ident {
                continue;
            }
            if depth == 0 && t.text == "type" && self.is_punct(k + 1, '(') {
                in_group = true;
                continue;
            }
            let prev = k.checked_sub(1).and_then(|p| self.tok(p));
            let single =
                depth == 0 && prev.is_some_and(|p| p.kind == Kind::Ident && p.text == "type");
            let grouped = in_group
                && depth == 1
                && prev.is_some_and(|p| {
                    (p.kind == Kind::Punct && (p.text == "(" || p.text == ";")) || p.line < t.line
                });
            if !(single || grouped) {
                continue;
            }
            if let Some(decl) = self.struct_decl(k, if single { k - 1 } else { k }) {
                out.push(decl);
            }
        }
        out
    }

    /// `Name [T any] = struct {` starting at code index `k`; `doc_anchor` is
    /// the code index of the token the doc comment sits above.
    fn struct_decl(&self, k: usize, doc_anchor: usize) -> Option<StructDecl> {
        let name_tok = self.code[k];
        let mut m = k + 1;
        let mut generic = false;
        if self.is_punct(m, '[') {
            generic = true;
            m = self.matching(m)? + 1;
        }
        if self.is_punct(m, '=') {
            m += 1;
        }
        if !(self.is_ident(m, "struct") && self.is_punct(m + 1, '{')) {
            return None;
        }
        let open = m + 1;
        let close = self.matching(open)?;
        let (annotations, prose) = doc_comment(self.tokens, self.code[doc_anchor]);
        Some(StructDecl {
            name: self.tokens[name_tok].text.to_string(),
            name_tok,
            generic,
            annotations,
            prose,
            open,
            close,
        })
    }

    /// The code index of the bracket closing the one at `open`.
    fn matching(&self, open: usize) -> Option<usize> {
        self.closing.get(open).copied().flatten()
    }

    fn contract(&self, decl: &StructDecl) -> Result<Contract> {
        let name_tok = &self.tokens[decl.name_tok];
        if decl.generic {
            return Err(self.error_at(
                name_tok,
                format!("generic struct `{}` cannot be a contract", decl.name),
            ));
        }
        let version = decl
            .annotations
            .get("contract_version")
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        if version.is_empty() {
            return Err(self.error_at(
                name_tok,
                format!("@contract_version of `{}` is empty", decl.name),
            ));
        }
        let id = match decl.annotations.get("contract_id").map(|s| s.trim()) {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => types::snake_case(&decl.name),
        };
        let description = decl.annotations.get("description").cloned().or_else(|| {
            let prose = decl.prose.join(" ");
            (!prose.is_empty()).then_some(prose)
        });

        let mut fields: Vec<(Field, &Tok<'_>)> = Vec::new();
        let mut k = decl.open + 1;
        while k < decl.close {
            match self.field(k, decl.close)? {
                (Some(parsed), next) => {
                    fields.extend(parsed);
                    k = next;
                }
                (None, next) => k = next,
            }
        }
        if fields.is_empty() {
            return Err(self.error_at(
                name_tok,
                format!(
                    "struct `{}` has no exported fields to use as columns",
                    decl.name
                ),
            ));
        }
        let just_fields: Vec<Field> = fields.iter().map(|(f, _)| f.clone()).collect();
        if let Some(i) = model::duplicate_column(&just_fields) {
            return Err(self.error_at(
                fields[i].1,
                format!("column `{}` is declared twice", fields[i].0.name),
            ));
        }
        Ok(Contract {
            id,
            name: decl.name.clone(),
            version,
            status: decl.annotations.get("status").cloned(),
            description,
            fields: just_fields,
            format: SourceFormat::Go,
        })
    }

    /// One field declaration starting at code index `k`; returns the
    /// fields it declares (`A, B int` declares two) and the next index.
    #[expect(
        clippy::type_complexity,
        reason = "private helper, tuple is read right away"
    )]
    fn field(&self, k: usize, close: usize) -> Result<(Option<Vec<(Field, &'a Tok<'a>)>>, usize)> {
        let Some(first) = self.tok(k) else {
            return Ok((None, close));
        };
        if first.kind == Kind::Punct && first.text == ";" {
            return Ok((None, k + 1));
        }
        if first.kind == Kind::Punct && first.text == "*" {
            return Err(self.error_at(
                first,
                "embedded fields are not supported: list the columns in the contract struct",
            ));
        }
        if first.kind != Kind::Ident {
            return Err(self.error_at(
                first,
                format!("expected a field name, found `{}`", first.text),
            ));
        }
        // `Name`, `pkg.Name` or `Name "tag"` alone is an embedded field.
        let next = self.tok(k + 1);
        let embedded = k + 1 >= close
            || next.is_none_or(|n| {
                n.line > first.line
                    || matches!(n.kind, Kind::Str | Kind::RawStr)
                    || (n.kind == Kind::Punct && (n.text == ";" || n.text == "."))
            });
        if embedded {
            return Err(self.error_at(
                first,
                format!(
                    "embedded field `{}` is not supported: list its columns in the contract struct",
                    first.text
                ),
            ));
        }
        let mut names = vec![first];
        let mut m = k + 1;
        while self.is_punct(m, ',') {
            match self.tok(m + 1) {
                Some(t) if t.kind == Kind::Ident => names.push(t),
                Some(t) => return Err(self.error_at(t, "expected a field name after `,`")),
                None => break,
            }
            m += 2;
        }
        let (go_type, mut m) = self.go_type(m, close, first)?;
        let last_line = self
            .tok(m.saturating_sub(1))
            .map_or(first.line, |t| t.end_line);
        let tag = match self.tok(m) {
            Some(t)
                if m < close
                    && matches!(t.kind, Kind::Str | Kind::RawStr)
                    && t.line == last_line =>
            {
                m += 1;
                Some(t)
            }
            _ => None,
        };
        if m < close
            && let Some(t) = self.tok(m)
        {
            let end_line = self.tok(m - 1).map_or(first.line, |p| p.end_line);
            let separated = t.line > end_line || (t.kind == Kind::Punct && t.text == ";");
            if !separated {
                return Err(self.error_at(
                    t,
                    format!("unexpected `{}` after field `{}`", t.text, first.text),
                ));
            }
        }
        let tag = match tag {
            Some(t) => Some(Tag::parse(self.file, t)?),
            None => None,
        };
        let mut out = Vec::new();
        for name in names {
            if !name.text.starts_with(|c: char| c.is_uppercase()) {
                // encoding/json ignores unexported fields, so the data never has them.
                continue;
            }
            if let Some(f) = self.build_field(name, &go_type, tag.as_ref())? {
                out.push((f, name));
            }
        }
        Ok((Some(out), m))
    }

    /// Parses a type at code index `k`; `field` names the field in errors.
    fn go_type(&self, k: usize, close: usize, field: &Tok<'_>) -> Result<(GoType, usize)> {
        self.go_type_nested(k, close, field, 0)
    }

    /// `depth` counts `*` and `[]` prefixes, so `****...T` cannot exhaust the stack.
    fn go_type_nested(
        &self,
        k: usize,
        close: usize,
        field: &Tok<'_>,
        depth: usize,
    ) -> Result<(GoType, usize)> {
        let t = match self.tok(k) {
            Some(t) if k < close => t,
            _ => {
                return Err(self.error_at(field, format!("field `{}` has no type", field.text)));
            }
        };
        if depth > GO_TYPE_DEPTH_MAX {
            return Err(self.error_at(
                t,
                format!("type of field `{}` is nested too deeply", field.text),
            ));
        }
        let unknown = |text: &str| {
            self.error_at(
                t,
                format!(
                    "unknown Go type `{text}` for field `{}` (supported: {})",
                    field.text,
                    types::GO_TYPES_HELP
                ),
            )
        };
        match (t.kind, t.text) {
            (Kind::Punct, "*") => {
                let (inner, next) = self.go_type_nested(k + 1, close, field, depth + 1)?;
                Ok((
                    GoType {
                        text: format!("*{}", inner.text),
                        ..inner
                    },
                    next,
                ))
            }
            (Kind::Punct, "[") if self.is_punct(k + 1, ']') => {
                let (elem, next) = self.go_type_nested(k + 2, close, field, depth + 1)?;
                let text = format!("[]{}", elem.text);
                let data_type = if matches!(elem.text.as_str(), "byte" | "uint8") {
                    DataType::Binary
                } else {
                    types::list_of(elem.data_type)
                };
                Ok((GoType { text, data_type }, next))
            }
            (Kind::Punct, "[") => Err(self.error_at(
                t,
                format!(
                    "fixed-size array type of field `{}` is not supported; use a slice",
                    field.text
                ),
            )),
            (Kind::Ident, "struct") => Err(self.error_at(
                t,
                format!(
                    "field `{}` is a nested anonymous struct, which is not supported: flatten its fields into the contract",
                    field.text
                ),
            )),
            (Kind::Ident, "map" | "interface" | "func" | "chan") => Err(unknown(t.text)),
            (Kind::Ident, first) => {
                let (name, next) = match (self.is_punct(k + 1, '.'), self.tok(k + 2)) {
                    (true, Some(second)) if second.kind == Kind::Ident => {
                        (format!("{first}.{}", second.text), k + 3)
                    }
                    _ => (first.to_string(), k + 1),
                };
                if self.is_punct(next, '[') && self.tok(next).is_some_and(|b| b.line == t.line) {
                    return Err(unknown(&format!("{name}[...]")));
                }
                match types::go_scalar(&name) {
                    Some(data_type) => Ok((GoType { text: name, data_type }, next)),
                    None => Err(unknown(&name)),
                }
            }
            _ => Err(self.error_at(
                t,
                format!("expected a type for field `{}`, found `{}`", field.text, t.text),
            )),
        }
    }

    fn build_field(
        &self,
        name: &Tok<'_>,
        go_type: &GoType,
        tag: Option<&Tag>,
    ) -> Result<Option<Field>> {
        let mut column = types::snake_case(name.text);
        if let Some(json) = tag.and_then(|t| t.get("json")) {
            let json_name = json.value.split(',').next().unwrap_or("");
            if json.value == "-" {
                return Ok(None);
            }
            if !json_name.is_empty() {
                column = json_name.to_string();
            }
        }
        let mut f = Field::new(column, go_type.data_type.clone());
        f.physical_type = physical_hint(&go_type.data_type);
        let Some(tag) = tag else {
            return Ok(Some(f));
        };
        let mut one_of: Option<(Vec<String>, (u32, u32))> = None;
        if let Some(v) = tag.get("validate") {
            one_of = self.apply_validate(&mut f, name, go_type, tag, v)?;
        }
        if let Some(e) = tag.get("enum") {
            let values: Vec<String> = e
                .value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if let Some((oneof, at)) = &one_of
                && *oneof != values
            {
                return Err(ContractError::syntax(
                    self.file,
                    at.0,
                    at.1,
                    format!(
                        "field `{}` lists valid values twice, differently (oneof and enum); keep one",
                        name.text
                    ),
                ));
            }
            f.valid_values = Some(values);
        }
        if let Some(p) = tag.get("pattern") {
            f.pattern = Some(p.value.clone());
        }
        if let Some(pii) = tag.get("pii") {
            f.classification = match pii.value.as_str() {
                "true" => Some("pii".to_string()),
                "false" | "" => None,
                other => Some(other.to_string()),
            };
        }
        f.mask = tag.non_empty("mask");
        f.access = tag.non_empty("access");
        f.lineage = tag.non_empty("lineage");
        f.join_key = self.flag(tag, "join_key", name)?;
        f.primary_key = self.flag(tag, "primary_key", name)?;
        if f.primary_key {
            f.required = true;
            f.unique = true;
        }
        f.nullable = !f.required;
        if let Err(problem) = model::validate_field(&f) {
            let key = match problem.rule {
                rule::PATTERN => "pattern",
                rule::VALID_VALUES if tag.get("enum").is_some() => "enum",
                _ => "validate",
            };
            let (line, col) = tag
                .get(key)
                .map_or((name.line, name.col), |e| tag.position(e.value_offset));
            return Err(ContractError::syntax(self.file, line, col, problem.message));
        }
        Ok(Some(f))
    }

    fn flag(&self, tag: &Tag, key: &str, field: &Tok<'_>) -> Result<bool> {
        match tag.get(key).map(|e| (e, e.value.as_str())) {
            None | Some((_, "false")) => Ok(false),
            Some((_, "true")) => Ok(true),
            Some((e, other)) => {
                let (line, col) = tag.position(e.value_offset);
                Err(ContractError::syntax(
                    self.file,
                    line,
                    col,
                    format!(
                        "tag `{key}` of field `{}` must be \"true\" or \"false\", not {other:?}",
                        field.text
                    ),
                ))
            }
        }
    }

    /// Applies a `validate` tag; returns the `oneof` values and where they are.
    #[expect(
        clippy::type_complexity,
        reason = "private helper, tuple is read right away"
    )]
    fn apply_validate(
        &self,
        f: &mut Field,
        name: &Tok<'_>,
        go_type: &GoType,
        tag: &Tag,
        entry: &TagEntry,
    ) -> Result<Option<(Vec<String>, (u32, u32))>> {
        let mut one_of = None;
        let mut offset = 0usize;
        for item in entry.value.split(',') {
            let item_offset = offset;
            offset += item.len() + 1;
            if item.is_empty() {
                continue;
            }
            // Offsets into the tag are exact unless the value had escapes.
            let at = if entry.escaped {
                tag.position(entry.value_offset)
            } else {
                tag.position(entry.value_offset + item_offset)
            };
            let err = |message: String| ContractError::syntax(self.file, at.0, at.1, message);
            let (validator, param) = match item.split_once('=') {
                Some((v, p)) => (v, Some(p)),
                None => (item, None),
            };
            match (validator, param) {
                ("required", None) => f.required = true,
                ("unique", None) => f.unique = true,
                ("omitempty", None) => {}
                ("oneof", Some(p)) => {
                    let Some(values) = split_oneof(p) else {
                        return Err(err(format!(
                            "`oneof` of field `{}` has a quote that is not closed: {p}",
                            name.text
                        )));
                    };
                    if values.is_empty() {
                        return Err(err(format!(
                            "`oneof` of field `{}` lists no values",
                            name.text
                        )));
                    }
                    f.valid_values = Some(values.clone());
                    one_of = Some((values, at));
                }
                ("gt" | "gte" | "lt" | "lte" | "min" | "max" | "len", Some(p)) => {
                    let t = &go_type.data_type;
                    if types::is_numeric(t) {
                        if let Some(message) = p.trim().parse::<i128>().ok().and_then(|i| {
                            crate::model::inexact_integer_bound(i, validator, name.text)
                        }) {
                            return Err(err(message));
                        }
                        let n: f64 = p
                            .trim()
                            .parse()
                            .ok()
                            .filter(|n: &f64| n.is_finite())
                            .ok_or_else(|| {
                                err(format!(
                                    "`{validator}={p}` of field `{}` needs a number",
                                    name.text
                                ))
                            })?;
                        // Every validator must hold: a bound set twice keeps the tighter.
                        match validator {
                            "gt" => raise(&mut f.exclusive_minimum, n),
                            "gte" | "min" => raise(&mut f.minimum, n),
                            "lt" => lower(&mut f.exclusive_maximum, n),
                            "lte" | "max" => lower(&mut f.maximum, n),
                            _ => {
                                raise(&mut f.minimum, n);
                                lower(&mut f.maximum, n);
                            }
                        }
                    } else if types::has_length(t) {
                        let n: u64 = p.trim().parse().map_err(|_| {
                            err(format!(
                                "`{validator}={p}` of field `{}` needs a whole number (a length)",
                                name.text
                            ))
                        })?;
                        match validator {
                            "gt" => raise(&mut f.min_length, n.saturating_add(1)),
                            "gte" | "min" => raise(&mut f.min_length, n),
                            "lt" => lower(
                                &mut f.max_length,
                                n.checked_sub(1).ok_or_else(|| {
                                    err(format!(
                                        "`lt=0` of field `{}` allows no value at all",
                                        name.text
                                    ))
                                })?,
                            ),
                            "lte" | "max" => lower(&mut f.max_length, n),
                            _ => {
                                raise(&mut f.min_length, n);
                                lower(&mut f.max_length, n);
                            }
                        }
                    } else {
                        return Err(err(format!(
                            "validator `{validator}` does not apply to field `{}` of type {}",
                            name.text, go_type.text
                        )));
                    }
                }
                _ => {
                    return Err(err(format!(
                        "unknown validator `{item}` on field `{}` (supported: required, unique, omitempty, gt=, gte=, lt=, lte=, min=, max=, len=, oneof=)",
                        name.text
                    )));
                }
            }
        }
        Ok(one_of)
    }
}

/// Matches `(`/`)`, `[`/`]` and `{`/`}` over the code tokens with one stack.
/// A mismatched closer ends the brackets it skips over, like a forgiving parser.
fn closing_brackets(tokens: &[Tok<'_>], code: &[usize]) -> Vec<Option<usize>> {
    let mut closing = vec![None; code.len()];
    let mut open: Vec<(usize, char)> = Vec::new();
    for (k, &i) in code.iter().enumerate() {
        let t = &tokens[i];
        if t.kind != Kind::Punct {
            continue;
        }
        let closer = match t.text {
            "(" => Some(')'),
            "[" => Some(']'),
            "{" => Some('}'),
            _ => None,
        };
        if let Some(c) = closer {
            open.push((k, c));
        } else if matches!(t.text, ")" | "]" | "}") {
            while let Some((o, c)) = open.pop() {
                if t.text.starts_with(c) {
                    closing[o] = Some(k);
                    break;
                }
            }
        }
    }
    closing
}

/// `A B 'C D'` → `["A", "B", "C D"]`, go-playground's `oneof` syntax; `None` when a quote
/// is not closed.
fn split_oneof(p: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut rest = p.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('\'') {
            let end = quoted.find('\'')?;
            out.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            out.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Some(out)
}

/// The ODCS physical type to record for a Go type whose Arrow type is not
/// its logical type's default (so `int32` stays `int32` if written to ODCS).
fn physical_hint(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Int8 => "int8".to_string(),
        DataType::Int16 => "int16".to_string(),
        DataType::Int32 => "int32".to_string(),
        DataType::UInt8 => "uint8".to_string(),
        DataType::UInt16 => "uint16".to_string(),
        DataType::UInt32 => "uint32".to_string(),
        DataType::UInt64 => "uint64".to_string(),
        DataType::Float32 => "float32".to_string(),
        DataType::Decimal128(p, s) => format!("decimal({p},{s})"),
        DataType::Binary => "binary".to_string(),
        _ => return None,
    })
}

struct GoType {
    /// As spelled in Go, for messages.
    text: String,
    data_type: DataType,
}

/// A struct tag, parsed like `reflect.StructTag`.
struct Tag {
    entries: Vec<TagEntry>,
    /// Where the tag's content starts, and whether offsets map to columns
    /// one to one (raw strings) or only approximately (interpreted strings).
    line: u32,
    col: u32,
    content: String,
}

struct TagEntry {
    key: String,
    value: String,
    /// Byte offset of the value's first character in the tag content.
    value_offset: usize,
    /// The value had `\` escapes, so offsets inside it are approximate.
    escaped: bool,
}

impl Tag {
    fn parse(file: &str, t: &Tok<'_>) -> Result<Tag> {
        let content = match t.kind {
            // Go drops carriage returns from raw strings.
            Kind::RawStr => t.text[1..t.text.len() - 1].replace('\r', ""),
            _ => unquote(&t.text[1..t.text.len() - 1]).ok_or_else(|| {
                ContractError::syntax(file, t.line, t.col, "invalid escape in struct tag")
            })?,
        };
        let mut tag = Tag {
            entries: Vec::new(),
            line: t.line,
            col: t.col + 1,
            content,
        };
        let bytes = tag.content.as_bytes();
        let mut i = 0;
        loop {
            while i < bytes.len() && bytes[i] == b' ' {
                i += 1;
            }
            if i >= bytes.len() {
                break;
            }
            let key_start = i;
            while i < bytes.len()
                && bytes[i] > b' '
                && bytes[i] != b':'
                && bytes[i] != b'"'
                && bytes[i] != 0x7f
            {
                i += 1;
            }
            if i == key_start || i + 1 >= bytes.len() || bytes[i] != b':' || bytes[i + 1] != b'"' {
                let (line, col) = tag.position(key_start);
                return Err(ContractError::syntax(
                    file,
                    line,
                    col,
                    "malformed struct tag: expected key:\"value\" pairs separated by spaces",
                ));
            }
            let key = tag.content[key_start..i].to_string();
            i += 2;
            let value_start = i;
            let mut escaped = false;
            while i < bytes.len() && bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            if i >= bytes.len() {
                let (line, col) = tag.position(key_start);
                return Err(ContractError::syntax(
                    file,
                    line,
                    col,
                    format!("malformed struct tag: value of `{key}` has no closing quote"),
                ));
            }
            let raw = &tag.content[value_start..i];
            let value = if escaped {
                unquote(raw).ok_or_else(|| {
                    let (line, col) = tag.position(value_start);
                    ContractError::syntax(file, line, col, format!("invalid escape in tag `{key}`"))
                })?
            } else {
                raw.to_string()
            };
            i += 1;
            tag.entries.push(TagEntry {
                key,
                value,
                value_offset: value_start,
                escaped,
            });
        }
        Ok(tag)
    }

    /// The first entry with `key`, as `reflect.StructTag.Lookup` does.
    fn get(&self, key: &str) -> Option<&TagEntry> {
        self.entries.iter().find(|e| e.key == key)
    }

    fn non_empty(&self, key: &str) -> Option<String> {
        self.get(key)
            .map(|e| e.value.clone())
            .filter(|v| !v.is_empty())
    }

    /// Line and column of a byte offset in the tag content.
    fn position(&self, offset: usize) -> (u32, u32) {
        let (mut line, mut col) = (self.line, self.col);
        for c in self.content.get(..offset).unwrap_or("").chars() {
            if c == '\n' {
                line += 1;
                col = 1;
            } else {
                col += 1;
            }
        }
        (line, col)
    }
}

/// Undoes Go's interpreted-string escapes (`\"`, `\\`, `\n`, `\x41`, `\u00e9`, ...).
fn unquote(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let e = chars.next()?;
        match e {
            'a' => out.push('\u{7}'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'v' => out.push('\u{b}'),
            '\\' | '"' | '\'' => out.push(e),
            'x' | 'u' | 'U' => {
                let n = match e {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                let hex: String = chars.by_ref().take(n).collect();
                if hex.len() != n {
                    return None;
                }
                out.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
            }
            '0'..='7' => {
                let rest: String = chars.by_ref().take(2).collect();
                let code = u32::from_str_radix(&format!("{e}{rest}"), 8).ok()?;
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Annotations (`@key:"value"`) and prose lines of the comments right above
/// token `anchor` (an index into `tokens`).
fn doc_comment(tokens: &[Tok<'_>], anchor: usize) -> (HashMap<String, String>, Vec<String>) {
    let mut comments = Vec::new();
    let mut next_line = tokens[anchor].line;
    let mut i = anchor;
    while i > 0 {
        i -= 1;
        let t = &tokens[i];
        if t.kind != Kind::Comment || t.end_line + 1 < next_line {
            break;
        }
        comments.push(t);
        next_line = t.line;
    }
    comments.reverse();
    let mut annotations = HashMap::new();
    let mut prose = Vec::new();
    for c in comments {
        let body = c
            .text
            .strip_prefix("//")
            .or_else(|| {
                c.text
                    .strip_prefix("/*")
                    .map(|b| b.strip_suffix("*/").unwrap_or(b))
            })
            .unwrap_or(c.text);
        for line in body.lines() {
            let line = line.trim().trim_start_matches('*').trim();
            match parse_annotation(line) {
                Some((k, v)) => {
                    annotations.entry(k).or_insert(v);
                }
                None if !line.is_empty() => prose.push(line.to_string()),
                None => {}
            }
        }
    }
    (annotations, prose)
}

/// `@key:"value"` (or `@key: value`) at the start of a comment line.
fn parse_annotation(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('@')?;
    let key_end = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    let key = &rest[..key_end];
    let rest = rest[key_end..].trim_start().strip_prefix(':')?.trim_start();
    if key.is_empty() {
        return None;
    }
    let value = match rest.strip_prefix('"') {
        Some(q) => {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in q.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let raw = &q[..end?];
            unquote(raw).unwrap_or_else(|| raw.to_string())
        }
        None => rest.split_whitespace().next().unwrap_or("").to_string(),
    };
    Some((key.to_string(), value))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    RawStr,
    Char,
    Number,
    Punct,
    Comment,
}

/// A token: its kind, its exact source text and where it starts and ends.
struct Tok<'a> {
    kind: Kind,
    text: &'a str,
    line: u32,
    col: u32,
    end_line: u32,
}

/// Splits Go source into tokens. Only the lexical structure matters here
/// (comments, strings, runes, identifiers, punctuation); operators come out
/// one character at a time, which is enough to find struct declarations.
fn lex<'a>(file: &str, text: &'a str) -> Result<Vec<Tok<'a>>> {
    let mut out = Vec::new();
    let mut cur = Cursor {
        text,
        pos: 0,
        line: 1,
        col: 1,
    };
    while let Some(c) = cur.peek() {
        if c.is_whitespace() {
            cur.bump();
            continue;
        }
        let (start, line, col) = (cur.pos, cur.line, cur.col);
        let rest = &text[start..];
        let kind = if rest.starts_with("//") {
            while cur.peek().is_some_and(|c| c != '\n') {
                cur.bump();
            }
            Kind::Comment
        } else if rest.starts_with("/*") {
            cur.bump();
            cur.bump();
            loop {
                if cur.rest().starts_with("*/") {
                    cur.bump();
                    cur.bump();
                    break;
                }
                if cur.bump().is_none() {
                    return Err(ContractError::syntax(
                        file,
                        line,
                        col,
                        "unterminated /* comment",
                    ));
                }
            }
            Kind::Comment
        } else if c == '"' || c == '\'' {
            cur.bump();
            loop {
                match cur.bump() {
                    Some('\\') => {
                        if cur.peek().is_some_and(|n| n != '\n') {
                            cur.bump();
                        }
                    }
                    Some(q) if q == c => break,
                    None | Some('\n') => {
                        let what = if c == '"' { "string" } else { "rune" };
                        return Err(ContractError::syntax(
                            file,
                            line,
                            col,
                            format!("unterminated {what} literal"),
                        ));
                    }
                    Some(_) => {}
                }
            }
            if c == '"' { Kind::Str } else { Kind::Char }
        } else if c == '`' {
            cur.bump();
            loop {
                match cur.bump() {
                    Some('`') => break,
                    None => {
                        return Err(ContractError::syntax(
                            file,
                            line,
                            col,
                            "unterminated raw string literal",
                        ));
                    }
                    Some(_) => {}
                }
            }
            Kind::RawStr
        } else if c.is_alphabetic() || c == '_' {
            while cur.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                cur.bump();
            }
            Kind::Ident
        } else if c.is_ascii_digit() {
            let mut prev = c;
            cur.bump();
            while let Some(n) = cur.peek() {
                let exponent_sign = matches!(n, '+' | '-') && matches!(prev, 'e' | 'E' | 'p' | 'P');
                if !(n.is_alphanumeric() || n == '_' || n == '.' || exponent_sign) {
                    break;
                }
                prev = n;
                cur.bump();
            }
            Kind::Number
        } else {
            cur.bump();
            Kind::Punct
        };
        let end_line = if cur.pos > start && text[start..cur.pos].ends_with('\n') {
            cur.line - 1
        } else {
            cur.line
        };
        out.push(Tok {
            kind,
            text: &text[start..cur.pos],
            line,
            col,
            end_line,
        });
    }
    Ok(out)
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.col = 1;
        } else {
            self.col = self.col.saturating_add(1);
        }
        Some(c)
    }
}

/// Sets a lower bound that every validator must meet: the tighter of `n` and the one set.
fn raise<T: PartialOrd + Copy>(slot: &mut Option<T>, n: T) {
    *slot = Some(match *slot {
        Some(old) if old > n => old,
        _ => n,
    });
}

/// Sets an upper bound that every validator must meet: the tighter of `n` and the one set.
fn lower<T: PartialOrd + Copy>(slot: &mut Option<T>, n: T) {
    *slot = Some(match *slot {
        Some(old) if old < n => old,
        _ => n,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oneof_splits_on_spaces_and_quotes() {
        assert_eq!(
            split_oneof("BUY SELL"),
            Some(vec!["BUY".into(), "SELL".into()])
        );
        assert_eq!(split_oneof("'a b' c"), Some(vec!["a b".into(), "c".into()]));
        assert_eq!(split_oneof("  "), Some(vec![]));
        assert_eq!(split_oneof("'A B"), None);
        assert_eq!(split_oneof("X 'A"), None);
    }

    #[test]
    fn annotations() {
        assert_eq!(
            parse_annotation("@contract_version:\"1.2.0\""),
            Some(("contract_version".to_string(), "1.2.0".to_string()))
        );
        assert_eq!(
            parse_annotation("@status: active"),
            Some(("status".to_string(), "active".to_string()))
        );
        assert_eq!(parse_annotation("Trade is a trade."), None);
    }

    #[test]
    fn unquote_go_escapes() {
        assert_eq!(
            unquote(r#"a\"b\\c\x41\u00e9"#).as_deref(),
            Some("a\"b\\cAé")
        );
        assert_eq!(unquote(r"\q"), None);
    }
}
