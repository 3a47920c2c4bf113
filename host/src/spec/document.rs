//! A chain file read as a stream. Every top-level key but `workflow` is
//! small and read whole; a `workflow` list (an array, or `{"chain": [...]}`)
//! is read element by element, each checked as it comes and written to the
//! spool, so that no JSON tree of the whole workflow is ever built.

use std::cell::RefCell;
use std::fmt;
use std::path::Path;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::elements::Elements;
use super::{MISSING_WORKFLOW, ParseError, TOP_LEVEL_KEYS, WorkflowSpec, canvas, deferred, fields};
use crate::json::{JsonPath, SpecIssue};
use crate::unique::{Unique, insert_unique};

/// Reads the workflow `de` holds; plugin paths are resolved against
/// `base_dir`. Every option wfhost does not know is reported, not only the
/// first (see `deferred.rs`); a syntax error stands alone.
pub fn read<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
    base_dir: &Path,
) -> Result<WorkflowSpec, ParseError> {
    let mut syntax = None;
    let read = deferred::collecting(|| {
        read_all(de, base_dir).map_err(|err| match err {
            ParseError::Invalid(issue) => issue,
            ParseError::Syntax(err) => {
                syntax = Some(err);
                SpecIssue::new(&JsonPath::root(), "malformed JSON")
            }
        })
    });
    match (read, syntax) {
        (_, Some(err)) => Err(ParseError::Syntax(err)),
        (Ok(spec), None) => Ok(spec),
        (Err(issue), None) => Err(ParseError::Invalid(issue)),
    }
}

fn read_all<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    base_dir: &Path,
) -> Result<WorkflowSpec, ParseError> {
    // An issue found inside serde's walk is kept here, so that it reaches
    // the caller whole rather than as serde's text.
    let issue = RefCell::new(None);
    let parsed = Document { issue: &issue }.deserialize(&mut de);
    let (map, workflow) = match parsed {
        Ok(parsed) => parsed,
        Err(err) => {
            return Err(match issue.into_inner() {
                Some(issue) => ParseError::Invalid(issue),
                None => ParseError::Syntax(err),
            });
        }
    };
    de.end().map_err(ParseError::Syntax)?;
    let root = JsonPath::root();
    let invalid = ParseError::Invalid;
    let head = Value::Object(map);
    let map = fields::object(&head, &root, "a workflow object", TOP_LEVEL_KEYS).map_err(invalid)?;
    let workflow = workflow.ok_or_else(|| invalid(SpecIssue::new(&root, MISSING_WORKFLOW)))?;
    super::from_parts(map, workflow, base_dir).map_err(invalid)
}

/// Records `issue` for [`read`] and stops serde's walk.
fn fail<E: de::Error>(cell: &RefCell<Option<SpecIssue>>, issue: SpecIssue) -> E {
    let message = issue.to_string();
    cell.borrow_mut().get_or_insert(issue);
    E::custom(message)
}

/// The top-level object: its small keys, and the workflow's elements.
struct Document<'a> {
    issue: &'a RefCell<Option<SpecIssue>>,
}

type Parsed = (Map<String, Value>, Option<Elements>);

impl<'de> DeserializeSeed<'de> for Document<'_> {
    type Value = Parsed;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Parsed, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Document<'_> {
    type Value = Parsed;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a workflow object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parsed, A::Error> {
        let mut rest = Map::new();
        let mut workflow = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "workflow" {
                if workflow.is_some() {
                    let issue = SpecIssue::new(&JsonPath::root(), "the key `workflow` is repeated");
                    return Err(fail(self.issue, issue));
                }
                workflow = Some(map.next_value_seed(Workflow { issue: self.issue })?);
            } else {
                let Unique(value) = map.next_value()?;
                if rest.contains_key(&key) {
                    let issue =
                        SpecIssue::new(&JsonPath::root(), format!("the key `{key}` is repeated"));
                    return Err(fail(self.issue, issue));
                }
                rest.insert(key, value);
            }
        }
        Ok((rest, workflow))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Parsed, A::Error> {
        Err(self.not_an_object("an array"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parsed, E> {
        Err(self.not_an_object("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parsed, E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parsed, E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Parsed, E> {
        Err(self.not_an_object("a number"))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parsed, E> {
        Err(self.not_an_object("a string"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parsed, E> {
        Err(self.not_an_object("null"))
    }
}

impl Document<'_> {
    fn not_an_object<E: de::Error>(&self, found: &str) -> E {
        let issue = SpecIssue::new(
            &JsonPath::root(),
            format!("expected a workflow object, found {found}"),
        );
        fail(self.issue, issue)
    }
}

/// The value of `workflow`, read as a stream where it is a list of canvases:
/// a bare array, or `{"chain": [...]}` with `chain` its only key. Any other
/// value is read whole and parsed as one canvas.
struct Workflow<'a> {
    issue: &'a RefCell<Option<SpecIssue>>,
}

impl<'de> DeserializeSeed<'de> for Workflow<'_> {
    type Value = Elements;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Elements, D::Error> {
        let canvases = Canvases {
            issue: self.issue,
            at: JsonPath::root().key("workflow"),
            open_chain: true,
        };
        match canvases.deserialize(deserializer)? {
            Read::Streamed(elements) => Ok(elements),
            Read::Whole(value) => {
                super::inline_elements(&value).map_err(|issue| fail(self.issue, issue))
            }
        }
    }
}

/// A value that may be a list of canvases, as read.
enum Read {
    /// A list, each canvas checked and spooled as it came.
    Streamed(Elements),
    /// Anything else, for the canvas parser to judge whole.
    Whole(Value),
}

/// Reads a list of canvases at `at` one canvas at a time.
struct Canvases<'a> {
    issue: &'a RefCell<Option<SpecIssue>>,
    at: JsonPath,
    /// Whether an object `{"chain": [...]}` is opened and its list streamed
    /// too (the workflow itself: its members are its elements).
    open_chain: bool,
}

impl<'de> DeserializeSeed<'de> for Canvases<'_> {
    type Value = Read;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Canvases<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a canvas")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Read, A::Error> {
        let mut elements = Elements::new();
        while let Some(Unique(value)) = seq.next_element::<Unique>()? {
            let canvas = canvas::canvas(&value, &self.at.index(elements.len()))
                .map_err(|issue| fail(self.issue, issue))?;
            elements
                .push(&canvas)
                .map_err(|err| fail(self.issue, super::spool_issue(&err)))?;
        }
        Ok(Read::Streamed(elements))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Read, A::Error> {
        let mut whole = Map::new();
        if self.open_chain
            && let Some(first) = map.next_key::<String>()?
        {
            if first == "chain" {
                let members = Canvases {
                    issue: self.issue,
                    at: self.at.key("chain"),
                    open_chain: false,
                };
                match map.next_value_seed(members)? {
                    Read::Streamed(mut elements) => {
                        let mut seen_options = false;
                        while let Some(key) = map.next_key::<String>()? {
                            if key != "options" || seen_options {
                                let issue =
                                    fields::unknown_key(&self.at, &key, &["chain", "options"]);
                                return Err(fail(self.issue, issue));
                            }
                            seen_options = true;
                            let Unique(given) = map.next_value()?;
                            elements = canvas::whole_callbacks(&given, &self.at, "chain")
                                .and_then(|callbacks| {
                                    elements
                                        .with_chain_callbacks(&callbacks)
                                        .map_err(|err| super::spool_issue(&err))
                                })
                                .map_err(|issue| fail(self.issue, issue))?;
                        }
                        return Ok(Read::Streamed(elements));
                    }
                    Read::Whole(value) => whole.insert(first, value),
                };
            } else {
                let Unique(value) = map.next_value()?;
                whole.insert(first, value);
            }
        }
        while let Some((key, Unique(value))) = map.next_entry::<String, Unique>()? {
            insert_unique(&mut whole, key, value)?;
        }
        Ok(Read::Whole(Value::Object(whole)))
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Read, E> {
        Ok(Read::Whole(Value::from(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Read, E> {
        Ok(Read::Whole(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Read, E> {
        Ok(Read::Whole(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Read, E> {
        Ok(Read::Whole(Value::from(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Read, E> {
        Ok(Read::Whole(Value::from(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Read, E> {
        Ok(Read::Whole(Value::Null))
    }
}
