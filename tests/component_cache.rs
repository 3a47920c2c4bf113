//! The on-disk cache of compiled components: a second load skips
//! compilation, and a damaged or foreign entry is a miss that is compiled
//! again, never loaded.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use common::{Run, chain_file, invocation, plugin, standard_plugins};
use serde_json::json;
use wfhost::runtime::{AttemptResult, ComponentCache, Limits, Runtime};

/// The compiled entries in `dir` (not its key).
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|read| {
            read.map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "cwasm"))
                .collect()
        })
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
    // Used over a minute ago (a use within the minute leaves the time).
    age_entries(dir.path());
    let written = std::fs::metadata(&first[0]).unwrap();

    load_and_add(dir.path()).await;
    assert_eq!(entries(dir.path()), first);
    let reused = std::fs::metadata(&first[0]).unwrap();
    assert_eq!(
        written.ino(),
        reused.ino(),
        "a sound entry is read, not rewritten"
    );
    assert!(
        reused.modified().unwrap() > written.modified().unwrap(),
        "its modification time says when it was last used"
    );
}

/// What a component says of itself (its tasks and their types) is kept
/// beside its entry, so a later load need not instantiate it to ask; a
/// listing that is damaged or altered, its seal no longer matching, is
/// not believed: the component is asked again.
#[tokio::test]
async fn a_components_listing_is_kept_and_an_altered_one_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    load_and_add(dir.path()).await;
    let listing = entries(dir.path()).pop().unwrap().with_extension("tasks");
    let sound = std::fs::read(&listing).unwrap();
    let text = String::from_utf8_lossy(&sound);
    assert!(
        text.contains("\"xsum\"") && text.contains("\"i64\""),
        "{text}"
    );

    // A task renamed in the text, the seal left as it was.
    let at = sound.windows(6).position(|w| w == b"\"xsum\"").unwrap();
    let mut renamed = sound.clone();
    renamed[at + 4] = b'n';
    for altered in [renamed, sound[..sound.len() / 2].to_vec(), Vec::new()] {
        std::fs::write(&listing, &altered).unwrap();
        // `load_and_add` checks the task names the plugin has.
        load_and_add(dir.path()).await;
        assert_eq!(
            std::fs::read(&listing).unwrap(),
            sound,
            "asked again and kept anew"
        );
    }
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

/// Native code is trusted only under the cache's own seal (security probe,
/// finding 6): an entry patched and sealed again with any other key, or
/// copied whole from another cache, is compiled again, never run; the
/// cache's folder and key are its user's alone, and a folder others may
/// write in is not used.
#[tokio::test]
async fn an_entry_not_sealed_by_this_cache_is_compiled_again() {
    use std::os::unix::fs::PermissionsExt;
    let (here, there) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (here, there) = (here.path().join("cache"), there.path().join("cache"));
    load_and_add(&here).await;
    load_and_add(&there).await;
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&here), 0o700);
    assert_eq!(mode(&here.join(".key")), 0o600);
    let key = std::fs::read(here.join(".key")).unwrap();
    assert_eq!(key.len(), 32);
    assert_ne!(key, std::fs::read(there.join(".key")).unwrap());

    let entry = entries(&here).pop().unwrap();
    let sound = std::fs::read(&entry).unwrap();
    // A load that found the entry whole stamps it, so that the next skips
    // hashing it; the stamp is of this file as it is, under this key.
    let stamp = entry.with_extension("verified");
    assert_eq!(std::fs::read(&stamp).unwrap().len(), 32);
    // Another cache's entry for the same component: sound there, foreign here.
    let foreign = std::fs::read(&entries(&there)[0]).unwrap();
    assert_ne!(foreign, sound);
    // The payload patched and the trailer made again as if by the old
    // format's checksum, or by a key of the attacker's.
    let trailer = 40;
    let mut patched = sound.clone();
    let middle = (patched.len() - trailer) / 2;
    patched[middle] ^= 0x90;
    let payload = patched.len() - trailer;
    let checksum = crc32(&patched[..payload]).to_le_bytes();
    patched[payload..payload + 4].copy_from_slice(&checksum);
    // Each written over the entry, its stamp kept: the write moved the
    // file's change time, so the stamp no longer vouches for it.
    for tampered in [foreign, patched] {
        let stamped = std::fs::read(&stamp).unwrap();
        std::fs::write(&entry, &tampered).unwrap();
        std::fs::write(&stamp, &stamped).unwrap();
        load_and_add(&here).await;
        assert_eq!(std::fs::read(&entry).unwrap(), sound, "the entry was used");
    }

    // Opened to others' writes, the cache is passed by: nothing is read
    // from it or written to it, and plugins still run.
    std::fs::set_permissions(&here, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::write(&entry, b"planted by another user").unwrap();
    load_and_add(&here).await;
    assert_eq!(std::fs::read(&entry).unwrap(), b"planted by another user");
}

/// CRC-32 (IEEE), as the old entry format sealed its payload.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
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

/// The bytes of the entries in `dir`.
fn total_bytes(dir: &Path) -> u64 {
    entries(dir)
        .iter()
        .map(|path| std::fs::metadata(path).unwrap().len())
        .sum()
}

/// Runs `wfhost ARGS` with the component cache in `cache` capped at `cap`
/// (or the default cap).
fn wfhost_with_cache(cache: &Path, cap: Option<u64>, args: &[&str]) -> Run {
    let mut command = common::wfhost();
    command.env("WFHOST_CACHE_DIR", cache).args(args);
    match cap {
        Some(cap) => command.env("WFHOST_CACHE_MAX", cap.to_string()),
        None => command.env_remove("WFHOST_CACHE_MAX"),
    };
    let run = Run::from(command.output().unwrap());
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    run
}

/// Moves every entry's last use five minutes back, keeping their order: an
/// entry's time says when it was used to the minute, and these tests use
/// them within seconds.
fn age_entries(dir: &Path) {
    for entry in entries(dir) {
        let file = std::fs::File::options().write(true).open(&entry).unwrap();
        let used = file.metadata().unwrap().modified().unwrap();
        file.set_modified(used - std::time::Duration::from_secs(300))
            .unwrap();
    }
}

/// Compiles `plugin` into the cache (through `wfhost inspect`), and the
/// entry it made or used.
fn use_plugin(cache: &Path, cap: Option<u64>, name: &str) -> PathBuf {
    age_entries(cache);
    let before = entries(cache);
    wfhost_with_cache(cache, cap, &["inspect", plugin(name).to_str().unwrap()]);
    let after = entries(cache);
    let newest = after
        .iter()
        .max_by_key(|path| std::fs::metadata(path).unwrap().modified().unwrap())
        .unwrap()
        .clone();
    assert!(after.len() <= before.len() + 1);
    newest
}

#[test]
fn the_cache_keeps_its_cap_removing_what_was_used_longest_ago() {
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path();
    let math = use_plugin(dir, None, "math");
    let testkit = use_plugin(dir, None, "testkit");
    let shop = use_plugin(dir, None, "shop");
    assert_eq!(entries(dir).len(), 3);
    let size = |path: &PathBuf| std::fs::metadata(path).unwrap().len();
    let (math_size, testkit_size, shop_size) = (size(&math), size(&testkit), size(&shop));
    // Using math again makes it the newest: testkit is now the oldest.
    assert_eq!(use_plugin(dir, None, "math"), math);

    let cap = math_size + shop_size;
    let pruned = wfhost_with_cache(
        dir,
        None,
        &["cache", "prune", "--max-size", &cap.to_string()],
    );
    assert!(
        pruned.stdout.starts_with("removed 1 compiled component"),
        "{}",
        pruned.stdout
    );
    let mut kept = vec![math.clone(), shop.clone()];
    kept.sort();
    assert_eq!(entries(dir), kept, "testkit was used longest ago");
    assert!(total_bytes(dir) <= cap);

    // A cap set by $WFHOST_CACHE_MAX is kept whenever an entry is written.
    let cap = shop_size + testkit_size;
    use_plugin(dir, Some(cap), "testkit");
    assert!(total_bytes(dir) <= cap, "{} > {cap}", total_bytes(dir));
    assert!(entries(dir).contains(&testkit));

    let info = wfhost_with_cache(dir, Some(cap), &["cache", "info"]).stdout;
    assert!(
        info.contains(&format!("entries    {}", entries(dir).len())),
        "{info}"
    );

    let emptied = wfhost_with_cache(dir, None, &["cache", "prune", "--max-size", "0"]);
    assert!(
        emptied.stdout.contains("kept 0 (0 B)"),
        "{}",
        emptied.stdout
    );
    assert!(entries(dir).is_empty());
}

/// A runtime that loads the same plugin file again (every workflow of a
/// service names its plugins) reuses what it made of it, and a file
/// written since, at the same path, is loaded as what it holds now: its
/// tasks and sha256, never the earlier file's.
#[tokio::test]
async fn a_plugin_file_loaded_again_is_reused_until_it_changes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    std::fs::copy(plugin("math"), &path).unwrap();
    let runtime = Runtime::new().unwrap();
    let first = runtime.load_plugin("m", &path, None).await.unwrap();
    let again = runtime.load_plugin("other", &path, None).await.unwrap();
    assert_eq!(again.name(), "other", "loaded under the name asked for");
    assert_eq!(again.sha256(), first.sha256());
    // The pinned sha256 is still checked when nothing was read again.
    let refused = runtime.load_plugin("m", &path, Some(&"0".repeat(64))).await;
    assert!(refused.is_err());

    // Written in place, same path (and the same size would not matter).
    std::fs::write(&path, std::fs::read(plugin("testkit")).unwrap()).unwrap();
    let rewritten = runtime.load_plugin("m", &path, None).await.unwrap();
    assert_ne!(rewritten.sha256(), first.sha256());
    assert!(
        rewritten.tasks().iter().any(|task| task.name == "echo"),
        "the file's new tasks"
    );
    // Rewritten in place at once with as many bytes (a name in the
    // producers section changed): file times may not have moved on, the
    // contents have.
    let original = std::fs::read(plugin("math")).unwrap();
    std::fs::write(&path, &original).unwrap();
    let before = runtime.load_plugin("m", &path, None).await.unwrap();
    std::fs::write(&path, same_size_other_bytes(&original)).unwrap();
    let after = runtime.load_plugin("m", &path, None).await.unwrap();
    assert_eq!(before.sha256(), first.sha256());
    assert_ne!(
        after.sha256(),
        before.sha256(),
        "the same size, other bytes"
    );
    // Replaced by another file under the same name.
    let replacement = dir.path().join("next.wasm");
    std::fs::copy(plugin("math"), &replacement).unwrap();
    std::fs::rename(&replacement, &path).unwrap();
    let replaced = runtime.load_plugin("m", &path, None).await.unwrap();
    assert_eq!(replaced.sha256(), first.sha256());
}

/// A plugin file last changed well before it was read is known again by
/// its times alone, without being read; a write after that still moves its
/// change time, so what it holds then is read and loaded, even with as many
/// bytes as before.
#[tokio::test]
async fn a_settled_plugin_file_written_again_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    let original = std::fs::read(plugin("math")).unwrap();
    std::fs::write(&path, &original).unwrap();
    // Past the two seconds after its last change within which its times
    // alone might not tell a later write apart.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let runtime = Runtime::new().unwrap();
    let first = runtime.load_plugin("m", &path, None).await.unwrap();
    let again = runtime.load_plugin("m", &path, None).await.unwrap();
    assert_eq!(again.sha256(), first.sha256());
    let refused = runtime.load_plugin("m", &path, Some(&"0".repeat(64))).await;
    assert!(refused.is_err(), "the pin is checked when nothing is read");

    std::fs::write(&path, same_size_other_bytes(&original)).unwrap();
    let rewritten = runtime.load_plugin("m", &path, None).await.unwrap();
    assert_ne!(rewritten.sha256(), first.sha256(), "what it holds now");
}

/// `component` with one byte changed where it makes no difference to what
/// it does (a name in its producers section).
fn same_size_other_bytes(component: &[u8]) -> Vec<u8> {
    let mut changed = component.to_vec();
    let at = changed
        .windows(5)
        .position(|window| window == b"rustc")
        .expect("a producers section");
    changed[at] = b'R';
    changed
}
