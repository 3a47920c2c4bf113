//! Binds a call's JSON arguments to a task's parameters the way Python binds
//! a call: positional arguments first, then keyword arguments by name.

use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use crate::TaskError;
use crate::task::ParamInfo;

/// The arguments of one call, being bound to parameters. Each stays the
/// text the host sent until its parameter reads it, so a number is read
/// once, straight into the parameter's type.
#[derive(Debug)]
pub struct Arguments<'a> {
    task: &'static str,
    params: &'static [ParamInfo],
    /// One slot per parameter; `None` once taken or when not given.
    slots: Vec<Option<&'a RawValue>>,
}

impl<'a> Arguments<'a> {
    /// Parses the call's `args` (a JSON array) and `kwargs` (a JSON object)
    /// and assigns each to its parameter.
    ///
    /// Too many positionals, an unknown keyword, or a parameter given both
    /// ways is an error naming the task and the parameter.
    pub fn bind(
        task: &'static str,
        params: &'static [ParamInfo],
        args: &'a str,
        kwargs: &'a str,
    ) -> Result<Self, TaskError> {
        let positional: Vec<&RawValue> = parse(task, "positional arguments", args)?;
        let keywords: Vec<(String, &RawValue)> =
            parse::<KeywordList>(task, "keyword arguments", kwargs)?.0;
        if positional.len() > params.len() {
            return Err(TaskError::fail(format!(
                "{task}() takes {} positional argument{} but {} were given",
                params.len(),
                if params.len() == 1 { "" } else { "s" },
                positional.len()
            )));
        }
        let mut slots: Vec<Option<&RawValue>> = positional.into_iter().map(Some).collect();
        slots.resize(params.len(), None);
        for (name, value) in keywords {
            let Some(index) = params.iter().position(|p| p.name == name) else {
                return Err(TaskError::fail(format!(
                    "{task}() got an unexpected keyword argument '{name}'"
                )));
            };
            if slots[index].is_some() {
                return Err(TaskError::fail(format!(
                    "{task}() got multiple values for argument '{name}'"
                )));
            }
            slots[index] = Some(value);
        }
        Ok(Arguments {
            task,
            params,
            slots,
        })
    }

    /// The argument of parameter `index`, which must be given.
    pub fn required<T: DeserializeOwned>(&mut self, index: usize) -> Result<T, TaskError> {
        match self.slots[index].take() {
            Some(value) => self.convert(index, value),
            None => Err(TaskError::fail(format!(
                "{}() missing required argument '{}'",
                self.task, self.params[index].name
            ))),
        }
    }

    /// The argument of `Option` parameter `index`: `None` when left out or `null`.
    pub fn optional<T: DeserializeOwned>(&mut self, index: usize) -> Result<Option<T>, TaskError> {
        match self.slots[index].take() {
            Some(value) => self.convert(index, value),
            None => Ok(None),
        }
    }

    fn convert<T: DeserializeOwned>(&self, index: usize, value: &RawValue) -> Result<T, TaskError> {
        let param = &self.params[index];
        serde_json::from_str(value.get()).map_err(|err| {
            let text = value.get();
            // Numbers arrive exactly as written, of any size: one that does
            // not fit is named with the reason, never rounded into a float.
            let why = if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                number_misfit(text, param.type_name)
            } else {
                err.to_string()
            };
            TaskError::fail(format!(
                "{}() argument '{}' ({}): {why}",
                self.task, param.name, param.type_name
            ))
        })
    }
}

/// Keyword arguments in the order given, each left as its text.
struct KeywordList<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for KeywordList<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Keywords;
        impl<'de> serde::de::Visitor<'de> for Keywords {
            type Value = KeywordList<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of keyword arguments")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<KeywordList<'de>, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, &RawValue>()? {
                    pairs.push(pair);
                }
                Ok(KeywordList(pairs))
            }
        }
        deserializer.deserialize_map(Keywords)
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(
    task: &str,
    what: &str,
    json: &'a str,
) -> Result<T, TaskError> {
    serde_json::from_str(json)
        .map_err(|err| TaskError::fail(format!("{task}(): the host sent malformed {what}: {err}")))
}

/// Why `number` does not fit a parameter of type `type_name`, as a person
/// would say it: `expected i64, got 123456789012345678901234567890 (too
/// large)`.
fn number_misfit(number: &str, type_name: &str) -> String {
    let expected = type_name
        .strip_prefix("Option<")
        .and_then(|inner| inner.strip_suffix('>'))
        .unwrap_or(type_name)
        .trim();
    let integer_type = matches!(
        expected,
        "i8" | "i16"
            | "i32"
            | "i64"
            | "i128"
            | "isize"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "u128"
            | "usize"
    );
    let integral = !number.contains(['.', 'e', 'E']);
    let reason = if !integer_type {
        "not a value of that type"
    } else if !integral {
        "not an integer"
    } else if number.starts_with('-') {
        "too small"
    } else {
        "too large"
    };
    format!("expected {expected}, got {number} ({reason})")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    const PARAMS: &[ParamInfo] = &[
        ParamInfo {
            name: "x",
            type_name: "i64",
            optional: false,
        },
        ParamInfo {
            name: "small",
            type_name: "Option<u8>",
            optional: true,
        },
        ParamInfo {
            name: "wide",
            type_name: "i128",
            optional: false,
        },
    ];

    fn message(err: TaskError) -> String {
        format!("{err}")
    }

    #[test]
    fn a_number_that_does_not_fit_is_named_never_rounded() {
        let big = "123456789012345678901234567890";
        let given = format!("[{big}, 300, -{big}]");
        let mut args = Arguments::bind("add", PARAMS, &given, "{}").unwrap();
        let err = message(args.required::<i64>(0).unwrap_err());
        assert!(
            err.contains(&format!(
                "add() argument 'x' (i64): expected i64, got {big} (too large)"
            )),
            "{err}"
        );
        let err = message(args.optional::<u8>(1).unwrap_err());
        assert!(err.contains("expected u8, got 300 (too large)"), "{err}");
        assert_eq!(
            args.required::<i128>(2).unwrap(),
            -123456789012345678901234567890_i128
        );
        let mut args = Arguments::bind("add", PARAMS, "[1.5, -1]", "{}").unwrap();
        let err = message(args.required::<i64>(0).unwrap_err());
        assert!(
            err.contains("expected i64, got 1.5 (not an integer)"),
            "{err}"
        );
        let err = message(args.optional::<u8>(1).unwrap_err());
        assert!(err.contains("expected u8, got -1 (too small)"), "{err}");
    }

    #[test]
    fn numbers_keep_their_written_form() {
        let mut args =
            Arguments::bind("echo", PARAMS, "[0.1, 1e300, 18446744073709551616]", "{}").unwrap();
        assert_eq!(args.required::<Value>(0).unwrap().to_string(), "0.1");
        assert_eq!(args.required::<f64>(1).unwrap(), 1e300);
        assert_eq!(
            args.required::<Value>(2).unwrap().to_string(),
            "18446744073709551616"
        );
    }
}
