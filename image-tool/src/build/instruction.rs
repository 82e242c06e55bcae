//! The instructions of Docker's reference, typed from parsed [`Node`]s. Word
//! expansion (`$VAR`) happens later, when the builder knows the variables:
//! what is kept here is the words as written.

use super::parser::Node;
use super::words;

/// Shell form (run by the image's SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    Shell(String),
    Exec(Vec<String>),
}

/// Flags and words of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CopyArgs {
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub from: Option<String>,
    /// Sources then destination, as written (expanded later).
    pub sources: Vec<String>,
    pub dest: String,
    /// Here-document sources: files of that name and content.
    pub inline: Vec<super::parser::Heredoc>,
}

/// HEALTHCHECK options (durations in nanoseconds, 0 = inherit the default).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Health {
    /// `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: u64,
    pub timeout: u64,
    pub start_period: u64,
    pub start_interval: u64,
    pub retries: u64,
}

/// One Dockerfile instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: CommandForm,
        /// `--network=default|none|host`.
        network: Option<String>,
    },
    Cmd(CommandForm),
    Entrypoint(CommandForm),
    Shell(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    /// Key and value words, as written.
    Env(Vec<(String, String)>),
    Label(Vec<(String, String)>),
    /// Name and default value word.
    Arg(Vec<(String, Option<String>)>),
    Workdir(String),
    User(String),
    Expose(String),
    Volume(VolumeArgs),
    StopSignal(String),
    Healthcheck(Health),
    /// The trigger instruction, as written.
    Onbuild(String),
    Maintainer(String),
}

/// VOLUME's JSON form or its white-space separated form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeArgs {
    Json(Vec<String>),
    Words(String),
}

/// A parsed flag: its name and optional value.
fn flag_parts(flag: &str) -> (&str, Option<&str>) {
    let f = flag.trim_start_matches('-');
    match f.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (f, None),
    }
}

/// Flags of `node`, each checked against `allowed`; values unquoted.
fn flags(node: &Node, allowed: &[&str]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for f in &node.flags {
        let (name, value) = flag_parts(f);
        let name = name.to_ascii_lowercase();
        if !allowed.contains(&name.as_str()) {
            return Err(format!("unknown flag: --{name}"));
        }
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("duplicate flag specified: --{name}"));
        }
        let value = value.map(|v| {
            let unquoted = v
                .strip_prefix('"')
                .and_then(|s| s.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')));
            unquoted.unwrap_or(v).to_string()
        });
        out.push((name, value));
    }
    Ok(out)
}

fn flag_value(flags: &[(String, Option<String>)], name: &str) -> Result<Option<String>, String> {
    match flags.iter().find(|(n, _)| n == name) {
        None => Ok(None),
        Some((_, Some(v))) => Ok(Some(v.clone())),
        Some((_, None)) => Err(format!("missing a value on flag: --{name}")),
    }
}

/// A JSON array of strings, if `s` is one.
fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s.trim()).ok()
}

fn command_form(rest: &str) -> CommandForm {
    match json_array(rest) {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(rest.to_string()),
    }
}

/// `key=value ...`, or the legacy `key value` form when `legacy` allows it.
fn key_values(
    keyword: &str,
    rest: &str,
    escape: char,
    legacy: bool,
) -> Result<Vec<(String, String)>, String> {
    let ws = words::split(rest, escape)?;
    if ws.is_empty() {
        return Err(format!("{keyword} requires at least one argument"));
    }
    if !ws[0].contains('=') && legacy {
        let mut parts = rest.splitn(2, char::is_whitespace);
        let key = parts.next().unwrap_or_default().to_string();
        let value = parts.next().map(str::trim).unwrap_or_default();
        if value.is_empty() {
            return Err(format!("{keyword} must have two arguments"));
        }
        return Ok(vec![(key, value.to_string())]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!(
                "syntax error - can't find = in {w:?}; must be of the form: name=value"
            )),
        })
        .collect()
}

/// A Go duration (`30s`, `1m30s`, `500ms`, `1h`) in nanoseconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid duration {s:?}");
    if s == "0" {
        return Ok(0);
    }
    let mut total: f64 = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let n: f64 = rest[..num_end].parse().map_err(|_| bad())?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += n * scale;
        rest = &rest[unit_end..];
    }
    Ok(total as u64)
}

fn healthcheck(node: &Node) -> Result<Health, String> {
    let fl = flags(
        node,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let mut rest = node.rest.splitn(2, char::is_whitespace);
    let kind = rest.next().unwrap_or_default().to_ascii_uppercase();
    let args = rest.next().unwrap_or_default().trim();
    let mut h = Health::default();
    match kind.as_str() {
        "NONE" => {
            if !args.is_empty() || !fl.is_empty() {
                return Err("HEALTHCHECK NONE takes no arguments".into());
            }
            h.test = vec!["NONE".into()];
            return Ok(h);
        }
        "CMD" => {}
        _ => return Err("HEALTHCHECK requires CMD or NONE".into()),
    }
    if args.is_empty() {
        return Err("HEALTHCHECK CMD requires a command".into());
    }
    h.test = match command_form(args) {
        CommandForm::Exec(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
        CommandForm::Shell(s) => vec!["CMD-SHELL".into(), s],
    };
    let duration = |name: &str| -> Result<u64, String> {
        match flag_value(&fl, name)? {
            None => Ok(0),
            Some(v) => {
                let d = parse_duration(&v).map_err(|e| format!("--{name}: {e}"))?;
                if d != 0 && d < 1_000_000 {
                    return Err(format!("--{name} cannot be less than 1ms"));
                }
                Ok(d)
            }
        }
    };
    h.interval = duration("interval")?;
    h.timeout = duration("timeout")?;
    h.start_period = duration("start-period")?;
    h.start_interval = duration("start-interval")?;
    if let Some(r) = flag_value(&fl, "retries")? {
        h.retries = r
            .parse()
            .map_err(|_| format!("--retries: invalid number {r:?}"))?;
        if h.retries < 1 {
            return Err("--retries must be at least 1".into());
        }
    }
    Ok(h)
}

fn copy_args(node: &Node, escape: char, add: bool) -> Result<CopyArgs, String> {
    // `--link` only changes how BuildKit stacks the layer; the files are the same.
    let fl = flags(node, &["chown", "chmod", "from", "link"])?;
    if add && flag_value(&fl, "from")?.is_some() {
        return Err("ADD does not take --from (use COPY --from)".into());
    }
    let mut words = match json_array(&node.rest) {
        Some(v) => v,
        None => words::split(&node.rest, escape)?,
    };
    if words.len() < 2 {
        return Err(format!(
            "{} requires at least two arguments, but only {} provided",
            node.keyword,
            words.len()
        ));
    }
    let dest = words.pop().unwrap_or_default();
    let markers: Vec<&str> = node.heredocs.iter().map(|h| h.marker.as_str()).collect();
    words.retain(|w| !markers.contains(&w.as_str()));
    Ok(CopyArgs {
        chown: flag_value(&fl, "chown")?,
        chmod: flag_value(&fl, "chmod")?,
        from: flag_value(&fl, "from")?,
        sources: words,
        dest,
        inline: node.heredocs.clone(),
    })
}

fn no_flags(node: &Node) -> Result<(), String> {
    flags(node, &[]).map(|_| ())
}

fn require_args(node: &Node) -> Result<(), String> {
    if node.rest.trim().is_empty() {
        return Err(format!("{} requires at least one argument", node.keyword));
    }
    Ok(())
}

/// Type a node; the error is the message (the caller names the line).
pub fn from_node(node: &Node, escape: char) -> Result<Instruction, String> {
    let rest = node.rest.as_str();
    let kw = node.keyword.as_str();
    match kw {
        "FROM" | "RUN" | "COPY" | "ADD" | "HEALTHCHECK" => {}
        _ => no_flags(node)?,
    }
    Ok(match kw {
        "FROM" => {
            let fl = flags(node, &["platform"])?;
            let ws: Vec<&str> = rest.split_whitespace().collect();
            let (image, alias) = match ws.as_slice() {
                [image] => (image.to_string(), None),
                [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
                    let name = name.to_ascii_lowercase();
                    let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
                    if !valid {
                        return Err(format!("invalid name for build stage: {name:?}, name can't start with a number or contain symbols"));
                    }
                    (image.to_string(), Some(name))
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Instruction::From {
                image,
                alias,
                platform: flag_value(&fl, "platform")?,
            }
        }
        "RUN" => {
            let fl = flags(node, &["network"])?;
            require_args(node)?;
            let command = match node.heredocs.as_slice() {
                [] => command_form(rest),
                // `RUN <<EOF`: the document is the script.
                [h] if rest.trim() == h.marker => {
                    if h.content.starts_with("#!") {
                        return Err("here-document scripts with a #! line are not supported (run the interpreter: RUN python3 <<EOF)".into());
                    }
                    CommandForm::Shell(h.content.trim_end_matches('\n').to_string())
                }
                // Documents that feed a command: the shell reads them.
                docs => {
                    let mut script = rest.to_string();
                    for h in docs {
                        script.push('\n');
                        script.push_str(&h.content);
                        script.push_str(&h.name);
                    }
                    CommandForm::Shell(script)
                }
            };
            Instruction::Run {
                command,
                network: flag_value(&fl, "network")?,
            }
        }
        "CMD" => {
            require_args(node)?;
            Instruction::Cmd(command_form(rest))
        }
        "ENTRYPOINT" => {
            require_args(node)?;
            Instruction::Entrypoint(command_form(rest))
        }
        "SHELL" => match json_array(rest) {
            Some(v) if !v.is_empty() => Instruction::Shell(v),
            _ => return Err("SHELL requires the arguments to be in JSON form".into()),
        },
        "COPY" => Instruction::Copy(copy_args(node, escape, false)?),
        "ADD" => Instruction::Add(copy_args(node, escape, true)?),
        "ENV" => Instruction::Env(key_values("ENV", rest, escape, true)?),
        "LABEL" => Instruction::Label(key_values("LABEL", rest, escape, true)?),
        "ARG" => {
            let ws = words::split(rest, escape)?;
            if ws.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            Instruction::Arg(
                ws.into_iter()
                    .map(|w| match w.split_once('=') {
                        Some((k, v)) => (k.to_string(), Some(v.to_string())),
                        None => (w, None),
                    })
                    .collect(),
            )
        }
        "WORKDIR" => {
            require_args(node)?;
            Instruction::Workdir(rest.to_string())
        }
        "USER" => {
            require_args(node)?;
            Instruction::User(rest.to_string())
        }
        "EXPOSE" => {
            require_args(node)?;
            Instruction::Expose(rest.to_string())
        }
        "VOLUME" => {
            require_args(node)?;
            match json_array(rest) {
                Some(v) => Instruction::Volume(VolumeArgs::Json(v)),
                None => Instruction::Volume(VolumeArgs::Words(rest.to_string())),
            }
        }
        "STOPSIGNAL" => {
            require_args(node)?;
            Instruction::StopSignal(rest.to_string())
        }
        "HEALTHCHECK" => Instruction::Healthcheck(healthcheck(node)?),
        "ONBUILD" => {
            require_args(node)?;
            let inner = super::parser::node(node.line, node.end_line, rest);
            match inner.keyword.as_str() {
                "ONBUILD" => {
                    return Err("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.keyword
                    ))
                }
                _ => {}
            }
            from_node(&inner, escape)?;
            Instruction::Onbuild(rest.to_string())
        }
        "MAINTAINER" => {
            require_args(node)?;
            Instruction::Maintainer(rest.to_string())
        }
        other => return Err(format!("unknown instruction: {other}")),
    })
}

#[cfg(test)]
mod tests {
    use super::super::parser::parse;
    use super::*;

    fn one(line: &str) -> Result<Instruction, String> {
        let df = parse(line).unwrap();
        from_node(&df.nodes[0], df.directives.escape)
    }

    fn shell(s: &str) -> CommandForm {
        CommandForm::Shell(s.into())
    }

    fn exec(v: &[&str]) -> CommandForm {
        CommandForm::Exec(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn from_forms() {
        assert_eq!(
            one("FROM busybox:1.36").unwrap(),
            Instruction::From {
                image: "busybox:1.36".into(),
                alias: None,
                platform: None
            }
        );
        assert_eq!(
            one("FROM --platform=linux/amd64 scratch as Build").unwrap(),
            Instruction::From {
                image: "scratch".into(),
                alias: Some("build".into()),
                platform: Some("linux/amd64".into())
            }
        );
        assert!(one("FROM a b").unwrap_err().contains("one or three"));
        assert!(one("FROM a AS 1x").unwrap_err().contains("invalid name"));
        assert!(one("FROM --bogus=1 a")
            .unwrap_err()
            .contains("unknown flag"));
    }

    #[test]
    fn run_cmd_entrypoint_forms() {
        assert_eq!(
            one("RUN echo $HOME").unwrap(),
            Instruction::Run {
                command: shell("echo $HOME"),
                network: None
            }
        );
        assert_eq!(
            one("RUN --network=none [\"/bin/echo\", \"a b\"]").unwrap(),
            Instruction::Run {
                command: exec(&["/bin/echo", "a b"]),
                network: Some("none".into())
            }
        );
        // Not valid JSON: shell form, as written.
        assert_eq!(
            one("CMD [echo, hi]").unwrap(),
            Instruction::Cmd(shell("[echo, hi]"))
        );
        assert_eq!(
            one("ENTRYPOINT [\"top\", \"-b\"]").unwrap(),
            Instruction::Entrypoint(exec(&["top", "-b"]))
        );
        assert!(one("RUN").unwrap_err().contains("at least one argument"));
        let df = parse("FROM x\nRUN <<EOF\nset -e\necho $A\nEOF\nRUN cat <<A >/a && cat <<-B >/b\nx\nA\n\ty\n\tB\n").unwrap();
        let typed: Vec<Instruction> = df.nodes[1..]
            .iter()
            .map(|n| from_node(n, '\\').unwrap())
            .collect();
        assert_eq!(
            typed[0],
            Instruction::Run {
                command: shell("set -e\necho $A"),
                network: None
            }
        );
        assert_eq!(
            typed[1],
            Instruction::Run {
                command: shell("cat <<A >/a && cat <<-B >/b\nx\nA\ny\nB"),
                network: None
            }
        );
        let df = parse("FROM x\nRUN <<EOF\n#!/usr/bin/python3\nEOF\n").unwrap();
        assert!(from_node(&df.nodes[1], '\\').unwrap_err().contains("#!"));
    }

    #[test]
    fn shell_requires_json() {
        assert_eq!(
            one("SHELL [\"/bin/bash\", \"-c\"]").unwrap(),
            Instruction::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert!(one("SHELL /bin/bash -c").unwrap_err().contains("JSON"));
    }

    #[test]
    fn copy_and_add() {
        assert_eq!(
            one("COPY --chown=app:app --chmod=640 --from=build a* \"b c\" /dst/").unwrap(),
            Instruction::Copy(CopyArgs {
                chown: Some("app:app".into()),
                chmod: Some("640".into()),
                from: Some("build".into()),
                sources: vec!["a*".into(), "\"b c\"".into()],
                dest: "/dst/".into(),
                inline: Vec::new(),
            })
        );
        assert_eq!(
            one("ADD [\"x.tar\", \"/opt/\"]").unwrap(),
            Instruction::Add(CopyArgs {
                sources: vec!["x.tar".into()],
                dest: "/opt/".into(),
                ..Default::default()
            })
        );
        assert!(one("COPY onlyone").unwrap_err().contains("at least two"));
        let df = parse("FROM x\nCOPY <<EOF a /dst/\nhello $X\nEOF\n").unwrap();
        let Instruction::Copy(c) = from_node(&df.nodes[1], '\\').unwrap() else {
            panic!("not COPY")
        };
        assert_eq!(c.sources, vec!["a"]);
        assert_eq!(c.inline.len(), 1);
        assert_eq!(c.inline[0].name, "EOF");
        assert_eq!(c.inline[0].content, "hello $X\n");
        assert!(one("ADD --from=x a b").unwrap_err().contains("--from"));
        assert!(one("COPY --chown a b")
            .unwrap_err()
            .contains("missing a value"));
    }

    #[test]
    fn env_label_arg() {
        assert_eq!(
            one("ENV A=1 B=\"two words\" C=three\\ words").unwrap(),
            Instruction::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "three\\ words".into()),
            ])
        );
        assert_eq!(
            one("ENV LEGACY value with spaces").unwrap(),
            Instruction::Env(vec![("LEGACY".into(), "value with spaces".into())])
        );
        assert!(one("ENV A=1 B").unwrap_err().contains("can't find ="));
        assert!(one("ENV ONLYKEY").unwrap_err().contains("two arguments"));
        assert_eq!(
            one("LABEL a.b=c \"d\"=e").unwrap(),
            Instruction::Label(vec![
                ("a.b".into(), "c".into()),
                ("\"d\"".into(), "e".into())
            ])
        );
        assert_eq!(
            one("ARG A B=2 C=").unwrap(),
            Instruction::Arg(vec![
                ("A".into(), None),
                ("B".into(), Some("2".into())),
                ("C".into(), Some("".into()))
            ])
        );
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(
            one("WORKDIR /a b").unwrap(),
            Instruction::Workdir("/a b".into())
        );
        assert_eq!(
            one("USER app:app").unwrap(),
            Instruction::User("app:app".into())
        );
        assert_eq!(
            one("EXPOSE 80 443/udp").unwrap(),
            Instruction::Expose("80 443/udp".into())
        );
        assert_eq!(
            one("VOLUME [\"/data\", \"/logs\"]").unwrap(),
            Instruction::Volume(VolumeArgs::Json(vec!["/data".into(), "/logs".into()]))
        );
        assert_eq!(
            one("VOLUME /data /logs").unwrap(),
            Instruction::Volume(VolumeArgs::Words("/data /logs".into()))
        );
        assert_eq!(
            one("STOPSIGNAL SIGINT").unwrap(),
            Instruction::StopSignal("SIGINT".into())
        );
        assert_eq!(
            one("MAINTAINER me").unwrap(),
            Instruction::Maintainer("me".into())
        );
        assert!(one("WORKDIR").is_err());
        assert!(one("FOO bar")
            .unwrap_err()
            .contains("unknown instruction: FOO"));
    }

    #[test]
    fn healthcheck_forms() {
        assert_eq!(
            one("HEALTHCHECK --interval=5m --timeout=3s --retries=2 CMD curl -f http://localhost/")
                .unwrap(),
            Instruction::Healthcheck(Health {
                test: vec!["CMD-SHELL".into(), "curl -f http://localhost/".into()],
                interval: 300_000_000_000,
                timeout: 3_000_000_000,
                retries: 2,
                ..Default::default()
            })
        );
        assert_eq!(
            one("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]").unwrap(),
            Instruction::Healthcheck(Health {
                test: vec!["CMD".into(), "/bin/check".into(), "-q".into()],
                ..Default::default()
            })
        );
        assert_eq!(
            one("HEALTHCHECK NONE").unwrap(),
            Instruction::Healthcheck(Health {
                test: vec!["NONE".into()],
                ..Default::default()
            })
        );
        assert!(one("HEALTHCHECK --interval=1us CMD x")
            .unwrap_err()
            .contains("1ms"));
        assert!(one("HEALTHCHECK --interval=abc CMD x")
            .unwrap_err()
            .contains("invalid duration"));
        assert!(one("HEALTHCHECK echo").unwrap_err().contains("CMD or NONE"));
        assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
        assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
    }

    #[test]
    fn onbuild_checks_its_trigger() {
        assert_eq!(
            one("ONBUILD RUN echo hi").unwrap(),
            Instruction::Onbuild("RUN echo hi".into())
        );
        assert!(one("ONBUILD ONBUILD RUN x")
            .unwrap_err()
            .contains("chaining"));
        assert!(one("ONBUILD FROM x").unwrap_err().contains("isn't allowed"));
        assert!(one("ONBUILD BOGUS x")
            .unwrap_err()
            .contains("unknown instruction"));
    }
}
