//! Minimal TAP producer used by every check.

pub struct Tap {
    count: usize,
    failed: usize,
}

impl Tap {
    pub fn new() -> Self {
        Tap {
            count: 0,
            failed: 0,
        }
    }

    /// Records one result; `Err` carries the reason printed after `#`.
    pub fn check(&mut self, desc: &str, result: Result<(), String>) {
        self.count += 1;
        match result {
            Ok(()) => println!("ok {} - {}", self.count, desc),
            Err(reason) => {
                self.failed += 1;
                println!("not ok {} - {} # {}", self.count, desc, one_line(&reason));
            }
        }
    }

    pub fn skip(&mut self, desc: &str, reason: &str) {
        self.count += 1;
        println!("ok {} - {} # SKIP {}", self.count, desc, one_line(reason));
    }

    /// Prints the plan and returns the process exit code.
    pub fn finish(self) -> i32 {
        println!("1..{}", self.count);
        i32::from(self.failed > 0)
    }
}

fn one_line(s: &str) -> String {
    s.replace('\n', " ")
}

/// Turns an equality into a check result with a readable reason.
pub fn expect_eq<T: PartialEq + std::fmt::Debug>(
    what: &str,
    want: T,
    got: T,
) -> Result<(), String> {
    if want == got {
        Ok(())
    } else {
        Err(format!("{what}: expected {want:?}, got {got:?}"))
    }
}
