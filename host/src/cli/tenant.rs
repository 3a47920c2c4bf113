//! `wfhost tenant add|key|rm|list`: the policy file `wfhost serve
//! --tenants` reads, edited in place with its comments and layout kept. A
//! new key is printed once; the file keeps only its sha256. Every edit is
//! checked as `serve` reads the file before it replaces it, and a running
//! `serve` takes it on SIGHUP.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use toml_edit::{DocumentMut, InlineTable, Item, Table, value};
use wfhost::service::{Tenants, key_hash};

use super::Finished;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Add a tenant with a new key (printed once) and plugins pinned by
    /// their sha256.
    Add {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        file: PolicyFile,
        /// A plugin it may run, as NAME=PATH (repeatable); the file's
        /// sha256 is pinned.
        #[arg(long = "plugin", value_name = "NAME=PATH")]
        plugins: Vec<String>,
    },
    /// Give a tenant a new key (printed once); the old one stops working
    /// when `serve` reads the file again (SIGHUP).
    Key {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        file: PolicyFile,
    },
    /// Remove a tenant from the policy (its workflows stay on record).
    Rm {
        /// The tenant's name.
        name: String,
        #[command(flatten)]
        file: PolicyFile,
    },
    /// List the policy's tenants with their plugins.
    List {
        #[command(flatten)]
        file: PolicyFile,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The policy file a command edits.
#[derive(Debug, Args)]
pub struct PolicyFile {
    /// The tenant policy file `serve --tenants` reads (made by `tenant add`
    /// when missing).
    #[arg(long = "tenants", value_name = "FILE", env = "WFHOST_TENANTS")]
    path: PathBuf,
}

pub fn tenant(command: TenantCommand) -> anyhow::Result<Finished> {
    match command {
        TenantCommand::Add {
            name,
            file,
            plugins,
        } => {
            check_name(&name)?;
            let mut document = read(&file.path, true)?;
            if tenants_table(&mut document)?.contains_key(&name) {
                bail!("{} has a tenant `{name}` already", file.path.display());
            }
            let key = super::ui::one_time_key()?;
            let mut entry = Table::new();
            entry.insert("key_sha256", value(key_hash(&key)));
            let mut pinned = Table::new();
            for plugin in &plugins {
                let (plugin_name, path) = plugin
                    .split_once('=')
                    .with_context(|| format!("--plugin {plugin}: expected NAME=PATH"))?;
                let mut pin = InlineTable::new();
                pin.insert("path", relative_to(&file.path, Path::new(path)).into());
                pin.insert("sha256", sha256_of(Path::new(path))?.into());
                pinned.insert(plugin_name, value(pin));
            }
            entry.insert("plugins", Item::Table(pinned));
            tenants_table(&mut document)?.insert(&name, Item::Table(entry));
            write(&file.path, &document)?;
            println!("{key}");
            eprintln!(
                "added tenant {name} to {}: its key is above, shown once (the file keeps its \
                 sha256); a running serve takes it on SIGHUP",
                file.path.display()
            );
        }
        TenantCommand::Key { name, file } => {
            let mut document = read(&file.path, false)?;
            let key = super::ui::one_time_key()?;
            let Some(entry) = tenants_table(&mut document)?
                .get_mut(&name)
                .and_then(Item::as_table_like_mut)
            else {
                bail!("{} has no tenant `{name}`", file.path.display());
            };
            entry.insert("key_sha256", value(key_hash(&key)));
            write(&file.path, &document)?;
            println!("{key}");
            eprintln!(
                "tenant {name} has a new key, above, shown once; the old one works until a \
                 running serve reads the file again (SIGHUP)"
            );
        }
        TenantCommand::Rm { name, file } => {
            let mut document = read(&file.path, false)?;
            if tenants_table(&mut document)?.remove(&name).is_none() {
                bail!("{} has no tenant `{name}`", file.path.display());
            }
            write(&file.path, &document)?;
            eprintln!("removed tenant {name}; its workflows stay on record");
        }
        TenantCommand::List { file, json } => {
            let tenants = Tenants::load(&file.path)?;
            let listing: Vec<serde_json::Value> = tenants
                .all()
                .map(|tenant| {
                    let plugins: Vec<&String> = tenant.plugins.keys().collect();
                    serde_json::json!({"name": tenant.name, "plugins": plugins})
                })
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(listing));
            } else {
                for tenant in &listing {
                    let plugins: Vec<&str> = tenant["plugins"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|plugin| plugin.as_str())
                        .collect();
                    println!(
                        "{}  plugins: {}",
                        tenant["name"].as_str().unwrap_or_default(),
                        if plugins.is_empty() {
                            "none".to_string()
                        } else {
                            plugins.join(", ")
                        }
                    );
                }
            }
        }
    }
    Ok(Finished::Succeeded)
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let fine = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !fine {
        bail!(
            "`{}` cannot name a tenant: use letters, digits, `_` and `-` (at most 64)",
            name.escape_debug()
        );
    }
    Ok(())
}

/// The policy file as a document, or an empty one where it is missing and
/// `may_be_new`.
fn read(path: &Path, may_be_new: bool) -> anyhow::Result<DocumentMut> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound && may_be_new => String::new(),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    text.parse()
        .with_context(|| format!("{} is not TOML", path.display()))
}

/// The document's `[tenants]` table, made where missing.
fn tenants_table(document: &mut DocumentMut) -> anyhow::Result<&mut Table> {
    let tenants = document.entry("tenants").or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    tenants
        .as_table_mut()
        .context("`tenants` in the policy file is not a table")
}

/// Replaces the file with `document` once it reads as `serve` reads it
/// (written beside it and renamed, so `serve` never reads half a file).
fn write(path: &Path, document: &DocumentMut) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write beside {}", path.display()))?;
    std::fs::write(temp.path(), document.to_string())?;
    // Relative paths in the policy are the file's directory's.
    let checked = dir.join(temp.path().file_name().unwrap_or_default());
    Tenants::load(&checked).with_context(|| {
        format!(
            "the edit would make {} a policy serve refuses",
            path.display()
        )
    })?;
    temp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// `path` (given from here) as the policy file at `policy` names it:
/// relative to the file's directory where it lies under it, else absolute.
fn relative_to(policy: &Path, path: &Path) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = policy
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = std::path::absolute(dir).ok();
    match base
        .as_deref()
        .and_then(|base| absolute.strip_prefix(base).ok())
    {
        Some(inside) => inside.display().to_string(),
        None => absolute.display().to_string(),
    }
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    use sha2::Digest;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(sha2::Sha256::digest(&bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect())
}
