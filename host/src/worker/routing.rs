//! Where messages go: kombu's list keys for a queue and a priority, and
//! which queue a task is sent to (research/celery-redis.md §2.1, §9.2).

use wfhost_canvas::{CHUNKS, MAP, STARMAP};

/// kombu's separator between a queue's name and its priority step.
pub const PRIORITY_SEP: &str = "\x06\x16";

/// kombu's priority steps: 0–2 on the queue's own list, 3–5, 6–8, 9.
const PRIORITY_STEPS: [u8; 4] = [0, 3, 6, 9];

/// The queues this worker consumes and the table it routes follow-ups by.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The queues consumed, the first one also where served tasks go.
    pub queues: Vec<String>,
    /// Plugin names served here: `math.add` goes to the first queue.
    pub served: Vec<String>,
    /// Where every other task goes (Celery's `task_default_queue`).
    pub default_queue: String,
}

/// The list a message of `priority` on `queue` is pushed to.
pub fn list_key(queue: &str, priority: u8) -> String {
    let step = PRIORITY_STEPS
        .iter()
        .rev()
        .find(|step| priority >= **step)
        .copied()
        .unwrap_or(0);
    if step == 0 {
        queue.to_string()
    } else {
        format!("{queue}{PRIORITY_SEP}{step}")
    }
}

/// The lists a claim on `queues` looks at, with their queue, in kombu's
/// order: every queue's priority 0 list, then every queue's 3, and so on.
pub fn claim_keys(queues: &[String]) -> Vec<(String, String)> {
    PRIORITY_STEPS
        .iter()
        .flat_map(|step| {
            queues
                .iter()
                .map(move |queue| (list_key(queue, *step), queue.clone()))
        })
        .collect()
}

impl Routing {
    /// The queue of a task: the one its options name, else the first of
    /// this worker's when this worker serves it, else the default.
    pub fn queue_for(&self, task: &str, explicit: Option<&str>) -> String {
        if let Some(queue) = explicit.filter(|q| !q.is_empty()) {
            return queue.to_string();
        }
        let plugin = wfhost_canvas::name::plugin_of(task).unwrap_or(task);
        // Celery's built-ins are served by every worker, as by Celery's.
        let builtin = [super::ACCUMULATE, MAP, STARMAP, CHUNKS].contains(&task);
        let served = builtin || self.served.iter().any(|name| name == plugin);
        match self.queues.first() {
            Some(queue) if served => queue.clone(),
            _ => self.default_queue.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_routes_are_kombus() {
        let routing = Routing {
            queues: vec!["wfhost".into(), "hi".into()],
            served: vec!["math".into()],
            default_queue: "celery".into(),
        };
        assert_eq!(list_key("q", 0), "q");
        assert_eq!(list_key("q", 2), "q");
        assert_eq!(list_key("q", 5), "q\x06\x163");
        assert_eq!(list_key("q", 9), "q\x06\x169");
        let keys: Vec<String> = claim_keys(&routing.queues)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys[..3],
            ["wfhost".to_string(), "hi".into(), "wfhost\x06\x163".into()]
        );
        assert_eq!(routing.queue_for("math.add", None), "wfhost");
        assert_eq!(routing.queue_for("tasks.add", None), "celery");
        assert_eq!(routing.queue_for("tasks.add", Some("other")), "other");
    }
}
