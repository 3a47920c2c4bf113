//! Link settings for the `wfhost` binary.

fn main() {
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let target_env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if target_os == "linux" && target_env == "gnu" {
        // The binary carries ~33,000 relative relocations (wasmtime's and
        // cranelift's tables of pointers). Stored one per 24-byte entry they
        // take the dynamic loader about 2 ms to read and apply at every
        // start, more than the rest of a one-step `wfhost run`; packed
        // (DT_RELR) they take 8 KiB and no measurable time, and the binary
        // stays position-independent.
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
