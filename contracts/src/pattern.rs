//! A contract's `pattern`: the `regex` crate's syntax and answers, matched by a dense DFA
//! when the pattern has a small one.
//!
//! A `pattern` rule tests every value of its column, and values are short (ids, codes,
//! e-mail addresses), so the cost is the fixed work of each search rather than the bytes:
//! `Regex::is_match` picks a strategy, takes a cache from its pool and sets up a search
//! per call, which made `pattern` the dearest rule after `unique`. A dense DFA built once
//! per checker answers the same question with one table look-up per byte.
//!
//! The DFA is built from the same pattern with the same syntax defaults as the `regex`
//! crate (Unicode classes, UTF-8 matching) and answers `is_match` identically: a property
//! test holds the two side by side. Patterns whose DFA would be large (wide Unicode
//! classes repeated many times) or that a DFA cannot express (Unicode word boundaries)
//! keep `Regex`, which also remains what validates patterns and words their errors.

use regex::Regex;
use regex_automata::dfa::{Automaton, dense};
use regex_automata::util::primitives::StateID;
use regex_automata::util::start::Config as StartConfig;
use regex_automata::{Anchored, MatchKind};

/// A compiled pattern.
#[derive(Clone, Debug)]
pub(crate) struct Pattern {
    regex: Regex,
    dfa: Option<Dfa>,
}

/// A pattern's DFA and the state an unanchored search of a whole value starts in.
#[derive(Clone, Debug)]
struct Dfa {
    dfa: dense::DFA<Vec<u32>>,
    /// Where every search starts: a search from a value's first byte has nothing behind it,
    /// so its start state is always the same one, computed once.
    start: StateID,
}

/// Patterns are compiled once per checker; this caps what one may cost.
const PATTERN_SIZE_MAX_BYTES: usize = 1 << 20;

/// The largest DFA kept (and what determinizing may use to get there): a few hundred
/// states, plenty for anchored ids and codes; larger ones fall back to `Regex`, whose
/// lazy DFA builds only the states the data visits.
const DFA_SIZE_MAX_BYTES: usize = 256 << 10;

impl Pattern {
    /// Compiles `pattern` with the crate's limits.
    pub(crate) fn new(pattern: &str) -> Result<Pattern, regex::Error> {
        let regex = compile_regex(pattern)?;
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .dfa_size_limit(Some(DFA_SIZE_MAX_BYTES))
                    .determinize_size_limit(Some(DFA_SIZE_MAX_BYTES)),
            )
            .build(pattern)
            .ok()
            .and_then(|dfa| {
                let start = dfa
                    .start_state(&StartConfig::new().anchored(Anchored::No))
                    .ok()?;
                Some(Dfa { dfa, start })
            });
        Ok(Pattern { regex, dfa })
    }

    /// Whether `value` has a match of the pattern anywhere, as `Regex::is_match`.
    pub(crate) fn is_match(&self, value: &str) -> bool {
        match &self.dfa {
            Some(d) => d
                .is_match(value.as_bytes())
                .unwrap_or_else(|| self.regex.is_match(value)),
            None => self.regex.is_match(value),
        }
    }

    /// Whether the pattern is matched by a DFA (not `Regex`).
    #[cfg(test)]
    fn has_dfa(&self) -> bool {
        self.dfa.is_some()
    }
}

impl Dfa {
    /// Whether `value` has a match: the DFA walked byte by byte from the start state, the
    /// whole search with none of a general search's set-up (an `Input`, a start state
    /// looked up per call, a prefilter), which cost more than the walk on short values.
    /// `None` where the DFA quits (it is built with no quit bytes, so never in practice).
    fn is_match(&self, value: &[u8]) -> Option<bool> {
        let dfa = &self.dfa;
        let mut state = self.start;
        for &byte in value {
            state = dfa.next_state(state, byte);
            if dfa.is_special_state(state) {
                // Match states come one byte after the match ends: any match will do.
                if dfa.is_match_state(state) {
                    return Some(true);
                }
                if dfa.is_dead_state(state) {
                    return Some(false);
                }
                if dfa.is_quit_state(state) {
                    return None;
                }
            }
        }
        Some(dfa.is_match_state(dfa.next_eoi_state(state)))
    }
}

/// Compiles `pattern` as a `Regex` with the crate's limits: what validates a contract's
/// patterns.
pub(crate) fn compile_regex(pattern: &str) -> Result<Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .size_limit(PATTERN_SIZE_MAX_BYTES)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Patterns of the kinds contracts hold, and some a DFA cannot take.
    const PATTERNS: &[&str] = &[
        r"^T[0-9]{7}$",
        r"^[A-Z]{3}$",
        r"[0-9]",
        r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$",
        r"^\d{4}-\d{2}-\d{2}$",
        r"^(BUY|SELL)$",
        r"^\w+$",
        r"(?i)^abc",
        r"^$",
        r"a|",
        r"x$",
        r"(?m)^b$",
        r"^\p{Greek}+$",
        r"\bword\b",
        r"^.{2,5}$",
        r"^[a-z]+(-[a-z]+)*$",
        r"é",
        r"^\w{1,8}$",
        r"[ab]*a[ab]{15}",
    ];

    #[test]
    fn small_patterns_get_a_dfa_and_unicode_word_boundaries_do_not() -> Result<(), regex::Error> {
        assert!(Pattern::new(r"^T[0-9]{7}$")?.has_dfa());
        assert!(Pattern::new(r"^[^@\s]+@[^@\s]+\.[a-z]{2,}$")?.has_dfa());
        assert!(!Pattern::new(r"\bword\b")?.has_dfa());
        Ok(())
    }

    #[test]
    fn a_pattern_with_a_large_dfa_falls_back_to_regex() -> Result<(), regex::Error> {
        // The DFA must remember the last sixteen letters: 2^16 states.
        let p = Pattern::new(r"[ab]*a[ab]{15}")?;
        assert!(!p.has_dfa());
        assert!(p.is_match(&format!("bbba{}", "b".repeat(15))));
        assert!(!p.is_match(&format!("bbba{}", "b".repeat(14))));
        assert!(!p.is_match(&"b".repeat(24)));
        Ok(())
    }

    #[test]
    fn edge_values_match_as_regex_does() -> Result<(), regex::Error> {
        let values = [
            "",
            "T0000001",
            "T00000012",
            "xT0000001",
            "T000000",
            "BUY",
            "SELL",
            "BUYSELL",
            "a@b.io",
            "a@@b.io",
            "2024-01-31",
            "ΑΒΓ",
            "é",
            "e\u{301}",
            "word",
            "a word!",
            "ab\nb",
            "b\n",
            "\n",
            "abc",
            "ABC",
        ];
        for p in PATTERNS {
            let (ours, re) = (Pattern::new(p)?, compile_regex(p)?);
            for v in values {
                assert_eq!(ours.is_match(v), re.is_match(v), "pattern {p:?} on {v:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn any_value_matches_as_regex_does(
            p in proptest::sample::select(PATTERNS),
            v in "(T[0-9]{0,9}|[A-Za-z0-9@. \\-]{0,12}|\\PC{0,6}|[\\n\\r\\tαβé]{0,3})",
        ) {
            let (ours, re) = (Pattern::new(p).expect("pattern"), compile_regex(p).expect("regex"));
            prop_assert_eq!(ours.is_match(&v), re.is_match(&v), "pattern {:?} on {:?}", p, v);
        }
    }
}
