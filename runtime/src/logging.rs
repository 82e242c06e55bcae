//! `--log FILE --log-format text|json --debug`. JSON lines are runc's
//! (`{"level":"error","msg":"...","time":"..."}`): containerd and podman read the
//! last error from that file.

use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Config {
    file: Option<PathBuf>,
    format: Format,
    debug: bool,
}

static CONFIG: OnceLock<Config> = OnceLock::new();

pub fn init(file: Option<PathBuf>, format: Format, debug: bool) {
    let _ = CONFIG.set(Config {
        file,
        format,
        debug,
    });
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
    let line = match c.format {
        Format::Json => {
            let v =
                serde_json::json!({"level": level, "msg": msg, "time": crate::sys::rfc3339_now()});
            format!("{v}\n")
        }
        Format::Text => format!(
            "time=\"{}\" level={level} msg=\"{}\"\n",
            crate::sys::rfc3339_now(),
            msg.replace('"', "\\\"")
        ),
    };
    match &c.file {
        Some(path) => {
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(line.as_bytes());
            }
            if level == "error" || level == "warning" {
                eprintln!("berth: {msg}");
            }
        }
        None => {
            if c.format == Format::Json {
                let _ = std::io::stderr().write_all(line.as_bytes());
            } else {
                eprintln!("berth: {msg}");
            }
        }
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
