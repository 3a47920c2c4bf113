//! Loading a plugin: read, verify, compile, check its imports and world,
//! pre-link it, and ask it for its tasks.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use super::Runtime;
use super::bindings::PluginPre;
use super::bindings::described::exports::wfhost::task::schemas::GuestIndices as SchemasIndices;
use super::bindings::types;
use super::cancel::CancelToken;
use super::limits::Limits;
use super::loaded::{FileStamp, FileTimes};
use super::pace::Pace;
use super::sandbox::Sandbox;
use super::state::StepState;
use super::world::{REQUIRED_EXPORT, may_import};
use crate::grants::Access;

/// One parameter of a task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ParamInfo {
    /// The name a keyword argument uses.
    pub name: String,
    /// The Rust type as the plugin declares it.
    pub type_name: String,
    /// Whether the argument may be left out.
    pub optional: bool,
}

/// A task a plugin exports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskInfo {
    /// The task's name inside the plugin.
    pub name: String,
    /// Its parameters in positional order.
    pub params: Vec<ParamInfo>,
    /// The first paragraph of its doc comment.
    pub doc: String,
    /// Its return type as the plugin writes it; empty where it says none.
    pub returns: String,
    /// What its parameters take and it returns, where the plugin says
    /// (it exports `wfhost:task/schemas`).
    #[serde(skip)]
    pub schema: Option<TaskSchema>,
}

/// The types of one task, as JSON Schema (2020-12); `{}` where a type is
/// not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSchema {
    /// One schema per parameter, in positional order.
    pub params: Vec<Value>,
    /// What the task returns when it succeeds (shared: every step of the
    /// task hands it on to the next when types are checked).
    pub returns: Arc<Value>,
}

impl TaskSchema {
    /// Reads what `describe` said of a task of `params` parameters: `None`
    /// where it is not JSON of that shape (then no type is known).
    fn read(text: &str, params: usize) -> Option<TaskSchema> {
        let mut schema: Value = serde_json::from_str(text).ok()?;
        let Value::Array(params_found) = schema.get_mut("params")?.take() else {
            return None;
        };
        let returns = schema.get_mut("returns")?.take();
        let is_schema = |value: &Value| value.is_object() || value.is_boolean();
        (params_found.len() == params && params_found.iter().all(is_schema) && is_schema(&returns))
            .then(|| TaskSchema {
                params: params_found,
                returns: Arc::new(returns),
            })
    }
}

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

const WASM_MAGIC: &[u8] = b"\0asm";
/// Version and layer of a core module; components use another layer.
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Explains why bytes that failed to compile are not a component.
fn explain_not_a_component(bytes: &[u8], compile_error: String) -> String {
    if !bytes.starts_with(WASM_MAGIC) {
        return "the file is not WebAssembly (no \\0asm header)".to_string();
    }
    match bytes.get(4..8) {
        Some(version) if version == CORE_MODULE_VERSION => {
            "it is a core WebAssembly module; build \
             the plugin with `cargo build --target wasm32-wasip2` to get a component"
                .to_string()
        }
        Some(_) => compile_error,
        None => format!("the file is cut short after {} bytes", bytes.len()),
    }
}

/// The largest component file a plugin may be: far above any real one, and
/// far below what would exhaust the host.
const MAX_COMPONENT_BYTES: u64 = 256 << 20;

enum ReadError {
    Io(std::io::Error),
    NotAPluginFile(String),
}

/// The component file at `path`, open, which must be a regular file of at
/// most [`MAX_COMPONENT_BYTES`]: a device would be read forever and a pipe
/// waited on forever.
fn open_component(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), ReadError> {
    use std::os::unix::fs::OpenOptionsExt;
    // Opened without blocking, so that a pipe with no writer cannot hang
    // the open; the type is checked on the opened file, not the name.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(ReadError::Io)?;
    let metadata = file.metadata().map_err(ReadError::Io)?;
    if !metadata.is_file() {
        return Err(ReadError::NotAPluginFile(
            "is not a regular file (a device, a pipe or a directory?)".into(),
        ));
    }
    if metadata.len() > MAX_COMPONENT_BYTES {
        return Err(ReadError::NotAPluginFile(format!(
            "is {} MiB, more than the {} MiB a component may be",
            metadata.len() >> 20,
            MAX_COMPONENT_BYTES >> 20
        )));
    }
    Ok((file, metadata))
}

/// The bytes of the component `file`, opened by [`open_component`].
fn read_component(file: std::fs::File, metadata: &std::fs::Metadata) -> Result<Vec<u8>, ReadError> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    // Bounded again while reading, in case the file grows meanwhile.
    file.take(MAX_COMPONENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > MAX_COMPONENT_BYTES {
        return Err(ReadError::NotAPluginFile(
            "grew past the size a component may be while it was read".into(),
        ));
    }
    Ok(bytes)
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

/// Instantiates the plugin and asks it for its tasks, and their types
/// where it describes them. An error says whether a rebuild may mend it.
async fn ask_tasks(
    runtime: &Runtime,
    pre: &PluginPre<StepState>,
) -> Result<Vec<TaskInfo>, (String, bool)> {
    let _slot = runtime.instance_slot().await;
    let mut sandbox = Sandbox::new(
        &runtime.engine,
        &Limits::default(),
        (&Access::none(), false),
        None,
        CancelToken::new(),
        None,
    )
    .map_err(|failure| (failure.to_string(), false))?;
    let described = SchemasIndices::new(pre.instance_pre()).ok();
    let (tasks, schemas) = sandbox
        .list_tasks(pre, described.as_ref())
        .await
        .map_err(|failure| (failure.to_string(), true))?;
    let mut tasks: Vec<TaskInfo> = tasks.into_iter().map(TaskInfo::from).collect();
    for described in schemas.into_iter().flatten() {
        if let Some(task) = tasks.iter_mut().find(|task| task.name == described.name) {
            task.returns = described.returns;
            task.schema = TaskSchema::read(&described.schema, task.params.len());
        }
    }
    Ok(tasks)
}

/// What a component says of itself, as the component cache keeps it.
#[derive(Serialize, serde::Deserialize)]
struct Listing {
    format: u32,
    tasks: Vec<ListedTask>,
}

#[derive(Serialize, serde::Deserialize)]
struct ListedTask {
    name: String,
    doc: String,
    /// Each parameter's name, type name and whether it may be left out.
    params: Vec<(String, String, bool)>,
    returns: String,
    /// Each parameter's schema and the result's.
    schema: Option<(Vec<Value>, Value)>,
}

impl Listing {
    /// Bumped when what is kept, or how the host reads it, changes.
    const FORMAT: u32 = 1;

    fn write(tasks: &[TaskInfo]) -> Vec<u8> {
        let tasks = tasks
            .iter()
            .map(|task| ListedTask {
                name: task.name.clone(),
                doc: task.doc.clone(),
                params: task
                    .params
                    .iter()
                    .map(|p| (p.name.clone(), p.type_name.clone(), p.optional))
                    .collect(),
                returns: task.returns.clone(),
                schema: task
                    .schema
                    .as_ref()
                    .map(|schema| (schema.params.clone(), schema.returns.as_ref().clone())),
            })
            .collect();
        let listing = Listing {
            format: Self::FORMAT,
            tasks,
        };
        serde_json::to_vec(&listing).unwrap_or_default()
    }

    fn read(bytes: &[u8]) -> Option<Vec<TaskInfo>> {
        let listing: Listing = serde_json::from_slice(bytes).ok()?;
        (listing.format == Self::FORMAT).then(|| {
            listing
                .tasks
                .into_iter()
                .map(|task| TaskInfo {
                    name: task.name,
                    doc: task.doc,
                    params: task
                        .params
                        .into_iter()
                        .map(|(name, type_name, optional)| ParamInfo {
                            name,
                            type_name,
                            optional,
                        })
                        .collect(),
                    returns: task.returns,
                    schema: task.schema.map(|(params, returns)| TaskSchema {
                        params,
                        returns: Arc::new(returns),
                    }),
                })
                .collect()
        })
    }
}

/// A listing that failed on the types of the interface: a component
/// built against another version of `wit/task.wit` (one whose records
/// have other fields) is told to be rebuilt.
fn with_rebuild_hint(reason: String) -> String {
    if reason.contains("type mismatch") {
        format!(
            "{reason} (it was built against another version of wfhost's task interface, \
             wit/task.wit: rebuild it with this wfhost's guest SDK)"
        )
    } else {
        reason
    }
}

impl From<types::TaskInfo> for TaskInfo {
    fn from(info: types::TaskInfo) -> Self {
        TaskInfo {
            name: info.name,
            doc: info.doc,
            returns: String::new(),
            schema: None,
            params: info
                .params
                .into_iter()
                .map(|p| super::plugin::ParamInfo {
                    name: p.name,
                    type_name: p.type_name,
                    optional: p.optional,
                })
                .collect(),
        }
    }
}
