//! Word processing of Dockerfile arguments, as Docker's reference defines it
//! ("Environment replacement"): quotes, the escape character, and `$VAR`,
//! `${VAR}`, `${VAR:-word}`, `${VAR:+word}`, `${VAR-word}`, `${VAR+word}`,
//! `${VAR:?msg}`, `${VAR?msg}`, `${VAR#pat}`, `${VAR##pat}`, `${VAR%pat}`,
//! `${VAR%%pat}`, `${VAR/pat/rep}` and `${VAR//pat/rep}`.
//!
//! [`split`] cuts an argument string into words at unquoted white space, keeping
//! quotes and escapes for the later [`expand`] of each word (which removes them).
//! [`expand_words`] expands and splits at once: unquoted white space, also from
//! the value of a variable, separates words (EXPOSE, VOLUME, ...).

use std::collections::HashMap;

/// Variables visible to an expansion.
pub type Vars = HashMap<String, String>;

/// Split `s` at unquoted, unescaped white space; quotes and escapes are kept.
pub fn split(s: &str, escape: char) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                cur.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q == '"' {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                cur.push(c);
                if c == '\'' || c == '"' {
                    quote = Some(c);
                } else if c == escape {
                    if let Some(n) = chars.next() {
                        cur.push(n);
                    }
                }
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated {q} quote in {s:?}"));
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Expand one word: variables replaced, quotes and escapes removed.
pub fn expand(word: &str, vars: &Vars, escape: char) -> Result<String, String> {
    let mut lexer = Lexer::new(word, vars, escape, false);
    let out = lexer.run(None)?;
    Ok(out.into_iter().collect::<Vec<_>>().join(" "))
}

/// Expand `s` and split it into words at unquoted white space (including white
/// space that an unquoted variable's value brings).
pub fn expand_words(s: &str, vars: &Vars, escape: char) -> Result<Vec<String>, String> {
    let mut lexer = Lexer::new(s.trim(), vars, escape, true);
    lexer.run(None)
}

/// Expand the variables of an unquoted here-document: `$VAR` forms as in
/// words, quotes kept as they are, the escape character only escaping `$`
/// and itself.
pub fn expand_heredoc(text: &str, vars: &Vars, escape: char) -> Result<String, String> {
    let mut lexer = Lexer::new(text, vars, escape, false);
    lexer.raw = true;
    Ok(lexer.run(None)?.join(" "))
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a Vars,
    escape: char,
    /// Split into words at unquoted white space.
    words: bool,
    /// Here-document text: quotes are plain characters.
    raw: bool,
}

/// Words being built; `blank` separates words in word-splitting mode.
struct Words {
    done: Vec<String>,
    cur: String,
    started: bool,
    split: bool,
}

impl Words {
    fn push(&mut self, c: char) {
        self.cur.push(c);
        self.started = true;
    }
    fn push_str(&mut self, s: &str) {
        self.cur.push_str(s);
        self.started = true;
    }
    /// An unquoted piece: white space splits words.
    fn push_unquoted(&mut self, s: &str) {
        if !self.split {
            return self.push_str(s);
        }
        for c in s.chars() {
            if c.is_whitespace() {
                self.blank();
            } else {
                self.push(c);
            }
        }
    }
    fn blank(&mut self) {
        if self.split && self.started {
            self.done.push(std::mem::take(&mut self.cur));
            self.started = false;
        }
    }
    /// An empty quoted string still makes a word.
    fn mark(&mut self) {
        self.started = true;
    }
    fn finish(mut self) -> Vec<String> {
        if self.started || !self.split {
            self.done.push(self.cur);
        }
        self.done
    }
}

impl<'a> Lexer<'a> {
    fn new(s: &str, vars: &'a Vars, escape: char, words: bool) -> Self {
        Lexer {
            chars: s.chars().collect(),
            pos: 0,
            vars,
            escape,
            words,
            raw: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (consumed) or the end.
    fn run(&mut self, stop: Option<char>) -> Result<Vec<String>, String> {
        let mut w = Words {
            done: Vec::new(),
            cur: String::new(),
            started: false,
            split: self.words && stop.is_none(),
        };
        loop {
            let Some(c) = self.next() else {
                if let Some(s) = stop {
                    return Err(format!("missing '{s}'"));
                }
                break;
            };
            if Some(c) == stop {
                break;
            }
            if self.raw {
                match c {
                    '$' => {
                        let v = self.dollar()?;
                        w.push_str(&v);
                    }
                    c if c == self.escape => match self.peek() {
                        Some(n) if n == '$' || n == self.escape => {
                            self.pos += 1;
                            w.push(n);
                        }
                        _ => w.push(c),
                    },
                    c => w.push(c),
                }
                continue;
            }
            match c {
                '\'' => {
                    w.mark();
                    let s = self.single_quoted()?;
                    w.push_str(&s);
                }
                '"' => {
                    w.mark();
                    let s = self.double_quoted()?;
                    w.push_str(&s);
                }
                '$' => {
                    let v = self.dollar()?;
                    w.push_unquoted(&v);
                }
                c if c == self.escape => match self.next() {
                    Some(n) => w.push(n),
                    None => w.push(c),
                },
                c if c.is_whitespace() && w.split => w.blank(),
                c => w.push(c),
            }
        }
        Ok(w.finish())
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => return Ok(s),
                Some('$') => s.push_str(&self.dollar()?),
                Some(c) if c == self.escape => {
                    match self.next() {
                        Some(n) if n == '"' || n == '$' || n == self.escape => s.push(n),
                        Some(n) => {
                            s.push(c);
                            s.push(n);
                        }
                        None => return Err(
                            "unexpected end of statement while looking for matching double-quote"
                                .into(),
                        ),
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                n.push(c);
                self.pos += 1;
            } else {
                break;
            }
        }
        n
    }

    /// After a `$`: the expansion (a lone `$` stays).
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                let n = self.name();
                Ok(self.vars.get(&n).cloned().unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// The word after an operator inside `${...}`, up to the closing brace.
    fn operand(&mut self) -> Result<String, String> {
        let mut inner = Lexer {
            chars: self.chars.clone(),
            pos: self.pos,
            vars: self.vars,
            escape: self.escape,
            words: false,
            raw: self.raw,
        };
        let out = inner.run(Some('}'))?;
        self.pos = inner.pos;
        Ok(out.join(" "))
    }

    /// The pattern of `/`: up to an unescaped `/` (returned as true) or `}`.
    fn until_slash(&mut self) -> Result<(String, bool), String> {
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err("missing '}'".into()),
                Some('/') => return Ok((s, true)),
                Some('}') => return Ok((s, false)),
                Some(c) if c == self.escape => {
                    if let Some(n) = self.next() {
                        s.push(c);
                        s.push(n);
                    }
                }
                Some(c) => s.push(c),
            }
        }
    }

    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: ${} needs a variable name".into());
        }
        let value = self.vars.get(&name);
        let op = match self.next() {
            Some('}') => return Ok(value.cloned().unwrap_or_default()),
            Some(c) => c,
            None => return Err("missing '}'".into()),
        };
        let colon = op == ':';
        let op = if colon {
            self.next().ok_or_else(|| "missing '}'".to_string())?
        } else {
            op
        };
        let set = value.is_some_and(|v| !colon || !v.is_empty());
        match op {
            '-' => {
                let word = self.operand()?;
                Ok(if set {
                    value.cloned().unwrap_or_default()
                } else {
                    word
                })
            }
            '+' => {
                let word = self.operand()?;
                Ok(if set { word } else { String::new() })
            }
            '?' => {
                let word = self.operand()?;
                if set {
                    Ok(value.cloned().unwrap_or_default())
                } else if word.is_empty() {
                    Err(format!("{name}: is not allowed to be unset"))
                } else {
                    Err(format!("{name}: {word}"))
                }
            }
            '#' | '%' if !colon => {
                let longest = self.peek() == Some(op);
                if longest {
                    self.pos += 1;
                }
                let pat = self.operand()?;
                let v = value.cloned().unwrap_or_default();
                Ok(trim_pattern(&v, &pat, op == '#', longest))
            }
            '/' if !colon => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let (pat, more) = self.until_slash()?;
                let rep = if more { self.operand()? } else { String::new() };
                let v = value.cloned().unwrap_or_default();
                Ok(replace_pattern(&v, &pat, &rep, all))
            }
            c => Err(format!(
                "unsupported modifier ({c}) in substitution of {name}"
            )),
        }
    }
}

/// Does `pat` (shell pattern: `*`, `?`, `[...]`) match all of `s`?
fn shell_match(pat: &str, s: &str) -> bool {
    crate::build::pattern::shell_regex(pat)
        .map(|r| r.is_match(s))
        .unwrap_or(false)
}

/// Char boundaries of `s`, including 0 and its length.
fn boundaries(s: &str) -> Vec<usize> {
    s.char_indices().map(|(i, _)| i).chain([s.len()]).collect()
}

fn trim_pattern(v: &str, pat: &str, prefix: bool, longest: bool) -> String {
    let mut cuts = boundaries(v);
    if prefix != longest {
        // shortest prefix / longest suffix: try cut points from the start
    } else {
        cuts.reverse();
    }
    for i in cuts {
        let (head, tail) = v.split_at(i);
        if prefix && shell_match(pat, head) {
            return tail.to_string();
        }
        if !prefix && shell_match(pat, tail) {
            return head.to_string();
        }
    }
    v.to_string()
}

fn replace_pattern(v: &str, pat: &str, rep: &str, all: bool) -> String {
    let mut out = String::new();
    let b = boundaries(v);
    let mut i = 0;
    while i < b.len() - 1 {
        let start = b[i];
        // The longest match starting here.
        let found = b[i + 1..]
            .iter()
            .rev()
            .find(|&&end| shell_match(pat, &v[start..end]))
            .copied();
        match found {
            Some(end) => {
                out.push_str(rep);
                if !all {
                    out.push_str(&v[end..]);
                    return out;
                }
                i = b.iter().position(|&x| x == end).unwrap_or(b.len() - 1);
            }
            None => {
                out.push_str(&v[start..b[i + 1]]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Vars {
        [
            ("A", "hello"),
            ("B", "two words"),
            ("E", ""),
            ("P", "/usr/local/bin/tool.tar.gz"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn x(s: &str) -> String {
        expand(s, &vars(), '\\').unwrap()
    }

    #[test]
    fn plain_and_braced_variables() {
        assert_eq!(x("$A"), "hello");
        assert_eq!(x("${A}_x"), "hello_x");
        assert_eq!(x("$A_x"), "");
        assert_eq!(x("$UNSET-"), "-");
        assert_eq!(x("a$"), "a$");
        assert_eq!(x("$ A"), "$ A");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(x("'$A'"), "$A");
        assert_eq!(x("\"$A\""), "hello");
        assert_eq!(x("\\$A"), "$A");
        assert_eq!(x("\"a\\\"b\""), "a\"b");
        assert_eq!(x("\"a\\nb\""), "a\\nb");
        assert_eq!(x("a\\ b"), "a b");
        assert_eq!(expand("`$A", &vars(), '`').unwrap(), "$A");
        assert_eq!(expand("\\$A", &vars(), '`').unwrap(), "\\hello");
        assert!(expand("'abc", &vars(), '\\').is_err());
        assert!(expand("\"abc", &vars(), '\\').is_err());
    }

    #[test]
    fn modifiers() {
        assert_eq!(x("${A:-x}"), "hello");
        assert_eq!(x("${E:-x}"), "x");
        assert_eq!(x("${E-x}"), "");
        assert_eq!(x("${U-x$A}"), "xhello");
        assert_eq!(x("${A:+set}"), "set");
        assert_eq!(x("${E:+set}"), "");
        assert_eq!(x("${E+set}"), "set");
        assert_eq!(x("${U+set}"), "");
        assert_eq!(x("${A:?boom}"), "hello");
        assert_eq!(
            expand("${U:?is required}", &vars(), '\\').unwrap_err(),
            "U: is required"
        );
        assert!(expand("${A", &vars(), '\\').is_err());
        assert!(expand("${A:=x}", &vars(), '\\').is_err());
    }

    #[test]
    fn pattern_modifiers() {
        assert_eq!(x("${P#*/}"), "usr/local/bin/tool.tar.gz");
        assert_eq!(x("${P##*/}"), "tool.tar.gz");
        assert_eq!(x("${P%.*}"), "/usr/local/bin/tool.tar");
        assert_eq!(x("${P%%.*}"), "/usr/local/bin/tool");
        assert_eq!(x("${A/l/L}"), "heLlo");
        assert_eq!(x("${A//l/L}"), "heLLo");
        assert_eq!(x("${A//l}"), "heo");
    }

    #[test]
    fn here_document_text() {
        let v = vars();
        assert_eq!(
            expand_heredoc("say '$A' \"${B}\" \\$A \\n\n", &v, '\\').unwrap(),
            "say 'hello' \"two words\" $A \\n\n"
        );
    }

    #[test]
    fn word_splitting() {
        let v = vars();
        assert_eq!(
            expand_words("80 443/udp", &v, '\\').unwrap(),
            vec!["80", "443/udp"]
        );
        assert_eq!(
            expand_words("$B \"$B\" ''", &v, '\\').unwrap(),
            vec!["two", "words", "two words", ""]
        );
        assert_eq!(
            split("a \"b c\" 'd e' f\\ g", '\\').unwrap(),
            vec!["a", "\"b c\"", "'d e'", "f\\ g"]
        );
        assert!(split("a \"b", '\\').is_err());
    }
}
