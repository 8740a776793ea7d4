//! Tag syntax: `@name(args)` into a raw [`Tag`], including argument lists that continue
//! over several lines.
//!
//! ```text
//! tag      = "@" name [ "(" [ arg { "," arg } [ "," ] ] ")" ]
//! arg      = key "=" value | value
//! value    = string | list | bare
//! list     = "[" [ value { "," value } [ "," ] ] "]"      (nested at most 32 deep)
//! bare     = number | duration | "true" | "false" | word
//! ```
//!
//! Inside the parentheses, newlines and `#` comments are whitespace. A `(` left open would
//! otherwise swallow the rest of the file, so a continuation line that starts a new tag or
//! keyword ends the list early and the `(` is reported as unclosed.

use crate::ast::{Arg, Tag, Value};
use crate::diagnostic::Diags;
use crate::lexer::{Cursor, classify_bare, is_bare_char, is_identifier, read_bare, read_string};
use crate::span::Span;

/// How deeply `[...]` lists may nest; deeper nesting is an error, which also bounds the
/// recursion of the value reader.
pub const MAX_LIST_DEPTH: usize = 32;

/// A tag and whether its syntax was sound. A malformed tag already has its diagnostic, so
/// its meaning is not checked too (that would repeat the same mistake in other words).
pub(crate) struct ParsedTag {
    pub(crate) tag: Tag,
    pub(crate) well_formed: bool,
}

/// Reads the tags starting at the cursor (on an `@`) up to the end of their line.
///
/// Leaves the cursor at the start of the next line, or on the indentation of a line that
/// an unclosed `(` ran into, so that line is read as its own statement.
pub(crate) fn parse_tag_line(cur: &mut Cursor<'_>, diags: &mut Diags) -> Vec<ParsedTag> {
    let mut tags = Vec::new();
    loop {
        if let Some(tag) = parse_tag(cur, diags) {
            tags.push(tag);
        }
        if cur.at_line_indent() {
            // An unclosed argument list stopped at a new statement line.
            return tags;
        }
        cur.skip_hspace();
        match cur.peek() {
            Some('@') => continue,
            None | Some('\n') | Some('#') => {}
            Some(_) => diags.error(
                cur.span(),
                "unexpected text after a tag; put prose on its own Given/When/Then line \
                 or start a comment with `#`",
            ),
        }
        cur.skip_line();
        return tags;
    }
}

/// Reads one tag; the cursor is on its `@`. Always consumes at least the `@`.
fn parse_tag(cur: &mut Cursor<'_>, diags: &mut Diags) -> Option<ParsedTag> {
    let span = cur.span();
    cur.bump();
    let mut name = String::new();
    while let Some(c) = cur
        .peek()
        .filter(|c| c.is_alphanumeric() || *c == '_' || *c == '-')
    {
        cur.bump();
        name.push(c);
    }
    if name.is_empty() {
        diags.error(span, "expected a tag name after `@`");
    }
    let mut args = Vec::new();
    let mut well_formed = !name.is_empty();
    if cur.peek() == Some('(') {
        let errors_before = diags.error_count();
        let mut parser = ArgParser {
            cur,
            diags,
            tag: &name,
            aborted: false,
        };
        args = parser.parse_args();
        well_formed &= parser.diags.error_count() == errors_before;
    }
    if name.is_empty() {
        return None;
    }
    Some(ParsedTag {
        tag: Tag { name, args, span },
        well_formed,
    })
}

/// Why the whitespace between tokens ended.
#[derive(PartialEq, Eq)]
enum Next {
    Token,
    EndOfText,
    /// A continuation line starts a new tag or keyword line.
    NewStatement,
}

struct ArgParser<'c, 'a> {
    cur: &'c mut Cursor<'a>,
    diags: &'c mut Diags,
    tag: &'c str,
    /// Set after an error that leaves no sensible place to continue (an unterminated
    /// string or an unclosed list): the rest of the argument list is abandoned.
    aborted: bool,
}

impl ArgParser<'_, '_> {
    /// Reads the argument list; the cursor is on the `(`.
    fn parse_args(&mut self) -> Vec<Arg> {
        let open = self.cur.span();
        self.cur.bump();
        let mut args = Vec::new();
        let mut expect_arg = true;
        let mut separator_reported = false;
        loop {
            if self.aborted {
                return args;
            }
            let next = self.skip_trivia();
            if next != Next::Token {
                self.unclosed(open, '(', ')', next);
                return args;
            }
            match self.cur.peek() {
                Some(')') => {
                    self.cur.bump();
                    return args;
                }
                Some(',') => {
                    if expect_arg {
                        self.diags
                            .error(self.cur.span(), "expected an argument before `,`");
                    }
                    self.cur.bump();
                    expect_arg = true;
                }
                _ => {
                    // One missing separator usually throws off the rest of the list
                    // (a stray quote, say); the first report is the useful one.
                    if !expect_arg && !separator_reported {
                        separator_reported = true;
                        self.diags.error(
                            self.cur.span(),
                            format!("expected `,` or `)` after an argument of @{}", self.tag),
                        );
                    }
                    if let Some(arg) = self.parse_arg() {
                        args.push(arg);
                    }
                    expect_arg = false;
                }
            }
        }
    }

    fn parse_arg(&mut self) -> Option<Arg> {
        let span = self.cur.span();
        if !self.cur.peek().is_some_and(is_bare_char) {
            let value = self.parse_value(0)?;
            return Some(Arg {
                key: None,
                value,
                span,
                value_span: span,
            });
        }
        let word = read_bare(self.cur);
        if self.skip_trivia() == Next::Token && self.cur.peek() == Some('=') {
            self.cur.bump();
            if !is_identifier(word) {
                self.diags.error(
                    span,
                    format!("`{word}` is not a valid argument name; use letters, digits and `_`"),
                );
            }
            let next = self.skip_trivia();
            let value_span = self.cur.span();
            if next != Next::Token || matches!(self.cur.peek(), Some(',' | ')')) {
                self.diags
                    .error(value_span, format!("missing value after `{word}=`"));
                return None;
            }
            let value = self.parse_value(0)?;
            return Some(Arg {
                key: Some(word.to_owned()),
                value,
                span,
                value_span,
            });
        }
        Some(Arg {
            key: None,
            value: self.classify(word, span),
            span,
            value_span: span,
        })
    }

    /// Reads one value. Returns `None` after reporting what is there instead.
    fn parse_value(&mut self, depth: usize) -> Option<Value> {
        let span = self.cur.span();
        match self.cur.peek()? {
            '"' | '\'' => self.parse_string(span),
            '[' => Some(self.parse_list(depth)),
            c if is_bare_char(c) => {
                let word = read_bare(self.cur);
                Some(self.classify(word, span))
            }
            c => {
                self.diags
                    .error(span, format!("expected a value, found `{c}`"));
                self.cur.bump();
                None
            }
        }
    }

    fn parse_string(&mut self, span: Span) -> Option<Value> {
        let quoted = read_string(self.cur);
        for (at, c) in quoted.unknown_escapes {
            self.diags.warning(
                at,
                format!("unknown escape `\\{c}` kept as written; write `\\\\` for a backslash"),
            );
        }
        if quoted.terminated {
            return Some(Value::Str(quoted.text));
        }
        let message = if quoted.triple {
            "unterminated string: no closing `\"\"\"` before the end of the file"
        } else {
            "unterminated string: no closing quote on this line"
        };
        self.diags.error(span, message);
        self.aborted = true;
        None
    }

    fn parse_list(&mut self, depth: usize) -> Value {
        let open = self.cur.span();
        self.cur.bump();
        if depth >= MAX_LIST_DEPTH {
            self.diags.error(
                open,
                format!("lists nest deeper than {MAX_LIST_DEPTH} levels"),
            );
            self.skip_list_rest(open);
            return Value::List(Vec::new());
        }
        let mut items = Vec::new();
        let mut expect_item = true;
        let mut separator_reported = false;
        loop {
            if self.aborted {
                return Value::List(items);
            }
            let next = self.skip_trivia();
            if next != Next::Token {
                self.unclosed(open, '[', ']', next);
                self.aborted = true;
                return Value::List(items);
            }
            match self.cur.peek() {
                Some(']') => {
                    self.cur.bump();
                    return Value::List(items);
                }
                Some(')') => {
                    // Leave the `)` for the argument list, which it most likely closes.
                    self.diags
                        .error(open, "unclosed `[`: found `)` before the matching `]`");
                    return Value::List(items);
                }
                Some(',') => {
                    if expect_item {
                        self.diags
                            .error(self.cur.span(), "expected a list item before `,`");
                    }
                    self.cur.bump();
                    expect_item = true;
                }
                _ => {
                    if !expect_item && !separator_reported {
                        separator_reported = true;
                        self.diags
                            .error(self.cur.span(), "expected `,` or `]` after a list item");
                    }
                    if let Some(item) = self.parse_value(depth + 1) {
                        items.push(item);
                    }
                    expect_item = false;
                }
            }
        }
    }

    /// Skips the remainder of a too-deeply nested list without recursing: a counter
    /// replaces the call stack.
    fn skip_list_rest(&mut self, open: Span) {
        let mut depth: usize = 1;
        loop {
            let next = self.skip_trivia();
            if next != Next::Token {
                self.unclosed(open, '[', ']', next);
                self.aborted = true;
                return;
            }
            match self.cur.peek() {
                Some('"' | '\'') => {
                    let span = self.cur.span();
                    if self.parse_string(span).is_none() {
                        return;
                    }
                }
                Some(c) => {
                    self.cur.bump();
                    match c {
                        '[' => depth += 1,
                        ']' => {
                            depth -= 1;
                            if depth == 0 {
                                return;
                            }
                        }
                        _ => {}
                    }
                }
                None => return,
            }
        }
    }

    fn classify(&mut self, word: &str, span: Span) -> Value {
        let (value, error) = classify_bare(word);
        if let Some(message) = error {
            self.diags.error(span, message);
        }
        value
    }

    /// Skips whitespace, newlines and comments between tokens.
    fn skip_trivia(&mut self) -> Next {
        loop {
            match self.cur.peek() {
                None => return Next::EndOfText,
                Some('#') => self.cur.skip_to_eol(),
                Some(c) if c.is_whitespace() => {
                    self.cur.bump();
                }
                Some(_) => {
                    if self.cur.at_line_indent() && starts_statement(self.cur.rest()) {
                        return Next::NewStatement;
                    }
                    return Next::Token;
                }
            }
        }
    }

    fn unclosed(&mut self, open: Span, left: char, right: char, next: Next) {
        let before = match next {
            Next::NewStatement => {
                format!("the tag or keyword on line {}", self.cur.line())
            }
            Next::EndOfText | Next::Token => "the end of the file".to_owned(),
        };
        self.diags.error(
            open,
            format!(
                "unclosed `{left}` in @{}: no matching `{right}` before {before}",
                self.tag
            ),
        );
    }
}

/// Step keywords that open a prose line.
pub(crate) const STEP_KEYWORDS: [&str; 5] = ["Given", "When", "Then", "And", "But"];

/// Gherkin block keywords Runink does not support; reported where they appear.
pub(crate) const UNSUPPORTED_KEYWORDS: [&str; 5] = [
    "Background:",
    "Scenario Outline:",
    "Scenario Template:",
    "Examples:",
    "Rule:",
];

/// The step keyword a line starts with, if any (`When trades arrive` → `When`).
pub(crate) fn step_keyword(line: &str) -> Option<&'static str> {
    STEP_KEYWORDS.into_iter().find(|kw| {
        line.strip_prefix(kw)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

/// Whether a line (from its first non-blank character) starts a tag or keyword line.
fn starts_statement(line: &str) -> bool {
    line.starts_with('@')
        || line.starts_with("Feature:")
        || line.starts_with("Scenario:")
        || UNSUPPORTED_KEYWORDS.iter().any(|kw| line.starts_with(kw))
        || step_keyword(line).is_some()
}
