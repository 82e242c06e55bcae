//! Dockerfile text: `build::parser::parse`, each instruction typed by
//! `build::instruction::from_node`, and the word expansion of its arguments
//! (as words, as a word list, as here-document text) with a few variables set.
//! Any panic is a bug: bad input must come back as an error naming a line.
#![no_main]

use berth_image::build::{instruction, parser, words};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let df = match parser::parse(text) {
        Ok(df) => df,
        Err(e) => {
            let _ = format!("{}: {}", e.line, e.message);
            return;
        }
    };
    let vars: words::Vars = [("A", "a b"), ("E", ""), ("P", "/usr/local/bin/x.tar.gz")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let esc = df.directives.escape;
    for node in &df.nodes {
        let _ = instruction::from_node(node, esc);
        let _ = words::expand(&node.rest, &vars, esc);
        let _ = words::expand_words(&node.rest, &vars, esc);
        if let Ok(ws) = words::split(&node.rest, esc) {
            for w in ws {
                let _ = words::expand(&w, &vars, esc);
            }
        }
        for h in &node.heredocs {
            let _ = words::expand_heredoc(&h.content, &vars, esc);
        }
    }
});
