//! The crate's layers import only downward (see ARCHITECTURE.md):
//! `support` ← `domain` ← `store` ← `app` ← `http` ← `server`, and nothing
//! below `http` uses actix. This test reads the sources and fails naming
//! each file that reaches up.

use std::fs;
use std::path::{Path, PathBuf};

/// The layers, lowest first.
const LAYERS: [&str; 6] = ["support", "domain", "store", "app", "http", "server"];

/// Layers that must run without actix (the workers and use cases).
const ACTIX_FREE: [&str; 4] = ["support", "domain", "store", "app"];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The rank of the layer a file under `src/` belongs to; the crate root
/// (`lib.rs`, `main.rs`) ranks above every layer.
fn rank_of(relative: &Path) -> usize {
    let first = relative.components().next().unwrap().as_os_str().to_str().unwrap();
    LAYERS
        .iter()
        .position(|layer| *layer == first)
        .unwrap_or(LAYERS.len())
}

/// Every `crate::NAME` path in `text`, with its line number, outside comments.
fn crate_paths(text: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            found.push((number + 1, &after[..end]));
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn layers_import_only_downward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} source files under {src:?}", files.len());
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).unwrap();
        let rank = rank_of(relative);
        let text = fs::read_to_string(file).unwrap();
        for (line, target) in crate_paths(&text) {
            let Some(target_rank) = LAYERS.iter().position(|layer| *layer == target) else {
                violations.push(format!(
                    "{}:{line}: crate::{target} is not a layer ({})",
                    relative.display(),
                    LAYERS.join(", ")
                ));
                continue;
            };
            if target_rank > rank {
                violations.push(format!(
                    "{}:{line}: the {} layer imports crate::{target}, a layer above it",
                    relative.display(),
                    LAYERS[rank]
                ));
            }
        }
        if rank < LAYERS.len() && ACTIX_FREE.contains(&LAYERS[rank]) {
            for (number, line) in text.lines().enumerate() {
                if line.split("//").next().unwrap_or("").contains("actix") {
                    violations.push(format!(
                        "{}:{}: the {} layer uses actix; only http and server may",
                        relative.display(),
                        number + 1,
                        LAYERS[rank]
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "layer violations:\n{}", violations.join("\n"));
}

#[test]
fn the_checker_sees_paths_and_ignores_comments() {
    let found = crate_paths("use crate::store::X; // crate::http\nlet a = crate::app::core::f();");
    assert_eq!(found, vec![(1, "store"), (2, "app")]);
    assert_eq!(rank_of(Path::new("store/sqlite.rs")), 2);
    assert_eq!(rank_of(Path::new("lib.rs")), LAYERS.len());
}
