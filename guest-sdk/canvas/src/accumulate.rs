//! Celery's built-in tasks that canvases name. `celery.accumulate` gives
//! its arguments as a list, or the one at `index`: Celery ends a group with
//! it where one step must hold the group's list (a group that replaced a
//! linked task), and wfhost does the same for maps, so that callbacks see
//! the list; every host runs it itself, with no plugin. `celery.map` and
//! `celery.starmap` call one task for each item of a list, within one task
//! of their own: the host's chain files read them as chords of their calls,
//! and `wfhost worker` serves them as Celery's worker does.

use serde_json::{Map, Value};

use crate::{Canvas, Chord, Signature};

/// The name of Celery's built-in `celery.accumulate`.
pub const ACCUMULATE: &str = "celery.accumulate";
/// The name of Celery's built-in `celery.map`: `task.map(it)`.
pub const MAP: &str = "celery.map";
/// The name of Celery's built-in `celery.starmap`: `task.starmap(it)`.
pub const STARMAP: &str = "celery.starmap";
/// The name of Celery's built-in `celery.chunks`: `task.chunks(it, n)`,
/// which sends a group of `celery.starmap` tasks, each over `n` items.
pub const CHUNKS: &str = "celery.chunks";

/// `celery.accumulate.s(index=0)`: the step that gives the list a chord's
/// header made.
pub fn accumulate_first() -> Signature {
    let mut signature = Signature::new(ACCUMULATE);
    signature.kwargs.insert("index".into(), Value::from(0));
    signature
}

/// A chord of `members` whose body is [`accumulate_first`]: a group whose
/// list one step holds, for callbacks to get (a map; a group that replaces
/// a task, as Celery's `Task.replace` makes it). Being a chord's header,
/// the members are neither unrolled (one is still a list of one) nor
/// flattened into a group around them.
pub fn accumulated(members: Vec<Canvas>) -> Canvas {
    Canvas::Chord(Chord {
        header: members,
        body: Box::new(Canvas::Signature(accumulate_first())),
    })
}

/// What `celery.accumulate` gives when called with `args` and `kwargs`:
/// the arguments as a list, or the one at `kwargs.index` (counted from the
/// end when negative, as Python indexes); an index that names no argument,
/// or keywords other than `index`, are the error it fails with.
pub fn accumulate(args: &[Value], kwargs: &Map<String, Value>) -> Result<Value, String> {
    let Some(index) = accumulate_index(kwargs)? else {
        return Ok(Value::Array(args.to_vec()));
    };
    let position = if index < 0 {
        i64::try_from(args.len())
            .ok()
            .and_then(|len| len.checked_add(index))
    } else {
        Some(index)
    };
    position
        .and_then(|at| usize::try_from(at).ok())
        .and_then(|at| args.get(at))
        .cloned()
        .ok_or_else(|| {
            format!(
                "{ACCUMULATE}: index {index} is out of range of {} arguments",
                args.len()
            )
        })
}

/// The `index` that `celery.accumulate` is called with, if any, or why its
/// keywords are not ones it takes.
pub fn accumulate_index(kwargs: &Map<String, Value>) -> Result<Option<i64>, String> {
    if let Some(other) = kwargs.keys().find(|key| *key != "index") {
        return Err(format!("{ACCUMULATE} takes no keyword `{other}`"));
    }
    match kwargs.get("index") {
        None | Some(Value::Null) => Ok(None),
        Some(index) => index
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("{ACCUMULATE}'s `index` must be an integer, not {index}")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn gives_its_arguments_or_the_one_at_index() {
        let args = [json!([1, 2]), json!(3)];
        let index = |i: Value| Map::from_iter([("index".to_string(), i)]);
        assert_eq!(accumulate(&args, &Map::new()), Ok(json!([[1, 2], 3])));
        assert_eq!(accumulate(&args, &index(json!(0))), Ok(json!([1, 2])));
        assert_eq!(accumulate(&args, &index(json!(-1))), Ok(json!(3)));
        assert_eq!(
            accumulate(&args, &index(Value::Null)),
            Ok(json!([[1, 2], 3]))
        );
        assert!(accumulate(&args, &index(json!(2))).is_err());
        assert!(accumulate(&args, &index(json!(-3))).is_err());
        assert!(accumulate(&args, &index(json!("0"))).is_err());
        let other = Map::from_iter([("x".to_string(), json!(1))]);
        assert!(accumulate(&args, &other).is_err());
    }
}
