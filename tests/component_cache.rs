//! The on-disk cache of compiled components: a second load skips
//! compilation, and a damaged or foreign entry is a miss that is compiled
//! again, never loaded.

mod common;

use std::path::{Path, PathBuf};

use common::{chain_file, invocation, plugin, standard_plugins};
use serde_json::json;
use wfhost::runtime::{AttemptResult, ComponentCache, Limits, Runtime};

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|read| read.map(|entry| entry.unwrap().path()).collect())
        .unwrap_or_default();
    entries.sort();
    entries
}

/// Loads math through a runtime with the cache in `dir` and checks that it
/// still adds.
async fn load_and_add(dir: &Path) {
    let runtime = Runtime::new()
        .unwrap()
        .with_component_cache(ComponentCache::new(dir));
    let math = runtime
        .load_plugin("math", &plugin("math"), None)
        .await
        .unwrap();
    let names: Vec<&str> = math.tasks().iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["add", "mul", "xsum"]);
    let attempt = runtime
        .run(
            &math,
            &invocation("math", "add", 0, &json!([40, 2])),
            &Limits::default(),
        )
        .await;
    assert_eq!(attempt.result, AttemptResult::Value(json!(42)));
}

#[tokio::test]
async fn a_compiled_component_is_stored_once_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    load_and_add(dir.path()).await;
    let first = entries(dir.path());
    assert_eq!(first.len(), 1, "one entry for one component: {first:?}");
    let written = std::fs::metadata(&first[0]).unwrap().modified().unwrap();

    load_and_add(dir.path()).await;
    assert_eq!(entries(dir.path()), first);
    let reused = std::fs::metadata(&first[0]).unwrap().modified().unwrap();
    assert_eq!(written, reused, "a sound entry is read, not rewritten");
}

#[tokio::test]
async fn damaged_or_foreign_entries_are_compiled_again() {
    let dir = tempfile::tempdir().unwrap();
    load_and_add(dir.path()).await;
    let entry = entries(dir.path()).pop().unwrap();
    let sound = std::fs::read(&entry).unwrap();

    // One flipped byte deep in the compiled code.
    let mut flipped = sound.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    // Cut short; not an entry at all; empty.
    let damages: [Vec<u8>; 4] = [
        flipped,
        sound[..sound.len() / 3].to_vec(),
        b"\0asm not a wfhost cache entry".to_vec(),
        Vec::new(),
    ];
    for damaged in damages {
        std::fs::write(&entry, &damaged).unwrap();
        load_and_add(dir.path()).await;
        assert_eq!(
            std::fs::read(&entry).unwrap(),
            sound,
            "the damaged entry is replaced by a sound one"
        );
    }
}

#[test]
fn the_binary_fills_the_cache_it_is_given() {
    let cache = tempfile::tempdir().unwrap();
    let chain = chain_file(&json!({
        "plugins": standard_plugins(),
        "workflow": [{"task": "math.add", "args": [1, 2]}],
    }));
    for _ in 0..2 {
        let output = chain
            .wfhost()
            .env("WFHOST_CACHE_DIR", cache.path())
            .arg("run")
            .arg(&chain.path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "3");
        // math and testkit, each compiled once.
        assert_eq!(entries(cache.path()).len(), 2);
    }
}
