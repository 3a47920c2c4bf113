//! The one rule for a task's name, which every driver of a canvas follows:
//! `plugin.task`, split at the **last** dot. A plugin's name may hold dots
//! (`acme.math.add` is task `add` of plugin `acme.math`); a task's may not.

/// `task` split into its plugin and the task within it: none unless both
/// parts are there.
pub fn split(task: &str) -> Option<(&str, &str)> {
    task.rsplit_once('.')
        .filter(|(plugin, name)| !plugin.is_empty() && !name.is_empty())
}

/// The plugin part of a task name (`acme.math` for `acme.math.add`), if any.
pub fn plugin_of(task: &str) -> Option<&str> {
    split(task).map(|(plugin, _)| plugin)
}

/// The task part of a task name (`add` for `acme.math.add`); the whole
/// name when it has no plugin part.
pub fn task_of(task: &str) -> &str {
    split(task).map_or(task, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_name_splits_at_its_last_dot() {
        assert_eq!(split("math.add"), Some(("math", "add")));
        assert_eq!(split("acme.math.add"), Some(("acme.math", "add")));
        assert_eq!(plugin_of("acme.math.add"), Some("acme.math"));
        assert_eq!(task_of("acme.math.add"), "add");
        for whole in ["add", ".add", "math.", ""] {
            assert_eq!(split(whole), None, "{whole}");
            assert_eq!(task_of(whole), whole);
        }
    }
}
