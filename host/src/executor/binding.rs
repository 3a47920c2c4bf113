//! Whether a call binds to a task's parameters, checked before it runs,
//! the way the guest binds it: positional arguments first (with the
//! previous result in front), then keywords by name.
//!
//! A Rust task's parameters are plain names. A Python task lists its
//! parameters as Python's own signature syntax spells them: `/` ends the
//! positional-only ones, `*` (alone) starts the keyword-only ones, `*args`
//! takes any further positionals, `**kwargs` any further keywords.

use wfhost_canvas::Signature;

use crate::runtime::{ParamInfo, TaskInfo};

/// Keyword arguments of one call reported one by one at most.
const MOST_KWARG_PROBLEMS: usize = 10;

/// A task's parameters sorted by how an argument may reach them.
struct Kinds<'a> {
    /// Those a positional argument fills, in order.
    positional: Vec<&'a ParamInfo>,
    /// How many of `positional` a keyword may not fill.
    positional_only: usize,
    /// Those only a keyword fills.
    keyword_only: Vec<&'a ParamInfo>,
    /// Whether extra positionals are taken (`*args`).
    var_positional: bool,
    /// Whether extra keywords are taken (`**kwargs`).
    var_keyword: bool,
}

impl<'a> Kinds<'a> {
    fn of(params: &'a [ParamInfo]) -> Self {
        let mut kinds = Kinds {
            positional: Vec::new(),
            positional_only: 0,
            keyword_only: Vec::new(),
            var_positional: false,
            var_keyword: false,
        };
        let mut keyword_only = false;
        for param in params {
            let name = param.name.as_str();
            if name == "/" {
                kinds.positional_only = kinds.positional.len();
            } else if name == "*" {
                keyword_only = true;
            } else if name.starts_with("**") {
                kinds.var_keyword = true;
            } else if name.starts_with('*') {
                kinds.var_positional = true;
                keyword_only = true;
            } else if keyword_only {
                kinds.keyword_only.push(param);
            } else {
                kinds.positional.push(param);
            }
        }
        kinds
    }

    /// The parameter a keyword `name` fills, and its positional index.
    fn by_keyword(&self, name: &str) -> Option<(Option<usize>, &'a ParamInfo)> {
        let positional = self
            .positional
            .iter()
            .enumerate()
            .skip(self.positional_only);
        positional
            .map(|(index, param)| (Some(index), *param))
            .chain(self.keyword_only.iter().map(|param| (None, *param)))
            .find(|(_, param)| param.name == name)
    }
}

#[cfg(test)]
fn check_binding(task: &TaskInfo, signature: &Signature, receives_input: bool) -> Vec<String> {
    binding_problems(task, &Kinds::of(&task.params), signature, receives_input)
}

/// What is wrong with calling `task` as `signature` says (with the
/// previous result prepended when `receives_input`), one line each: the
/// arguments that do not bind, or else those that do not fit their
/// parameters' types.
pub(super) fn check_call(
    task: &TaskInfo,
    signature: &Signature,
    receives_input: bool,
) -> Vec<String> {
    let kinds = Kinds::of(&task.params);
    let problems = binding_problems(task, &kinds, signature, receives_input);
    match problems.is_empty() {
        true => misfits(task, &kinds, signature, receives_input),
        false => problems,
    }
}

/// The arguments of the call that do not bind to the task's parameters.
fn binding_problems(
    task: &TaskInfo,
    kinds: &Kinds<'_>,
    signature: &Signature,
    receives_input: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let prepended = usize::from(receives_input && !signature.immutable);
    let positional = signature.args.len() + prepended;
    let counting = if prepended == 1 {
        " (counting the previous result)"
    } else {
        ""
    };
    let slots = kinds.positional.len();
    if positional > slots && !kinds.var_positional {
        problems.push(format!(
            "{}() takes {slots} positional argument{} but {positional} would be given{counting}",
            task.name,
            if slots == 1 { "" } else { "s" },
        ));
    }
    let mut kwarg_problems = 0;
    for name in signature.kwargs.keys() {
        let problem = match kinds.by_keyword(name) {
            None if kinds.var_keyword => continue,
            None => match kinds.positional[..kinds.positional_only]
                .iter()
                .any(|param| &param.name == name)
            {
                true => format!(
                    "{}() got a positional-only argument '{name}' as a keyword",
                    task.name
                ),
                false => format!(
                    "{}() has no parameter '{}'",
                    task.name,
                    crate::text::clipped(name, 64)
                ),
            },
            Some((Some(index), _)) if index < positional => format!(
                "{}() would get multiple values for argument '{name}'{counting}",
                task.name
            ),
            Some(_) => continue,
        };
        kwarg_problems += 1;
        if kwarg_problems <= MOST_KWARG_PROBLEMS {
            problems.push(problem);
        }
    }
    if kwarg_problems > MOST_KWARG_PROBLEMS {
        problems.push(format!(
            "{}() … and {} more keyword arguments that do not bind",
            task.name,
            kwarg_problems - MOST_KWARG_PROBLEMS
        ));
    }
    let positional_params = kinds.positional.iter().enumerate();
    let missing = positional_params
        .filter(|(index, param)| {
            // A keyword never fills a positional-only parameter.
            let by_keyword =
                *index >= kinds.positional_only && signature.kwargs.contains_key(&param.name);
            *index >= positional && !by_keyword
        })
        .map(|(_, param)| *param)
        .chain(
            kinds
                .keyword_only
                .iter()
                .copied()
                .filter(|param| !signature.kwargs.contains_key(&param.name)),
        );
    for param in missing.filter(|param| !param.optional) {
        problems.push(format!(
            "{}() would miss required argument '{}'{counting}",
            task.name, param.name
        ));
    }
    problems
}

#[cfg(test)]
fn argument_misfits(task: &TaskInfo, signature: &Signature, receives_input: bool) -> Vec<String> {
    misfits(task, &Kinds::of(&task.params), signature, receives_input)
}

/// The arguments of calling `task` as `signature` says that do not fit
/// the types its plugin describes, one line each: which argument, where
/// in it, what the parameter takes and what it would get.
fn misfits(
    task: &TaskInfo,
    kinds: &Kinds<'_>,
    signature: &Signature,
    receives_input: bool,
) -> Vec<String> {
    let Some(schema) = &task.schema else {
        return Vec::new();
    };
    let prepended = usize::from(receives_input && !signature.immutable);
    let schema_of = |param: &ParamInfo| {
        let index = task.params.iter().position(|p| std::ptr::eq(p, param))?;
        schema.params.get(index)
    };
    // Where each argument is, in words only once one does not fit.
    enum Place<'a> {
        Positional(usize),
        Keyword(&'a str),
    }
    let positional = signature
        .args
        .iter()
        .enumerate()
        .filter_map(|(index, value)| {
            let param = kinds.positional.get(index + prepended)?;
            Some((Place::Positional(index), value, *param))
        });
    let keywords = signature.kwargs.iter().filter_map(|(name, value)| {
        let (_, param) = kinds.by_keyword(name)?;
        Some((Place::Keyword(name), value, param))
    });
    let mut problems = Vec::new();
    for (place, value, param) in positional.chain(keywords) {
        let Some(misfit) =
            schema_of(param).and_then(|accepted| crate::typing::misfit(value, accepted))
        else {
            continue;
        };
        let at = match place {
            Place::Positional(index) => format!("args[{index}]"),
            Place::Keyword(name) => format!("kwargs.{}", crate::text::clipped(name, 64)),
        };
        problems.push(format!(
            "{}() argument '{}' ({}) at {at}{}: expected {}, got {}",
            task.name, param.name, param.type_name, misfit.at, misfit.expected, misfit.found
        ));
        if problems.len() >= MOST_KWARG_PROBLEMS {
            break;
        }
    }
    problems
}

/// The parameter the previous step's result fills when `task` is called
/// as `signature` with it prepended, and that parameter's schema, where
/// the plugin describes the task.
pub(super) fn input_parameter<'a>(
    task: &'a TaskInfo,
    signature: &Signature,
) -> Option<(&'a ParamInfo, &'a serde_json::Value)> {
    if signature.immutable {
        return None;
    }
    let schema = task.schema.as_ref()?;
    let first = *Kinds::of(&task.params).positional.first()?;
    let index = task.params.iter().position(|p| std::ptr::eq(p, first))?;
    Some((first, schema.params.get(index)?))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn task(params: &[(&str, bool)]) -> TaskInfo {
        TaskInfo {
            name: "f".into(),
            params: params
                .iter()
                .map(|(name, optional)| ParamInfo {
                    name: name.to_string(),
                    type_name: String::new(),
                    optional: *optional,
                })
                .collect(),
            doc: String::new(),
            returns: String::new(),
            schema: None,
        }
    }

    fn call(args: serde_json::Value, kwargs: serde_json::Value) -> Signature {
        serde_json::from_value(json!({"task": "p.f", "args": args, "kwargs": kwargs})).unwrap()
    }

    #[test]
    fn arguments_are_checked_against_the_types_where_known() {
        let mut f = task(&[("a", false), ("b", true)]);
        let integer = json!({"type": "integer", "minimum": 0, "maximum": 255});
        f.schema = Some(crate::runtime::TaskSchema {
            params: vec![integer.clone(), json!({"type": "array", "items": integer})],
            returns: std::sync::Arc::new(json!({})),
        });
        assert!(argument_misfits(&f, &call(json!([1, [2, 3]]), json!({})), false).is_empty());
        assert_eq!(
            argument_misfits(&f, &call(json!(["one"]), json!({"b": [1, 256]})), false),
            [
                "f() argument 'a' () at args[0]: expected an integer from 0 to 255, got the string \"one\"",
                "f() argument 'b' () at kwargs.b[1]: expected an integer from 0 to 255, got the integer 256",
            ]
        );
        // With the previous result in front, the first argument is `b`.
        assert_eq!(
            argument_misfits(&f, &call(json!([[-1]]), json!({})), true),
            [
                "f() argument 'b' () at args[0][0]: expected an integer from 0 to 255, got the integer -1"
            ]
        );
        f.schema = None;
        assert!(argument_misfits(&f, &call(json!(["one"]), json!({})), false).is_empty());
    }

    #[test]
    fn plain_parameters_bind_by_position_then_keyword() {
        let f = task(&[("a", false), ("b", true)]);
        assert!(check_binding(&f, &call(json!([1]), json!({"b": 2})), false).is_empty());
        assert_eq!(
            check_binding(&f, &call(json!([1, 2, 3]), json!({})), false),
            ["f() takes 2 positional arguments but 3 would be given"]
        );
        assert_eq!(
            check_binding(&f, &call(json!([]), json!({"c": 1})), false),
            [
                "f() has no parameter 'c'",
                "f() would miss required argument 'a'"
            ]
        );
        assert_eq!(
            check_binding(&f, &call(json!([1]), json!({"a": 1})), true),
            ["f() would get multiple values for argument 'a' (counting the previous result)"]
        );
    }

    #[test]
    fn python_star_parameters_take_the_rest() {
        let f = task(&[("a", false), ("*args", true), ("**kwargs", true)]);
        assert!(check_binding(&f, &call(json!([1, 2, 3]), json!({"z": 1})), true).is_empty());
        assert_eq!(
            check_binding(&f, &call(json!([]), json!({})), false),
            ["f() would miss required argument 'a'"]
        );
    }

    #[test]
    fn python_positional_only_names_go_to_the_var_keyword_parameter() {
        let f = task(&[("a", false), ("/", false), ("**rest", true)]);
        assert!(check_binding(&f, &call(json!([1]), json!({"a": 2})), false).is_empty());
        assert_eq!(
            check_binding(&f, &call(json!([]), json!({"a": 2})), false),
            ["f() would miss required argument 'a'"]
        );
    }

    #[test]
    fn python_keyword_only_and_positional_only_parameters() {
        let f = task(&[
            ("a", false),
            ("/", false),
            ("b", false),
            ("*", false),
            ("c", false),
        ]);
        assert!(check_binding(&f, &call(json!([1, 2]), json!({"c": 3})), false).is_empty());
        assert!(check_binding(&f, &call(json!([1]), json!({"b": 2, "c": 3})), false).is_empty());
        assert_eq!(
            check_binding(&f, &call(json!([1, 2, 3]), json!({})), false),
            [
                "f() takes 2 positional arguments but 3 would be given",
                "f() would miss required argument 'c'"
            ]
        );
        assert_eq!(
            check_binding(&f, &call(json!([]), json!({"a": 1, "b": 2, "c": 3})), false),
            [
                "f() got a positional-only argument 'a' as a keyword",
                "f() would miss required argument 'a'"
            ]
        );
    }
}
