//! Finding the program of `process.args[0]`, with the errors runc reports (Go's
//! `exec.LookPath` words): clients map "permission denied" and "is a directory"
//! to exit status 126, "executable file not found" and "no such file or
//! directory" to 127.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// Why a candidate cannot be executed by this process.
fn check_executable(p: &Path) -> std::result::Result<(), String> {
    let md =
        std::fs::metadata(p).map_err(|e| format!("stat {}: {}", p.display(), errno_text(&e)))?;
    if md.is_dir() {
        return Err(errno_text(&std::io::Error::from_raw_os_error(libc::EISDIR)));
    }
    let c = CString::new(p.as_os_str().as_bytes())
        .map_err(|_| "path contains a NUL byte".to_string())?;
    // SAFETY: a valid C string; faccessat only reads it.
    let r = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    // Where faccessat cannot answer, fall back to the mode bits (as Go does).
    if matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EPERM)) && md.mode() & 0o111 != 0
    {
        return Ok(());
    }
    Err(errno_text(&e))
}

/// An errno's message as Go and runc print it ("permission denied").
fn errno_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(n) => crate::sys::errno_text(nix::errno::Errno::from_raw(n)),
        None => e.to_string(),
    }
}

/// The error for `arg0`, worded as runc's (`exec: "prog": permission denied`).
fn not_runnable(arg0: &str, why: &str) -> Error {
    Error::Other(format!(
        "unable to start container process: exec: \"{arg0}\": {why}"
    ))
}

/// Resolve `arg0` as execve would run it: a name with a slash is used as
/// given, any other is searched in `path` (colon-separated; empty entries
/// mean the current directory).
pub fn look_up(arg0: &str, path: &str) -> crate::error::Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        return check_executable(&p)
            .map(|()| p)
            .map_err(|why| not_runnable(arg0, &why));
    }
    if !arg0.is_empty() {
        for dir in path.split(':') {
            let dir = if dir.is_empty() { "." } else { dir };
            let cand = Path::new(dir).join(arg0);
            if check_executable(&cand).is_ok() {
                return Ok(cand);
            }
        }
    }
    Err(not_runnable(arg0, "executable file not found in $PATH"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_match_runc() {
        let e = look_up("/no/such/prog", "/bin").unwrap_err().to_string();
        assert!(
            e.ends_with("exec: \"/no/such/prog\": stat /no/such/prog: no such file or directory"),
            "{e}"
        );
        let e = look_up("/", "/bin").unwrap_err().to_string();
        assert!(e.ends_with("exec: \"/\": is a directory"), "{e}");
        let e = look_up("no-such-prog-x", "/bin").unwrap_err().to_string();
        assert!(
            e.ends_with("exec: \"no-such-prog-x\": executable file not found in $PATH"),
            "{e}"
        );
        assert_eq!(
            look_up("sh", "/nonexistent:/bin").unwrap(),
            Path::new("/bin/sh")
        );
    }
}
