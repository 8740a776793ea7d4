//! Runink's Feature DSL: Gherkin-shaped text in, a typed syntax tree and span-carrying
//! diagnostics out.
//!
//! Start at [`parse`]. It never fails, never panics and never loops: every problem in the
//! text becomes a [`Diagnostic`] with file, line and column, and the returned [`Document`]
//! holds everything that could be read. Callers check [`has_errors`] before planning.
//!
//! ```text
//!  text ─▶ parser   lines: Feature: / Scenario: / descriptions / prose / tag lines,
//!            │       and which Feature or Scenario each tag belongs to
//!            ├─▶ syntax  one `@tag(args)`, possibly over several lines ─▶ raw Tag
//!            │     └─▶ lexer  cursor with line/column, strings, bare words, durations
//!            └─▶ tags    raw Tag ─▶ typed Source / Step / Sink / Window / …
//!       ─▶ (Document, Vec<Diagnostic>)
//! ```
//!
//! The tree types are re-exported at the crate root. The tree keeps every tag raw next to its typed
//! meaning. Semantic checks that need more than one file (unknown relation names, cycles,
//! contract types) belong to the planner, not here.

mod ast;
mod diagnostic;
mod lexer;
mod parser;
mod span;
mod syntax;
mod tags;

pub use ast::{
    Affinity, Arg, Document, Feature, Golden, Requires, Scenario, Sink, SinkMode, Source, Step,
    StepKind, Tag, Value, When, Window, WindowKind,
};
pub use diagnostic::{Diagnostic, Severity, has_errors};
pub use lexer::string_origins;
pub use parser::parse;
pub use span::{Span, Spanned};
pub use syntax::MAX_LIST_DEPTH;
pub use tags::{BUILTIN_STEPS, SINK_SCHEMES, SOURCE_SCHEMES, TAG_NAMES};
