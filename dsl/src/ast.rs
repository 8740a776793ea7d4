//! The syntax tree: a [`Document`] holds one [`Feature`], which holds [`Scenario`]s with
//! their typed sources, steps, sinks and settings.
//!
//! Every tag is kept raw ([`Tag`]) next to its typed meaning, so tools can show the text as
//! written while the planner works from the typed fields.

use serde::Serialize;

use crate::lexer::{DurationParse, parse_duration};
use crate::span::{Span, Spanned};

/// A tag argument's value, typed by how it was written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Value {
    /// `"text"`, `'text'` or `"""text"""`, escapes resolved.
    Str(String),
    /// A number as written (`16`, `1.5`, `-3`); kept as text so no precision is lost.
    Number(String),
    /// A bare duration such as `5m`, `250ms` or `1h30m`.
    Duration {
        text: String,
        millis: u64,
    },
    Bool(bool),
    /// Any other bare word: `Dedupe`, `append`, `contracts/trade.yaml`.
    Ident(String),
    List(Vec<Value>),
}

impl Value {
    /// The text of a string or bare word; `None` for every other kind.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Ident(s) => Some(s),
            _ => None,
        }
    }

    /// The value as plain text: strings, words, numbers and durations as written,
    /// booleans as `true`/`false`, lists joined with `", "`.
    pub fn to_text(&self) -> String {
        match self {
            Value::Str(s) | Value::Ident(s) | Value::Number(s) => s.clone(),
            Value::Duration { text, .. } => text.clone(),
            Value::Bool(b) => b.to_string(),
            Value::List(items) => items
                .iter()
                .map(Value::to_text)
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// Milliseconds of a duration, whether written bare (`5m`) or quoted (`"5m"`).
    pub fn as_duration_ms(&self) -> Option<u64> {
        match self {
            Value::Duration { millis, .. } => Some(*millis),
            Value::Str(s) | Value::Ident(s) => match parse_duration(s) {
                DurationParse::Millis(ms) => Some(ms),
                DurationParse::NotDuration | DurationParse::Overflow => None,
            },
            _ => None,
        }
    }

    /// What kind of value this is, for messages ("found a list").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Number(_) => "a number",
            Value::Duration { .. } => "a duration",
            Value::Bool(_) => "a boolean",
            Value::Ident(_) => "a bare word",
            Value::List(_) => "a list",
        }
    }
}

/// One tag argument: positional (`key` is `None`) or `key=value`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Arg {
    pub key: Option<String>,
    pub value: Value,
    /// Where the argument starts (its key, or its value when positional).
    pub span: Span,
    /// Where the value starts; equal to `span` for positional arguments.
    pub value_span: Span,
}

/// A tag exactly as written: `@name(args)`. Kept for every tag, known or not.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tag {
    pub name: String,
    pub args: Vec<Arg>,
    /// Where the `@` is.
    pub span: Span,
}

/// A parsed Feature file. `feature` is `None` only when the file has no `Feature:` line
/// (which is also reported as an error).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Document {
    pub feature: Option<Feature>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Feature {
    /// The text after `Feature:`.
    pub name: String,
    /// Free text lines between `Feature:` and the first tag or Scenario.
    pub description: String,
    /// Where the `Feature:` keyword is.
    pub span: Span,
    /// Raw tags placed before `Feature:`.
    pub tags: Vec<Tag>,
    /// From `@feature(herd=...)` or `@herd(NAME)`.
    pub herd: Option<Spanned<String>>,
    /// Other `@feature` keys and every `@meta` key, in text order.
    pub meta: Vec<(String, String)>,
    /// From `@feature(name="...")`.
    pub display_name: Option<String>,
    pub scenarios: Vec<Scenario>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// Where the `Scenario:` keyword is.
    pub span: Span,
    /// Raw tags, those above `Scenario:` then those in the body, in text order.
    pub tags: Vec<Tag>,
    pub sources: Vec<Source>,
    /// In declaration order, which is execution order.
    pub steps: Vec<Step>,
    pub sinks: Vec<Sink>,
    /// From `Given the contract: PATH` or `@contract(PATH)`.
    pub contract: Option<Spanned<String>>,
    pub requires: Option<Requires>,
    pub window: Option<Window>,
    pub affinity: Option<Affinity>,
    pub herd: Option<Spanned<String>>,
    pub module: Vec<(String, String)>,
    pub meta: Vec<(String, String)>,
    pub golden: Option<Golden>,
    /// `@assert("SQL")`, each a boolean over the output.
    pub asserts: Vec<Spanned<String>>,
    /// `@emits(URI)` event targets.
    pub emits: Vec<Spanned<String>>,
    /// Given/When/Then/And/But lines, trimmed, as written.
    pub prose: Vec<Spanned<String>>,
}

/// `@source(URI, name=, format=, contract=, watch=)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Source {
    pub uri: Spanned<String>,
    /// `None` when not given; the planner derives one from the URI.
    pub name: Option<Spanned<String>>,
    pub format: Option<String>,
    pub contract: Option<Spanned<String>>,
    pub watch: bool,
    /// Where the tag's `@` is.
    pub span: Span,
}

/// What a step runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum StepKind {
    Sql(String),
    SqlFile(String),
    /// A built-in by its canonical name (see [`crate::BUILTIN_STEPS`]) with its own
    /// arguments, e.g. `keys` for `Dedupe`.
    Builtin {
        name: String,
        args: Vec<(String, Value)>,
    },
    /// A program reading Arrow IPC on stdin and writing it on stdout.
    Exec(String),
}

/// `@step(...)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub name: Option<Spanned<String>>,
    pub kind: StepKind,
    /// Explicit inputs from `from=`; empty means the implicit input.
    pub from: Vec<Spanned<String>>,
    pub contract: Option<Spanned<String>>,
    pub span: Span,
    /// Where the value saying what the step runs starts (`sql=`'s string, the built-in's
    /// name): positions inside SQL are counted from here.
    pub body_span: Span,
}

/// Which rows a sink receives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum When {
    Valid,
    Invalid,
    /// A SQL predicate over the output rows.
    Predicate(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SinkMode {
    Overwrite,
    Append,
}

/// `@sink(URI, from=, when=, with=, mode=, dataset=)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sink {
    pub uri: Spanned<String>,
    /// `format=` (for a `file://` URI whose extension says none).
    pub format: Option<String>,
    pub from: Option<Spanned<String>>,
    pub when: When,
    pub with: Option<String>,
    pub mode: SinkMode,
    pub dataset: Option<Spanned<String>>,
    pub span: Span,
}

/// `@requires(cpu=, memory=)`, kept as written (`"1"`, `"512Mi"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Requires {
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub span: Span,
}

/// Window sizes are [`Value::Duration`] after parsing (quoted durations are converted).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum WindowKind {
    Tumbling { size: Value },
    Sliding { size: Value, every: Value },
    Session { gap: Value },
}

/// `@window(tumbling= | sliding= + every= | session=, on=, watermark=)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Window {
    pub kind: WindowKind,
    pub on: Option<String>,
    /// A [`Value::Duration`] when given.
    pub watermark: Option<Value>,
    pub span: Span,
}

/// `@affinity(label=, colocate_with=)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Affinity {
    pub label: Option<String>,
    pub colocate_with: Option<String>,
    pub span: Span,
}

/// `@golden(input=, expected=)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Golden {
    pub input: String,
    pub expected: Option<String>,
    pub span: Span,
}
