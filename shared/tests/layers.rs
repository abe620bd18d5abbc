//! The layers hold: the domain is pure, and the read side never names the write side.
#![allow(clippy::expect_used)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// Lines of the files under `dir` (relative to the workspace) that contain any of `needles`.
fn offending(dir: &str, needles: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
    let files = rust_files(&root);
    assert!(!files.is_empty(), "no Rust files under {}", root.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for (n, line) in text.lines().enumerate() {
            if needles.iter().any(|needle| line.contains(needle)) {
                found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    found
}

#[test]
fn the_domain_layer_does_no_io_and_knows_no_database_cache_or_web_framework() {
    let found = offending("shared/src/domain", &["sqlx", "redis", "axum", "tokio", "async fn", "reqwest", "std::fs"]);
    assert!(found.is_empty(), "the domain must stay pure:\n{}", found.join("\n"));
}

#[test]
fn the_query_api_never_names_the_write_side() {
    let found = offending("query-api/src", &["shared::write", "write::"]);
    assert!(found.is_empty(), "the query API loads streams through shared::store::streams:\n{}", found.join("\n"));
}

#[test]
fn the_shared_crate_names_no_service() {
    let found = offending("shared/src", &["pressroom_command_api", "pressroom_query_api", "pressroom_projector"]);
    assert!(found.is_empty(), "shared knows no service:\n{}", found.join("\n"));
}
