//! The specifications' examples against the clients' types: every response example under
//! `shared/reference/specs/**/examples` deserializes into the type the client reads it as,
//! and every request body the clients build validates against the specification's schema
//! (types, required properties, enums, and no read-only property sent).
//!
//! The specifications are Azure's published ones (azure-rest-api-specs), kept in the reference
//! files beside the repository, not in it: without them these tests say they skipped, and
//! under CI they fail (`test-support/reference.rs`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use dfcsync::azure::defender::{DfcAlert, address_from_id};
use dfcsync::azure::log_analytics::{QueryResponse, query_body};
use dfcsync::azure::sentinel::{Incident, IncidentComment, Page, comment_body};
use serde_json::{Value, json};

#[path = "../../../test-support/reference.rs"]
mod reference;

/// The specifications' folder, or `None` (after a line that says so) when it is not there.
fn specs_root() -> Option<PathBuf> {
    reference::reference(
        "reference/specs",
        "Azure's OpenAPI specifications and their examples",
    )
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "json") {
            out.push(p);
        }
    }
}

fn load(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Normalises `a/b/../c` without touching the file system.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// The loaded specification files and a small swagger 2.0 validator.
struct Specs {
    files: HashMap<PathBuf, Value>,
}

impl Specs {
    fn load(root: &Path) -> Specs {
        let mut all = Vec::new();
        walk(root, &mut all);
        let files = all
            .into_iter()
            .filter(|p| !p.components().any(|c| c.as_os_str() == "examples"))
            .map(|p| (normalize(&p), load(&p)))
            .collect();
        Specs { files }
    }

    /// `file#/definitions/X` relative to `from`. `None` for files not copied (common-types).
    fn resolve(&self, from: &Path, r: &str) -> Option<(PathBuf, Value)> {
        let (file, pointer) = r.split_once('#').unwrap_or((r, ""));
        let target = if file.is_empty() {
            from.to_path_buf()
        } else {
            normalize(&from.parent()?.join(file))
        };
        if file.contains("common-types/resource-management") && pointer.ends_with("/Resource") {
            // Not copied: ARM's Resource has only read-only properties.
            let ro = json!({"type": "string", "readOnly": true});
            let stub = json!({"type": "object", "properties": {
                "id": ro, "name": ro, "type": ro, "systemData": {"type": "object", "readOnly": true}}});
            return Some((target, stub));
        }
        let doc = self.files.get(&target)?;
        Some((target, doc.pointer(pointer)?.clone()))
    }

    /// The properties of a schema, through `allOf` and `$ref`; `false` when some part could
    /// not be resolved (then unknown keys are not judged).
    fn properties(
        &self,
        file: &Path,
        schema: &Value,
        out: &mut BTreeMap<String, (PathBuf, Value)>,
        required: &mut BTreeSet<String>,
    ) -> bool {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            return match self.resolve(file, r) {
                Some((f, s)) => self.properties(&f, &s, out, required),
                None => false,
            };
        }
        let mut complete = true;
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            complete &= self.properties(file, part, out, required);
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                out.insert(k.clone(), (file.to_path_buf(), v.clone()));
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = r.as_str() {
                required.insert(r.to_owned());
            }
        }
        complete
            && !schema
                .get("additionalProperties")
                .is_some_and(|a| a != &json!(false))
    }

    /// Validates a request body against a schema.
    fn validate(&self, file: &Path, schema: &Value, v: &Value, at: &str, errors: &mut Vec<String>) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(file, r) {
                Some((f, s)) => self.validate(&f, &s, v, at, errors),
                None => errors.push(format!("{at}: unresolved $ref {r}")),
            }
            return;
        }
        let ty = schema.get("type").and_then(Value::as_str).or_else(|| {
            (schema.get("properties").is_some() || schema.get("allOf").is_some())
                .then_some("object")
        });
        let ok = match (ty, v) {
            (None, _) => true,
            (Some("object"), Value::Object(_))
            | (Some("array"), Value::Array(_))
            | (Some("string"), Value::String(_))
            | (Some("boolean"), Value::Bool(_)) => true,
            (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Some("number"), Value::Number(_)) => true,
            _ => false,
        };
        if !ok {
            errors.push(format!("{at}: expected {ty:?}, got {v}"));
            return;
        }
        if let (Some(e), Some(s)) = (schema.get("enum").and_then(Value::as_array), v.as_str()) {
            let open = schema.pointer("/x-ms-enum/modelAsString") == Some(&json!(true));
            if !e.iter().any(|x| x == s) {
                errors.push(format!(
                    "{at}: {s:?} is not one of {e:?}{}",
                    if open {
                        " (modelAsString: sent value still unknown)"
                    } else {
                        ""
                    }
                ));
            }
        }
        if let Some(items) = schema.get("items")
            && let Value::Array(a) = v
        {
            for (i, x) in a.iter().enumerate() {
                self.validate(file, items, x, &format!("{at}[{i}]"), errors);
            }
        }
        if let Value::Object(obj) = v {
            let mut props = BTreeMap::new();
            let mut required = BTreeSet::new();
            let complete = self.properties(file, schema, &mut props, &mut required);
            for r in &required {
                if !obj.contains_key(r) {
                    errors.push(format!("{at}: required property {r} is missing"));
                }
            }
            for (k, x) in obj {
                match props.get(k) {
                    Some((f, s)) => {
                        let s = match s.get("$ref").and_then(Value::as_str) {
                            Some(r) => self.resolve(f, r).map(|(_, s)| s).unwrap_or_default(),
                            None => s.clone(),
                        };
                        if s.get("readOnly") == Some(&json!(true))
                            || props[k].1.get("readOnly") == Some(&json!(true))
                        {
                            errors.push(format!("{at}.{k}: read-only, must not be sent"));
                        }
                        self.validate(f, &props[k].1, x, &format!("{at}.{k}"), errors);
                    }
                    None if complete => errors.push(format!("{at}.{k}: not in the schema")),
                    None => {}
                }
            }
        }
    }

    /// Every operation: `(operationId, spec file, operation)`, and the example files they
    /// name, by file name.
    fn operations(&self) -> (HashMap<String, (PathBuf, Value)>, HashMap<String, String>) {
        let mut ops = HashMap::new();
        let mut by_example = HashMap::new();
        for (file, doc) in &self.files {
            for (_, methods) in doc
                .get("paths")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
            {
                for (_, op) in methods.as_object().into_iter().flatten() {
                    let Some(id) = op.get("operationId").and_then(Value::as_str) else {
                        continue;
                    };
                    ops.insert(id.to_owned(), (file.clone(), op.clone()));
                    for ex in op
                        .get("x-ms-examples")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        if let Some(r) = ex.1.get("$ref").and_then(Value::as_str)
                            && let Some(name) = Path::new(r).file_name()
                        {
                            by_example.insert(name.to_string_lossy().into_owned(), id.to_owned());
                        }
                    }
                }
            }
        }
        (ops, by_example)
    }

    /// The schema of an operation's body parameter.
    fn body_schema(&self, ops: &HashMap<String, (PathBuf, Value)>, op: &str) -> (PathBuf, Value) {
        let (file, o) = &ops[op];
        let p = o["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| match p.get("$ref").and_then(Value::as_str) {
                Some(r) => self.resolve(file, r).map(|(_, s)| s).unwrap_or_default(),
                None => p.clone(),
            })
            .find(|p| p["in"] == "body")
            .unwrap_or_else(|| panic!("{op} has no body parameter"));
        (file.clone(), p["schema"].clone())
    }
}

/// Operations the clients do not call (so no client type reads them).
const NOT_CALLED: [&str; 1] = ["Incidents_ListAlerts"];

#[test]
fn every_response_example_deserializes_into_the_clients_types() {
    let Some(root) = specs_root() else { return };
    let specs = Specs::load(&root);
    let (_, by_example) = specs.operations();
    let mut examples = Vec::new();
    walk(&root, &mut examples);
    examples.retain(|p| p.components().any(|c| c.as_os_str() == "examples"));
    assert!(examples.len() >= 10, "{examples:?}");
    let mut checked = BTreeMap::<String, usize>::new();
    for ex in &examples {
        let name = ex
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let stem = name.trim_end_matches(".json");
        let op = by_example
            .get(&name)
            .cloned()
            .or_else(|| stem.contains('_').then(|| stem.to_owned()))
            .unwrap_or_else(|| panic!("{}: no operation names this example", ex.display()));
        let v = load(ex);
        let responses = v["responses"].as_object().cloned().unwrap_or_default();
        assert!(!responses.is_empty(), "{}: no responses", ex.display());
        for (code, r) in responses {
            let body = r.get("body").cloned().unwrap_or(Value::Null);
            let ctx = format!("{} ({op}, {code})", ex.display());
            let bytes = body.to_string().into_bytes();
            match op.as_str() {
                "Incidents_List" => {
                    let p: Page<Incident> = serde_json::from_value(body).expect(&ctx);
                    assert!(!p.value.is_empty(), "{ctx}");
                }
                "Incidents_Get" | "Incidents_CreateOrUpdate" => {
                    let i: Incident = serde_json::from_value(body).expect(&ctx);
                    assert!(i.etag.is_some(), "{ctx}");
                    // Read, then written back: our body for it validates (below too).
                    let _ = i.put_body();
                }
                "IncidentComments_CreateOrUpdate" => {
                    let c: IncidentComment = serde_json::from_value(body).expect(&ctx);
                    assert!(!c.properties.message.is_empty(), "{ctx}");
                }
                "Query_Execute" | "Query_ResourceExecute" | "Query_Get" | "Query_ResourceGet" => {
                    let q = QueryResponse::parse(&bytes).expect(&ctx);
                    for t in &q.tables {
                        t.records().expect(&ctx);
                    }
                }
                op if op.starts_with("Alerts_Get") => {
                    let a: DfcAlert = serde_json::from_value(body).expect(&ctx);
                    // The address comes from the id (in this example the id's alert name
                    // and `name` even differ: the id is what the API is called with).
                    let addr = address_from_id(&a.id).expect(&ctx);
                    assert!(
                        !addr.location.is_empty() && !addr.subscription_id.is_empty(),
                        "{ctx}"
                    );
                }
                op if op.starts_with("Alerts_Update") => {
                    assert_eq!(code, "204", "{ctx}: a status action answers 204");
                }
                op if NOT_CALLED.contains(&op) => {}
                other => panic!("{ctx}: no client type for {other}"),
            }
            *checked.entry(op.clone()).or_default() += 1;
        }
    }
    for op in [
        "Incidents_List",
        "Incidents_Get",
        "Incidents_CreateOrUpdate",
        "IncidentComments_CreateOrUpdate",
        "Query_Execute",
        "Alerts_GetSubscriptionLevel",
    ] {
        assert!(
            checked.contains_key(op),
            "no example checked for {op}: {checked:?}"
        );
    }
}

#[test]
fn every_request_body_the_clients_build_validates() {
    let Some(root) = specs_root() else { return };
    let specs = Specs::load(&root);
    let (ops, _) = specs.operations();
    let ex = load(
        &root.join("securityinsights/stable/2025-09-01/examples/incidents/GetIncidentById.json"),
    );
    let read: Incident = serde_json::from_value(ex["responses"]["200"]["body"].clone()).unwrap();
    let list = load(&root.join(
        "securityinsights/preview/2025-10-01-preview/examples/incidents/Incidents_List.json",
    ));
    let preview: Page<Incident> =
        serde_json::from_value(list["responses"]["200"]["body"].clone()).unwrap();

    let mut bodies: Vec<(&str, &str, Value)> = Vec::new();
    let mut closed = read.clone();
    closed.close(
        "FalsePositive",
        Some("IncorrectAlertLogic"),
        Some("closed [dfcsync:close:0123456789abcdef]"),
    );
    bodies.push(("close", "Incidents_CreateOrUpdate", closed.put_body()));
    let mut active = read.clone();
    active.set_active().clear_classification();
    bodies.push(("activate", "Incidents_CreateOrUpdate", active.put_body()));
    for (i, inc) in preview.value.iter().enumerate() {
        let mut c = inc.clone();
        c.close("BenignPositive", Some("SuspiciousButExpected"), None);
        // A newer version's incident (extra owner fields): what we send still validates
        // against the stable schema, except for fields the stable schema does not know.
        let body = c.put_body();
        let mut errors = Vec::new();
        let (f, s) = specs.body_schema(&ops, "Incidents_CreateOrUpdate");
        specs.validate(&f, &s, &body, &format!("preview[{i}]"), &mut errors);
        assert!(
            errors.iter().all(|e| e.contains("not in the schema")),
            "{errors:#?}"
        );
    }
    bodies.push((
        "comment",
        "IncidentComments_CreateOrUpdate",
        comment_body("closed by dfcsync"),
    ));
    bodies.push((
        "query",
        "Query_Execute",
        query_body("SecurityIncident | take 1", Some("P1D")),
    ));
    bodies.push((
        "query without timespan",
        "Query_Execute",
        query_body("SecurityAlert", None),
    ));

    let mut errors = Vec::new();
    for (what, op, body) in &bodies {
        let (f, s) = specs.body_schema(&ops, op);
        specs.validate(&f, &s, body, what, &mut errors);
    }
    assert!(errors.is_empty(), "{errors:#?}");

    // And the validator does catch what it must.
    let mut bad = closed.put_body();
    bad["properties"]["incidentNumber"] = json!(3);
    bad["properties"]["labels"] = json!([{"labelName": "x", "labelType": "User"}]);
    bad["properties"]["severity"] = json!(7);
    let mut errors = Vec::new();
    let (f, s) = specs.body_schema(&ops, "Incidents_CreateOrUpdate");
    specs.validate(&f, &s, &bad, "bad", &mut errors);
    let text = errors.join("\n");
    assert!(
        text.contains("bad.properties.incidentNumber: read-only"),
        "{text}"
    );
    assert!(text.contains("labelType: read-only"), "{text}");
    assert!(text.contains("severity: expected"), "{text}");
}
