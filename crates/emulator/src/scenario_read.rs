//! Reads scenario text streaming: the top-level fields and each event are deserialized one by
//! one from the reader, and the rows of `rows` events go straight into typed cells
//! (`ImportRows`), so a large scenario is never held as one `serde_json::Value` tree. When the
//! other fields come before `events` (as scenario files write them), each event is handed to an
//! [`EventSink`] (the platform, see [`crate::load`]) as soon as it is read and then dropped, so
//! the events are never held together either ([`read_streaming`]); otherwise they are kept
//! until the whole text is read ([`read_buffered`]). Both report the same error for the same
//! text: the first error of the text's syntax or of an event's shape (in text order), then a
//! top-level field, then an event that cannot apply (in event order). Errors carry the JSON
//! path of the bad field, as `Scenario::from_json_value` reports them.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use crate::scenario::{
    Event, EventSpec, ImportRows, ScenarioError, ScenarioSpec, from_value_at, join_path,
    parse_event,
};

/// What the events are applied to as they are read, made from the top-level fields that come
/// before `events`.
pub trait EventSink: Sized {
    /// The sink of a scenario's fields (no event applied yet), or `None` when they do not make
    /// a valid scenario (the events are then kept, and the fields' error reported in its turn).
    fn start(spec: &ScenarioSpec) -> Option<Self>;

    /// Applies one event.
    fn apply(&mut self, ev: &EventSpec) -> Result<(), ScenarioError>;
}

/// What [`read_streaming`] read.
pub enum Streamed<S> {
    /// The events were applied as they were read: the scenario's fields (no events) and the
    /// sink they were applied to.
    Applied { spec: Box<ScenarioSpec>, sink: S },
    /// The events were kept (the fields before them did not make a sink): the scenario's
    /// fields and its events, still to apply.
    Read(Box<ScenarioSpec>),
    /// The events were applied as they were read, but the top-level field `key` comes after
    /// them (and could change what they do): the text must be read again with
    /// [`read_buffered`].
    FieldAfterEvents { key: String },
}

/// Reads a scenario, applying each event as soon as it is read when the other fields come
/// before `events` and make a sink (otherwise the events are kept until the end, as
/// [`read_buffered`] does).
pub fn read_streaming<'de, R: serde_json::de::Read<'de>, S: EventSink>(
    de: serde_json::Deserializer<R>,
) -> Result<Streamed<S>, ScenarioError> {
    let doc = read_doc::<R, S>(de, true)?;
    let Some(applied) = doc.applied else {
        return spec_of(doc.fields, doc.events).map(|s| Streamed::Read(Box::new(s)));
    };
    if let Some(key) = doc.field_after_events {
        return Ok(Streamed::FieldAfterEvents { key });
    }
    if let Some(e) = applied.error {
        return Err(e);
    }
    Ok(Streamed::Applied {
        spec: Box::new(applied.spec),
        sink: applied.sink,
    })
}

/// Reads a whole scenario, keeping its events until the text is read (any order of the
/// top-level fields): its fields and its events, still to apply.
pub fn read_buffered<'de, R: serde_json::de::Read<'de>>(
    de: serde_json::Deserializer<R>,
) -> Result<ScenarioSpec, ScenarioError> {
    let doc = read_doc::<R, Kept>(de, false)?;
    spec_of(doc.fields, doc.events)
}

/// The sink of a buffered read: none is ever made, the events are kept.
struct Kept;

impl EventSink for Kept {
    fn start(_: &ScenarioSpec) -> Option<Self> {
        None
    }

    fn apply(&mut self, _: &EventSpec) -> Result<(), ScenarioError> {
        Ok(())
    }
}

/// The scenario of top-level `fields` and parsed `events`.
fn spec_of(
    fields: Map<String, Json>,
    events: Vec<EventSpec>,
) -> Result<ScenarioSpec, ScenarioError> {
    let mut spec: ScenarioSpec = from_value_at("", Json::Object(fields))?;
    spec.events = events;
    Ok(spec)
}

/// Reads the document (syntax and event shapes checked, trailing text refused).
fn read_doc<'de, R: serde_json::de::Read<'de>, S: EventSink>(
    mut de: serde_json::Deserializer<R>,
    stream: bool,
) -> Result<Doc<S>, ScenarioError> {
    let failure = RefCell::new(None);
    let mut track = serde_path_to_error::Track::new();
    let result = DocSeed::<S> {
        failure: &failure,
        stream,
        sink: std::marker::PhantomData,
    }
    .deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let doc = match result {
        Ok(doc) => doc,
        Err(e) => {
            if let Some(f) = failure.into_inner() {
                return Err(f);
            }
            let inner = track.path().to_string();
            let path = join_path("", if inner == "." { "" } else { &inner });
            let message = if e.is_syntax() || e.is_eof() || e.is_io() {
                format!("not valid JSON: {e}")
            } else {
                e.to_string()
            };
            return Err(ScenarioError::at(path, message));
        }
    };
    de.end()
        .map_err(|e| ScenarioError::at("$", format!("not valid JSON: {e}")))?;
    Ok(doc)
}

/// The top-level object: its fields other than `events`, and the events parsed (or applied).
struct Doc<S> {
    fields: Map<String, Json>,
    /// The events kept (none when they were applied as read).
    events: Vec<EventSpec>,
    /// The sink the events were applied to as they were read.
    applied: Option<Applied<S>>,
    /// The first top-level key after `events` when they were applied as read.
    field_after_events: Option<String>,
}

/// A sink made from the fields before `events`, with the events applied as read.
struct Applied<S> {
    spec: ScenarioSpec,
    sink: S,
    /// The first event that could not apply (the later ones are then only read).
    error: Option<ScenarioError>,
}

impl<S: EventSink> Applied<S> {
    /// The sink of the fields read so far, when they make a valid scenario without events.
    fn start(fields: &Map<String, Json>) -> Option<Applied<S>> {
        let spec: ScenarioSpec = from_value_at("", Json::Object(fields.clone())).ok()?;
        let sink = S::start(&spec)?;
        Some(Applied {
            spec,
            sink,
            error: None,
        })
    }

    /// Applies one event (unless one failed already).
    fn apply(&mut self, ev: &EventSpec) {
        if self.error.is_none()
            && let Err(e) = self.sink.apply(ev)
        {
            self.error = Some(e);
        }
    }
}

/// A scenario error found while streaming (serde's error type cannot carry its path).
type Failure<'a> = &'a RefCell<Option<ScenarioError>>;

struct DocSeed<'a, S> {
    failure: Failure<'a>,
    /// Apply the events as they are read when the fields before them allow it.
    stream: bool,
    sink: std::marker::PhantomData<S>,
}

impl<'de, S: EventSink> DeserializeSeed<'de> for DocSeed<'_, S> {
    type Value = Doc<S>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc<S>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, S: EventSink> Visitor<'de> for DocSeed<'_, S> {
    type Value = Doc<S>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scenario (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<S>, A::Error> {
        let mut doc = Doc {
            fields: Map::new(),
            events: Vec::new(),
            applied: None,
            field_after_events: None,
        };
        while let Some(key) = map.next_key::<String>()? {
            if doc.applied.is_some() && doc.field_after_events.is_none() {
                // Also a second `events`: what it replaces was applied already.
                doc.field_after_events = Some(key.clone());
            }
            if key == "events" {
                let mut applied = if self.stream && doc.applied.is_none() {
                    Applied::start(&doc.fields)
                } else {
                    None
                };
                doc.events = map.next_value_seed(EventsSeed {
                    failure: self.failure,
                    applied: applied.as_mut(),
                })?;
                if applied.is_some() {
                    doc.applied = applied;
                }
            } else {
                let value = map.next_value::<Json>()?;
                doc.fields.insert(key, value);
            }
        }
        Ok(doc)
    }
}

struct EventsSeed<'a, S> {
    failure: Failure<'a>,
    /// Where each event is applied as soon as it is read (none: the events are kept).
    applied: Option<&'a mut Applied<S>>,
}

impl<'de, S: EventSink> DeserializeSeed<'de> for EventsSeed<'_, S> {
    type Value = Vec<EventSpec>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<EventSpec>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, S: EventSink> Visitor<'de> for EventsSeed<'_, S> {
    type Value = Vec<EventSpec>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<Vec<EventSpec>, A::Error> {
        let mut events = Vec::new();
        let mut index = 0;
        while let Some(ev) = seq.next_element_seed(EventSeed {
            failure: self.failure,
            index,
        })? {
            index += 1;
            match self.applied.as_deref_mut() {
                Some(applied) => applied.apply(&ev),
                None => events.push(ev),
            }
        }
        Ok(events)
    }
}

struct EventSeed<'a> {
    failure: Failure<'a>,
    index: usize,
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = EventSpec;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<EventSpec, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = EventSpec;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<EventSpec, A::Error> {
        let mut obj = Map::new();
        let mut rows = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "rows" {
                rows = Some(map.next_value::<ImportRows>()?);
                // Stands in for the rows, read already, so the event's shape is checked.
                obj.insert(key, Json::Array(Vec::new()));
            } else {
                let value = map.next_value::<Json>()?;
                obj.insert(key, value);
            }
        }
        let path = format!("events[{}]", self.index);
        match parse_event(Json::Object(obj), &path) {
            Ok(mut ev) => {
                if let (Event::Rows(r), Some(rows)) = (&mut ev.event, rows) {
                    r.rows = rows;
                }
                Ok(ev)
            }
            Err(e) => {
                *self.failure.borrow_mut() = Some(e);
                Err(de::Error::custom("bad event"))
            }
        }
    }
}
