//! Tag meaning: turns raw [`Tag`]s into the typed parts of a [`Feature`] or [`Scenario`],
//! with a diagnostic for every unknown tag, unknown or duplicate argument, missing
//! argument and value of the wrong kind.

use std::collections::HashSet;

use crate::ast::{
    Affinity, Arg, Feature, Golden, Requires, Scenario, Sink, SinkMode, Source, Step, StepKind,
    Tag, Value, When, Window, WindowKind,
};
use crate::diagnostic::Diags;
use crate::lexer::{DurationParse, parse_duration};
use crate::span::Spanned;
use crate::syntax::ParsedTag;

/// Every tag the DSL knows, in the order messages list them.
pub const TAG_NAMES: [&str; 14] = [
    "feature", "herd", "meta", "module", "source", "step", "sink", "contract", "requires",
    "affinity", "window", "golden", "assert", "emits",
];

/// URI schemes a `@source` may read from.
pub const SOURCE_SCHEMES: [&str; 7] = [
    "file", "csv", "json", "parquet", "arrow", "dataset", "flight",
];

/// URI schemes a `@sink` may write to.
pub const SINK_SCHEMES: [&str; 7] = [
    "file", "csv", "json", "parquet", "arrow", "dataset", "flight",
];

/// Built-in steps, by canonical name. `@step("dedupe")` is accepted and normalised.
pub const BUILTIN_STEPS: [&str; 6] = ["Dedupe", "Mask", "Filter", "Select", "Derive", "Validate"];

/// Arguments a built-in cannot run without, with what they mean (for the message).
const BUILTIN_REQUIRED: [(&str, &str, &str); 3] = [
    ("Dedupe", "keys", "the columns that identify a duplicate"),
    ("Filter", "where", "a SQL predicate over the rows"),
    ("Select", "columns", "the columns to keep"),
];

/// Tags that may stand before `Feature:`.
const FEATURE_TAGS: [&str; 3] = ["feature", "herd", "meta"];

/// Applies a tag placed before `Feature:`.
pub(crate) fn apply_feature_tag(feature: &mut Feature, parsed: ParsedTag, diags: &mut Diags) {
    let ParsedTag { tag, well_formed } = parsed;
    if well_formed {
        feature_tag(feature, &tag, diags);
    }
    feature.tags.push(tag);
}

/// Applies a tag placed before `Scenario:` or in its body.
pub(crate) fn apply_scenario_tag(scenario: &mut Scenario, parsed: ParsedTag, diags: &mut Diags) {
    let ParsedTag { tag, well_formed } = parsed;
    if well_formed {
        scenario_tag(scenario, &tag, diags);
    }
    scenario.tags.push(tag);
}

/// Binds the Scenario's contract, from `@contract(PATH)` or `Given the contract: PATH`.
pub(crate) fn bind_contract(scenario: &mut Scenario, path: Spanned<String>, diags: &mut Diags) {
    if let Some(first) = &scenario.contract {
        diags.error(
            path.span,
            format!(
                "Scenario `{}` binds a contract twice; the first binding is at {}",
                scenario.name, first.span
            ),
        );
        return;
    }
    if path.value.trim().is_empty() {
        diags.error(path.span, "the contract path is empty");
        return;
    }
    scenario.contract = Some(path);
}

fn feature_tag(feature: &mut Feature, tag: &Tag, diags: &mut Diags) {
    match tag.name.as_str() {
        "feature" => {
            let args = Args::new(tag, diags);
            args.forbid_positional(diags);
            for &(key, arg) in &args.keyed {
                match key {
                    "name" => {
                        if feature.display_name.is_some() {
                            diags.error(arg.span, "the Feature's display name is set twice");
                        } else {
                            feature.display_name = text(tag, arg, diags);
                        }
                    }
                    "herd" => {
                        if let Some(herd) = spanned_text(tag, arg, diags) {
                            set_herd(&mut feature.herd, herd, diags);
                        }
                    }
                    _ => feature.meta.push((key.to_owned(), arg.value.to_text())),
                }
            }
        }
        "herd" => herd_tag(&mut feature.herd, tag, diags),
        "meta" => key_values(&mut feature.meta, tag, diags),
        name if TAG_NAMES.contains(&name) => diags.error(
            tag.span,
            format!(
                "@{name} belongs to a Scenario: put it in the Scenario's body or just above \
                 its `Scenario:` line (before `Feature:` only {} apply)",
                tag_list(&FEATURE_TAGS)
            ),
        ),
        _ => unknown_tag(tag, diags),
    }
}

fn scenario_tag(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    match tag.name.as_str() {
        "herd" => herd_tag(&mut s.herd, tag, diags),
        "meta" => key_values(&mut s.meta, tag, diags),
        "module" => key_values(&mut s.module, tag, diags),
        "source" => source(s, tag, diags),
        "step" => step(s, tag, diags),
        "sink" => sink(s, tag, diags),
        "contract" => {
            let args = Args::new(tag, diags);
            args.allow_keys(&[], diags);
            if let Some(path) = args
                .require_positional("a contract path", diags)
                .and_then(|arg| spanned_text(tag, arg, diags))
            {
                bind_contract(s, path, diags);
            }
        }
        "requires" => requires(s, tag, diags),
        "affinity" => affinity(s, tag, diags),
        "window" => window(s, tag, diags),
        "golden" => golden(s, tag, diags),
        "assert" => {
            if let Some(sql) = positional_only(tag, "a SQL boolean expression", diags) {
                s.asserts.push(sql);
            }
        }
        "emits" => {
            if let Some(uri) = positional_only(tag, "a URI", diags) {
                s.emits.push(uri);
            }
        }
        "feature" => diags.error(
            tag.span,
            "@feature describes the Feature: put it above the `Feature:` line",
        ),
        _ => unknown_tag(tag, diags),
    }
}

fn unknown_tag(tag: &Tag, diags: &mut Diags) {
    diags.error(
        tag.span,
        format!(
            "unknown tag `@{}`; expected one of: {}",
            tag.name,
            tag_list(&TAG_NAMES)
        ),
    );
}

fn tag_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("@{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn herd_tag(slot: &mut Option<Spanned<String>>, tag: &Tag, diags: &mut Diags) {
    if let Some(herd) = positional_only(tag, "a herd name", diags) {
        set_herd(slot, herd, diags);
    }
}

fn set_herd(slot: &mut Option<Spanned<String>>, herd: Spanned<String>, diags: &mut Diags) {
    match slot {
        Some(first) => diags.error(
            herd.span,
            format!("the herd is set twice; the first is at {}", first.span),
        ),
        None => *slot = Some(herd),
    }
}

/// `@meta(k=v, ...)` and `@module(k=v, ...)`: every key is allowed, every value is text.
fn key_values(out: &mut Vec<(String, String)>, tag: &Tag, diags: &mut Diags) {
    let args = Args::new(tag, diags);
    args.forbid_positional(diags);
    out.extend(
        args.keyed
            .iter()
            .map(|&(key, arg)| (key.to_owned(), arg.value.to_text())),
    );
}

/// Tags whose only argument is one positional string (`@assert`, `@emits`, `@herd`).
fn positional_only(tag: &Tag, what: &str, diags: &mut Diags) -> Option<Spanned<String>> {
    let args = Args::new(tag, diags);
    args.allow_keys(&[], diags);
    let value = spanned_text(tag, args.require_positional(what, diags)?, diags)?;
    if value.value.trim().is_empty() {
        diags.error(
            value.span,
            format!("@{} needs {what}, found an empty string", tag.name),
        );
        return None;
    }
    Some(value)
}

fn source(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    let args = Args::new(tag, diags);
    args.allow_keys(&["name", "format", "contract", "watch"], diags);
    let Some(uri) = args
        .require_positional("a URI", diags)
        .and_then(|arg| spanned_text(tag, arg, diags))
    else {
        return;
    };
    check_uri(&uri, tag, &SOURCE_SCHEMES, diags);
    s.sources.push(Source {
        uri,
        name: args.get("name").and_then(|a| spanned_text(tag, a, diags)),
        format: args.get("format").and_then(|a| text(tag, a, diags)),
        contract: args
            .get("contract")
            .and_then(|a| spanned_text(tag, a, diags)),
        watch: args
            .get("watch")
            .and_then(|a| boolean(tag, a, diags))
            .unwrap_or(false),
        span: tag.span,
    });
}

fn sink(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    let args = Args::new(tag, diags);
    args.allow_keys(
        &["from", "when", "with", "mode", "dataset", "format"],
        diags,
    );
    let Some(uri) = args
        .require_positional("a URI", diags)
        .and_then(|arg| spanned_text(tag, arg, diags))
    else {
        return;
    };
    check_uri(&uri, tag, &SINK_SCHEMES, diags);
    let when = match args.get("when").and_then(|a| text(tag, a, diags)) {
        None => When::Valid,
        Some(w) => match w.trim() {
            "valid" => When::Valid,
            "invalid" => When::Invalid,
            _ => When::Predicate(w),
        },
    };
    let mode = match args.get("mode") {
        None => SinkMode::Overwrite,
        Some(arg) => match text(tag, arg, diags).as_deref() {
            Some("overwrite") => SinkMode::Overwrite,
            Some("append") => SinkMode::Append,
            Some(other) => {
                diags.error(
                    arg.value_span,
                    format!("`mode` in @sink must be `overwrite` or `append`, found `{other}`"),
                );
                SinkMode::Overwrite
            }
            None => SinkMode::Overwrite,
        },
    };
    s.sinks.push(Sink {
        uri,
        format: args.get("format").and_then(|a| text(tag, a, diags)),
        from: args.get("from").and_then(|a| spanned_text(tag, a, diags)),
        when,
        with: args.get("with").and_then(|a| text(tag, a, diags)),
        mode,
        dataset: args
            .get("dataset")
            .and_then(|a| spanned_text(tag, a, diags)),
        span: tag.span,
    });
}

/// Checks that `uri` starts with one of `schemes` followed by `://` and something more.
fn check_uri(uri: &Spanned<String>, tag: &Tag, schemes: &[&str], diags: &mut Diags) {
    let expected = || {
        schemes
            .iter()
            .map(|s| format!("{s}://"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((scheme, path)) = uri.value.split_once("://") else {
        diags.error(
            uri.span,
            format!(
                "URI `{}` in @{} has no scheme; expected one of: {}",
                uri.value,
                tag.name,
                expected()
            ),
        );
        return;
    };
    if !schemes.contains(&scheme) {
        diags.error(
            uri.span,
            format!(
                "unsupported URI scheme `{scheme}://` in @{}; expected one of: {}",
                tag.name,
                expected()
            ),
        );
    } else if path.trim().is_empty() {
        diags.error(
            uri.span,
            format!(
                "URI `{}` in @{} has nothing after `://`",
                uri.value, tag.name
            ),
        );
    }
}

fn step(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    const COMMON: [&str; 3] = ["name", "from", "contract"];
    const FORMS: [&str; 3] = ["sql", "sql_file", "exec"];
    let args = Args::new(tag, diags);

    // Exactly one way of saying what the step runs.
    let mut forms: Vec<(&str, &Arg)> = Vec::new();
    if let Some(arg) = args.positional {
        forms.push(("builtin", arg));
    }
    for key in FORMS {
        if let Some(arg) = args.get(key) {
            forms.push((key, arg));
        }
    }
    let form_name = |form: &str| match form {
        "builtin" => "a built-in name".to_owned(),
        key => format!("`{key}=`"),
    };
    let Some(&(form, form_arg)) = forms.first() else {
        diags.error(
            tag.span,
            format!(
                "@step needs one of `sql=`, `sql_file=`, `exec=` or a built-in name ({})",
                BUILTIN_STEPS.join(", ")
            ),
        );
        return;
    };
    if forms.len() > 1 {
        let found: Vec<String> = forms.iter().map(|(f, _)| form_name(f)).collect();
        diags.error(
            tag.span,
            format!(
                "@step takes exactly one of `sql=`, `sql_file=`, `exec=` or a built-in name; \
                 found {}",
                found.join(" and ")
            ),
        );
    }

    let kind = if form == "builtin" {
        let Some(raw) = text(tag, form_arg, diags) else {
            return;
        };
        let Some(name) = BUILTIN_STEPS
            .into_iter()
            .find(|b| b.eq_ignore_ascii_case(raw.trim()))
        else {
            diags.error(
                form_arg.value_span,
                format!(
                    "unknown built-in step `{raw}`; expected one of: {}",
                    BUILTIN_STEPS.join(", ")
                ),
            );
            return;
        };
        for (builtin, key, meaning) in BUILTIN_REQUIRED {
            if builtin == name && args.get(key).is_none() {
                diags.error(
                    tag.span,
                    format!("built-in step `{name}` needs `{key}=` ({meaning})"),
                );
            }
        }
        // Every other key is the built-in's own argument; the planner checks them.
        let own = args
            .keyed
            .iter()
            .filter(|(key, _)| !COMMON.contains(key) && !FORMS.contains(key))
            .map(|&(key, arg)| (key.to_owned(), arg.value.clone()))
            .collect();
        StepKind::Builtin {
            name: name.to_owned(),
            args: own,
        }
    } else {
        args.allow_keys(
            &["name", "from", "contract", "sql", "sql_file", "exec"],
            diags,
        );
        let body = text(tag, form_arg, diags).unwrap_or_default();
        if body.trim().is_empty() {
            diags.error(form_arg.value_span, format!("`{form}=` in @step is empty"));
        }
        match form {
            "sql" => StepKind::Sql(body),
            "sql_file" => StepKind::SqlFile(body),
            _ => StepKind::Exec(body),
        }
    };

    s.steps.push(Step {
        name: args.get("name").and_then(|a| spanned_text(tag, a, diags)),
        kind,
        from: args
            .get("from")
            .map(|a| from_list(tag, a, diags))
            .unwrap_or_default(),
        contract: args
            .get("contract")
            .and_then(|a| spanned_text(tag, a, diags)),
        span: tag.span,
        body_span: form_arg.value_span,
    });
}

/// `from="a, b"` or `from=[a, "b"]`: the step's explicit inputs.
fn from_list(tag: &Tag, arg: &Arg, diags: &mut Diags) -> Vec<Spanned<String>> {
    let names: Vec<String> = match &arg.value {
        Value::Str(s) | Value::Ident(s) => s.split(',').map(|n| n.trim().to_owned()).collect(),
        Value::List(items) => {
            let mut names = Vec::new();
            for item in items {
                match item.as_str() {
                    Some(n) => names.push(n.trim().to_owned()),
                    None => diags.error(
                        arg.value_span,
                        format!(
                            "`from` in @{} lists relation names, found {}",
                            tag.name,
                            item.kind()
                        ),
                    ),
                }
            }
            names
        }
        other => {
            diags.error(
                arg.value_span,
                format!(
                    "`from` in @{} must be a string or a list of names, found {}",
                    tag.name,
                    other.kind()
                ),
            );
            return Vec::new();
        }
    };
    let names: Vec<Spanned<String>> = names
        .into_iter()
        .filter(|n| !n.is_empty())
        .map(|n| Spanned::new(n, arg.value_span))
        .collect();
    if names.is_empty() {
        diags.error(
            arg.value_span,
            format!("`from` in @{} names no input", tag.name),
        );
    }
    names
}

fn requires(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    if let Some(first) = &s.requires {
        duplicate(tag, first.span, diags);
        return;
    }
    let args = Args::new(tag, diags);
    args.forbid_positional(diags);
    args.allow_keys(&["cpu", "memory"], diags);
    s.requires = Some(Requires {
        cpu: args.get("cpu").and_then(|a| text(tag, a, diags)),
        memory: args.get("memory").and_then(|a| text(tag, a, diags)),
        span: tag.span,
    });
}

fn affinity(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    if let Some(first) = &s.affinity {
        duplicate(tag, first.span, diags);
        return;
    }
    let args = Args::new(tag, diags);
    args.forbid_positional(diags);
    args.allow_keys(&["label", "colocate_with"], diags);
    s.affinity = Some(Affinity {
        label: args.get("label").and_then(|a| text(tag, a, diags)),
        colocate_with: args.get("colocate_with").and_then(|a| text(tag, a, diags)),
        span: tag.span,
    });
}

fn golden(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    if let Some(first) = &s.golden {
        duplicate(tag, first.span, diags);
        return;
    }
    let args = Args::new(tag, diags);
    args.forbid_positional(diags);
    args.allow_keys(&["input", "expected"], diags);
    let Some(input) = args.get("input") else {
        diags.error(
            tag.span,
            "@golden needs `input=` (the file fed to the Scenario)",
        );
        return;
    };
    let Some(input) = text(tag, input, diags) else {
        return;
    };
    s.golden = Some(Golden {
        input,
        expected: args.get("expected").and_then(|a| text(tag, a, diags)),
        span: tag.span,
    });
}

fn window(s: &mut Scenario, tag: &Tag, diags: &mut Diags) {
    if let Some(first) = &s.window {
        duplicate(tag, first.span, diags);
        return;
    }
    let args = Args::new(tag, diags);
    args.forbid_positional(diags);
    args.allow_keys(
        &["tumbling", "sliding", "every", "session", "on", "watermark"],
        diags,
    );
    let kinds: Vec<(&str, &Arg)> = ["tumbling", "sliding", "session"]
        .into_iter()
        .filter_map(|k| args.get(k).map(|a| (k, a)))
        .collect();
    let Some(&(kind, size_arg)) = kinds.first() else {
        diags.error(
            tag.span,
            "@window needs one of `tumbling=`, `sliding=` (with `every=`) or `session=`",
        );
        return;
    };
    if kinds.len() > 1 {
        let found: Vec<String> = kinds.iter().map(|(k, _)| format!("`{k}=`")).collect();
        diags.error(
            tag.span,
            format!(
                "@window takes exactly one of `tumbling=`, `sliding=` or `session=`; found {}",
                found.join(" and ")
            ),
        );
    }
    let every = args.get("every");
    if kind != "sliding"
        && let Some(every) = every
    {
        diags.error(every.span, "`every=` in @window only applies to `sliding=`");
    }
    let Some(size) = duration(tag, size_arg, true, diags) else {
        return;
    };
    let kind = match kind {
        "tumbling" => WindowKind::Tumbling { size },
        "session" => WindowKind::Session { gap: size },
        _ => {
            let Some(every) = every else {
                diags.error(tag.span, "`sliding=` in @window needs `every=` (the slide)");
                return;
            };
            let Some(every) = duration(tag, every, true, diags) else {
                return;
            };
            WindowKind::Sliding { size, every }
        }
    };
    s.window = Some(Window {
        kind,
        on: args.get("on").and_then(|a| text(tag, a, diags)),
        watermark: args
            .get("watermark")
            .and_then(|a| duration(tag, a, false, diags)),
        span: tag.span,
    });
}

fn duplicate(tag: &Tag, first: crate::span::Span, diags: &mut Diags) {
    diags.error(
        tag.span,
        format!(
            "a Scenario takes one @{}; the first is at {first}",
            tag.name
        ),
    );
}

/// The arguments of one tag, split into the positional one and the keyed ones, with the
/// structural mistakes (second positional, positional after keys, repeated key) reported.
struct Args<'t> {
    tag: &'t Tag,
    positional: Option<&'t Arg>,
    keyed: Vec<(&'t str, &'t Arg)>,
}

impl<'t> Args<'t> {
    fn new(tag: &'t Tag, diags: &mut Diags) -> Self {
        let mut positional = None;
        let mut keyed = Vec::new();
        // A set, not a scan of `keyed`: a tag with very many arguments stays linear.
        let mut seen = HashSet::new();
        for arg in &tag.args {
            match &arg.key {
                None if positional.is_some() => diags.error(
                    arg.span,
                    format!(
                        "@{} takes at most one positional argument; name this one with `key=`",
                        tag.name
                    ),
                ),
                None if !keyed.is_empty() => diags.error(
                    arg.span,
                    format!(
                        "the positional argument of @{} must come before the `key=value` ones",
                        tag.name
                    ),
                ),
                None => positional = Some(arg),
                Some(key) if !seen.insert(key.as_str()) => diags.error(
                    arg.span,
                    format!("duplicate argument `{key}` in @{}", tag.name),
                ),
                Some(key) => keyed.push((key.as_str(), arg)),
            }
        }
        Self {
            tag,
            positional,
            keyed,
        }
    }

    fn get(&self, key: &str) -> Option<&'t Arg> {
        self.keyed
            .iter()
            .find(|(k, _)| *k == key)
            .map(|&(_, arg)| arg)
    }

    fn allow_keys(&self, allowed: &[&str], diags: &mut Diags) {
        for &(key, arg) in &self.keyed {
            if allowed.contains(&key) {
                continue;
            }
            let message = if allowed.is_empty() {
                format!(
                    "unknown argument `{key}` for @{}; it takes no `key=value` arguments",
                    self.tag.name
                )
            } else {
                format!(
                    "unknown argument `{key}` for @{}; expected one of: {}",
                    self.tag.name,
                    allowed.join(", ")
                )
            };
            diags.error(arg.span, message);
        }
    }

    fn forbid_positional(&self, diags: &mut Diags) {
        if let Some(arg) = self.positional {
            diags.error(
                arg.span,
                format!(
                    "@{} takes only `key=value` arguments, found a positional value",
                    self.tag.name
                ),
            );
        }
    }

    fn require_positional(&self, what: &str, diags: &mut Diags) -> Option<&'t Arg> {
        if self.positional.is_none() {
            diags.error(
                self.tag.span,
                format!("@{} needs {what} as its first argument", self.tag.name),
            );
        }
        self.positional
    }
}

/// The name of an argument in messages: `name` for keyed ones, "the first argument" else.
fn describe(arg: &Arg) -> String {
    match &arg.key {
        Some(key) => format!("`{key}`"),
        None => "the first argument".to_owned(),
    }
}

/// A value used as text: strings and bare words, and numbers and durations as written.
fn text(tag: &Tag, arg: &Arg, diags: &mut Diags) -> Option<String> {
    match &arg.value {
        Value::Str(s) | Value::Ident(s) | Value::Number(s) => Some(s.clone()),
        Value::Duration { text, .. } => Some(text.clone()),
        other @ (Value::Bool(_) | Value::List(_)) => {
            diags.error(
                arg.value_span,
                format!(
                    "{} in @{} must be a string, found {}",
                    describe(arg),
                    tag.name,
                    other.kind()
                ),
            );
            None
        }
    }
}

fn spanned_text(tag: &Tag, arg: &Arg, diags: &mut Diags) -> Option<Spanned<String>> {
    text(tag, arg, diags).map(|t| Spanned::new(t, arg.value_span))
}

fn boolean(tag: &Tag, arg: &Arg, diags: &mut Diags) -> Option<bool> {
    match &arg.value {
        Value::Bool(b) => Some(*b),
        Value::Str(s) if s == "true" || s == "false" => Some(s == "true"),
        other => {
            diags.error(
                arg.value_span,
                format!(
                    "{} in @{} must be true or false, found {}",
                    describe(arg),
                    tag.name,
                    other.kind()
                ),
            );
            None
        }
    }
}

/// A duration, bare (`5m`) or quoted (`"5m"`), always returned as [`Value::Duration`].
fn duration(tag: &Tag, arg: &Arg, positive: bool, diags: &mut Diags) -> Option<Value> {
    let (text, parsed) = match &arg.value {
        Value::Duration { text, millis } => (text.clone(), DurationParse::Millis(*millis)),
        Value::Str(s) | Value::Ident(s) | Value::Number(s) => (s.clone(), parse_duration(s)),
        other => {
            diags.error(
                arg.value_span,
                format!(
                    "{} in @{} must be a duration like `5m`, found {}",
                    describe(arg),
                    tag.name,
                    other.kind()
                ),
            );
            return None;
        }
    };
    let millis = match parsed {
        DurationParse::Millis(ms) => ms,
        DurationParse::Overflow => {
            diags.error(arg.value_span, format!("duration `{text}` is too large"));
            return None;
        }
        DurationParse::NotDuration => {
            diags.error(
                arg.value_span,
                format!(
                    "{} in @{} must be a duration like `5m` (units: ms, s, m, h, d), found `{text}`",
                    describe(arg),
                    tag.name
                ),
            );
            return None;
        }
    };
    if positive && millis == 0 {
        diags.error(
            arg.value_span,
            format!(
                "{} in @{} must be longer than zero",
                describe(arg),
                tag.name
            ),
        );
        return None;
    }
    Some(Value::Duration { text, millis })
}
