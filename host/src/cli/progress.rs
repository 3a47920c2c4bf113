//! Progress on a terminal: a bar of steps done, the rate and the time
//! left at that rate, the current step, and the time elapsed. Piped output
//! gets none of it. And a plugin's first compile, which for a large one
//! takes many seconds, said rather than silent.

use std::fmt::Write;
use std::io::IsTerminal;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressState, ProgressStyle};
use wfhost::Observer;
use wfhost::records::StepRecord;

pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` planned steps when stderr is a terminal.
    pub fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let template = "{elapsed_precise} [{bar:30}] {human_pos}/{human_len} steps, \
                            {rate}/s, {eta} left  {msg}";
            if let Ok(style) = ProgressStyle::with_template(template) {
                let style = style.with_key("rate", |state: &ProgressState, out: &mut dyn Write| {
                    let _ = write!(out, "{:.0}", state.per_sec());
                });
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress { bar }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    fn say(&self, line: String) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

impl Observer for Progress {
    fn step_finished(&self, record: &StepRecord) {
        if let Some(bar) = &self.bar {
            // Replacements add steps the plan did not count.
            if bar.position() + 1 > bar.length().unwrap_or(0) {
                bar.inc_length(1);
            }
            bar.inc(1);
            bar.set_message(format!(
                "step {} {} {}",
                record.id,
                record.task,
                record.status.as_str()
            ));
        }
    }

    fn retrying(&self, record: &StepRecord, reason: &str, delay: Duration) {
        self.say(format!(
            "step {} ({}): attempt {} asked for a retry ({reason}); next attempt in {:.3} s",
            record.id,
            record.task,
            record.attempts,
            delay.as_secs_f64()
        ));
    }
}

/// How long a compile goes unsaid: most plugins compile in less.
const COMPILE_SAID_AFTER: Duration = Duration::from_millis(500);

/// Says that the component `file` is being compiled, once that has taken
/// [`COMPILE_SAID_AFTER`]: a spinner on a terminal, a line otherwise. It
/// ends when what is returned is dropped.
pub fn compiling(file: &str) -> Box<dyn std::any::Any> {
    let done = Arc::new((Mutex::new(false), Condvar::new()));
    let file = file.to_string();
    let watching = done.clone();
    let thread = std::thread::Builder::new()
        .name("wfhost-compiling".into())
        .spawn(move || say_compiling(&file, &watching))
        .ok();
    Box::new(Compiling { done, thread })
}

struct Compiling {
    done: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Compiling {
    fn drop(&mut self) {
        let (done, ended) = &*self.done;
        *done.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = true;
        ended.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits for the compile to end; says it is under way if it lasts.
fn say_compiling(file: &str, done: &(Mutex<bool>, Condvar)) {
    let started = Instant::now();
    let (lock, ended) = done;
    let finished = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let (finished, waited) = ended
        .wait_timeout_while(finished, COMPILE_SAID_AFTER, |finished| !*finished)
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !waited.timed_out() {
        return;
    }
    drop(finished);
    let line = format!("compiling {} (first use)…", file.escape_debug());
    if !std::io::stderr().is_terminal() {
        eprintln!("{line}");
        return;
    }
    let spinner = ProgressBar::new_spinner();
    spinner.set_message(line);
    spinner.enable_steady_tick(Duration::from_millis(100));
    let finished = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    drop(
        ended
            .wait_while(finished, |finished| !*finished)
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    spinner.finish_and_clear();
    eprintln!(
        "compiled {} in {:.1} s; later runs use the compiled form",
        file.escape_debug(),
        started.elapsed().as_secs_f64()
    );
}
