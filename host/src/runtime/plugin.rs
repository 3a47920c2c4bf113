//! Loading a plugin: read, verify, compile, check its imports and world,
//! pre-link it, and ask it for its tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use thiserror::Error;

use super::Runtime;
use super::bindings::PluginPre;
use super::component_file::{ReadError, explain_not_a_component, open_component, read_component};
use super::loaded::{FileStamp, FileTimes};
use super::pace::Pace;
use super::state::StepState;
use super::tasks::{Listing, TaskInfo, ask_tasks, with_rebuild_hint};
use super::world::{REQUIRED_EXPORT, may_import};

/// A loaded, verified and pre-linked plugin component.
#[derive(Clone)]
pub struct Plugin {
    name: String,
    path: PathBuf,
    /// `path` resolved (links, `..`) when the file was read.
    resolved: PathBuf,
    sha256: String,
    pre: PluginPre<StepState>,
    tasks: Vec<TaskInfo>,
    imports: Vec<String>,
    opens_files: bool,
    /// How long its tasks' attempts take, shared by its copies.
    pace: Arc<Pace>,
}

impl Plugin {
    /// The name the workflow gives the plugin (`math` in `math.add`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the component was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where the component was read from, with every link and `..`
    /// resolved when it was read: what a workflow's head pins.
    pub fn resolved_path(&self) -> &Path {
        &self.resolved
    }

    /// The component file's sha256, in lowercase hex.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The tasks the plugin exports.
    pub fn tasks(&self) -> &[TaskInfo] {
        &self.tasks
    }

    /// How long an attempt of `task` typically takes, from the attempts
    /// that ended so far; none before the first.
    pub fn typical_attempt(&self, task: &str) -> Option<Duration> {
        self.pace.typical(task)
    }

    /// Counts an attempt of `task` that took `took`.
    pub(crate) fn observe_attempt(&self, task: &str, took: Duration) {
        self.pace.observe(task, took);
    }

    /// Whether the component asks for its directories
    /// (`wasi:filesystem/preopens`): only such a guest opens files.
    pub(crate) fn opens_files(&self) -> bool {
        self.opens_files
    }

    /// The interfaces the component imports (`wasi:http/outgoing-handler@0.2.12`, …):
    /// what it could ask for, each granted or denied by its workflow.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// The task called `name`, if the plugin exports it.
    pub fn task(&self, name: &str) -> Option<&TaskInfo> {
        self.tasks.iter().find(|task| task.name == name)
    }

    pub(super) fn pre(&self) -> &PluginPre<StepState> {
        &self.pre
    }
}

/// Why a plugin cannot be used. Every variant names the plugin and its file.
///
/// Each message already includes its cause, which is therefore not also
/// exposed as `source()`: printing the chain would say it twice.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The file cannot be read.
    #[error("plugin `{name}`: cannot read {}: {cause}", path.display())]
    Read {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What the system said.
        cause: std::io::Error,
    },
    /// The path names no regular file (a device, a pipe, a directory), or
    /// one larger than a component may be.
    #[error("plugin `{name}`: {} {reason}", path.display())]
    NotAPluginFile {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What it is instead.
        reason: String,
    },
    /// A grant of the plugin cannot be used (a secret that cannot be
    /// read, a directory that is missing).
    #[error(transparent)]
    Grant(#[from] crate::grants::GrantError),
    /// The file does not hash to the pinned sha256.
    #[error(
        "plugin `{name}`: sha256 mismatch for {}: pinned to {expected} (by the chain file, or by \
         the workflow's first run), the file is {actual}; `wfhost retry ID --plugin {name}=PATH` \
         re-drives a failed workflow with a new build",
        path.display()
    )]
    Sha256Mismatch {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What was expected.
        expected: String,
        /// What was found.
        actual: String,
    },
    /// The file is not a WebAssembly component.
    #[error("plugin `{name}`: {} is not a WebAssembly component: {reason}", path.display())]
    NotAComponent {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The component imports an interface the host does not grant.
    #[error("plugin `{name}`: {} imports `{interface}`, which wfhost does not grant", path.display())]
    ImportNotGranted {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// The interface it imports.
        interface: String,
    },
    /// The component is not of wfhost's task world.
    #[error("plugin `{name}`: {} is not a wfhost plugin: {reason}", path.display())]
    WrongWorld {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The component failed to list its tasks.
    #[error("plugin `{name}`: {} could not list its tasks: {reason}", path.display())]
    ListTasks {
        /// The plugin's name in the workflow.
        name: String,
        /// The file.
        path: PathBuf,
        /// What is wrong, in words.
        reason: String,
    },
    /// The engine could not be set up.
    #[error("cannot set up the WebAssembly engine: {0}")]
    Engine(String),
}

impl PluginError {
    pub(super) fn engine(err: wasmtime::Error) -> Self {
        PluginError::Engine(format!("{err:#}"))
    }
}

pub(super) async fn load(
    runtime: &Runtime,
    name: &str,
    path: &Path,
    expected_sha256: Option<&str>,
) -> Result<Plugin, PluginError> {
    let name_owned = || name.to_string();
    let path_owned = || path.to_path_buf();
    let read_error = |err| match err {
        ReadError::Io(cause) => PluginError::Read {
            name: name_owned(),
            path: path_owned(),
            cause,
        },
        ReadError::NotAPluginFile(reason) => PluginError::NotAPluginFile {
            name: name_owned(),
            path: path_owned(),
            reason,
        },
    };
    let check_sha256 = |sha256: &str| match expected_sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(sha256) => {
            Err(PluginError::Sha256Mismatch {
                name: name_owned(),
                path: path_owned(),
                expected: expected.to_string(),
                actual: sha256.to_string(),
            })
        }
        _ => Ok(()),
    };
    // The file as it was when a plugin was last made of it is that plugin:
    // not hashed, linked and asked for its tasks again; nor even read, when
    // its times say that it is the same file.
    let reuse = |known: Plugin| {
        check_sha256(&known.sha256)?;
        Ok(Plugin {
            name: name.to_string(),
            ..known
        })
    };
    if let Ok(metadata) = std::fs::metadata(path)
        && metadata.is_file()
        && let Some(known) = runtime
            .known_files
            .get_settled(path, &FileTimes::of(&metadata))
    {
        return reuse(known);
    }
    let read_at = SystemTime::now();
    let (file, metadata) = open_component(path).map_err(read_error)?;
    let bytes = read_component(file, &metadata).map_err(read_error)?;
    let stamp = FileStamp::of(&metadata, &bytes);
    if let Some(known) = runtime.known_files.get(path, &stamp, read_at) {
        return reuse(known);
    }
    let sha256 = crate::sha256::hex_of(&bytes);
    check_sha256(&sha256)?;
    let file_name = path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    );
    let component = runtime
        .compile(&bytes, &sha256, &file_name)
        .map_err(|err| PluginError::NotAComponent {
            name: name_owned(),
            path: path_owned(),
            reason: explain_not_a_component(&bytes, format!("{err:#}")),
        })?;

    let component_type = component.component_type();
    let imports: Vec<String> = component_type
        .imports(&runtime.engine)
        .map(|(import, _)| import.to_string())
        .collect();
    for import in &imports {
        if !may_import(import) {
            return Err(PluginError::ImportNotGranted {
                name: name_owned(),
                path: path_owned(),
                interface: import.to_string(),
            });
        }
    }
    let exports: Vec<&str> = component_type
        .exports(&runtime.engine)
        .map(|(export, _)| export)
        .collect();
    if !exports
        .iter()
        .any(|export| export.starts_with(REQUIRED_EXPORT))
    {
        return Err(PluginError::WrongWorld {
            name: name_owned(),
            path: path_owned(),
            reason: format!(
                "it does not export `{REQUIRED_EXPORT}.x` (it exports: {})",
                if exports.is_empty() {
                    "nothing".to_string()
                } else {
                    exports.join(", ")
                }
            ),
        });
    }
    let wrong_world = |err: wasmtime::Error| PluginError::WrongWorld {
        name: name_owned(),
        path: path_owned(),
        reason: format!("{err:#}"),
    };
    let instance_pre = runtime
        .linker
        .instantiate_pre(&component)
        .map_err(wrong_world)?;
    let pre = PluginPre::new(instance_pre).map_err(wrong_world)?;

    // What a component says of itself is kept in the component cache: a
    // later load of the same bytes need not instantiate it to ask.
    let cached = runtime
        .cached_listing(&sha256)
        .and_then(|listing| Listing::read(&listing));
    let tasks = match cached {
        Some(tasks) => tasks,
        None => {
            let tasks = ask_tasks(runtime, &pre).await.map_err(|(failure, hint)| {
                PluginError::ListTasks {
                    name: name_owned(),
                    path: path_owned(),
                    reason: match hint {
                        true => with_rebuild_hint(failure),
                        false => failure,
                    },
                }
            })?;
            runtime.keep_listing(&sha256, &Listing::write(&tasks));
            tasks
        }
    };
    let pace = Arc::new(Pace::new(tasks.iter().map(|task| task.name.as_str())));
    let plugin = Plugin {
        name: name.to_string(),
        path: path.to_path_buf(),
        resolved: crate::grants::real_or_given(path),
        sha256,
        pre,
        tasks,
        opens_files: imports
            .iter()
            .any(|import| import.starts_with("wasi:filesystem/preopens@")),
        imports,
        pace,
    };
    runtime.known_files.keep(path, stamp, read_at, &plugin);
    Ok(plugin)
}
