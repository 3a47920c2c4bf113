//! The library's layers, and a test that no module imports one above it:
//! the arrows of `docs/architecture.md`, kept true by the build.

/// Each top-level module's layer, lowest first. A module may use those of
/// lower layers only; a new module must be placed here.
const LAYERS: &[&[&str]] = &[
    &[
        "text",
        "lock",
        "histogram",
        "names",
        "sha256",
        "memory",
        "unique",
    ],
    &["json"],
    &["grants", "plan", "prometheus"],
    &["records"],
    &["store", "spec", "runtime"],
    &["typing", "content"],
    &["executor"],
    &["durable"],
    &["lifecycle"],
    &["schedule"],
    &["service"],
    &["worker"],
];

/// The layer of `module`, if it has one.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The modules `source` names as `crate::NAME`, outside comments.
fn imported(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() {
                names.push(name);
            }
        }
    }
    names
}

#[test]
fn no_module_imports_one_above_it() {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut wrong = Vec::new();
    let mut files = vec![source.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(
                std::fs::read_dir(&path)
                    .unwrap()
                    .map(|entry| entry.unwrap().path()),
            );
            continue;
        }
        let relative = path.strip_prefix(&source).unwrap();
        let top = relative.iter().next().unwrap().to_string_lossy();
        let module = top.trim_end_matches(".rs");
        if ["lib", "main", "cli", "layers"].contains(&module)
            || path.extension() != Some("rs".as_ref())
        {
            continue;
        }
        let Some(own) = layer_of(module) else {
            wrong.push(format!("{module} has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(&path).unwrap();
        // A module's tests may reach wherever they must.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for name in imported(code) {
            match layer_of(&name) {
                Some(theirs) if theirs < own || name == module => {}
                Some(_) => wrong.push(format!(
                    "{} imports {name}, a layer at or above its own",
                    relative.display()
                )),
                None => wrong.push(format!(
                    "{} imports {name}, which has no layer",
                    relative.display()
                )),
            }
        }
    }
    wrong.sort();
    wrong.dedup();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn imports_are_read_from_code_not_comments() {
    let source = "use crate::store::Store; // see crate::service\n/// [`crate::worker`]\nlet x = crate::text::clipped(y);";
    assert_eq!(imported(source), ["store", "text"]);
}
