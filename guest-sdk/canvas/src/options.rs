//! Step options: Celery's names and units where Celery has them.

use std::fmt;

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Signature;

/// A resource limit that may be switched off explicitly.
///
/// In JSON a number sets the limit and `null` removes it; leaving the key out
/// inherits the limit from the workflow's defaults or the host.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Limit<T> {
    /// No limit beyond the host's ceiling.
    Unlimited,
    /// At most this much.
    Value(T),
}

impl<T: Serialize> Serialize for Limit<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Limit::Unlimited => serializer.serialize_none(),
            Limit::Value(value) => value.serialize(serializer),
        }
    }
}

/// A limit as a field: absent (inherit), `null` (no limit) or a number.
/// Serde alone would read `null` as absent.
fn limit<'de, D, T>(deserializer: D) -> Result<Option<Limit<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Some(match Option::<T>::deserialize(deserializer)? {
        Some(value) => Limit::Value(value),
        None => Limit::Unlimited,
    }))
}

/// Celery's `retry_backoff`: `true` for a factor of 1 s, or the factor itself.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RetryBackoff {
    /// `true`: exponential backoff with a factor of one second; `false`: none.
    Enabled(bool),
    /// Exponential backoff with this factor, in seconds.
    Factor(f64),
}

impl RetryBackoff {
    /// The backoff factor in seconds, or `None` when backoff is off.
    pub fn factor(self) -> Option<f64> {
        match self {
            RetryBackoff::Enabled(true) => Some(1.0),
            RetryBackoff::Enabled(false) => None,
            RetryBackoff::Factor(factor) if factor > 0.0 => Some(factor),
            RetryBackoff::Factor(_) => None,
        }
    }
}

/// When a step that has not started expires.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Expires {
    /// Seconds after the step became ready to run (its input arrived).
    After(f64),
    /// A moment, in ISO 8601.
    At(String),
}

impl<'de> Deserialize<'de> for RetryBackoff {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match deserializer.deserialize_any(Scalar("true, false or seconds"))? {
                ScalarValue::Bool(enabled) => RetryBackoff::Enabled(enabled),
                ScalarValue::Number(factor) => RetryBackoff::Factor(factor),
                ScalarValue::Text(_) => {
                    return Err(de::Error::custom(
                        "expected true, false or seconds, found a string",
                    ));
                }
            },
        )
    }
}

impl<'de> Deserialize<'de> for Expires {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(
            match deserializer.deserialize_any(Scalar("seconds or an ISO 8601 moment"))? {
                ScalarValue::Number(seconds) => Expires::After(seconds),
                ScalarValue::Text(at) => Expires::At(at),
                ScalarValue::Bool(_) => {
                    return Err(de::Error::custom(
                        "expected seconds or an ISO 8601 moment, found a boolean",
                    ));
                }
            },
        )
    }
}

/// A boolean, a number or a string, read by what it is: serde's untagged
/// enums buffer a number that serde_json keeps exactly (a decimal) as a map
/// no `f64` reads back, so the options that take either read through this.
struct Scalar(&'static str);

enum ScalarValue {
    Bool(bool),
    Number(f64),
    Text(String),
}

impl<'de> Visitor<'de> for Scalar {
    type Value = ScalarValue;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.0)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<ScalarValue, E> {
        Ok(ScalarValue::Bool(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<ScalarValue, E> {
        Ok(ScalarValue::Number(value as f64))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<ScalarValue, E> {
        Ok(ScalarValue::Number(value as f64))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<ScalarValue, E> {
        Ok(ScalarValue::Number(value))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<ScalarValue, E> {
        Ok(ScalarValue::Text(value.to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ScalarValue, A::Error> {
        // How serde_json hands a number it keeps exactly; anything else
        // that is a map is refused by `Number` itself.
        let number = serde_json::Number::deserialize(MapAccessDeserializer::new(map))?;
        number
            .as_f64()
            .map(ScalarValue::Number)
            .ok_or_else(|| de::Error::custom(format!("{number} is out of range")))
    }
}

/// Options of one step. Every field left `None` inherits from the workflow's
/// `defaults`, then from the host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StepOptions {
    /// Seconds to wait before the step's first attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub countdown: Option<f64>,
    /// The earliest moment of the step's first attempt, in ISO 8601
    /// (Celery's `eta`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eta: Option<String>,
    /// When the step expires if it has not started (Celery's `expires`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Expires>,
    /// How many further attempts a `retry` error may cause.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Seconds between attempts when the task names no countdown and backoff is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_retry_delay: Option<f64>,
    /// Exponential backoff between attempts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryBackoff>,
    /// Upper bound of the backoff delay, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff_max: Option<f64>,
    /// Randomize backoff delays (full jitter).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_jitter: Option<bool>,
    /// Wall-clock limit of one attempt, in seconds.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "limit")]
    pub time_limit: Option<Limit<f64>>,
    /// Fuel (wasm instructions, roughly) one attempt may use.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "limit")]
    pub fuel: Option<Limit<u64>>,
    /// Linear memory one attempt may use, in MiB.
    #[serde(skip_serializing_if = "Option::is_none", deserialize_with = "limit")]
    pub memory_mb: Option<Limit<u64>>,
    /// Whether resource-limit failures (fuel, memory, time) are retried too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_on_limit: Option<bool>,
    /// Signatures run with the step's result when it succeeds.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<Signature>,
    /// Signatures run with the error record when the step fails.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub link_error: Vec<Signature>,
}

impl StepOptions {
    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == StepOptions::default()
    }

    /// These options with every unset field taken from `defaults`.
    ///
    /// Callbacks (`link`, `link_error`) belong to one step and are never
    /// inherited.
    pub fn or(&self, defaults: &StepOptions) -> StepOptions {
        StepOptions {
            countdown: self.countdown.or(defaults.countdown),
            eta: self.eta.clone().or_else(|| defaults.eta.clone()),
            expires: self.expires.clone().or_else(|| defaults.expires.clone()),
            max_retries: self.max_retries.or(defaults.max_retries),
            default_retry_delay: self.default_retry_delay.or(defaults.default_retry_delay),
            retry_backoff: self.retry_backoff.or(defaults.retry_backoff),
            retry_backoff_max: self.retry_backoff_max.or(defaults.retry_backoff_max),
            retry_jitter: self.retry_jitter.or(defaults.retry_jitter),
            time_limit: self.time_limit.or(defaults.time_limit),
            fuel: self.fuel.or(defaults.fuel),
            memory_mb: self.memory_mb.or(defaults.memory_mb),
            retry_on_limit: self.retry_on_limit.or(defaults.retry_on_limit),
            link: self.link.clone(),
            link_error: self.link_error.clone(),
        }
    }
}
