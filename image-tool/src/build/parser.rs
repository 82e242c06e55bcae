//! The Dockerfile format (Docker's reference, "Format", "Parser directives"):
//! parser directives at the top (`escape`, `syntax`, `check`), comment lines,
//! line continuations with the escape character, and each instruction split
//! into its keyword, its `--flags` and the rest of its arguments. What the
//! arguments mean is [`super::instruction`]'s business.
//!
//! Written here rather than taken from the `dockerfile-parser` crate: that one
//! has no `escape` directive, drops the line numbers errors must name, and
//! knows neither exec-form heuristics nor flags of newer instructions.

/// The parser directives of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `\` (default) or `` ` ``.
    pub escape: char,
    /// Recorded and otherwise ignored: this builder is its own frontend.
    pub syntax: Option<String>,
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Self {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// One instruction as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// First and last line (1-based) of the instruction in the file.
    pub line: usize,
    pub end_line: usize,
    /// The keyword in upper case (`RUN`, `COPY`, ...).
    pub keyword: String,
    /// Leading `--name[=value]` flags, as written.
    pub flags: Vec<String>,
    /// The arguments after the flags, continuations joined, trimmed.
    pub rest: String,
    /// Keyword and arguments as one line (for messages and ONBUILD).
    pub original: String,
    /// Here-documents of RUN, COPY and ADD, in the order of their markers.
    pub heredocs: Vec<Heredoc>,
}

/// A here-document (`<<EOF` ... `EOF`) of an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The marker as written (`<<EOF`, `<<-"EOF"`).
    pub marker: String,
    /// The delimiter (the file name a COPY source gets).
    pub name: String,
    /// Its lines, each with its newline (`<<-`: leading tabs removed).
    pub content: String,
    /// Unquoted delimiter: COPY/ADD expand `$VAR`s in the content.
    pub expand: bool,
}

/// The here-document markers among the words of `args`: (marker word,
/// delimiter, quoted, strip tabs).
fn heredoc_markers(args: &str, escape: char) -> Vec<(String, String, bool, bool)> {
    let Ok(words) = super::words::split(args, escape) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for w in words {
        let Some(rest) = w.strip_prefix("<<") else {
            continue;
        };
        if rest.starts_with('<') {
            continue;
        }
        let (strip, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let (quoted, rest) = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => (true, rest[1..].split(q).next().unwrap_or("")),
            _ => (false, rest),
        };
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            out.push((w.clone(), name, quoted, strip));
        }
    }
    out
}

/// A parsed Dockerfile.
#[derive(Debug, Clone)]
pub struct Dockerfile {
    pub directives: Directives,
    pub nodes: Vec<Node>,
}

/// A syntax error at a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// `# key=value` at the top of the file: `Some((key, value))` when the line has
/// that shape (the key lower-cased).
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#')?.trim_start();
    let (key, value) = body.split_once('=')?;
    let key = key.trim_end();
    let mut chars = key.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((key.to_ascii_lowercase(), value.to_string()))
}

/// Read the directives; returns them and the number of lines they used.
fn parse_directives(lines: &[&str]) -> Result<(Directives, usize), ParseError> {
    let mut d = Directives::default();
    let mut seen: Vec<String> = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some((key, value)) = directive(line) else {
            return Ok((d, i));
        };
        if !["escape", "syntax", "check"].contains(&key.as_str()) {
            return Ok((d, i));
        }
        if seen.contains(&key) {
            return Err(ParseError {
                line: i + 1,
                message: format!("only one {key} parser directive can be used"),
            });
        }
        seen.push(key.clone());
        match key.as_str() {
            "escape" => {
                d.escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    _ => {
                        return Err(ParseError {
                            line: i + 1,
                            message: format!("invalid escape token {value:?}: must be \\ or `"),
                        })
                    }
                }
            }
            "syntax" => d.syntax = Some(value),
            _ => d.check = Some(value),
        }
    }
    Ok((d, lines.len()))
}

/// The line without its continuation mark, and whether it had one: the escape
/// character as the last character, optionally followed by blanks.
fn strip_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(s) => (s, true),
        None => (line, false),
    }
}

/// Split the leading `--flags` off the arguments (quotes inside a flag kept).
fn split_flags(args: &str) -> (Vec<String>, String) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while rest.starts_with("--") {
        let mut end = rest.len();
        let mut quote: Option<char> = None;
        for (i, c) in rest.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None => {}
            }
        }
        let flag = &rest[..end];
        if flag == "--" {
            rest = rest[end..].trim_start();
            break;
        }
        flags.push(flag.to_string());
        rest = rest[end..].trim_start();
    }
    (flags, rest.trim_end().to_string())
}

/// Make a node of one logical line (continuations joined).
pub fn node(line: usize, end_line: usize, text: &str) -> Node {
    let text = text.trim();
    let (word, args) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim_start()),
        None => (text, ""),
    };
    let keyword = word.to_ascii_uppercase();
    // Only these take flags; elsewhere a leading `--` is an argument.
    let (flags, rest) = match keyword.as_str() {
        "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK" => split_flags(args),
        _ => (Vec::new(), args.trim_end().to_string()),
    };
    Node {
        line,
        end_line,
        keyword,
        flags,
        rest,
        original: text.to_string(),
        heredocs: Vec::new(),
    }
}

/// Parse a Dockerfile's text.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text.lines().collect();
    let (directives, first) = parse_directives(&lines)?;
    let escape = directives.escape;
    let mut nodes = Vec::new();
    let mut i = first;
    while i < lines.len() {
        let start = i + 1;
        let raw = lines[i];
        i += 1;
        if is_comment(raw) || raw.trim().is_empty() {
            continue;
        }
        let (first_part, mut more) = strip_continuation(raw.trim_start(), escape);
        let mut joined = first_part.to_string();
        let mut end = start;
        while more && i < lines.len() {
            let next = lines[i];
            i += 1;
            end = i;
            if is_comment(next) || next.trim().is_empty() {
                continue;
            }
            let (part, cont) = strip_continuation(next, escape);
            joined.push_str(part);
            more = cont;
        }
        if joined.trim().is_empty() {
            continue;
        }
        let mut n = node(start, end, &joined);
        if ["RUN", "COPY", "ADD"].contains(&n.keyword.as_str()) {
            for (marker, name, quoted, strip) in heredoc_markers(&n.rest, escape) {
                let mut content = String::new();
                loop {
                    let Some(l) = lines.get(i) else {
                        return Err(ParseError {
                            line: start,
                            message: format!("unterminated here-document {marker}: no line {name}"),
                        });
                    };
                    i += 1;
                    let l = if strip { l.trim_start_matches('\t') } else { l };
                    if l == name {
                        break;
                    }
                    content.push_str(l);
                    content.push('\n');
                }
                n.end_line = i;
                n.heredocs.push(Heredoc {
                    marker,
                    name,
                    content,
                    expand: !quoted,
                });
            }
        }
        nodes.push(n);
    }
    Ok(Dockerfile { directives, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(df: &Dockerfile) -> Vec<(usize, String, String)> {
        df.nodes
            .iter()
            .map(|n| (n.line, n.keyword.clone(), n.rest.clone()))
            .collect()
    }

    #[test]
    fn comments_blank_lines_and_case() {
        let df = parse(
            "# a comment\n\n  # indented comment\nfrom busybox\n\trun echo hi # not a comment\n",
        )
        .unwrap();
        assert_eq!(
            kw(&df),
            vec![
                (4, "FROM".into(), "busybox".into()),
                (5, "RUN".into(), "echo hi # not a comment".into())
            ]
        );
    }

    #[test]
    fn continuations_skip_comments_and_empty_lines() {
        let df = parse("FROM x\nRUN echo a \\\n# inside\n\n    b \\  \n  c\nENV A=1\n").unwrap();
        assert_eq!(df.nodes[1].rest, "echo a     b   c");
        assert_eq!((df.nodes[1].line, df.nodes[1].end_line), (2, 6));
        assert_eq!(df.nodes[2].line, 7);
        // A continuation at the end of the file ends the instruction.
        let df = parse("FROM x\nRUN a \\").unwrap();
        assert_eq!(df.nodes[1].rest, "a");
    }

    #[test]
    fn escape_directive_backtick() {
        let df = parse("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo done\n").unwrap();
        assert_eq!(df.directives.escape, '`');
        assert_eq!(df.nodes[1].rest, "dir c:\\   && echo done");
        // With the default escape, a trailing backslash continues the line.
        let df = parse("FROM x\nRUN a \\\n b\n").unwrap();
        assert_eq!(df.nodes[1].rest, "a  b");
    }

    #[test]
    fn directive_forms_and_where_they_stop() {
        let df = parse("#syntax=docker/dockerfile:1\n# ESCAPE = `\n#\tcheck=skip=all\nFROM x\n")
            .unwrap();
        assert_eq!(df.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(df.directives.escape, '`');
        assert_eq!(df.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(df.nodes[0].line, 4);
        // After a comment (or unknown directive, or blank line) directives are comments.
        let df = parse("# hello\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        let df = parse("# unknown=1\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        let df = parse("\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
        let df = parse("FROM x\n# escape=`\n").unwrap();
        assert_eq!(df.directives.escape, '\\');
    }

    #[test]
    fn directive_errors_name_the_line() {
        let e = parse("# escape=`\n# escape=\\\nFROM x\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("only one escape"));
        let e = parse("# escape=x\nFROM x\n").unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("invalid escape token"));
    }

    #[test]
    fn flags_are_split_only_where_instructions_take_them() {
        let df = parse(
            "FROM --platform=linux/amd64 x AS b\nCOPY --chown=1:1 --chmod=644 a b\nRUN --network=none echo\nENV --x=1\n",
        )
        .unwrap();
        assert_eq!(df.nodes[0].flags, vec!["--platform=linux/amd64"]);
        assert_eq!(df.nodes[0].rest, "x AS b");
        assert_eq!(df.nodes[1].flags, vec!["--chown=1:1", "--chmod=644"]);
        assert_eq!(df.nodes[1].rest, "a b");
        assert_eq!(df.nodes[2].flags, vec!["--network=none"]);
        assert!(df.nodes[3].flags.is_empty());
        assert_eq!(df.nodes[3].rest, "--x=1");
    }

    #[test]
    fn here_documents() {
        let df = parse(
            "FROM x\nRUN <<EOF\necho a\n  echo b\nEOF\nCOPY <<-\"A\" <<B /dst/\n\t$x\nA\nb\nB\nRUN echo \"<<NOT\" && cat <<<word\nENV X=1\n",
        )
        .unwrap();
        let run = &df.nodes[1];
        assert_eq!((run.line, run.end_line), (2, 5));
        assert_eq!(run.heredocs[0].content, "echo a\n  echo b\n");
        assert!(run.heredocs[0].expand);
        let copy = &df.nodes[2];
        assert_eq!(copy.heredocs.len(), 2);
        assert_eq!(copy.heredocs[0].name, "A");
        assert_eq!(copy.heredocs[0].content, "$x\n");
        assert!(!copy.heredocs[0].expand);
        assert_eq!(copy.heredocs[1].content, "b\n");
        assert!(
            df.nodes[3].heredocs.is_empty(),
            "quoted and <<< are no markers"
        );
        assert_eq!(df.nodes[4].line, 12);
        let e = parse("FROM x\nRUN <<EOF\necho\n").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("unterminated here-document <<EOF"));
    }

    #[test]
    fn byte_order_mark_and_crlf() {
        let df = parse("\u{feff}FROM x\r\nRUN a \\\r\n b\r\n").unwrap();
        assert_eq!(df.nodes[0].keyword, "FROM");
        assert_eq!(df.nodes[1].rest, "a  b");
    }
}
