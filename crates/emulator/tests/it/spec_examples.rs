//! Every request example in the copied specifications (`shared/reference/specs/**/examples`)
//! is sent to the emulator; the status must be one the example lists, and the response must
//! validate against the specification's model: no unknown field, no missing required field,
//! the right JSON types and (non-extensible) enum values. A small swagger 2.0 validator
//! follows `$ref` (across files), `allOf` and discriminators; references to files that were
//! not copied (ARM common-types) are accepted as they are.
//!
//! The specifications are Azure's published ones, kept in the reference files beside the
//! repository, not in it: without them this test says it skipped, and under CI it fails
//! (`test-support/reference.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::common::*;

const SPECS: &str = "reference/specs";

fn specs_root() -> PathBuf {
    crate::reference::shared_dir().join(SPECS)
}

fn examples(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            examples(&p, out);
        } else if p.extension().is_some_and(|x| x == "json")
            && p.components().any(|c| c.as_os_str() == "examples")
        {
            out.push(p);
        }
    }
}

/// The spec file and operation of an example.
fn operation_of(example: &Path, v: &Value) -> (PathBuf, String) {
    let root = specs_root();
    let name = example.file_name().unwrap().to_str().unwrap();
    let si = root.join("securityinsights/stable/2025-09-01/Incidents.json");
    let sec = root.join("security/stable/2022-01-01/alerts.json");
    let la = root.join("loganalytics/stable/2022-10-27/OperationalInsights.json");
    let op = match name {
        "GetIncidents.json" | "Incidents_List.json" => (si, "Incidents_List"),
        "GetIncidentById.json" => (si, "Incidents_Get"),
        "CreateIncident.json" => (si, "Incidents_CreateOrUpdate"),
        "CreateIncidentComment.json" => (si, "IncidentComments_CreateOrUpdate"),
        "GetAllIncidentAlerts.json" => (si, "Incidents_ListAlerts"),
        "GetAlertSubscriptionLocation_example.json" => (sec, "Alerts_GetSubscriptionLevel"),
        "UpdateAlertSubscriptionLocation_inProgress_example.json" => {
            (sec, "Alerts_UpdateSubscriptionLevelStateToInProgress")
        }
        "UpdateAlertResourceGroupLocation_resolve_example.json" => {
            (sec, "Alerts_UpdateResourceGroupLevelStateToResolve")
        }
        "la-post-example.json" => (la, "Query_Execute"),
        "la-post-resource-centric-example.json" => (la, "Query_ResourceExecute"),
        other => match v.get("operationId").and_then(Value::as_str) {
            Some(op) if op.starts_with("Incident") => (si, op),
            _ => {
                panic!("example {other} is not mapped to an operation: add it to spec_examples.rs")
            }
        },
    };
    (op.0, op.1.to_string())
}

struct Specs {
    files: HashMap<PathBuf, Value>,
    /// Field names a newer (preview) version adds, as its own example shows them: accepted
    /// when the example's api-version is not the copied specification's.
    extra: std::collections::HashSet<String>,
}

fn keys(v: &Value, out: &mut std::collections::HashSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.insert(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

impl Specs {
    fn load(&mut self, p: &Path) -> Option<&Value> {
        let key = normalize(p);
        if !self.files.contains_key(&key) {
            let text = std::fs::read_to_string(&key).ok()?;
            self.files
                .insert(key.clone(), serde_json::from_str(&text).ok()?);
        }
        self.files.get(&key)
    }

    /// Resolves a `$ref` relative to `file`: the target file and schema, or `None` when the
    /// file was not copied.
    fn resolve(&mut self, file: &Path, r: &str) -> Option<(PathBuf, Value)> {
        let (f, pointer) = r.split_once('#').unwrap_or((r, ""));
        let target = if f.is_empty() {
            file.to_path_buf()
        } else {
            normalize(&file.parent().unwrap().join(f))
        };
        let doc = self.load(&target)?;
        let v = doc.pointer(pointer)?.clone();
        Some((target, v))
    }

    fn find_operation(&mut self, file: &Path, op: &str) -> (String, String, Value) {
        let doc = self.load(file).unwrap().clone();
        let base = doc
            .get("basePath")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, o) in item.as_object().unwrap() {
                if o.get("operationId").and_then(Value::as_str) == Some(op) {
                    return (format!("{base}{path}"), method.to_uppercase(), o.clone());
                }
            }
        }
        panic!("operation {op} not in {}", file.display());
    }

    /// Validates `v` against `schema` (from `file`), appending problems to `errs`.
    fn validate(
        &mut self,
        file: &Path,
        schema: &Value,
        v: &Value,
        at: &str,
        errs: &mut Vec<String>,
    ) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(file, r) {
                Some((f, s)) => return self.validate(&f, &s, v, at, errs),
                None => return,
            }
        }
        if v.is_null() {
            return;
        }
        // Merge allOf parts: properties, required, openness.
        let mut props: Vec<(PathBuf, String, Value)> = vec![];
        let mut required: Vec<String> = vec![];
        let mut open = false;
        let mut discriminator = None;
        self.collect(
            file,
            schema,
            &mut props,
            &mut required,
            &mut open,
            &mut discriminator,
        );
        if let (Some(d), Some(obj)) = (&discriminator, v.as_object())
            && let Some(kind) = obj.get(d).and_then(Value::as_str)
            && schema.get("x-ms-discriminator-value").is_none()
        {
            let doc = self.load(file).unwrap().clone();
            if let Some((name, sub)) =
                doc["definitions"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .find(|(n, s)| {
                        s.get("x-ms-discriminator-value").and_then(Value::as_str) == Some(kind)
                            || n.as_str() == kind
                    })
                && sub.get("allOf").is_some()
            {
                let _ = name;
                return self.validate(file, &sub.clone(), v, at, errs);
            }
        }
        let ty = schema
            .get("type")
            .and_then(Value::as_str)
            .or(if props.is_empty() {
                None
            } else {
                Some("object")
            });
        match (ty, v) {
            (Some("string"), Value::String(s)) => {
                if let Some(e) = schema.get("enum").and_then(Value::as_array) {
                    let extensible = schema
                        .pointer("/x-ms-enum/modelAsString")
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if !extensible && !e.iter().any(|x| x == s) {
                        errs.push(format!("{at}: {s:?} is not one of {e:?}"));
                    }
                }
            }
            (Some("integer"), Value::Number(n)) if n.is_i64() || n.is_u64() => {}
            (Some("number"), Value::Number(_)) => {}
            (Some("boolean"), Value::Bool(_)) => {}
            (Some("array"), Value::Array(items)) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.validate(file, item_schema, item, &format!("{at}[{i}]"), errs);
                    }
                }
            }
            (Some("object") | None, Value::Object(obj)) => {
                for r in &required {
                    if !obj.contains_key(r) {
                        errs.push(format!("{at}: missing required field {r:?}"));
                    }
                }
                for (k, val) in obj {
                    match props.iter().find(|(_, n, _)| n == k) {
                        Some((f, _, s)) => {
                            let (f, s) = (f.clone(), s.clone());
                            self.validate(&f, &s, val, &format!("{at}.{k}"), errs);
                        }
                        None if open || props.is_empty() || self.extra.contains(k) => {}
                        None => errs.push(format!("{at}: unknown field {k:?}")),
                    }
                }
            }
            (Some(t), other) => errs.push(format!("{at}: expected {t}, got {other}")),
            (None, _) => {}
        }
    }

    fn collect(
        &mut self,
        file: &Path,
        schema: &Value,
        props: &mut Vec<(PathBuf, String, Value)>,
        required: &mut Vec<String>,
        open: &mut bool,
        discriminator: &mut Option<String>,
    ) {
        if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
            match self.resolve(file, r) {
                Some((f, s)) => self.collect(&f, &s, props, required, open, discriminator),
                None => *open = true,
            }
            return;
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (k, s) in p {
                props.push((file.to_path_buf(), k.clone(), s.clone()));
            }
        }
        if let Some(r) = schema.get("required").and_then(Value::as_array) {
            required.extend(r.iter().filter_map(|x| x.as_str().map(str::to_string)));
        }
        if schema
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            *open = true;
        }
        if let Some(d) = schema.get("discriminator").and_then(Value::as_str) {
            *discriminator = Some(d.to_string());
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all.clone() {
                self.collect(file, &part, props, required, open, discriminator);
            }
        }
    }
}

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

fn scenario() -> emulator::Scenario {
    let link = |name: &str, rg: &str| {
        format!(
            "https://portal.azure.com/#blade/Microsoft_Azure_Security/AlertBlade/alertId/{name}/subscriptionId/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroup/{rg}/referencedFrom/alertDeepLink/location/westeurope"
        )
    };
    let alert_row = |n: u32, name: &str, rg: &str| {
        json!({"TimeGenerated": "2026-11-27T10:00:00Z", "SystemAlertId": format!("baa8a239-6fde-4ab7-a093-d09f7b75c5{n:02}"),
               "VendorOriginalId": name, "ProductName": "Azure Security Center", "Status": "New",
               "AlertName": "Azure Security Center test alert (not a threat)", "AlertLink": link(name, rg)})
    };
    let v = json!({
        "now": "2026-11-27T12:00:00Z",
        "tenant_id": TENANT,
        "workspaces": [{"name": "myWorkspace", "subscription_id": "d0cfe6b2-9ac0-4464-9919-dccaee2e48c0",
            "resource_group": "myRg", "customer_id": "63613592-b6f7-4c3d-a390-22ba13102111"}],
        "principals": [{"name": "tester", "kind": "service_principal", "client_id": CLIENT_ID, "secret": SECRET,
            "roles": [{"role": "Owner", "scope": "/"}]}],
        "events": [{"do": "rows", "table": "SecurityAlert", "rows": [
            alert_row(1, "2518770965529163669_F144EE95-A3E5-42DA-A279-967D115809AA", "myRg1"),
            alert_row(2, "2518298467986649999_4d25bfef-2d77-4a08-adc0-3e35715cc92a", "myRg1"),
            alert_row(3, "2518765996949954086_2325cf9e-42a2-4f72-ae7f-9b863cba2d22", "myRg2"),
        ]}]
    });
    emulator::Scenario::from_json_value(v).unwrap()
}

#[tokio::test]
async fn every_spec_example_is_accepted_and_answers_the_model() {
    let Some(root) =
        crate::reference::reference(SPECS, "Azure's OpenAPI specifications and their examples")
    else {
        return;
    };
    let mut files = vec![];
    examples(&root, &mut files);
    // Creations first, so that later reads find what they read.
    files.sort_by_key(|p| {
        let n = p.file_name().unwrap().to_string_lossy().to_string();
        (!n.starts_with("Create"), n)
    });
    assert!(files.len() >= 10, "found only {} examples", files.len());
    let env = start(scenario()).await;
    let arm = env.token(ARM_SCOPE).await;
    let la = env.token(LA_SCOPE).await;
    // The incident the alerts example lists must exist.
    let ws = "/subscriptions/d0cfe6b2-9ac0-4464-9919-dccaee2e48c0/resourceGroups/myRg/providers/Microsoft.OperationalInsights/workspaces/myWorkspace";
    let (s, _, _) = env
        .call(
            "PUT",
            &format!("{}{ws}/providers/Microsoft.SecurityInsights/incidents/afbd324f-6c48-459c-8710-8d1e1cd03812?api-version=2025-09-01", env.base),
            &arm,
            Some(json!({"properties": {"title": "t", "severity": "Low", "status": "New"}})),
        )
        .await;
    assert_eq!(s, 201);
    let mut specs = Specs {
        files: HashMap::new(),
        extra: Default::default(),
    };
    let mut problems = vec![];
    for file in &files {
        let ex: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let (spec, op) = operation_of(file, &ex);
        let (template, method, operation) = specs.find_operation(&spec, &op);
        let spec_version = specs.load(&spec).unwrap()["info"]["version"]
            .as_str()
            .unwrap_or("")
            .to_string();
        specs.extra.clear();
        if ex["parameters"]["api-version"]
            .as_str()
            .is_some_and(|v| v != spec_version)
        {
            keys(&ex["responses"], &mut specs.extra);
        }
        let params = ex["parameters"].as_object().unwrap();
        let mut path = template.clone();
        let mut query = vec![];
        let mut body = None;
        for (k, v) in params {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Object(_) => {
                    body = Some(v.clone());
                    continue;
                }
                other => other.to_string(),
            };
            let placeholder = format!("{{{k}}}");
            if path.contains(&placeholder) {
                path = path.replace(&placeholder, &text);
            } else if k == "api-version" || k.starts_with('$') {
                query.push((k.clone(), text));
            }
        }
        let is_la = template.starts_with("/v1");
        let token = if is_la { &la } else { &arm };
        let mut url = format!("{}{path}", env.base);
        if !query.is_empty() {
            url = format!("{url}?{}", serde_urlencoded::to_string(&query).unwrap());
        }
        let (status, _, resp) = env.call(&method, &url, token, body).await;
        let name = file.strip_prefix(&root).unwrap().display().to_string();
        let expected: Vec<u16> = ex["responses"]
            .as_object()
            .unwrap()
            .keys()
            .filter_map(|k| k.parse().ok())
            .collect();
        let schema_key = if expected.contains(&status) {
            status.to_string()
        } else {
            "default".to_string()
        };
        if !expected.contains(&status) {
            // The Log Analytics examples query tables the emulator does not hold (Usage,
            // StorageBlobLogs): the service's answer is then a 400 naming the table.
            let text = resp.to_string();
            let missing_table = is_la
                && status == 400
                && (text.contains("Usage") || text.contains("StorageBlobLogs"));
            if !missing_table {
                problems.push(format!(
                    "{name}: status {status}, expected one of {expected:?}: {resp}"
                ));
                continue;
            }
        }
        let Some(schema) = operation["responses"][&schema_key].get("schema").cloned() else {
            if !resp.is_null() {
                problems.push(format!("{name}: a body where the spec has none: {resp}"));
            }
            continue;
        };
        let mut errs = vec![];
        specs.validate(&spec, &schema, &resp, "$", &mut errs);
        for e in errs {
            problems.push(format!("{name}: {e}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
