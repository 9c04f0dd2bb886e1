//! Reads scenario text streaming: the top-level fields and each event are deserialized one by
//! one from the reader, and the rows of `rows` events go straight into typed cells
//! (`ImportRows`), so a large scenario is never held as one `serde_json::Value` tree. Errors
//! carry the JSON path of the bad field, as `Scenario::from_json_value` reports them.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use crate::scenario::{
    Event, EventSpec, ImportRows, ScenarioError, ScenarioSpec, from_value_at, join_path,
    parse_event,
};

/// Reads a whole scenario (its spec, with its events parsed) from a `serde_json` reader.
pub fn read<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
) -> Result<ScenarioSpec, ScenarioError> {
    let failure = RefCell::new(None);
    let mut track = serde_path_to_error::Track::new();
    let result = DocSeed { failure: &failure }
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
    let mut spec: ScenarioSpec = from_value_at("", Json::Object(doc.fields))?;
    spec.events = doc.events;
    Ok(spec)
}

/// The top-level object: its fields other than `events`, and the events parsed.
struct Doc {
    fields: Map<String, Json>,
    events: Vec<EventSpec>,
}

/// A scenario error found while streaming (serde's error type cannot carry its path).
type Failure<'a> = &'a RefCell<Option<ScenarioError>>;

struct DocSeed<'a> {
    failure: Failure<'a>,
}

impl<'de> DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Doc;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocSeed<'_> {
    type Value = Doc;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a scenario (a JSON object)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut doc = Doc {
            fields: Map::new(),
            events: Vec::new(),
        };
        while let Some(key) = map.next_key::<String>()? {
            if key == "events" {
                doc.events = map.next_value_seed(EventsSeed {
                    failure: self.failure,
                })?;
            } else {
                let value = map.next_value::<Json>()?;
                doc.fields.insert(key, value);
            }
        }
        Ok(doc)
    }
}

struct EventsSeed<'a> {
    failure: Failure<'a>,
}

impl<'de> DeserializeSeed<'de> for EventsSeed<'_> {
    type Value = Vec<EventSpec>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<EventSpec>, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for EventsSeed<'_> {
    type Value = Vec<EventSpec>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of events")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<EventSpec>, A::Error> {
        let mut events = Vec::new();
        while let Some(ev) = seq.next_element_seed(EventSeed {
            failure: self.failure,
            index: events.len(),
        })? {
            events.push(ev);
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
