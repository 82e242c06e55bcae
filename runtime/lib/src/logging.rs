//! `--log FILE --log-format text|json --debug`. Lines are runc's (logrus'):
//! text `time="..." level=error msg="..."` or JSON
//! `{"level":"error","msg":"...","time":"..."}`: containerd and podman read
//! the last error from the log file.
//!
//! The file is opened (made if missing) when logging starts, as runc does,
//! and kept open: processes forked from here (the container's init) log
//! through the same descriptor wherever they are.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<Mutex<std::fs::File>>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Start logging; with `file`, open it for appending (made if missing).
pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let file = file.and_then(|p| {
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
        {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                eprintln!("berth: open log file {}: {e}", p.display());
                None
            }
        }
    });
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
}

/// A logrus-style line.
fn line(format: Format, level: &str, msg: &str) -> String {
    match format {
        Format::Json => {
            let v =
                serde_json::json!({"level": level, "msg": msg, "time": crate::sys::rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!(
            "time=\"{}\" level={level} msg=\"{}\"\n",
            crate::sys::rfc3339_now(),
            msg.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    }
}

fn emit(level: &str, msg: &str) {
    let Some(c) = CONFIG.get() else {
        if level != "debug" {
            eprintln!("berth: {msg}");
        }
        return;
    };
    if level == "debug" && !c.debug {
        return;
    }
    match &c.file {
        Some(f) => {
            if let Ok(mut f) = f.lock() {
                let _ = f.write_all(line(c.format, level, msg).as_bytes());
            }
            if level == "error" || level == "warning" {
                eprintln!("berth: {msg}");
            }
        }
        // Without a file: JSON lines, or (with --debug, as runc does) text
        // lines, on stderr; otherwise a plain message.
        None if c.format == Format::Json || c.debug => {
            let _ = std::io::stderr().write_all(line(c.format, level, msg).as_bytes());
        }
        None => eprintln!("berth: {msg}"),
    }
}

pub fn error(msg: &str) {
    emit("error", msg);
}

pub fn warn(msg: &str) {
    emit("warning", msg);
}

pub fn debug(msg: &str) {
    emit("debug", msg);
}

/// Whether debug lines are written (to skip building their text otherwise).
pub fn debug_enabled() -> bool {
    CONFIG.get().is_some_and(|c| c.debug)
}
