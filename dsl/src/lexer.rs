//! Character cursor with line/column tracking, and readers for the tokens inside tag
//! arguments: quoted strings, bare words, numbers and durations.
//!
//! Every reader advances the cursor by at least one character or reports that it cannot
//! start, so the loops built on them always make progress.

use crate::ast::Value;
use crate::span::Span;

/// A position in the text that knows its line and column.
pub(crate) struct Cursor<'a> {
    src: &'a str,
    /// Byte offset; always on a char boundary because it only moves by `len_utf8`.
    pos: usize,
    line: u32,
    column: u32,
    /// Nothing but horizontal whitespace since the start of the current line. Tracked on
    /// every step so asking is O(1) (rescanning the line would make long lines quadratic).
    blank_so_far: bool,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        // A byte-order mark is an encoding artefact, not text: skip it so that column 1
        // is the first real character.
        let pos = if src.starts_with('\u{feff}') {
            '\u{feff}'.len_utf8()
        } else {
            0
        };
        Self {
            src,
            pos,
            line: 1,
            column: 1,
            blank_so_far: true,
        }
    }

    pub(crate) fn span(&self) -> Span {
        Span::new(self.line, self.column)
    }

    pub(crate) fn line(&self) -> u32 {
        self.line
    }

    pub(crate) fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    pub(crate) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line = self.line.saturating_add(1);
            self.column = 1;
            self.blank_so_far = true;
        } else {
            self.column = self.column.saturating_add(1);
            if !is_hspace(c) {
                self.blank_so_far = false;
            }
        }
        Some(c)
    }

    /// True when only indentation precedes the cursor on its line.
    pub(crate) fn at_line_indent(&self) -> bool {
        self.blank_so_far
    }

    pub(crate) fn skip_hspace(&mut self) {
        while self.peek().is_some_and(is_hspace) {
            self.bump();
        }
    }

    /// Moves to the `\n` ending the line (or the end of the text) without consuming it.
    pub(crate) fn skip_to_eol(&mut self) {
        while self.peek().is_some_and(|c| c != '\n') {
            self.bump();
        }
    }

    /// Moves past the end of the current line.
    pub(crate) fn skip_line(&mut self) {
        self.skip_to_eol();
        self.bump();
    }

    /// The rest of the current line (without its `\n`), consuming the line.
    pub(crate) fn take_line(&mut self) -> &'a str {
        let start = self.pos;
        self.skip_to_eol();
        let line = self.src.get(start..self.pos).unwrap_or("");
        self.bump();
        line
    }

    /// Consumes `s` if the text continues with it. `s` must not contain a newline.
    pub(crate) fn eat(&mut self, s: &str) -> bool {
        if !self.rest().starts_with(s) {
            return false;
        }
        for _ in s.chars() {
            self.bump();
        }
        true
    }
}

/// Whitespace that does not end a line (`\r` counts, so CRLF files read like LF files).
pub(crate) fn is_hspace(c: char) -> bool {
    c != '\n' && c.is_whitespace()
}

/// A character that may appear in a bare (unquoted) word.
pub(crate) fn is_bare_char(c: char) -> bool {
    !c.is_whitespace() && !matches!(c, ',' | '(' | ')' | '[' | ']' | '=' | '"' | '\'' | '#')
}

/// `[A-Za-z_][A-Za-z0-9_]*`: tag argument keys.
pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads a maximal run of bare-word characters.
pub(crate) fn read_bare<'a>(cur: &mut Cursor<'a>) -> &'a str {
    let rest = cur.rest();
    let mut len = 0;
    while let Some(c) = cur.peek().filter(|&c| is_bare_char(c)) {
        cur.bump();
        len += c.len_utf8();
    }
    rest.get(..len).unwrap_or("")
}

/// A quoted string as read.
pub(crate) struct Quoted {
    pub(crate) text: String,
    /// False when the line (or, for triple quotes, the text) ended first.
    pub(crate) terminated: bool,
    pub(crate) triple: bool,
    /// Escapes that mean nothing (`\d`); kept as written, reported as warnings.
    pub(crate) unknown_escapes: Vec<(Span, char)>,
    /// Where each character of `text` was written (an escape: its backslash).
    pub(crate) origins: Vec<Span>,
}

impl Quoted {
    fn push(&mut self, c: char, at: Span) {
        self.text.push(c);
        self.origins.push(at);
    }
}

/// Where each character of the string value whose opening quote is at `at` in `src` was
/// written: for pointing into multi-line SQL, whose own positions count from the SQL's
/// start and ignore escapes and removed indentation. `None` when no string starts there.
pub fn string_origins(src: &str, at: Span) -> Option<Vec<Span>> {
    let mut cur = Cursor::new(src);
    while cur.span() < at {
        cur.bump()?;
    }
    if cur.span() != at || !matches!(cur.peek(), Some('"' | '\'')) {
        return None;
    }
    Some(read_string(&mut cur).origins)
}

/// Reads a string starting at the opening quote (`"`, `'`, `"""` or `'''`).
///
/// Single-quoted and double-quoted strings end at the end of their line, so a missing
/// quote costs one line rather than the rest of the file; triple-quoted strings span
/// lines, are raw (no escapes) and lose their common indentation, for multi-line SQL.
pub(crate) fn read_string(cur: &mut Cursor<'_>) -> Quoted {
    let mut out = Quoted {
        text: String::new(),
        terminated: false,
        triple: false,
        unknown_escapes: Vec::new(),
        origins: Vec::new(),
    };
    let Some(quote) = cur.peek() else {
        return out;
    };
    let triple_delim: &str = if quote == '"' { "\"\"\"" } else { "'''" };
    if cur.eat(triple_delim) {
        out.triple = true;
        read_triple(cur, triple_delim, &mut out);
        return out;
    }
    cur.bump();
    loop {
        match cur.peek() {
            None | Some('\n') => return out,
            Some(c) if c == quote => {
                cur.bump();
                out.terminated = true;
                return out;
            }
            Some('\\') => {
                let at = cur.span();
                cur.bump();
                match cur.peek() {
                    // A backslash at the end of the line escapes nothing; the string is
                    // unterminated and the next turn of the loop says so.
                    None | Some('\n') => out.push('\\', at),
                    Some(c) => {
                        cur.bump();
                        match c {
                            'n' => out.push('\n', at),
                            't' => out.push('\t', at),
                            'r' => out.push('\r', at),
                            '\\' | '"' | '\'' => out.push(c, at),
                            other => {
                                out.push('\\', at);
                                out.push(other, at);
                                out.unknown_escapes.push((at, other));
                            }
                        }
                    }
                }
            }
            Some(c) => {
                let at = cur.span();
                cur.bump();
                out.push(c, at);
            }
        }
    }
}

fn read_triple(cur: &mut Cursor<'_>, delim: &str, out: &mut Quoted) {
    let mut raw = Vec::new();
    loop {
        if cur.eat(delim) {
            out.terminated = true;
            break;
        }
        let at = cur.span();
        match cur.bump() {
            None => break,
            // CRLF files: keep SQL line endings uniform.
            Some('\r') if cur.peek() == Some('\n') => {}
            Some(c) => raw.push((c, at)),
        }
    }
    for (c, at) in dedent(raw) {
        out.push(c, at);
    }
}

/// Removes the layout a triple-quoted string inherits from the file: a first line left
/// empty by the opening quotes, a last line holding only the closing quotes' indentation,
/// and the indentation common to the other lines (the first line is excluded when it holds
/// text, since it starts right after the quotes). Each character keeps where it was written.
fn dedent(raw: Vec<(char, Span)>) -> Vec<(char, Span)> {
    let blank = |l: &[(char, Span)]| l.iter().all(|(c, _)| c.is_whitespace());
    let mut lines: Vec<&[(char, Span)]> = raw.split(|(c, _)| *c == '\n').collect();
    // The line breaks between the kept lines, to put back where they were.
    let breaks: Vec<Span> = raw
        .iter()
        .filter(|(c, _)| *c == '\n')
        .map(|(_, at)| *at)
        .collect();
    let mut first_line = 0;
    if lines.len() > 1 && lines.last().is_some_and(|l| blank(l)) {
        lines.pop();
    }
    let mut first = None;
    if lines.len() > 1 {
        let head = lines.remove(0);
        first_line = 1;
        if !blank(head) {
            first = Some(head);
        }
    }
    let indent = lines
        .iter()
        .filter(|l| !blank(l))
        .map(|l| l.iter().take_while(|(c, _)| is_hspace(*c)).count())
        .min()
        .unwrap_or(0);
    let body = lines.iter().map(|l| {
        if blank(l) {
            &l[..0]
        } else {
            l.get(indent..).unwrap_or(&l[..0])
        }
    });
    let kept: Vec<&[(char, Span)]> = first.into_iter().chain(body).collect();
    let mut out = Vec::new();
    // Line k of the result (after a first line of text) is line k of `lines`; without one,
    // it is line k + 1 of `raw`, whose break before it is `breaks[k + first_line - 1]`.
    let skip = usize::from(first.is_none()) * first_line;
    for (k, line) in kept.iter().enumerate() {
        if k > 0 {
            let at = breaks.get(k + skip - 1).copied().unwrap_or_default();
            out.push(('\n', at));
        }
        out.extend_from_slice(line);
    }
    out
}

/// The value of a bare word, and an error to report when it looks numeric but is not a
/// usable number or duration.
pub(crate) fn classify_bare(word: &str) -> (Value, Option<String>) {
    match word {
        "true" => return (Value::Bool(true), None),
        "false" => return (Value::Bool(false), None),
        _ => {}
    }
    if is_number(word) {
        return (Value::Number(word.to_owned()), None);
    }
    match parse_duration(word) {
        DurationParse::Millis(millis) => (
            Value::Duration {
                text: word.to_owned(),
                millis,
            },
            None,
        ),
        DurationParse::Overflow => (
            Value::Ident(word.to_owned()),
            Some(format!(
                "duration `{word}` is too large (more than {} milliseconds)",
                u64::MAX
            )),
        ),
        DurationParse::NotDuration => (Value::Ident(word.to_owned()), None),
    }
}

/// `-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?`
pub(crate) fn is_number(s: &str) -> bool {
    fn digits(b: &[u8], mut i: usize) -> usize {
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        i
    }
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let end = digits(b, i);
    if end == i {
        return false;
    }
    i = end;
    if b.get(i) == Some(&b'.') {
        let end = digits(b, i + 1);
        if end == i + 1 {
            return false;
        }
        i = end;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let end = digits(b, i);
        if end == i {
            return false;
        }
        i = end;
    }
    i == b.len()
}

/// The outcome of reading a duration.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DurationParse {
    NotDuration,
    Millis(u64),
    Overflow,
}

/// Parses `250ms`, `30s`, `5m`, `1h`, `2d` and sums of them such as `1h30m`.
pub(crate) fn parse_duration(s: &str) -> DurationParse {
    let b = s.as_bytes();
    if b.is_empty() {
        return DurationParse::NotDuration;
    }
    let mut i = 0;
    let mut total: Option<u64> = Some(0);
    while i < b.len() {
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return DurationParse::NotDuration;
        }
        let number = s.get(start..i).unwrap_or("");
        let unit_start = i;
        while b.get(i).is_some_and(u8::is_ascii_alphabetic) {
            i += 1;
        }
        let factor: u64 = match s.get(unit_start..i).unwrap_or("") {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return DurationParse::NotDuration,
        };
        // Too many digits for u64 is an overflow, not a different kind of word.
        let part = number
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor));
        total = total.zip(part).and_then(|(t, p)| t.checked_add(p));
    }
    match total {
        Some(ms) => DurationParse::Millis(ms),
        None => DurationParse::Overflow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), DurationParse::Millis(250));
        assert_eq!(parse_duration("30s"), DurationParse::Millis(30_000));
        assert_eq!(parse_duration("5m"), DurationParse::Millis(300_000));
        assert_eq!(parse_duration("1h30m"), DurationParse::Millis(5_400_000));
        assert_eq!(parse_duration("2d"), DurationParse::Millis(172_800_000));
        assert_eq!(parse_duration("5"), DurationParse::NotDuration);
        assert_eq!(parse_duration("5x"), DurationParse::NotDuration);
        assert_eq!(parse_duration("m5"), DurationParse::NotDuration);
        assert_eq!(parse_duration(""), DurationParse::NotDuration);
        assert_eq!(
            parse_duration("99999999999999999999d"),
            DurationParse::Overflow
        );
    }

    #[test]
    fn numbers() {
        for ok in ["16", "1.5", "-3", "1e5", "2.5E-3"] {
            assert!(is_number(ok), "{ok}");
        }
        for bad in ["", "-", "1.", ".5", "1e", "5m", "1-2", "--1"] {
            assert!(!is_number(bad), "{bad}");
        }
    }

    fn dd(raw: &str) -> String {
        dedent(raw.chars().map(|c| (c, Span::default())).collect())
            .into_iter()
            .map(|(c, _)| c)
            .collect()
    }

    #[test]
    fn triple_strings_know_where_each_character_was_written() {
        let src = "@step(sql=\"\"\"\n      SELECT *\n        FROM t\n      \"\"\")\n";
        let Some(origins) = string_origins(src, Span::new(1, 11)) else {
            panic!("no string at 1:11");
        };
        // `S` on line 2, column 7; the line break after `*`; `F` on line 3, column 9.
        assert_eq!(origins[0], Span::new(2, 7));
        assert_eq!(origins[8], Span::new(2, 15));
        assert_eq!(origins[11], Span::new(3, 9));
        assert_eq!(origins.len(), "SELECT *\n  FROM t".chars().count());
        let escaped = "x \"a\\tb\"";
        let Some(origins) = string_origins(escaped, Span::new(1, 3)) else {
            panic!("no string at 1:3");
        };
        assert_eq!(
            origins,
            vec![Span::new(1, 4), Span::new(1, 5), Span::new(1, 7)]
        );
        assert_eq!(string_origins(escaped, Span::new(1, 2)), None);
    }

    #[test]
    fn dedent_triple_strings() {
        assert_eq!(
            dd("\n    SELECT *\n      FROM t\n    "),
            "SELECT *\n  FROM t"
        );
        assert_eq!(dd("SELECT *\n    FROM t"), "SELECT *\nFROM t");
        assert_eq!(dd("SELECT 1"), "SELECT 1");
        assert_eq!(dd(""), "");
        assert_eq!(dd("SELECT 1\n  "), "SELECT 1");
        assert_eq!(dd("\n  a\n\n    b\n"), "a\n\n  b");
    }

    #[test]
    fn cursor_counts_columns_in_chars() {
        let mut cur = Cursor::new("\u{feff}é@x\nab");
        assert_eq!(cur.span(), Span::new(1, 1));
        cur.bump();
        assert_eq!(cur.peek(), Some('@'));
        assert_eq!(cur.span(), Span::new(1, 2));
        cur.skip_line();
        assert_eq!(cur.span(), Span::new(2, 1));
        assert!(cur.at_line_indent());
    }
}
