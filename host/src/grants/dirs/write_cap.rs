//! What the host puts in front of wasmtime-wasi's filesystem: the
//! per-attempt cap on bytes written, standing in front of the four calls
//! through which a guest writes file data, and the explanations of
//! refusals — a path that leaves its directory, a write to a read-only one,
//! a path under no grant (through the empty directory shown at `/`,
//! [`super::nowhere`]). wasmtime-wasi itself resolves every path inside its
//! directory (cap-std), so `..` and symlinks cannot leave it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::preopens::Host as _;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    DescriptorFlags, ErrorCode, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::{DynOutputStream, FsResult, OutputStream, Pollable, StreamError};

use super::{Dirs, DirsAttempt};
use crate::grants::capability::{AttemptView, Holds};

/// The interface whose calls are counted, as wasmtime-wasi defines it.
const FILESYSTEM_TYPES: &str = "wasi:filesystem/types@0.2.12";
/// The interface that hands the guest its directories.
const FILESYSTEM_PREOPENS: &str = "wasi:filesystem/preopens@0.2.12";

/// The bytes one attempt may still write into its granted directories.
#[derive(Debug)]
pub struct WriteBudget {
    cap: u64,
    used: AtomicU64,
    refused: OnceLock<String>,
}

impl WriteBudget {
    /// A budget of `cap` bytes.
    pub(super) fn new(cap: u64) -> Arc<Self> {
        Arc::new(WriteBudget {
            cap,
            used: AtomicU64::new(0),
            refused: OnceLock::new(),
        })
    }

    /// Why a write was first refused, if one was.
    pub(super) fn refusal(&self) -> Option<&str> {
        self.refused.get().map(String::as_str)
    }

    /// Takes `n` bytes from the budget, or says why it cannot.
    fn spend(&self, n: u64) -> Result<(), String> {
        let before = self.used.fetch_add(n, Ordering::Relaxed);
        if before.saturating_add(n) <= self.cap {
            Ok(())
        } else {
            self.used.fetch_sub(n, Ordering::Relaxed);
            let reason = format!(
                "a write of {n} bytes was refused: this attempt may write at most {} bytes \
                 into its directories (grants.max_bytes_written)",
                self.cap
            );
            let _ = self.refused.set(reason.clone());
            Err(reason)
        }
    }
}

/// Notes a call through the descriptor `fd` to `path` in the attempt's
/// view of `/`; true when `fd` is the empty directory there.
fn reaching_outside<T: AttemptView>(state: &mut T, fd: &Resource<Descriptor>, path: &str) -> bool {
    dirs_of(state)
        .outside
        .as_mut()
        .is_some_and(|outside| outside.reaching(fd.rep(), path))
}

/// The directory grants' share of an attempt.
fn dirs_of<T: AttemptView>(state: &mut T) -> &mut DirsAttempt {
    Holds::<Dirs>::part_mut(state.granted())
}

/// Puts the write cap in front of wasmtime-wasi's file writes in `linker`,
/// and an explanation behind its refusals to open a path.
pub(super) fn add_to_linker<T: AttemptView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut types = linker.instance(FILESYSTEM_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.write",
        |mut store, (fd, data, offset): (Resource<Descriptor>, Vec<u8>, u64)| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                if dirs_of(state)
                    .write_budget
                    .spend(data.len() as u64)
                    .is_err()
                {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let written =
                    HostDescriptor::write(&mut state.filesystem(), fd, data, offset).await;
                Ok((lift(written)?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (fd, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                let dir = Resource::new_borrow(fd.rep());
                let outside = reaching_outside(state, &fd, &path);
                let opened = HostDescriptor::open_at(
                    &mut state.filesystem(),
                    fd,
                    path_flags,
                    path.clone(),
                    open_flags,
                    flags,
                )
                .await;
                let opened = lift(opened)?;
                if !outside && matches!(opened, Err(ErrorCode::NotPermitted | ErrorCode::Access)) {
                    let dir_flags =
                        lift(HostDescriptor::get_flags(&mut state.filesystem(), dir).await)?;
                    let writable =
                        dir_flags.is_ok_and(|f| f.contains(DescriptorFlags::MUTATE_DIRECTORY));
                    let writes = flags.contains(DescriptorFlags::WRITE)
                        || open_flags.intersects(OpenFlags::CREATE | OpenFlags::TRUNCATE);
                    state.deny(open_refusal(&path, writes && !writable));
                }
                Ok((opened,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.stat-at",
        |mut store, (fd, path_flags, path): (Resource<Descriptor>, PathFlags, String)| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                reaching_outside(state, &fd, &path);
                let stat =
                    HostDescriptor::stat_at(&mut state.filesystem(), fd, path_flags, path).await;
                Ok((lift(stat)?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.create-directory-at",
        |mut store, (fd, path): (Resource<Descriptor>, String)| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                reaching_outside(state, &fd, &path);
                let made =
                    HostDescriptor::create_directory_at(&mut state.filesystem(), fd, path).await;
                Ok((lift(made)?,))
            })
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.set-size",
        |mut store, (fd, size): (Resource<Descriptor>, u64)| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                let fd_again = Resource::new_borrow(fd.rep());
                let stat = lift(HostDescriptor::stat(&mut state.filesystem(), fd_again).await)?;
                let current = stat.as_ref().map(|stat| stat.size).unwrap_or(0);
                if dirs_of(state)
                    .write_budget
                    .spend(size.saturating_sub(current))
                    .is_err()
                {
                    return Ok((Err(ErrorCode::Quota),));
                }
                let set = HostDescriptor::set_size(&mut state.filesystem(), fd, size).await;
                Ok((lift(set)?,))
            })
        },
    )?;
    types.func_wrap(
        "[method]descriptor.write-via-stream",
        |mut store, (fd, offset): (Resource<Descriptor>, u64)| {
            let state: &mut T = store.data_mut();
            let stream = HostDescriptor::write_via_stream(&mut state.filesystem(), fd, offset);
            Ok((counted_stream(state, stream)?,))
        },
    )?;
    types.func_wrap(
        "[method]descriptor.append-via-stream",
        |mut store, (fd,): (Resource<Descriptor>,)| {
            let state: &mut T = store.data_mut();
            let stream = HostDescriptor::append_via_stream(&mut state.filesystem(), fd);
            Ok((counted_stream(state, stream)?,))
        },
    )?;
    types.func_wrap_async(
        "[method]descriptor.symlink-at",
        |mut store, (fd, target, link): (Resource<Descriptor>, String, String)| {
            Box::new(async move {
                let state: &mut T = store.data_mut();
                if let Some(reason) = symlink_refusal(&target, &link) {
                    state.deny(reason);
                    return Ok((Err(ErrorCode::NotPermitted),));
                }
                let made =
                    HostDescriptor::symlink_at(&mut state.filesystem(), fd, target, link).await;
                Ok((lift(made)?,))
            })
        },
    )?;
    linker
        .instance(FILESYSTEM_PREOPENS)?
        .func_wrap("get-directories", |mut store, (): ()| {
            let state: &mut T = store.data_mut();
            let directories = state.filesystem().get_directories()?;
            if let Some(outside) = dirs_of(state).outside.as_mut() {
                for (descriptor, guest_path) in &directories {
                    if guest_path == super::nowhere::ROOT {
                        outside.note_root(descriptor.rep());
                    }
                }
            }
            Ok((directories,))
        })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Why a guest may not make the symlink `link` → `target`, if it may not.
///
/// Only a link that points down is made: a relative target without `..`.
/// Any `..` is refused, not only one that climbs out at once, because a
/// directory renamed later moves its links with it: `a/b/l -> ../../x`
/// stays inside until `a/b` becomes `c`. A link that only descends
/// resolves under its own directory wherever that directory goes.
/// (Absolute targets are also refused by cap-std beneath this.)
fn symlink_refusal(target: &str, link: &str) -> Option<String> {
    let climbs = target.split('/').any(|part| part == "..");
    if target.starts_with('/') || climbs || target.is_empty() {
        Some(format!(
            "making the symlink `{link}` -> `{target}` was refused: a task may only make \
             symlinks that point down inside its granted directory (relative, without \
             `..`), so that none can lead out of it (grants.dirs)"
        ))
    } else {
        None
    }
}

/// Why opening `path` in a granted directory was refused, naming the grant.
fn open_refusal(path: &str, wrote_to_read_only: bool) -> String {
    if wrote_to_read_only {
        return format!(
            "writing `{path}`: the directory is granted read-only (grants.dirs needs \
             \"write\": true)"
        );
    }
    let mut depth = 0i32;
    let mut leaves = path.starts_with('/');
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                depth -= 1;
                leaves |= depth < 0;
            }
            _ => depth += 1,
        }
    }
    if leaves {
        format!("`{path}` leaves its granted directory (grants.dirs)")
    } else {
        format!("`{path}` resolves out of its granted directory through a symlink (grants.dirs)")
    }
}

/// A filesystem call's result as the guest receives it: an error code, or
/// a trap for what is not one.
fn lift<V>(result: FsResult<V>) -> wasmtime::Result<Result<V, ErrorCode>> {
    match result {
        Ok(value) => Ok(Ok(value)),
        Err(err) => err.downcast().map(Err),
    }
}

/// Replaces the stream a file write opened with one that counts its bytes.
fn counted_stream<T: AttemptView>(
    state: &mut T,
    opened: FsResult<Resource<DynOutputStream>>,
) -> wasmtime::Result<Result<Resource<DynOutputStream>, ErrorCode>> {
    let stream = match lift(opened)? {
        Ok(stream) => stream,
        Err(code) => return Ok(Err(code)),
    };
    let budget = Arc::clone(&dirs_of(state).write_budget);
    let table = state.ctx().table;
    let inner = table.delete(stream)?;
    let counted: DynOutputStream = Box::new(CountedFileStream { inner, budget });
    Ok(Ok(table.push(counted)?))
}

/// A file's output stream whose writes are taken from the write budget.
struct CountedFileStream {
    inner: DynOutputStream,
    budget: Arc<WriteBudget>,
}

impl OutputStream for CountedFileStream {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.budget
            .spend(bytes.len() as u64)
            .map_err(|reason| StreamError::LastOperationFailed(wasmtime::Error::msg(reason)))?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        self.inner.check_write()
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CountedFileStream {
    async fn ready(&mut self) {
        self.inner.ready().await
    }
}

#[cfg(test)]
mod tests {
    use super::symlink_refusal;

    #[test]
    fn only_symlinks_that_point_down_are_made() {
        for allowed in ["b", "a/b", "./a", "a/./b"] {
            assert_eq!(symlink_refusal(allowed, "l"), None, "{allowed}");
        }
        for refused in ["..", "../x", "a/../b", "a/..", "/etc", "", "../../../.."] {
            let reason = symlink_refusal(refused, "esc").expect(refused);
            assert!(
                reason.contains("`esc`") && reason.contains("grants.dirs"),
                "{reason}"
            );
        }
    }
}
