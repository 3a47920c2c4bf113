//! Progress on a terminal: a bar of steps done, the rate and the time
//! left at that rate, the current step, and the time elapsed. Piped output
//! gets none of it.

use std::fmt::Write;
use std::io::IsTerminal;
use std::time::Duration;

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
