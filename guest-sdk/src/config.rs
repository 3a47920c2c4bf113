//! Configuration values and secrets granted to the plugin, by name.
//!
//! The host hands a plugin exactly the `config` and `secrets` its grants
//! name, as its environment, and nothing else: `config::get("bucket")` is
//! `std::env::var("bucket")`, so code that reads its settings from the
//! environment works unchanged. A secret's value is masked (`***`) in
//! everything the host records of the step: its result, error, output and
//! logs.

/// The value granted under `name`, if the plugin was granted one.
pub fn get(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The value granted under `name`, or an error that names the grant a
/// task could not do without.
pub fn require(name: &str) -> Result<String, crate::TaskError> {
    get(name).ok_or_else(|| {
        crate::TaskError::fail(format!(
            "no config value or secret `{name}` is granted to this plugin \
             (grants.config or grants.secrets)"
        ))
    })
}
