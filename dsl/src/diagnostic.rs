//! Diagnostics: what is wrong with a Feature file, and exactly where.

use std::fmt;

use serde::Serialize;

use crate::span::Span;

/// How bad a [`Diagnostic`] is. Only errors stop a Feature from being planned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the text, with the file, line and column it points at.
///
/// Displays as `file:line:column: error: message`, the shape editors and terminals
/// recognise as a jump target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub file: String,
    pub span: Span,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.span.line, self.span.column, severity, self.message
        )
    }
}

/// True when any diagnostic is an error, i.e. the tree must not be planned.
pub fn has_errors(diags: &[Diagnostic]) -> bool {
    diags.iter().any(Diagnostic::is_error)
}

/// The most diagnostics one parse reports. Past this point further findings only repeat
/// the same mistake, and an adversarial file must not grow the list without bound.
pub(crate) const MAX_DIAGNOSTICS: usize = 200;

/// Collects diagnostics during a parse, capped at [`MAX_DIAGNOSTICS`].
pub(crate) struct Diags {
    file: String,
    list: Vec<Diagnostic>,
    suppressed: usize,
    /// Errors seen, including suppressed ones, so callers can tell whether a piece of
    /// text produced an error.
    errors: usize,
}

impl Diags {
    pub(crate) fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            list: Vec::new(),
            suppressed: 0,
            errors: 0,
        }
    }

    pub(crate) fn error(&mut self, span: Span, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub(crate) fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    pub(crate) fn error_count(&self) -> usize {
        self.errors
    }

    fn push(&mut self, span: Span, severity: Severity, message: String) {
        if severity == Severity::Error {
            self.errors = self.errors.saturating_add(1);
        }
        if self.list.len() >= MAX_DIAGNOSTICS {
            self.suppressed = self.suppressed.saturating_add(1);
            return;
        }
        self.list.push(Diagnostic {
            file: self.file.clone(),
            span,
            severity,
            message,
        });
    }

    /// The diagnostics in text order. Tags are interpreted when they attach to a Feature or
    /// Scenario, which can be after later lines were read, so collection order is not text
    /// order; a stable sort keeps same-position findings in the order they were found.
    pub(crate) fn finish(mut self) -> Vec<Diagnostic> {
        self.list.sort_by_key(|d| d.span);
        if self.suppressed > 0 {
            let span = self.list.last().map(|d| d.span).unwrap_or_default();
            self.list.push(Diagnostic {
                file: self.file.clone(),
                span,
                severity: Severity::Error,
                message: format!(
                    "{} more diagnostics not shown (at most {MAX_DIAGNOSTICS} are reported)",
                    self.suppressed
                ),
            });
        }
        self.list
    }
}
