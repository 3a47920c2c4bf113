//! One capability, one place (Spin's factors are the model): everything a
//! kind of grant means — how a chain file says it, how it is stored, how a
//! tenant's policy bounds it, what is made ready once per workflow, what
//! the guest calls through, and what one attempt holds of it — is one type
//! implementing [`Capability`]. The registry in `grants/mod.rs` lists
//! them; `capabilities!` builds from that list the types every other
//! part of the host sees ([`super::Grants`], [`super::Access`],
//! [`super::Granted`]), so that the sandbox iterates over capabilities and
//! never names one.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use wasmtime::component::Linker;
use wasmtime_wasi::{WasiCtxBuilder, WasiView};
use wasmtime_wasi_http::WasiHttpView;

use super::{Denials, GrantError};
use crate::json::{JsonPath, SpecIssue};

/// A kind of grant. Its functions take no `self`: a capability is a type
/// that names its data, not a value.
pub trait Capability: 'static {
    /// The key of a plugin's `grants` object it reads, and its name where
    /// the host shows it (`inspect`, error messages).
    const NAME: &'static str;
    /// Further keys of `grants` it owns, beside [`Capability::NAME`] (a
    /// limit that applies to it).
    const MORE_KEYS: &'static [&'static str] = &[];
    /// The interfaces (by prefix, `wasi:http/`) through which a plugin uses
    /// what it grants: `inspect` names the capability beside each, and one
    /// that is not among those every plugin is served (wasi:http) may be
    /// imported because a capability lists it.
    const INTERFACES: &'static [&'static str] = &[];

    /// What a chain file or a policy grants, as the store keeps it.
    type Grant: fmt::Debug
        + Clone
        + Default
        + PartialEq
        + Serialize
        + DeserializeOwned
        + Send
        + Sync;
    /// The grant made ready for attempts: what can be read or checked once
    /// per workflow, is. `Default` is the readiness of granting nothing.
    type Ready: fmt::Debug + Default + Send + Sync;
    /// What one attempt holds of it.
    type Attempt: Send;

    /// Reads its part of a plugin's `grants` object `grants` (at `at`),
    /// paths against `base_dir`.
    fn read(
        grants: &Map<String, Value>,
        at: &JsonPath,
        base_dir: &Path,
    ) -> Result<Self::Grant, SpecIssue>;

    /// Whether it grants nothing.
    fn is_empty(grant: &Self::Grant) -> bool;

    /// Whether a step holding it may have effects outside its sandbox
    /// (DESIGN §7): it reaches out or keeps data.
    fn is_effectful(_grant: &Self::Grant) -> bool {
        false
    }

    /// `asked` (a submission's) checked to lie within `policy` (its
    /// tenant's), as it is to be granted; the error says what reaches past.
    fn within(asked: &Self::Grant, policy: &Self::Grant) -> Result<Self::Grant, String>;

    /// The grant with each path at its real place, for a grant whose author
    /// chose the symlinks on them (a chain file's, a policy's).
    fn at_real_paths(grant: Self::Grant) -> Self::Grant {
        grant
    }

    /// Writes its keys into the stored form of a plugin's grants, where it
    /// grants something.
    fn store(grant: &Self::Grant, into: &mut Map<String, Value>) -> serde_json::Result<()> {
        if !Self::is_empty(grant) {
            into.insert(Self::NAME.to_string(), serde_json::to_value(grant)?);
        }
        Ok(())
    }

    /// Reads back what [`Capability::store`] wrote.
    fn load(from: &Map<String, Value>) -> serde_json::Result<Self::Grant> {
        match from.get(Self::NAME) {
            Some(value) => <Self::Grant as serde::Deserialize>::deserialize(value),
            None => Ok(Self::Grant::default()),
        }
    }

    /// Makes `grant` ready for attempts of the plugin `plugin`.
    fn ready(grant: &Self::Grant, plugin: &str) -> Result<Self::Ready, GrantError>;

    /// Puts in front of the guest what it calls through, on top of WASI's
    /// own bindings (shared by every store of the engine).
    fn add_to_linker<T: AttemptView>(_linker: &mut Linker<T>) -> wasmtime::Result<()> {
        Ok(())
    }

    /// Sets one attempt up: its WASI context, and its own state.
    fn attempt(
        ready: &Self::Ready,
        setup: &mut AttemptSetup<'_>,
    ) -> Result<Self::Attempt, GrantError>;

    /// What the attempt was refused that its record should tell, besides
    /// the refusals it noted as they happened: `failure` is the attempt's
    /// failure message, if it failed.
    fn refusals(_attempt: &Self::Attempt, _failure: Option<&str>) -> Vec<String> {
        Vec::new()
    }
}

/// What one attempt's setup hands each capability.
pub struct AttemptSetup<'a> {
    /// The attempt's WASI context, being built.
    pub builder: &'a mut WasiCtxBuilder,
    /// The plugin's name in the workflow.
    pub plugin: &'a Arc<str>,
    /// Where refusals are noted as they happen, for the step's record.
    pub denials: &'a Denials,
    /// Whether the plugin imports `wasi:filesystem/preopens`.
    pub opens_files: bool,
}

/// What a store's data gives the capabilities' bindings: WASI's own views
/// (which wasmtime's bindings are generic over), each capability's attempt
/// state, and the list of refusals.
pub trait AttemptView: WasiView + WasiHttpView + Send + 'static {
    /// Every capability's state in this attempt.
    fn granted(&mut self) -> &mut super::Granted;
    /// Keeps why an access was refused, for the step's record.
    fn deny(&mut self, reason: String);
}

/// A registry type that holds one part per capability: `of::<C>()` is C's.
pub trait Holds<C: Capability> {
    /// What it holds for `C`.
    type Part;
    /// C's part.
    fn part(&self) -> &Self::Part;
    /// C's part, to change.
    fn part_mut(&mut self) -> &mut Self::Part;
}

/// Builds from the registry's list of `field: Capability` the types that
/// combine them — [`super::Grants`] (with its stored form, reading,
/// bounds), [`super::Access`], [`super::Granted`] — and the registry's
/// functions over all capabilities.
macro_rules! capabilities {
    ($($field:ident: $cap:ty),+ $(,)?) => {
        /// What one plugin may reach, as a chain file grants it and the
        /// store keeps it: one part per capability.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct Grants {
            $(
                #[doc = concat!("What the `", stringify!($field), "` capability grants.")]
                pub $field: <$cap as Capability>::Grant,
            )+
        }

        /// Grants made ready for attempts of one plugin: secrets read,
        /// directories checked.
        #[derive(Debug)]
        pub struct Access {
            plugin: Arc<str>,
            effectful: bool,
            $($field: <$cap as Capability>::Ready,)+
        }

        /// Every capability's state in one attempt.
        pub struct Granted {
            $($field: <$cap as Capability>::Attempt,)+
        }

        $(
            impl Holds<$cap> for Access {
                type Part = <$cap as Capability>::Ready;
                fn part(&self) -> &Self::Part {
                    &self.$field
                }
                fn part_mut(&mut self) -> &mut Self::Part {
                    &mut self.$field
                }
            }

            impl Holds<$cap> for Granted {
                type Part = <$cap as Capability>::Attempt;
                fn part(&self) -> &Self::Part {
                    &self.$field
                }
                fn part_mut(&mut self) -> &mut Self::Part {
                    &mut self.$field
                }
            }
        )+

        /// Every key of a plugin's `grants` object, capability by capability.
        fn grant_keys() -> Vec<&'static str> {
            let mut keys = Vec::new();
            $(
                keys.push(<$cap as Capability>::NAME);
                keys.extend(<$cap as Capability>::MORE_KEYS);
            )+
            keys
        }

        /// The names of the capabilities whose grants a plugin uses through
        /// `interface` (its version, after `@`, aside).
        fn capabilities_serving(interface: &str) -> Vec<&'static str> {
            let interface = interface.split('@').next().unwrap_or(interface);
            let mut names = Vec::new();
            $(
                if <$cap as Capability>::INTERFACES
                    .iter()
                    .any(|prefix| interface.starts_with(prefix))
                {
                    names.push(<$cap as Capability>::NAME);
                }
            )+
            names
        }

        /// Adds every capability's bindings to `linker`.
        pub fn add_to_linker<T: AttemptView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
            $(<$cap as Capability>::add_to_linker(linker)?;)+
            Ok(())
        }

        impl Grants {
            /// Reads a plugin's `grants` object at `at` from a chain file or
            /// a policy: strictly, every mistake named by its JSON path;
            /// paths against `base_dir`.
            pub fn read(value: &Value, at: &JsonPath, base_dir: &Path) -> Result<Grants, SpecIssue> {
                let keys = grant_keys();
                let map = crate::json::fields::object(value, at, "an object of grants", &keys)?;
                Ok(Grants {
                    $($field: <$cap as Capability>::read(map, at, base_dir)?,)+
                })
            }

            /// Whether it grants nothing.
            pub fn is_empty(&self) -> bool {
                true $(&& <$cap as Capability>::is_empty(&self.$field))+
            }

            /// Whether a step of the plugin may have effects outside its
            /// sandbox (see DESIGN §7): it holds a grant that reaches out or
            /// keeps data.
            pub fn is_effectful(&self) -> bool {
                false $(|| <$cap as Capability>::is_effectful(&self.$field))+
            }

            /// The same grants with each path at its real place (see
            /// `real_path`): what a chain file's or a policy's grants become
            /// when read, whose author chose the symlinks on them.
            pub fn with_real_dirs(self) -> Grants {
                Grants {
                    $($field: <$cap as Capability>::at_real_paths(self.$field),)+
                }
            }

            /// These grants, as asked for by a submission, checked to lie
            /// within `policy`'s; each limit is the lower of the two. The
            /// error names the grant that reaches past the policy.
            pub fn within(&self, policy: &Grants) -> Result<Grants, String> {
                Ok(Grants {
                    $($field: <$cap as Capability>::within(&self.$field, &policy.$field)?,)+
                })
            }

            /// Makes the grants ready for attempts of `plugin`: every
            /// directory must exist and every secret must be readable.
            pub fn access(&self, plugin: &str) -> Result<Arc<Access>, GrantError> {
                Ok(Arc::new(Access {
                    plugin: plugin.into(),
                    effectful: self.is_effectful(),
                    $($field: <$cap as Capability>::ready(&self.$field, plugin)?,)+
                }))
            }
        }

        impl Serialize for Grants {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                let mut map = Map::new();
                $(
                    <$cap as Capability>::store(&self.$field, &mut map)
                        .map_err(serde::ser::Error::custom)?;
                )+
                map.serialize(serializer)
            }
        }

        impl<'de> serde::Deserialize<'de> for Grants {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                use serde::de::Error as _;
                let map = Map::<String, Value>::deserialize(deserializer)?;
                let keys = grant_keys();
                if let Some(unknown) = map.keys().find(|key| !keys.contains(&key.as_str())) {
                    return Err(D::Error::unknown_field(unknown, &[]));
                }
                Ok(Grants {
                    $(
                        $field: <$cap as Capability>::load(&map).map_err(|err| {
                            D::Error::custom(format_args!("{}: {err}", <$cap as Capability>::NAME))
                        })?,
                    )+
                })
            }
        }

        impl Access {
            /// Access to nothing.
            pub fn none() -> Arc<Access> {
                static NONE: std::sync::OnceLock<Arc<Access>> = std::sync::OnceLock::new();
                Arc::clone(NONE.get_or_init(|| {
                    Arc::new(Access {
                        plugin: "".into(),
                        effectful: false,
                        $($field: Default::default(),)+
                    })
                }))
            }

            /// Sets one attempt up with every capability.
            pub(crate) fn attempt(&self, setup: &mut AttemptSetup<'_>) -> Result<Granted, GrantError> {
                Ok(Granted {
                    $($field: <$cap as Capability>::attempt(&self.$field, setup)?,)+
                })
            }
        }

        impl Granted {
            /// What the attempt was refused that its record should tell
            /// (see [`Capability::refusals`]).
            pub(crate) fn refusals(&self, failure: Option<&str>) -> Vec<String> {
                let mut all = Vec::new();
                $(all.extend(<$cap as Capability>::refusals(&self.$field, failure));)+
                all
            }
        }
    };
}

pub(crate) use capabilities;
