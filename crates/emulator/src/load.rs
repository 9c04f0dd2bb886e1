//! Loading a scenario: its text read ([`crate::scenario_read`], the events applied as they are
//! read when they can be) and the platform it describes built ([`crate::platform`]). The
//! result, [`Scenario`], is what the emulator starts from.

use std::path::Path;
use std::sync::Arc;

use serde_json::Value as Json;

use crate::platform::Platform;
use crate::scenario::{ScenarioError, ScenarioSpec, from_value_at, parse_events};
use crate::scenario_read::{self, Streamed};

/// A loaded scenario: its parsed text and the platform state it describes.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub spec: ScenarioSpec,
    pub(crate) initial: Arc<Platform>,
}

impl Scenario {
    /// Parses and checks a scenario, and builds the platform it describes (events applied as
    /// they are read when the other fields come first; any order of the fields is read).
    pub fn from_json_str(text: &str) -> Result<Scenario, ScenarioError> {
        match scenario_read::read_streaming(serde_json::Deserializer::from_str(text))? {
            Streamed::FieldAfterEvents { .. } => Self::from_spec(scenario_read::read_buffered(
                serde_json::Deserializer::from_str(text),
            )?),
            other => Self::from_streamed(other),
        }
    }

    /// Reads a scenario streaming, event by event, each applied as soon as it is read (a
    /// large scenario is never held whole): the top-level fields other than `events` must
    /// come before it (a field after events that were applied is refused, naming the field;
    /// `from_json_str` and `from_file` read any order).
    pub fn from_reader(reader: impl std::io::Read) -> Result<Scenario, ScenarioError> {
        match scenario_read::read_streaming(serde_json::Deserializer::from_reader(reader))? {
            Streamed::FieldAfterEvents { key } => Err(ScenarioError::at(
                key,
                "comes after `events`, which were applied as they were read: a scenario read \
                 from a stream gives its other fields before its events",
            )),
            other => Self::from_streamed(other),
        }
    }

    /// Reads a scenario file, streaming (read a second time, keeping the events until the
    /// end, when a top-level field comes after them).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Scenario, ScenarioError> {
        let path = path.as_ref();
        let open = || {
            std::fs::File::open(path)
                .map(|f| std::io::BufReader::with_capacity(1 << 20, f))
                .map_err(|source| ScenarioError::Io {
                    path: path.display().to_string(),
                    source,
                })
        };
        match scenario_read::read_streaming(serde_json::Deserializer::from_reader(open()?))? {
            Streamed::FieldAfterEvents { .. } => Self::from_spec(scenario_read::read_buffered(
                serde_json::Deserializer::from_reader(open()?),
            )?),
            other => Self::from_streamed(other),
        }
    }

    /// Checks a scenario given as a JSON value.
    pub fn from_json_value(mut value: Json) -> Result<Scenario, ScenarioError> {
        let events = match value.as_object_mut() {
            Some(obj) => obj.remove("events").unwrap_or(Json::Array(vec![])),
            None => return Err(ScenarioError::at("$", "a scenario is a JSON object")),
        };
        let mut spec: ScenarioSpec = from_value_at("", value)?;
        spec.events = parse_events(events, "events")?;
        Self::from_spec(spec)
    }

    /// The scenario of a streamed read other than a field after the events.
    fn from_streamed(read: Streamed<Platform>) -> Result<Scenario, ScenarioError> {
        match read {
            Streamed::Applied { spec, sink } => Ok(Scenario {
                spec: *spec,
                initial: Arc::new(sink),
            }),
            Streamed::Read(spec) => Self::from_spec(*spec),
            Streamed::FieldAfterEvents { key } => Err(ScenarioError::at(
                key,
                "comes after `events`: the scenario must be read whole",
            )),
        }
    }

    /// Builds the platform of a parsed scenario (its events applied, then dropped from the
    /// spec: they now live in the platform's model and tables).
    fn from_spec(mut spec: ScenarioSpec) -> Result<Scenario, ScenarioError> {
        let platform = Platform::from_spec(&spec)?;
        spec.events = Vec::new();
        Ok(Scenario {
            spec,
            initial: Arc::new(platform),
        })
    }

    /// The platform state the scenario describes.
    pub fn platform(&self) -> &Platform {
        &self.initial
    }

    /// The scenario's tenant.
    pub fn tenant_id(&self) -> &str {
        &self.spec.tenant_id
    }
}
