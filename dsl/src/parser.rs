//! The line structure of a Feature file: `Feature:`, `Scenario:`, descriptions, prose and
//! tag lines, and which Feature or Scenario each tag belongs to.
//!
//! ```text
//!  Preamble ──Feature:──▶ FeatureHeader ──Scenario:──▶ Scenario ──Scenario:──▶ Scenario …
//!  (tags wait)            (description,                (description, then tags
//!                          then tags wait)              and prose in its body)
//! ```
//!
//! Tags wait in `pending` until the next content line decides their owner:
//! - a `Feature:` line takes the tags above it;
//! - a `Scenario:` line takes the run of tags directly above it that are indented no
//!   deeper than itself; deeper-indented tags before them stay in the previous body;
//! - a prose or text line inside a Scenario means the tags were in its body.
//!
//! Comments: a line whose first non-blank character is `#` is a comment anywhere. On tag
//! lines `#` outside quotes starts a comment; on keyword lines (`Feature:`, `Scenario:`,
//! Given/When/Then/And/But) a `#` after whitespace and outside double quotes does. Free
//! description lines are kept verbatim, so "issue #12" survives in a description.

use crate::ast::{Document, Feature, Scenario};
use crate::diagnostic::{Diagnostic, Diags};
use crate::lexer::Cursor;
use crate::span::{Span, Spanned};
use crate::syntax::{ParsedTag, UNSUPPORTED_KEYWORDS, parse_tag_line, step_keyword};
use crate::tags::{apply_feature_tag, apply_scenario_tag, bind_contract};

/// Parses a Feature file. Never fails and never panics: every problem becomes a
/// [`Diagnostic`] pointing into `text`, and the tree holds everything that could be read.
/// `file` is only used to label the diagnostics.
pub fn parse(file: &str, text: &str) -> (Document, Vec<Diagnostic>) {
    let mut parser = Parser {
        cur: Cursor::new(text),
        diags: Diags::new(file),
        feature: None,
        feature_description: Vec::new(),
        section: Section::Preamble,
        pending: Vec::new(),
        reported_stray_text: false,
    };
    parser.run();
    let Parser {
        feature,
        feature_description,
        diags,
        ..
    } = parser;
    let feature = feature.map(|mut f| {
        f.description = join_description(feature_description);
        f
    });
    (Document { feature }, diags.finish())
}

/// Where in the file the parser is.
enum Section {
    /// Before `Feature:`.
    Preamble,
    /// After `Feature:`, before the first `Scenario:`. `discard` marks a second
    /// `Feature:`, whose description has nowhere to go.
    FeatureHeader {
        description_open: bool,
        discard: bool,
    },
    Scenario(OpenScenario),
}

struct OpenScenario {
    scenario: Scenario,
    /// Indentation of the `Scenario:` keyword, in characters.
    indent: u32,
    /// Indentation of the first line of its body, once seen.
    body_indent: Option<u32>,
    /// A Scenario outside any Feature: read for its diagnostics, then dropped.
    scratch: bool,
    description: Vec<String>,
    description_open: bool,
}

struct Pending {
    tag: ParsedTag,
    indent: u32,
}

struct Parser<'a> {
    cur: Cursor<'a>,
    diags: Diags,
    feature: Option<Feature>,
    feature_description: Vec<String>,
    section: Section,
    pending: Vec<Pending>,
    /// Text before `Feature:` is reported once, not once per line of a stray paragraph.
    reported_stray_text: bool,
}

impl Parser<'_> {
    /// Reads the text line by line. Every turn consumes at least one character, so the
    /// loop ends.
    fn run(&mut self) {
        loop {
            self.cur.skip_hspace();
            let span = self.cur.span();
            let indent = span.column.saturating_sub(1);
            match self.cur.peek() {
                None => break,
                Some('\n') => {
                    self.cur.bump();
                    self.on_blank();
                }
                Some('#') => self.cur.skip_line(),
                Some('@') => {
                    let tags = parse_tag_line(&mut self.cur, &mut self.diags);
                    self.on_tags(tags, indent);
                }
                Some(_) => {
                    let line = self.cur.take_line();
                    self.on_text(line.trim_end(), span, indent);
                }
            }
        }
        self.on_end();
    }

    fn on_blank(&mut self) {
        // Blank lines inside a description separate its paragraphs.
        match &mut self.section {
            Section::FeatureHeader {
                description_open: true,
                discard: false,
            } => self.feature_description.push(String::new()),
            Section::Scenario(open) if open.description_open => {
                open.description.push(String::new());
            }
            _ => {}
        }
    }

    fn on_tags(&mut self, tags: Vec<ParsedTag>, indent: u32) {
        match &mut self.section {
            Section::Preamble => {}
            Section::FeatureHeader {
                description_open, ..
            } => *description_open = false,
            Section::Scenario(open) => {
                open.description_open = false;
                open.body_indent.get_or_insert(indent);
            }
        }
        self.pending
            .extend(tags.into_iter().map(|tag| Pending { tag, indent }));
    }

    /// A line that is not blank, a comment or tags. `line` starts at its first non-blank
    /// character and has no trailing whitespace.
    fn on_text(&mut self, line: &str, span: Span, indent: u32) {
        if let Some(name) = line.strip_prefix("Feature:") {
            self.on_feature(strip_comment(name).trim(), span, indent);
        } else if let Some(name) = line.strip_prefix("Scenario:") {
            self.on_scenario(strip_comment(name).trim(), span, indent);
        } else if let Some(keyword) = UNSUPPORTED_KEYWORDS
            .into_iter()
            .find(|kw| line.starts_with(kw))
        {
            self.close_description();
            self.diags.error(
                span,
                format!(
                    "`{keyword}` is not supported in Runink features; write each case as its \
                     own `Scenario:` with its tags"
                ),
            );
        } else if step_keyword(line).is_some() || line.starts_with("* ") || line == "*" {
            self.on_prose(strip_comment(line).trim_end(), span);
        } else {
            self.on_free_text(line, span, indent);
        }
    }

    fn on_feature(&mut self, name: &str, span: Span, indent: u32) {
        let tags = self.take_tags_for(indent);
        if let Some(first) = &self.feature {
            self.diags.error(
                span,
                format!(
                    "a file holds one Feature; the first `Feature:` is at {}",
                    first.span
                ),
            );
            // Read the second Feature's tags for their diagnostics only.
            let mut scratch = Feature::default();
            for tag in tags {
                apply_feature_tag(&mut scratch, tag, &mut self.diags);
            }
            self.section = Section::FeatureHeader {
                description_open: true,
                discard: true,
            };
            return;
        }
        if name.is_empty() {
            self.diags.error(
                span,
                "`Feature:` needs a name, e.g. `Feature: Trade lifecycle`",
            );
        }
        let mut feature = Feature {
            name: name.to_owned(),
            span,
            ..Feature::default()
        };
        for tag in tags {
            apply_feature_tag(&mut feature, tag, &mut self.diags);
        }
        self.feature = Some(feature);
        self.section = Section::FeatureHeader {
            description_open: true,
            discard: false,
        };
    }

    fn on_scenario(&mut self, name: &str, span: Span, indent: u32) {
        let tags = self.take_tags_for(indent);
        if name.is_empty() {
            self.diags.error(
                span,
                "`Scenario:` needs a name, e.g. `Scenario: Validate trades`",
            );
        }
        let scratch = self.feature.is_none();
        if scratch {
            self.diags.error(
                span,
                "`Scenario:` outside a Feature; add a `Feature: NAME` line above it",
            );
        }
        let mut scenario = Scenario {
            name: name.to_owned(),
            span,
            ..Scenario::default()
        };
        for tag in tags {
            apply_scenario_tag(&mut scenario, tag, &mut self.diags);
        }
        self.section = Section::Scenario(OpenScenario {
            scenario,
            indent,
            body_indent: None,
            scratch,
            description: Vec::new(),
            description_open: true,
        });
    }

    fn on_prose(&mut self, line: &str, span: Span) {
        self.close_description();
        match &mut self.section {
            Section::Preamble => self.stray_text(span),
            Section::FeatureHeader { .. } => {
                let keyword = line.split_whitespace().next().unwrap_or_default();
                self.diags.error(
                    span,
                    format!(
                        "`{keyword}` line outside a Scenario; steps belong under a `Scenario:` line"
                    ),
                );
            }
            Section::Scenario(open) => {
                open.body_indent
                    .get_or_insert(span.column.saturating_sub(1));
                flush_into(&mut open.scenario, &mut self.pending, &mut self.diags);
                if let Some(path) = contract_line(line, span) {
                    if path.value.is_empty() {
                        self.diags
                            .error(span, "`Given the contract:` needs a path after the colon");
                    } else {
                        bind_contract(&mut open.scenario, path, &mut self.diags);
                    }
                }
                open.scenario
                    .prose
                    .push(Spanned::new(line.to_owned(), span));
            }
        }
    }

    fn on_free_text(&mut self, line: &str, span: Span, indent: u32) {
        match &mut self.section {
            Section::Preamble => self.stray_text(span),
            Section::FeatureHeader {
                description_open: true,
                discard,
            } => {
                if !*discard {
                    self.feature_description.push(line.to_owned());
                }
            }
            Section::FeatureHeader { .. } => self.diags.error(
                span,
                "unexpected text between the Feature's tags; expected a tag, a comment or \
                 `Scenario:`",
            ),
            Section::Scenario(open) => {
                open.body_indent.get_or_insert(indent);
                if open.description_open {
                    open.description.push(line.to_owned());
                } else {
                    flush_into(&mut open.scenario, &mut self.pending, &mut self.diags);
                    self.diags.error(
                        span,
                        format!(
                            "unexpected text in Scenario `{}`; expected a tag or a \
                             Given/When/Then/And/But line (a description goes right under \
                             `Scenario:`)",
                            open.scenario.name
                        ),
                    );
                }
            }
        }
    }

    fn stray_text(&mut self, span: Span) {
        if !self.reported_stray_text {
            self.reported_stray_text = true;
            self.diags.error(
                span,
                "text outside any Feature; a feature file starts with tags and a \
                 `Feature: NAME` line",
            );
        }
    }

    fn close_description(&mut self) {
        match &mut self.section {
            Section::Preamble => {}
            Section::FeatureHeader {
                description_open, ..
            } => *description_open = false,
            Section::Scenario(open) => open.description_open = false,
        }
    }

    /// Closes the open Scenario (if any) ahead of a `Feature:` or `Scenario:` line at
    /// `indent`, and returns the waiting tags that belong to that new line.
    fn take_tags_for(&mut self, indent: u32) -> Vec<ParsedTag> {
        let section = std::mem::replace(&mut self.section, Section::Preamble);
        let Section::Scenario(mut open) = section else {
            return self.pending.drain(..).map(|p| p.tag).collect();
        };
        // The run of tags directly above the new line, no deeper than it, is the new
        // line's; anything before that was in the closing Scenario's body.
        let split = self
            .pending
            .iter()
            .rposition(|p| p.indent > indent)
            .map_or(0, |i| i + 1);
        let ours: Vec<ParsedTag> = self.pending.drain(split..).map(|p| p.tag).collect();
        flush_into(&mut open.scenario, &mut self.pending, &mut self.diags);
        self.close_scenario(open);
        ours
    }

    fn close_scenario(&mut self, open: OpenScenario) {
        let OpenScenario {
            mut scenario,
            scratch,
            description,
            ..
        } = open;
        scenario.description = join_description(description);
        if let (false, Some(feature)) = (scratch, &mut self.feature) {
            feature.scenarios.push(scenario);
        }
    }

    fn on_end(&mut self) {
        let section = std::mem::replace(&mut self.section, Section::Preamble);
        if let Section::Scenario(mut open) = section {
            // Tags at the end that sit left of `Scenario:`, or level with it in a file
            // that indents bodies, were meant for a Scenario that never came. In a flat
            // file, tags level with `Scenario:` are its body.
            let indented = open.body_indent.is_some_and(|b| b > open.indent);
            let in_body =
                |p: &Pending| p.indent > open.indent || (p.indent == open.indent && !indented);
            let split = self.pending.iter().rposition(in_body).map_or(0, |i| i + 1);
            let dangling: Vec<Pending> = self.pending.drain(split..).collect();
            flush_into(&mut open.scenario, &mut self.pending, &mut self.diags);
            self.close_scenario(open);
            self.pending = dangling;
        }
        if let Some(first) = self.pending.first() {
            let what = if self.pending.len() == 1 {
                "this tag is".to_owned()
            } else {
                format!("these {} tags are", self.pending.len())
            };
            self.diags.error(
                first.tag.tag.span,
                format!("{what} attached to nothing: no `Feature:` or `Scenario:` line follows"),
            );
        }
        if self.feature.is_none() {
            self.diags.error(
                Span::new(1, 1),
                "missing `Feature:` line; a feature file needs `Feature: NAME`",
            );
        }
    }
}

/// Applies waiting tags to a Scenario's body, in text order.
fn flush_into(scenario: &mut Scenario, pending: &mut Vec<Pending>, diags: &mut Diags) {
    for p in pending.drain(..) {
        apply_scenario_tag(scenario, p.tag, diags);
    }
}

/// `Given the contract: PATH` (the words case-insensitive) → the path, where it starts.
/// A quoted path loses its quotes.
fn contract_line(line: &str, span: Span) -> Option<Spanned<String>> {
    const PHRASE: &str = "the contract:";
    let rest = line.strip_prefix("Given")?.trim_start();
    if !rest.get(..PHRASE.len())?.eq_ignore_ascii_case(PHRASE) {
        return None;
    }
    // `after` is a suffix of `line`, so the path starts `line.len() - after.len()` bytes in.
    let after = rest.get(PHRASE.len()..)?.trim_start();
    let mut column_offset = line
        .get(..line.len() - after.len())
        .map_or(0, |p| p.chars().count());
    let mut path = after.trim_end();
    if let Some(unquoted) = path
        .strip_prefix('"')
        .and_then(|p| p.strip_suffix('"'))
        .or_else(|| path.strip_prefix('\'').and_then(|p| p.strip_suffix('\'')))
    {
        path = unquoted;
        column_offset += 1;
    }
    let column = span
        .column
        .saturating_add(u32::try_from(column_offset).unwrap_or(u32::MAX));
    Some(Spanned::new(path.to_owned(), Span::new(span.line, column)))
}

/// Cuts a trailing comment: a `#` at the start or after whitespace, outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut in_quotes = false;
    let mut after_space = true;
    for (at, c) in line.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            '#' if after_space && !in_quotes => return line.get(..at).unwrap_or(line),
            _ => {}
        }
        after_space = c.is_whitespace();
    }
    line
}

/// Description lines joined with newlines, without leading or trailing blank lines.
fn join_description(lines: Vec<String>) -> String {
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |i| i + 1);
    lines.get(start..end).unwrap_or_default().join("\n")
}
