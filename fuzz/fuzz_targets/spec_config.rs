//! config.json: `bundle_config::parse` then `bundle_config::validate` against a fixed bundle
//! (a directory under `$BERTH_FUZZ_TMPDIR` or the temp dir, holding an empty
//! `rootfs/`). Any panic is a bug: bad input must come back as an error.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn bundle() -> &'static PathBuf {
    static BUNDLE: OnceLock<PathBuf> = OnceLock::new();
    BUNDLE.get_or_init(|| {
        let tmp = std::env::var_os("BERTH_FUZZ_TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let dir = tmp.join(format!("berth-fuzz-spec-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).expect("create fuzz bundle");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let spec = match berth_runtime::bundle_config::parse(text) {
        Ok(s) => s,
        Err(e) => {
            // Error messages are built from the input: format them too.
            let _ = e.to_string();
            return;
        }
    };
    match berth_runtime::bundle_config::validate(&spec, bundle()) {
        Ok(rootfs) => assert!(rootfs.is_absolute(), "validate returned {rootfs:?}"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
