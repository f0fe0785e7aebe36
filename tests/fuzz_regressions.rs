//! Replays the fuzz seeds and every crash reproducer under `fuzz/seeds/<target>/`
//! through the fuzz harness (`fuzz/src/lib.rs`, included here), so stable CI
//! runs the committed corpus as ordinary tests. A reproducer that panics again
//! fails its test, naming the file.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

#[allow(unreachable_pub, dead_code, missing_docs)]
#[path = "../fuzz/src/lib.rs"]
mod harness;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no seeds in {}", dir.display());
    let failed: Vec<String> = files
        .iter()
        .filter(|path| {
            let data = std::fs::read(path).unwrap();
            catch_unwind(AssertUnwindSafe(|| run(&data))).is_err()
        })
        .map(|path| path.display().to_string())
        .collect();
    assert!(failed.is_empty(), "{target}: failing inputs: {failed:#?}");
}

#[test]
fn classify_body_seeds() {
    replay("classify_body", harness::classify_body);
}

#[test]
fn delay_hint_seeds() {
    replay("delay_hint", harness::delay_hint);
}

#[test]
fn status_page_seeds() {
    replay("status_page", harness::status_page);
}

#[test]
fn webhook_seeds() {
    replay("webhook", harness::webhook);
}
