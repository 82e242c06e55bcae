//! Path patterns: Go's `filepath.Match` syntax for COPY/ADD sources, and the
//! `.dockerignore` rules (Docker's reference, ".dockerignore file": `**`, `!`
//! exceptions, the last matching line wins, a pattern that matches a parent
//! directory matches everything below it). Patterns are compiled to regular
//! expressions with the `regex` crate, as Docker's own matcher does.

use regex::Regex;

fn push_class(out: &mut String, chars: &mut std::iter::Peekable<std::str::Chars>) -> bool {
    // A character class `[...]`, `[^...]`; copied with regex escaping of
    // what is special inside a regex class.
    let mut class = String::from("[");
    if chars.peek() == Some(&'^') || chars.peek() == Some(&'!') {
        chars.next();
        class.push('^');
    }
    let mut first = true;
    while let Some(c) = chars.next() {
        match c {
            ']' if !first => {
                class.push(']');
                out.push_str(&class);
                return true;
            }
            '\\' => match chars.next() {
                Some(n) => {
                    class.push('\\');
                    class.push(n);
                }
                None => return false,
            },
            '[' | '&' | '~' => {
                class.push('\\');
                class.push(c);
            }
            c => class.push(c),
        }
        first = false;
    }
    false
}

/// Compile one pattern; `star` is what `*` becomes, `any` what `?` becomes.
fn compile(pat: &str, star: &str, any: &str, double_star: bool) -> Option<Regex> {
    let mut re = String::from("^");
    let mut chars = pat.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if double_star && chars.peek() == Some(&'*') => {
                chars.next();
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str(star),
            '?' => re.push_str(any),
            '[' => {
                if !push_class(&mut re, &mut chars) {
                    return None;
                }
            }
            '\\' => match chars.next() {
                Some(n) => re.push_str(&regex::escape(&n.to_string())),
                None => return None,
            },
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push('$');
    Regex::new(&re).ok()
}

/// One component pattern in Go's `filepath.Match` syntax (`*` and `?` do not
/// match `/`); `None` if it is malformed.
pub fn path_regex(pat: &str) -> Option<Regex> {
    compile(pat, "[^/]*", "[^/]", false)
}

/// A shell pattern of `${VAR#pattern}` (`*` matches anything).
pub fn shell_regex(pat: &str) -> Option<Regex> {
    compile(pat, ".*", ".", false)
}

/// Has `s` any of the characters that make a path a pattern?
pub fn has_wildcards(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Lexical cleaning of a slash path (Go's `path.Clean` without the leading `/`
/// result for relative paths): `.` and empty parts dropped, `..` resolved, and
/// `..` above the top clamped to it. Returns the parts.
pub fn clean_parts(p: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            p => out.push(p),
        }
    }
    out
}

#[derive(Debug)]
struct IgnoreRule {
    re: Regex,
    exception: bool,
}

/// The rules of a `.dockerignore` file.
#[derive(Debug)]
pub struct Ignore {
    rules: Vec<IgnoreRule>,
}

impl Ignore {
    pub fn empty() -> Ignore {
        Ignore { rules: Vec::new() }
    }

    /// Parse the text of a `.dockerignore` file; an error names the line.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pat) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean_parts(pat).join("/");
            if cleaned.is_empty() {
                continue;
            }
            let re = compile(&cleaned, "[^/]*", "[^/]", true)
                .ok_or_else(|| format!("line {}: bad pattern {pat:?}", i + 1))?;
            rules.push(IgnoreRule { re, exception });
        }
        Ok(Ignore { rules })
    }

    /// Is the context path `rel` (slash separated, no leading `/`) excluded?
    pub fn excludes(&self, rel: &str) -> bool {
        let parents: Vec<&str> = rel.split('/').collect();
        let mut excluded = false;
        for rule in &self.rules {
            if rule.exception != excluded {
                continue;
            }
            let mut hit = rule.re.is_match(rel);
            if !hit {
                for i in 1..parents.len() {
                    if rule.re.is_match(&parents[..i].join("/")) {
                        hit = true;
                        break;
                    }
                }
            }
            if hit {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// May anything below the excluded directory `rel` be brought back by an
    /// exception? (Otherwise the walk skips the directory.)
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_match_syntax() {
        let m = |p: &str, s: &str| path_regex(p).unwrap().is_match(s);
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", ".hidden.txt"));
        assert!(!m("*.txt", "a/b.txt"));
        assert!(m("file?", "file1"));
        assert!(!m("file?", "file10"));
        assert!(m("[a-c]x", "bx"));
        assert!(!m("[^a-c]x", "bx"));
        assert!(m("[^a-c]x", "dx"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(path_regex("[abc").is_none());
    }

    #[test]
    fn dockerignore_rules() {
        let ig = Ignore::parse(
            "# comment\n\n*.log\n!keep.log\nbuild\n**/*.tmp\n/abs/x\ndocs/**\n!docs/README.md\n./sub/../other\n",
        )
        .unwrap();
        assert!(ig.excludes("a.log"));
        assert!(!ig.excludes("keep.log"));
        assert!(!ig.excludes("dir/a.log"), "* does not cross directories");
        assert!(ig.excludes("build"));
        assert!(
            ig.excludes("build/out/bin"),
            "a matched parent excludes its tree"
        );
        assert!(ig.excludes("x.tmp"));
        assert!(ig.excludes("deep/down/x.tmp"));
        assert!(ig.excludes("abs/x"));
        assert!(ig.excludes("docs/guide.md"));
        assert!(!ig.excludes("docs/README.md"));
        assert!(ig.excludes("other"));
        assert!(!ig.excludes("src/main.rs"));
        assert!(ig.has_exceptions());
        assert!(Ignore::parse("[x\n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn cleaning_clamps_at_the_top() {
        assert_eq!(clean_parts("../../a/./b//c/.."), vec!["a", "b"]);
        assert!(clean_parts("/").is_empty());
    }
}
