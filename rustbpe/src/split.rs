//! Splitting text into pieces with a regex before BPE: merges never cross a piece boundary.

use fancy_regex::Regex;
use regex_syntax::hir::{Class, HirKind};
use std::sync::OnceLock;

/// GPT-4's split pattern (cl100k): the default, as in rustbpe 0.1.0.
pub const GPT4_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// nanochat's variant: digit runs capped at 2 (better for small vocabularies).
pub const SPLIT_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// A compiled split pattern.
///
/// GPT-4's pattern with any digit cap `\p{N}{1,k}` (so both constants above) runs on a
/// hand-written matcher that follows the regex alternative by alternative (see `gpt4_piece_end`);
/// every other pattern runs on fancy-regex. Tests check the two agree on every code point.
#[derive(Debug, Clone)]
pub struct Splitter {
    pattern: String,
    regex: Regex,
    /// `Some(k)`: the pattern is GPT-4's with digit runs capped at k, use the fast matcher.
    digits: Option<usize>,
}

impl Splitter {
    /// Compile `pattern`; the error message says why it does not compile.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let regex = Regex::new(pattern).map_err(|e| format!("invalid split pattern {pattern:?}: {e}"))?;
        let digits = (1..=9).find(|k| pattern == GPT4_PATTERN.replace("{1,3}", &format!("{{1,{k}}}")));
        Ok(Splitter { pattern: pattern.to_owned(), regex, digits })
    }

    /// The same pattern, always matched with fancy-regex (for tests and benchmarks).
    pub fn regex_only(pattern: &str) -> Result<Self, String> {
        Ok(Splitter { digits: None, ..Self::new(pattern)? })
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// True when the hand-written matcher is used.
    pub fn is_fast(&self) -> bool {
        self.digits.is_some()
    }

    /// Call `f` on every match of the pattern in `text`, left to right.
    #[inline]
    pub fn for_each_piece<'t, F: FnMut(&'t str)>(&self, text: &'t str, mut f: F) -> Result<(), String> {
        if let Some(k) = self.digits {
            let table = class_table();
            let mut i = 0;
            while i < text.len() {
                let j = gpt4_piece_end(text, i, k, table);
                f(&text[i..j]);
                i = j;
            }
            return Ok(());
        }
        for m in self.regex.find_iter(text) {
            let m = m.map_err(|e| format!("regex matching failed: {e}"))?;
            f(m.as_str());
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// The hand-written GPT-4 matcher.
//
// Every character is in exactly one of four classes: a letter (\p{L}), a number (\p{N}),
// whitespace (\s) or other. The class table is built from regex-syntax's own Unicode tables,
// the ones fancy-regex uses, so the two matchers classify every code point identically.

const OTHER: u8 = 0;
const LETTER: u8 = 1;
const NUMBER: u8 = 2;
const SPACE: u8 = 3;

fn unicode_ranges(class: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new().parse(class).expect("a valid class");
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => c.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect(),
        other => panic!("{class} parsed to {other:?}"),
    }
}

/// One class byte per code point (1.1 MB, built once).
fn class_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![OTHER; 0x11_0000];
        for (class, v) in [(r"\p{L}", LETTER), (r"\p{N}", NUMBER), (r"\s", SPACE)] {
            for (lo, hi) in unicode_ranges(class) {
                t[lo as usize..=hi as usize].fill(v);
            }
        }
        t
    })
}

/// The char starting at byte `i` (which must be a char boundary) and its UTF-8 length.
#[inline(always)]
fn char_at(s: &str, i: usize) -> Option<(char, usize)> {
    let b = *s.as_bytes().get(i)?;
    if b < 0x80 {
        return Some((b as char, 1));
    }
    let c = s[i..].chars().next()?;
    Some((c, c.len_utf8()))
}

#[inline(always)]
fn class_at(s: &str, i: usize, t: &[u8]) -> Option<(u8, char, usize)> {
    char_at(s, i).map(|(c, n)| (t[c as usize], c, n))
}

/// End of the maximal run of characters of class `cls` starting at `i`.
#[inline(always)]
fn run_end(s: &str, mut i: usize, cls: u8, t: &[u8]) -> usize {
    while let Some((k, _, n)) = class_at(s, i, t) {
        if k != cls {
            break;
        }
        i += n;
    }
    i
}

/// `(?i:[sdmt]|ll|ve|re)` right after an apostrophe at `i`: the matched length in bytes.
#[inline]
fn contraction_len(s: &str, i: usize) -> Option<usize> {
    let (c, n) = char_at(s, i)?;
    match c {
        's' | 'S' | 'd' | 'D' | 'm' | 'M' | 't' | 'T' | '\u{17F}' => Some(n), // U+017F (long s) folds to s
        'l' | 'L' | 'v' | 'V' | 'r' | 'R' => {
            let (c2, n2) = char_at(s, i + n)?;
            let ok = match c {
                'l' | 'L' => matches!(c2, 'l' | 'L'),
                _ => matches!(c2, 'e' | 'E'),
            };
            ok.then_some(n + n2)
        }
        _ => None,
    }
}

/// The end (byte index) of the piece that GPT-4's pattern (digit runs capped at `k`) matches at
/// byte `i < s.len()`. The alternatives are tried in the regex's order; each comment quotes one.
#[inline]
fn gpt4_piece_end(s: &str, i: usize, k: usize, t: &[u8]) -> usize {
    let (cls, c, n) = class_at(s, i, t).expect("i < len");
    // '(?i:[sdmt]|ll|ve|re)
    if c == '\'' {
        if let Some(m) = contraction_len(s, i + 1) {
            return i + 1 + m;
        }
    }
    // [^\r\n\p{L}\p{N}]?+\p{L}+   (possessive: a leading non-letter is taken if it can be)
    if cls == LETTER {
        return run_end(s, i + n, LETTER, t);
    }
    if cls != NUMBER && c != '\r' && c != '\n' {
        if let Some((LETTER, _, _)) = class_at(s, i + n, t) {
            return run_end(s, i + n, LETTER, t);
        }
    }
    // \p{N}{1,k}
    if cls == NUMBER {
        let mut j = i + n;
        for _ in 1..k {
            match class_at(s, j, t) {
                Some((NUMBER, _, m)) => j += m,
                _ => break,
            }
        }
        return j;
    }
    //  ?[^\s\p{L}\p{N}]++[\r\n]*
    let punct_start = if cls == OTHER {
        Some(i)
    } else if c == ' ' && matches!(class_at(s, i + 1, t), Some((OTHER, _, _))) {
        Some(i + 1)
    } else {
        None
    };
    if let Some(p) = punct_start {
        let mut j = run_end(s, p, OTHER, t);
        while matches!(s.as_bytes().get(j), Some(b'\r' | b'\n')) {
            j += 1;
        }
        return j;
    }
    // What is left starts with whitespace.
    debug_assert_eq!(cls, SPACE);
    let j = run_end(s, i, SPACE, t);
    // \s*[\r\n]   (backtracks to the last newline in the run)
    if let Some(q) = s.as_bytes()[i..j].iter().rposition(|&b| b == b'\r' || b == b'\n') {
        return i + q + 1;
    }
    // \s+(?!\S)   (the whole run at the end of the text, else all but its last character)
    if j == s.len() {
        return j;
    }
    let last = s[i..j].chars().next_back().expect("non-empty run").len_utf8();
    if j - last > i {
        return j - last;
    }
    // \s+
    j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(sp: &Splitter, text: &str) -> Vec<String> {
        let mut out = vec![];
        sp.for_each_piece(text, |p| out.push(p.to_owned())).unwrap();
        out
    }

    /// (fast, regex-only) splitters for both patterns, compiled once.
    fn splitters() -> &'static Vec<(Splitter, Splitter)> {
        static S: OnceLock<Vec<(Splitter, Splitter)>> = OnceLock::new();
        S.get_or_init(|| {
            [GPT4_PATTERN, SPLIT_PATTERN]
                .iter()
                .map(|p| (Splitter::new(p).unwrap(), Splitter::regex_only(p).unwrap()))
                .collect()
        })
    }

    fn check(text: &str) {
        for (fast, slow) in splitters() {
            assert!(fast.is_fast() && !slow.is_fast());
            assert_eq!(pieces(fast, text), pieces(slow, text), "text {text:?}");
        }
    }

    #[test]
    fn known_splits() {
        let sp = Splitter::new(SPLIT_PATTERN).unwrap();
        assert_eq!(pieces(&sp, "Hello world's 12345!!\n\n  x  \t"), vec!["Hello", " world", "'s", " ", "12", "34", "5", "!!\n\n", " ", " x", "  \t"]);
        assert!(!Splitter::new(r"\w+").unwrap().is_fast());
        assert!(Splitter::new(&GPT4_PATTERN.replace("{1,3}", "{1,5}")).unwrap().is_fast());
    }

    #[test]
    fn fast_matcher_agrees_with_regex_on_tricky_strings() {
        let alphabet: Vec<char> = " \t\n\r\u{b}\u{c}aZé1١².!'sSlLeEvVrRmdtſ\u{a0}\u{2028}\u{3000}🤗\u{301}\u{200d}_-".chars().collect();
        let mut state: u64 = 0x9e3779b97f4a7c15;
        let mut rnd = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..3000 {
            let len = (rnd() % 24) as usize;
            let text: String = (0..len).map(|_| alphabet[(rnd() % alphabet.len() as u64) as usize]).collect();
            check(&text);
        }
    }

    #[test]
    fn fast_matcher_agrees_with_regex_on_every_code_point() {
        // Each code point in several contexts: after an apostrophe, between letters and digits,
        // after a space, before and after newlines, at the very end.
        let mut text = String::new();
        let mut n = 0;
        for cp in 0..0x11_0000u32 {
            let Some(c) = char::from_u32(cp) else { continue };
            text.push_str(&format!(" {c}{c}x1{c}'{c}\n{c}"));
            if cp < 0x800 {
                // contractions: is c one of the case-folded letters after an apostrophe?
                text.push_str(&format!("'l{c}'{c}e {c}  {c}"));
            }
            n += 1;
            if n % 4000 == 0 {
                check(&text);
                text.clear();
            }
        }
        check(&text);
    }
}
