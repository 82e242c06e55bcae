//! The reason of a failed CRIU operation is in its log file, not in the RPC
//! answer: quote the error lines (as runc's logCriuErrors does) so that the
//! error berth reports says what went wrong.

use std::path::Path;

/// At most this many error lines are quoted (the last ones).
const MAX_LINES: usize = 3;

/// `"line; line (log: LOG)"`, or an empty string when the log has no error
/// lines (or cannot be read).
pub fn quote(log: &Path) -> String {
    let Ok(text) = std::fs::read_to_string(log) else {
        return String::new();
    };
    let lines = error_lines(&text);
    if lines.is_empty() {
        return String::new();
    }
    format!("{} (log: {})", lines.join("; "), log.display())
}

/// The last [`MAX_LINES`] lines that report an error, without CRIU's
/// timestamp prefix.
pub fn error_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| l.contains("Error"))
        .map(|l| {
            // "(00.012345) Error (criu/mount.c:123): message"
            let l = l.trim();
            let l = match l.strip_prefix('(') {
                Some(rest) => rest.split_once(')').map(|(_, r)| r.trim()).unwrap_or(l),
                None => l,
            };
            l.to_string()
        })
        .collect();
    if v.len() > MAX_LINES {
        v.drain(..v.len() - MAX_LINES);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_the_last_error_lines_without_timestamps() {
        let mut log = String::from("(00.000001) Version: 4.2.1\n");
        for i in 0..7 {
            log.push_str(&format!("(00.0{i}) Error (criu/x.c:{i}): failure {i}\n"));
        }
        let v = error_lines(&log);
        assert_eq!(v.len(), MAX_LINES);
        assert_eq!(v[0], "Error (criu/x.c:4): failure 4");
        assert_eq!(v[2], "Error (criu/x.c:6): failure 6");
        assert!(error_lines("(0.1) fine\n").is_empty());
    }
}
