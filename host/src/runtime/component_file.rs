//! Reading a plugin's component file: a regular file of bounded size, and
//! what to say of bytes that are not a component.

use std::path::Path;

const WASM_MAGIC: &[u8] = b"\0asm";
/// Version and layer of a core module; components use another layer.
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Explains why bytes that failed to compile are not a component.
pub(super) fn explain_not_a_component(bytes: &[u8], compile_error: String) -> String {
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

pub(super) enum ReadError {
    Io(std::io::Error),
    NotAPluginFile(String),
}

/// The component file at `path`, open, which must be a regular file of at
/// most [`MAX_COMPONENT_BYTES`]: a device would be read forever and a pipe
/// waited on forever.
pub(super) fn open_component(path: &Path) -> Result<(std::fs::File, std::fs::Metadata), ReadError> {
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
pub(super) fn read_component(
    file: std::fs::File,
    metadata: &std::fs::Metadata,
) -> Result<Vec<u8>, ReadError> {
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
