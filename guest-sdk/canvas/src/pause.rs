//! The steps that wait for time or for the world rather than run a task:
//! a durable sleep (`{"sleep": "3s"}`) and a wait for a signal
//! (`{"wait": "approved", "timeout": "3d"}`). Each is a signature of a
//! built-in task that the host runs itself, with no plugin, so that every
//! rule of the canvas (ids, callbacks, groups) holds for them unchanged.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::Signature;

/// The built-in task of `{"sleep": DURATION}`.
pub const SLEEP: &str = "wfhost.sleep";
/// The built-in task of `{"wait": NAME, "timeout": DURATION}`.
pub const WAIT: &str = "wfhost.wait";
/// The plugin name the built-ins live under, which no plugin may take.
pub const BUILTIN_PLUGIN: &str = "wfhost";

/// The longest sleep or timeout: ten years, in seconds. A longer one is
/// a mistake, and every number from input is bounded.
pub const MAX_SECONDS: f64 = 10.0 * 365.0 * 86_400.0;

/// The longest signal name, in bytes.
pub const MAX_SIGNAL_NAME: usize = 200;

/// What a pausing step waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum Pause {
    /// Time: the step passes its input on once `seconds` have passed since
    /// it was reached.
    Sleep {
        /// How long, in seconds.
        seconds: f64,
    },
    /// A signal: the step's result is the payload of the oldest signal
    /// `signal` sent to the workflow and not yet taken.
    Wait {
        /// The signal's name.
        signal: String,
        /// How long to wait at most, in seconds; none waits for ever.
        timeout: Option<f64>,
    },
}

impl Pause {
    /// What `signature` waits for, if it is a pausing step; an error when
    /// it is one whose arguments are wrong.
    pub fn of(signature: &Signature) -> Option<Result<Pause, String>> {
        let pause = match signature.task.as_str() {
            SLEEP => sleep_of(&signature.kwargs),
            WAIT => wait_of(&signature.kwargs),
            _ => return None,
        };
        let pause = pause.and_then(|pause| {
            if signature.args.len() > 1 {
                return Err(format!(
                    "a {} takes no arguments of its own (it is given the previous result)",
                    pause.what()
                ));
            }
            Ok(pause)
        });
        Some(pause)
    }

    /// `sleep` or `wait`.
    pub fn what(&self) -> &'static str {
        match self {
            Pause::Sleep { .. } => "sleep",
            Pause::Wait { .. } => "wait",
        }
    }

    /// The built-in signature that does it.
    pub fn signature(&self) -> Signature {
        let mut kwargs = Map::new();
        let task = match self {
            Pause::Sleep { seconds } => {
                kwargs.insert("seconds".into(), seconds_value(*seconds));
                SLEEP
            }
            Pause::Wait { signal, timeout } => {
                kwargs.insert("signal".into(), Value::from(signal.as_str()));
                if let Some(timeout) = timeout {
                    kwargs.insert("timeout".into(), seconds_value(*timeout));
                }
                WAIT
            }
        };
        let mut signature = Signature::new(task);
        signature.kwargs = kwargs;
        signature
    }
}

/// A number of seconds as JSON: whole seconds as an integer.
fn seconds_value(seconds: f64) -> Value {
    if seconds.fract() == 0.0 && seconds <= MAX_SECONDS {
        Value::from(seconds as u64)
    } else {
        Value::from(seconds)
    }
}

fn sleep_of(kwargs: &Map<String, Value>) -> Result<Pause, String> {
    only_keys(kwargs, &["seconds"], "sleep")?;
    let seconds = kwargs
        .get("seconds")
        .ok_or("a sleep needs `seconds`")
        .and_then(|value| seconds(value).map_err(|_| "a sleep's `seconds` must be a number"));
    let seconds = seconds.map_err(str::to_string)?;
    Ok(Pause::Sleep {
        seconds: within_bounds(seconds, "sleep")?,
    })
}

fn wait_of(kwargs: &Map<String, Value>) -> Result<Pause, String> {
    only_keys(kwargs, &["signal", "timeout"], "wait")?;
    let signal = match kwargs.get("signal") {
        Some(Value::String(name)) => signal_name(name)?,
        _ => return Err("a wait needs `signal`, the signal's name".to_string()),
    };
    let timeout = match kwargs.get("timeout") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let timeout = seconds(value).map_err(|_| "a wait's `timeout` must be a number")?;
            Some(within_bounds(timeout, "wait's timeout")?)
        }
    };
    Ok(Pause::Wait { signal, timeout })
}

fn only_keys(kwargs: &Map<String, Value>, known: &[&str], what: &str) -> Result<(), String> {
    match kwargs.keys().find(|key| !known.contains(&key.as_str())) {
        Some(key) => Err(format!(
            "a {what} takes no keyword `{key}` (it takes {})",
            known.join(", ")
        )),
        None => Ok(()),
    }
}

fn seconds(value: &Value) -> Result<f64, ()> {
    value.as_f64().ok_or(())
}

fn within_bounds(seconds: f64, what: &str) -> Result<f64, String> {
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "a {what} lasts from 0 seconds to 10 years, not {seconds} seconds"
        ));
    }
    Ok(seconds)
}

/// `name` if it can name a signal: not empty, at most
/// [`MAX_SIGNAL_NAME`] bytes, no control characters or `/` (it is a part
/// of a URL path).
pub fn signal_name(name: &str) -> Result<String, String> {
    if name.is_empty() {
        return Err("a signal's name is empty".to_string());
    }
    if name.len() > MAX_SIGNAL_NAME {
        return Err(format!(
            "a signal's name is at most {MAX_SIGNAL_NAME} bytes, not {}",
            name.len()
        ));
    }
    if let Some(bad) = name.chars().find(|c| c.is_control() || *c == '/') {
        return Err(format!(
            "a signal's name has no control characters or `/`, found {bad:?} in {name:?}"
        ));
    }
    Ok(name.to_string())
}

/// Parses a duration as chain files and commands write it: a number of
/// seconds (`90`, `1.5`), or a string of numbers each with its unit —
/// `ms`, `s`, `m`, `h`, `d` — such as `"90s"`, `"15m"`, `"1h30m"`, `"7d"`.
/// Returns seconds, from 0 to [`MAX_SECONDS`].
pub fn parse_duration(value: &Value) -> Result<f64, String> {
    let seconds = match value {
        Value::Number(number) => number.as_f64().unwrap_or(f64::NAN),
        Value::String(text) => duration_text(text)?,
        _ => {
            return Err(
                "expected a duration: seconds, or a string such as \"90s\", \"15m\", \"1h\", \"7d\""
                    .to_string(),
            );
        }
    };
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(format!(
            "a duration is from 0 seconds to 10 years, not {value}"
        ));
    }
    Ok(seconds)
}

fn duration_text(text: &str) -> Result<f64, String> {
    let wrong = || {
        format!(
            "{text:?} is not a duration: write seconds, or numbers with units (ms, s, m, h, d) such as \"90s\", \"15m\", \"1h30m\", \"7d\""
        )
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(wrong());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(seconds);
    }
    let mut total = 0.0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(wrong)?;
        let number: f64 = rest[..digits].parse().map_err(|_| wrong())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            _ => return Err(wrong()),
        };
        total += number * unit;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// A step that passes its input on once `duration` has passed: a durable
/// sleep, which holds no slot while it waits and survives a restart.
pub fn sleep(duration: Duration) -> Signature {
    Pause::Sleep {
        seconds: duration.as_secs_f64().min(MAX_SECONDS),
    }
    .signature()
}

/// A step whose result is the payload of signal `signal` sent to its
/// workflow; with a `timeout`, it fails with kind `timed_out` if none came
/// by then.
pub fn wait(signal: impl Into<String>, timeout: Option<Duration>) -> Signature {
    Pause::Wait {
        signal: signal.into(),
        timeout: timeout.map(|timeout| timeout.as_secs_f64().min(MAX_SECONDS)),
    }
    .signature()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn durations_read_as_written() {
        let cases = [
            (json!(90), 90.0),
            (json!(1.5), 1.5),
            (json!("90s"), 90.0),
            (json!("15m"), 900.0),
            (json!("1h30m"), 5400.0),
            (json!("7d"), 604_800.0),
            (json!("250ms"), 0.25),
            (json!("2.5"), 2.5),
        ];
        for (value, seconds) in cases {
            assert_eq!(parse_duration(&value), Ok(seconds), "{value}");
        }
        for bad in [
            json!("3 days"),
            json!("h"),
            json!("5x"),
            json!(-1),
            json!("11000d"),
            json!(true),
            json!(""),
        ] {
            assert!(parse_duration(&bad).is_err(), "{bad} was read");
        }
    }

    #[test]
    fn a_pause_reads_back_from_its_signature() {
        let sleep = sleep(Duration::from_millis(1500));
        assert_eq!(Pause::of(&sleep), Some(Ok(Pause::Sleep { seconds: 1.5 })));
        let wait = wait("approved", Some(Duration::from_secs(30)));
        assert_eq!(wait.kwargs["timeout"], json!(30));
        assert_eq!(
            Pause::of(&wait),
            Some(Ok(Pause::Wait {
                signal: "approved".into(),
                timeout: Some(30.0)
            }))
        );
        assert_eq!(Pause::of(&Signature::new("math.add")), None);
    }

    #[test]
    fn a_pause_with_wrong_arguments_says_what_is_wrong() {
        let mut extra = sleep(Duration::from_secs(1));
        extra.args = vec![json!(1), json!(2)];
        let error = Pause::of(&extra).unwrap().unwrap_err();
        assert!(error.contains("takes no arguments"), "{error}");
        let mut unknown = wait("x", None);
        unknown.kwargs.insert("colour".into(), json!("red"));
        let error = Pause::of(&unknown).unwrap().unwrap_err();
        assert!(error.contains("`colour`"), "{error}");
        for bad in ["", "a/b", "tab\there"] {
            assert!(signal_name(bad).is_err(), "{bad:?}");
        }
    }
}
