//! A small checker and evaluator of ARM template expressions (`"[…]"` strings), enough to
//! check `deploy/azure/azuredeploy.json` the way Resource Manager would before deploying
//! it, and to evaluate what the deployment would produce for given parameters.
//!
//! What it checks ([`check_template`]): every resource has a type, a literal `apiVersion`
//! and a name; every expression parses and calls known functions; every `parameters('x')`
//! and `variables('y')` is declared; every `resourceId()` names a resource of the template
//! (or an allowed external type) with as many name segments as its type needs; every
//! `dependsOn` names a resource (or a `copy` loop) of the same template, with no cycle; a
//! `reference()` or `listKeys()` of a template resource is matched by a `dependsOn` on it
//! (on that copy, or on its whole loop) and uses its apiVersion;
//! `copyIndex()` only inside a `copy`; nested deployments use the inner scope and pass
//! exactly the parameters their template declares; role assignments name a built-in role,
//! have a deterministic `guid()` name and `principalType: ServicePrincipal`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

/// Built-in roles a deployment of dfcsync may assign (reference §6).
pub const BUILT_IN_ROLES: &[(&str, &str)] = &[
    (
        "3e150937-b8fe-4cfb-8069-0eaf05ecd056",
        "Microsoft Sentinel Responder",
    ),
    ("fb1c8493-542b-48eb-b624-b4c8fea62acd", "Security Admin"),
    ("7f951dda-4ed3-4680-a7ca-43fe172d538d", "AcrPull"),
    (
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
        "Storage Blob Data Contributor",
    ),
    (
        "3913510d-42f4-4e42-8a64-420c390055eb",
        "Monitoring Metrics Publisher",
    ),
];

/// Resource types a template may name with `resourceId()` without deploying them.
const EXTERNAL_TYPES: &[&str] = &[
    // The existing Sentinel workspace (in the nested deployment that assigns the role).
    "Microsoft.OperationalInsights/workspaces",
    // Built-in role definitions.
    "Microsoft.Authorization/roleDefinitions",
];

/// The template functions the templates use (a subset of ARM's).
const FUNCTIONS: &[&str] = &[
    "and",
    "concat",
    "copyIndex",
    "createArray",
    "createObject",
    "div",
    "empty",
    "endsWith",
    "environment",
    "equals",
    "false",
    "first",
    "format",
    "guid",
    "if",
    "int",
    "join",
    "json",
    "last",
    "length",
    "listKeys",
    "max",
    "mod",
    "mul",
    "not",
    "or",
    "parameters",
    "reference",
    "replace",
    "resourceGroup",
    "resourceId",
    "split",
    "startsWith",
    "string",
    "subscription",
    "subscriptionResourceId",
    "take",
    "toLower",
    "true",
    "union",
    "uniqueString",
    "variables",
];

// ---------------------------------------------------------------- parsing

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Str(String),
    Int(i64),
    Call(String, Vec<Expr>),
    Prop(Box<Expr>, String),
    Index(Box<Expr>, Box<Expr>),
}

/// `Some(expression text)` when `s` is an ARM expression (`[…]`, but not the `[[` escape).
pub fn expression_text(s: &str) -> Option<&str> {
    if s.starts_with('[') && !s.starts_with("[[") && s.ends_with(']') {
        Some(&s[1..s.len() - 1])
    } else {
        None
    }
}

pub fn parse(text: &str) -> Result<Expr, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut p = Parser { c: &chars, i: 0 };
    let e = p.expr()?;
    p.ws();
    if p.i != chars.len() {
        return Err(format!(
            "unexpected {:?} at {} in {text:?}",
            chars[p.i], p.i
        ));
    }
    Ok(e)
}

struct Parser<'a> {
    c: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.i < self.c.len() && self.c[self.i].is_whitespace() {
            self.i += 1;
        }
    }
    fn peek(&mut self) -> Option<char> {
        self.ws();
        self.c.get(self.i).copied()
    }
    fn eat(&mut self, ch: char) -> Result<(), String> {
        if self.peek() == Some(ch) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {ch:?} at {}", self.i))
        }
    }
    fn expr(&mut self) -> Result<Expr, String> {
        let mut e = match self.peek() {
            Some('\'') => {
                self.i += 1;
                let mut s = String::new();
                loop {
                    match self.c.get(self.i) {
                        None => return Err("unterminated string".into()),
                        Some('\'') if self.c.get(self.i + 1) == Some(&'\'') => {
                            s.push('\'');
                            self.i += 2;
                        }
                        Some('\'') => {
                            self.i += 1;
                            break;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            self.i += 1;
                        }
                    }
                }
                Expr::Str(s)
            }
            Some(ch) if ch.is_ascii_digit() || ch == '-' => {
                let start = self.i;
                self.i += 1;
                while self.i < self.c.len() && self.c[self.i].is_ascii_digit() {
                    self.i += 1;
                }
                let t: String = self.c[start..self.i].iter().collect();
                Expr::Int(t.parse().map_err(|_| format!("bad number {t:?}"))?)
            }
            Some(ch) if ch.is_ascii_alphabetic() => {
                let name = self.ident();
                self.eat('(')?;
                let mut args = Vec::new();
                if self.peek() != Some(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.peek() == Some(',') {
                            self.i += 1;
                        } else {
                            break;
                        }
                    }
                }
                self.eat(')')?;
                Expr::Call(name, args)
            }
            other => return Err(format!("unexpected {other:?} at {}", self.i)),
        };
        loop {
            match self.peek() {
                Some('.') => {
                    self.i += 1;
                    let name = self.ident();
                    if name.is_empty() {
                        return Err(format!("a property name is missing at {}", self.i));
                    }
                    e = Expr::Prop(Box::new(e), name);
                }
                Some('[') => {
                    self.i += 1;
                    let idx = self.expr()?;
                    self.eat(']')?;
                    e = Expr::Index(Box::new(e), Box::new(idx));
                }
                _ => return Ok(e),
            }
        }
    }
    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self.i < self.c.len()
            && (self.c[self.i].is_ascii_alphanumeric() || self.c[self.i] == '_')
        {
            self.i += 1;
        }
        self.c[start..self.i].iter().collect()
    }
}

/// Canonical text of an expression (for comparing names with `resourceId()` arguments).
pub fn canon(e: &Expr) -> String {
    match e {
        Expr::Str(s) => format!("'{}'", s.replace('\'', "''")),
        Expr::Int(i) => i.to_string(),
        Expr::Call(f, args) => format!(
            "{}({})",
            f.to_ascii_lowercase(),
            args.iter().map(canon).collect::<Vec<_>>().join(",")
        ),
        Expr::Prop(b, p) => format!("{}.{p}", canon(b)),
        Expr::Index(b, i) => format!("{}[{}]", canon(b), canon(i)),
    }
}

/// A JSON value as an expression: `"[x]"` parses `x`; any other string is a literal.
fn value_expr(v: &Value) -> Result<Option<Expr>, String> {
    match v {
        Value::String(s) => match expression_text(s) {
            Some(t) => parse(t).map(Some),
            None => Ok(Some(Expr::Str(
                s.strip_prefix('[').map_or(s.clone(), |r| r.to_owned()),
            ))),
        },
        _ => Ok(None),
    }
}

// ---------------------------------------------------------------- static checks

#[derive(Debug, Clone)]
pub struct Resource {
    pub ty: String,
    /// Canonical expression of the name.
    pub name: String,
    pub api_version: String,
    pub json: Value,
}

struct Scope<'a> {
    path: String,
    params: &'a Map<String, Value>,
    vars: &'a Map<String, Value>,
    resources: Vec<Resource>,
}

/// Checks a template; returns every problem found (empty: it would be accepted).
pub fn check_template(t: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_scope(t, "$", &mut errors);
    errors
}

fn check_scope(t: &Value, path: &str, errors: &mut Vec<String>) {
    let empty = Map::new();
    let Some(obj) = t.as_object() else {
        errors.push(format!("{path}: a template is an object"));
        return;
    };
    for key in obj.keys() {
        if ![
            "$schema",
            "contentVersion",
            "metadata",
            "parameters",
            "variables",
            "functions",
            "resources",
            "outputs",
        ]
        .contains(&key.as_str())
        {
            errors.push(format!("{path}: unknown template property {key:?}"));
        }
    }
    for key in ["$schema", "contentVersion", "resources"] {
        if !obj.contains_key(key) {
            errors.push(format!("{path}: {key} is missing"));
        }
    }
    let params = obj
        .get("parameters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    // Variables, with those a `copy` section of the variables makes (each is an array).
    let mut vars_all = obj
        .get("variables")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let var_copies: Vec<Value> = vars_all
        .remove("copy")
        .and_then(|c| c.as_array().cloned())
        .unwrap_or_default();
    for c in &var_copies {
        match c.get("name").and_then(Value::as_str) {
            Some(n) => {
                vars_all.insert(n.to_owned(), c.clone());
            }
            None => errors.push(format!("{path}.variables.copy: a loop without a name")),
        }
    }
    let vars = &vars_all;
    let resources_json: Vec<Value> = obj
        .get("resources")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut resources = Vec::new();
    for (i, r) in resources_json.iter().enumerate() {
        let rp = format!("{path}.resources[{i}]");
        let ty = r.get("type").and_then(Value::as_str).unwrap_or_default();
        if !ty.contains('/') {
            errors.push(format!("{rp}: type {ty:?} is not Namespace/type"));
        }
        let api = r
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !is_api_version(api) {
            errors.push(format!(
                "{rp} ({ty}): apiVersion {api:?} is not a literal yyyy-mm-dd[-preview]"
            ));
        }
        let name = match r.get("name").map(value_expr) {
            Some(Ok(Some(e))) => name_segments(&e).join("/"),
            Some(Err(e)) => {
                errors.push(format!("{rp}: name: {e}"));
                String::new()
            }
            _ => {
                errors.push(format!("{rp} ({ty}): name is missing"));
                String::new()
            }
        };
        resources.push(Resource {
            ty: ty.to_owned(),
            name,
            api_version: api.to_owned(),
            json: r.clone(),
        });
    }
    let scope = Scope {
        path: path.to_owned(),
        params,
        vars,
        resources,
    };
    // Parameters: types, and literal defaults within allowedValues.
    for (name, p) in params {
        let ty = p.get("type").and_then(Value::as_str).unwrap_or_default();
        if ![
            "string",
            "securestring",
            "int",
            "bool",
            "object",
            "secureObject",
            "array",
        ]
        .contains(&ty)
        {
            errors.push(format!("{path}.parameters.{name}: type {ty:?}"));
        }
        if let (Some(d), Some(allowed)) = (
            p.get("defaultValue"),
            p.get("allowedValues").and_then(Value::as_array),
        ) && d.as_str().is_none_or(|s| expression_text(s).is_none())
            && !allowed.contains(d)
        {
            errors.push(format!(
                "{path}.parameters.{name}: default {d} is not among allowedValues"
            ));
        }
        if let Some(d) = p.get("defaultValue") {
            walk_values(
                d,
                &scope,
                None,
                &format!("{path}.parameters.{name}"),
                errors,
            );
        }
    }
    // A loop of the variables or of an output may use copyIndex().
    let deps = BTreeSet::new();
    let looped = Resource {
        ty: String::new(),
        name: String::new(),
        api_version: String::new(),
        json: Value::Null,
    };
    let in_loop = ResCtx {
        deps: &deps,
        in_copy: true,
        this: &looped,
    };
    let copy_names: BTreeSet<&str> = var_copies
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    for (name, v) in vars {
        let ctx = copy_names.contains(name.as_str()).then_some(&in_loop);
        walk_values(v, &scope, ctx, &format!("{path}.variables.{name}"), errors);
    }
    for (i, r) in scope.resources.iter().enumerate() {
        check_resource(r, i, &scope, errors);
    }
    if let Some(outputs) = obj.get("outputs").and_then(Value::as_object) {
        for (name, o) in outputs {
            if o.get("type").is_none() {
                errors.push(format!("{path}.outputs.{name}: type is missing"));
            }
            let ctx = o.get("copy").is_some().then_some(&in_loop);
            walk_values(o, &scope, ctx, &format!("{path}.outputs.{name}"), errors);
        }
    }
    check_cycles(&scope, errors);
}

/// The segments of a resource name, canonical: `format('{0}/default/{1}', a, b)` is `a`,
/// `'default'`, `b`, as `resourceId(type, a, 'default', b)` names it; a literal `x/y` is `'x'`, `'y'`.
fn name_segments(e: &Expr) -> Vec<String> {
    match e {
        Expr::Str(s) => s
            .split('/')
            .map(|x| canon(&Expr::Str(x.to_owned())))
            .collect(),
        Expr::Call(f, args) if f == "format" && matches!(args.first(), Some(Expr::Str(_))) => {
            let Some(Expr::Str(fmt)) = args.first() else {
                unreachable!()
            };
            let parts: Vec<Option<String>> = fmt
                .split('/')
                .map(|part| {
                    match part
                        .strip_prefix('{')
                        .and_then(|r| r.strip_suffix('}'))
                        .and_then(|n| n.parse::<usize>().ok())
                    {
                        Some(i) => args.get(i + 1).map(canon),
                        None if part.contains('{') => None,
                        None => Some(canon(&Expr::Str(part.to_owned()))),
                    }
                })
                .collect();
            if fmt.contains('/') && parts.iter().all(Option::is_some) {
                parts.into_iter().flatten().collect()
            } else {
                vec![canon(e)]
            }
        }
        other => vec![canon(other)],
    }
}

fn is_api_version(s: &str) -> bool {
    let b = s.as_bytes();
    let date = b.len() >= 10
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    date && (s.len() == 10 || s[10..].starts_with("-preview") || s[10..].starts_with("-beta"))
}

/// The resource a `dependsOn` entry or a `resourceId()` call names, if any. A resource in
/// a `copy` loop whose name uses `copyIndex()` is named by that name with any index in its
/// place: `variables('jobs')[1].name` names a copy of `variables('jobs')[copyIndex()].name`.
fn find<'a>(scope: &'a Scope, ty: &str, names: &[String]) -> Option<&'a Resource> {
    let name = names.join("/");
    scope
        .resources
        .iter()
        .find(|r| r.ty.eq_ignore_ascii_case(ty) && (r.name == name || names_a_copy(r, &name)))
}

/// The name of the `copy` loop a resource is in.
fn copy_name(r: &Resource) -> Option<&str> {
    r.json.pointer("/copy/name").and_then(Value::as_str)
}

/// Whether `name` (canonical) is the name of a copied resource with another index
/// expression (bracket-balanced, not empty) in the place of its `copyIndex()`.
fn names_a_copy(r: &Resource, name: &str) -> bool {
    let Some((prefix, suffix)) = r.name.split_once("copyindex()") else {
        return false;
    };
    if copy_name(r).is_none()
        || name.len() <= prefix.len() + suffix.len()
        || !name.starts_with(prefix)
        || !name.ends_with(suffix)
    {
        return false;
    }
    let index = &name[prefix.len()..name.len() - suffix.len()];
    let mut depth = 0i32;
    for c in index.chars() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            _ => {}
        }
        if depth < 0 {
            return false;
        }
    }
    depth == 0
}

/// What a `dependsOn` entry names: the resource, and the name it is named by (the name as
/// the `resourceId()` writes it, so one copy of a loop; or the resource's own name, so
/// the whole loop when the entry is the loop's name). `Ok(None)`: nothing of this template.
fn resolve_dep<'a>(scope: &'a Scope, s: &str) -> Result<Option<(&'a Resource, String)>, String> {
    Ok(match expression_text(s).map(parse) {
        Some(Ok(Expr::Call(f, args))) if f.eq_ignore_ascii_case("resourceId") => {
            // With an explicit subscription and resource group: a nested deployment of this
            // template in another scope is named so.
            let (_, ty, names) = split_resource_id(&args)?;
            find(scope, &ty, &names).map(|r| (r, names.join("/")))
        }
        Some(Ok(_)) => None,
        Some(Err(e)) => return Err(e),
        None => scope
            .resources
            .iter()
            .find(|x| x.name == canon(&Expr::Str(s.to_owned())) || copy_name(x) == Some(s))
            .map(|r| (r, r.name.clone())),
    })
}

/// `resourceId([sub], [rg], 'Type', name…)`: (explicit scope, type, names).
fn split_resource_id(args: &[Expr]) -> Result<(bool, String, Vec<String>), String> {
    let pos = args
        .iter()
        .position(|a| matches!(a, Expr::Str(s) if s.contains('/')))
        .ok_or("resourceId() without a literal 'Namespace/type' argument")?;
    let Expr::Str(ty) = &args[pos] else {
        unreachable!()
    };
    let names: Vec<String> = args[pos + 1..].iter().map(canon).collect();
    let segments = ty.split('/').count() - 1;
    if names.len() != segments {
        return Err(format!(
            "resourceId('{ty}', …) has {} name segment(s), the type needs {segments}",
            names.len()
        ));
    }
    if pos > 2 {
        return Err(format!("resourceId('{ty}', …): too many scope arguments"));
    }
    Ok((pos > 0, ty.clone(), names))
}

fn check_resource(r: &Resource, i: usize, scope: &Scope, errors: &mut Vec<String>) {
    let rp = format!("{}.resources[{i}] ({} {})", scope.path, r.ty, r.name);
    let obj = r.json.as_object().cloned().unwrap_or_default();
    let in_copy = obj.contains_key("copy");
    // dependsOn
    let mut deps = BTreeSet::new();
    for d in obj
        .get("dependsOn")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(s) = d.as_str() else {
            errors.push(format!("{rp}: dependsOn entry {d} is not a string"));
            continue;
        };
        let target = match resolve_dep(scope, s) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{rp}: dependsOn {s}: {e}"));
                continue;
            }
        };
        match target {
            Some((t, _)) if t.ty == r.ty && t.name == r.name => {
                errors.push(format!("{rp}: depends on itself"));
            }
            Some((t, named)) => {
                deps.insert((t.ty.to_ascii_lowercase(), named));
            }
            None => errors.push(format!(
                "{rp}: dependsOn {s} names no resource of this template"
            )),
        }
    }
    let ctx = ResCtx {
        deps: &deps,
        in_copy,
        this: r,
    };
    for (key, v) in &obj {
        if key == "dependsOn" {
            continue;
        }
        if key == "properties" && r.ty == "Microsoft.Resources/deployments" {
            check_nested(v, scope, &ctx, &format!("{rp}.properties"), errors);
            continue;
        }
        walk_values(v, scope, Some(&ctx), &format!("{rp}.{key}"), errors);
    }
    if r.ty == "Microsoft.Authorization/roleAssignments" {
        check_role_assignment(r, &rp, errors);
    }
}

struct ResCtx<'a> {
    deps: &'a BTreeSet<(String, String)>,
    in_copy: bool,
    this: &'a Resource,
}

fn check_nested(props: &Value, scope: &Scope, ctx: &ResCtx, path: &str, errors: &mut Vec<String>) {
    let eval_scope = props
        .pointer("/expressionEvaluationOptions/scope")
        .and_then(Value::as_str)
        .unwrap_or("outer");
    if !eval_scope.eq_ignore_ascii_case("inner") {
        errors.push(format!(
            "{path}: a nested template must use expressionEvaluationOptions.scope = inner (its parameters are then explicit)"
        ));
    }
    let Some(template) = props.get("template") else {
        errors.push(format!(
            "{path}: no inline template (templateLink is not checked)"
        ));
        return;
    };
    let passed = props
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let declared = template
        .get("parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for name in passed.keys() {
        if !declared.contains_key(name) {
            errors.push(format!(
                "{path}: passes parameter {name:?} that its template does not declare"
            ));
        }
    }
    for (name, p) in &declared {
        if p.get("defaultValue").is_none() && !passed.contains_key(name) {
            errors.push(format!(
                "{path}: its template needs parameter {name:?}, which is not passed"
            ));
        }
    }
    for (key, v) in props.as_object().into_iter().flatten() {
        if key != "template" {
            walk_values(v, scope, Some(ctx), &format!("{path}.{key}"), errors);
        }
    }
    check_scope(template, &format!("{path}.template"), errors);
}

fn check_role_assignment(r: &Resource, rp: &str, errors: &mut Vec<String>) {
    let name_ok = r
        .json
        .get("name")
        .and_then(Value::as_str)
        .and_then(expression_text)
        .and_then(|t| parse(t).ok())
        .is_some_and(|e| matches!(e, Expr::Call(f, _) if f == "guid"));
    if !name_ok {
        errors.push(format!("{rp}: the name of a role assignment must be a guid(…) of its scope, principal and role (deterministic)"));
    }
    let p = r.json.get("properties");
    if p.and_then(|p| p.get("principalType"))
        .and_then(Value::as_str)
        != Some("ServicePrincipal")
    {
        errors.push(format!(
            "{rp}: principalType must be ServicePrincipal (a new identity is not replicated yet)"
        ));
    }
    if p.and_then(|p| p.get("principalId")).is_none() {
        errors.push(format!("{rp}: principalId is missing"));
    }
    let role = p
        .and_then(|p| p.get("roleDefinitionId"))
        .and_then(Value::as_str)
        .and_then(expression_text)
        .and_then(|t| parse(t).ok());
    match role {
        Some(Expr::Call(f, args))
            if f == "subscriptionResourceId"
                && args.first() == Some(&Expr::Str("Microsoft.Authorization/roleDefinitions".into())) => {}
        _ => errors.push(format!(
            "{rp}: roleDefinitionId must be subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <built-in role id>)"
        )),
    }
}

/// Checks every expression inside a JSON value.
fn walk_values(
    v: &Value,
    scope: &Scope,
    res: Option<&ResCtx>,
    path: &str,
    errors: &mut Vec<String>,
) {
    match v {
        Value::String(s) => {
            if let Some(t) = expression_text(s) {
                match parse(t) {
                    Ok(e) => check_expr(&e, scope, res, path, errors),
                    Err(e) => errors.push(format!("{path}: {e}")),
                }
            }
            if is_guid(s)
                && !BUILT_IN_ROLES
                    .iter()
                    .any(|(id, _)| id.eq_ignore_ascii_case(s))
            {
                errors.push(format!(
                    "{path}: {s} is not a built-in role id dfcsync needs"
                ));
            }
            for host in [
                "management.azure.com",
                "login.microsoftonline",
                "api.loganalytics",
                "usgovcloudapi.net",
                "chinacloudapi.cn",
            ] {
                if s.contains(host) && !path.ends_with(".$schema") {
                    errors.push(format!("{path}: hard-codes a cloud endpoint ({host})"));
                }
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                walk_values(x, scope, res, &format!("{path}[{i}]"), errors);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                walk_values(x, scope, res, &format!("{path}.{k}"), errors);
            }
        }
        _ => {}
    }
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

fn check_expr(e: &Expr, scope: &Scope, res: Option<&ResCtx>, path: &str, errors: &mut Vec<String>) {
    match e {
        Expr::Str(s) => {
            if is_guid(s)
                && !BUILT_IN_ROLES
                    .iter()
                    .any(|(id, _)| id.eq_ignore_ascii_case(s))
            {
                errors.push(format!(
                    "{path}: {s} is not a built-in role id dfcsync needs"
                ));
            }
        }
        Expr::Int(_) => {}
        Expr::Prop(b, _) => check_expr(b, scope, res, path, errors),
        Expr::Index(b, i) => {
            check_expr(b, scope, res, path, errors);
            check_expr(i, scope, res, path, errors);
        }
        Expr::Call(f, args) => {
            for a in args {
                check_expr(a, scope, res, path, errors);
            }
            if !FUNCTIONS.contains(&f.as_str()) {
                errors.push(format!("{path}: unknown function {f}()"));
                return;
            }
            let lit = |n: usize| match args.get(n) {
                Some(Expr::Str(s)) => Some(s.clone()),
                _ => None,
            };
            match f.as_str() {
                "parameters" => match lit(0) {
                    Some(p) if scope.params.contains_key(&p) => {}
                    Some(p) => errors.push(format!("{path}: parameters('{p}') is not declared")),
                    None => errors.push(format!("{path}: parameters() needs a literal name")),
                },
                "variables" => match lit(0) {
                    Some(v) if scope.vars.contains_key(&v) => {}
                    Some(v) => errors.push(format!("{path}: variables('{v}') is not declared")),
                    None => errors.push(format!("{path}: variables() needs a literal name")),
                },
                "copyIndex" if !res.is_some_and(|r| r.in_copy) => {
                    errors.push(format!("{path}: copyIndex() outside a copy loop"));
                }
                "resourceId" | "subscriptionResourceId" => match split_resource_id(args) {
                    Err(e) => errors.push(format!("{path}: {e}")),
                    Ok((true, ..)) => {}
                    Ok((false, ty, names)) => {
                        let declared = scope
                            .resources
                            .iter()
                            .any(|r| r.ty.eq_ignore_ascii_case(&ty));
                        if declared && find(scope, &ty, &names).is_none() {
                            errors.push(format!(
                                "{path}: {f}('{ty}', {}) names no resource of this template",
                                names.join(", ")
                            ));
                        } else if !declared && !EXTERNAL_TYPES.contains(&ty.as_str()) {
                            errors.push(format!(
                                "{path}: {f}('{ty}', …): no resource of this type in the template"
                            ));
                        }
                    }
                },
                "reference" | "listKeys" => {
                    if args.len() < 2 {
                        errors.push(format!("{path}: {f}() without an apiVersion"));
                    }
                    if let Some(Expr::Call(g, rargs)) = args.first()
                        && g == "resourceId"
                        && let Ok((_, ty, names)) = split_resource_id(rargs)
                        && let Some(target) = find(scope, &ty, &names)
                    {
                        // A dependsOn on this copy, or on the whole loop (or resource).
                        let ty_key = target.ty.to_ascii_lowercase();
                        // (Outputs and variables deploy nothing: no dependsOn to check.)
                        if let Some(r) = res
                            && !r.this.ty.is_empty()
                            && !(r.this.ty == target.ty && r.this.name == target.name)
                            && !r.deps.contains(&(ty_key.clone(), names.join("/")))
                            && !r.deps.contains(&(ty_key, target.name.clone()))
                        {
                            errors.push(format!(
                                "{path}: {f}() of {ty} {} without a dependsOn on it",
                                target.name
                            ));
                        }
                        let api = args.get(1).and_then(|a| literal_or_variable(a, scope));
                        if let Some(api) = api
                            && api != target.api_version
                        {
                            errors.push(format!(
                                "{path}: {f}() of {ty} with apiVersion {api}, the resource is deployed with {}",
                                target.api_version
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn literal_or_variable(e: &Expr, scope: &Scope) -> Option<String> {
    match e {
        Expr::Str(s) => Some(s.clone()),
        Expr::Call(f, a) if f == "variables" => match a.first() {
            Some(Expr::Str(v)) => scope.vars.get(v).and_then(Value::as_str).map(str::to_owned),
            _ => None,
        },
        _ => None,
    }
}

fn check_cycles(scope: &Scope, errors: &mut Vec<String>) {
    // Edges from each resource to the resources its dependsOn names.
    let key = |r: &Resource| (r.ty.to_ascii_lowercase(), r.name.clone());
    let mut edges: BTreeMap<(String, String), Vec<(String, String)>> = BTreeMap::new();
    for r in &scope.resources {
        let mut out = Vec::new();
        for d in r
            .json
            .get("dependsOn")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(Ok(Some((t, _)))) = d.as_str().map(|s| resolve_dep(scope, s)) {
                out.push(key(t));
            }
        }
        edges.insert(key(r), out);
    }
    fn visit(
        n: &(String, String),
        edges: &BTreeMap<(String, String), Vec<(String, String)>>,
        stack: &mut Vec<(String, String)>,
        done: &mut BTreeSet<(String, String)>,
    ) -> bool {
        if stack.contains(n) {
            return true;
        }
        if done.contains(n) {
            return false;
        }
        stack.push(n.clone());
        let cyc = edges
            .get(n)
            .into_iter()
            .flatten()
            .any(|m| visit(m, edges, stack, done));
        stack.pop();
        done.insert(n.clone());
        cyc
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if visit(n, &edges, &mut Vec::new(), &mut done) {
            errors.push(format!(
                "{}: dependsOn cycle through {} {}",
                scope.path, n.0, n.1
            ));
            return;
        }
    }
}

// ---------------------------------------------------------------- evaluation

/// A value of the template language.
#[derive(Debug, Clone, PartialEq)]
pub enum V {
    S(String),
    I(i64),
    B(bool),
    A(Vec<V>),
    O(BTreeMap<String, V>),
}

impl V {
    pub fn str(&self) -> &str {
        match self {
            V::S(s) => s,
            other => panic!("not a string: {other:?}"),
        }
    }
    pub fn get(&self, k: &str) -> Option<&V> {
        match self {
            V::O(m) => m.get(k),
            _ => None,
        }
    }
    /// As JSON (what `string()` of an object or array writes).
    pub fn to_json(&self) -> Value {
        match self {
            V::S(s) => Value::String(s.clone()),
            V::I(i) => Value::from(*i),
            V::B(b) => Value::Bool(*b),
            V::A(a) => Value::Array(a.iter().map(V::to_json).collect()),
            V::O(o) => Value::Object(o.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    pub fn from_json(v: &Value) -> V {
        match v {
            Value::String(s) => V::S(s.clone()),
            Value::Bool(b) => V::B(*b),
            Value::Number(n) => V::I(n.as_i64().unwrap_or_default()),
            Value::Array(a) => V::A(a.iter().map(V::from_json).collect()),
            Value::Object(o) => V::O(
                o.iter()
                    .map(|(k, v)| (k.clone(), V::from_json(v)))
                    .collect(),
            ),
            Value::Null => V::S(String::new()),
        }
    }
}

/// Where a deployment runs, and what `reference()` returns for resources it deploys.
pub struct Env<'a> {
    pub subscription_id: String,
    /// `None` at subscription scope.
    pub resource_group: Option<String>,
    pub location: String,
    /// `environment().name`: AzureCloud, AzureUSGovernment, AzureChinaCloud.
    pub cloud: String,
    /// `reference(id, api, 'full'?)` → the resource's properties (or its full object).
    pub reference: &'a dyn Fn(&str, bool) -> V,
}

/// One template being evaluated: its parameter values and variables.
#[derive(Clone)]
pub struct Eval<'a> {
    pub template: &'a Value,
    pub params: BTreeMap<String, V>,
    pub env: &'a Env<'a>,
    pub copy_index: Option<i64>,
    /// `copyIndex('name')` of the variables' loops being evaluated.
    pub named_index: BTreeMap<String, i64>,
}

impl<'a> Eval<'a> {
    /// Binds the given parameter values; the others take their defaults (evaluated), and
    /// every value must be among its `allowedValues`, as ARM checks before deploying.
    pub fn new(
        template: &'a Value,
        given: BTreeMap<String, V>,
        env: &'a Env<'a>,
    ) -> Result<Self, String> {
        let mut ev = Eval {
            template,
            params: BTreeMap::new(),
            env,
            copy_index: None,
            named_index: BTreeMap::new(),
        };
        let declared = template
            .get("parameters")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for k in given.keys() {
            if !declared.contains_key(k) {
                return Err(format!("parameter {k} is not declared"));
            }
        }
        ev.params = given;
        // Defaults may refer to other parameters: resolve until nothing changes.
        for _ in 0..declared.len() + 1 {
            for (k, p) in &declared {
                if ev.params.contains_key(k) {
                    continue;
                }
                match p.get("defaultValue") {
                    None => return Err(format!("parameter {k} needs a value")),
                    Some(d) => {
                        if let Ok(v) = ev.json(d) {
                            ev.params.insert(k.clone(), v);
                        }
                    }
                }
            }
        }
        for (k, p) in &declared {
            let v = ev
                .params
                .get(k)
                .ok_or(format!("parameter {k}: default does not evaluate"))?;
            if let Some(allowed) = p.get("allowedValues").and_then(Value::as_array)
                && !allowed.iter().any(|a| V::from_json(a) == *v)
            {
                return Err(format!("parameter {k}: {v:?} is not among allowedValues"));
            }
        }
        Ok(ev)
    }

    /// Evaluates a JSON value: expressions inside strings, recursively.
    pub fn json(&self, v: &Value) -> Result<V, String> {
        Ok(match v {
            Value::String(s) => match expression_text(s) {
                Some(t) => self.expr(&parse(t)?)?,
                None => V::S(s.strip_prefix('[').map_or(s.clone(), |r| r.to_owned())),
            },
            Value::Array(a) => V::A(a.iter().map(|x| self.json(x)).collect::<Result<_, _>>()?),
            Value::Object(o) => V::O(
                o.iter()
                    .map(|(k, x)| Ok((k.clone(), self.json(x)?)))
                    .collect::<Result<_, String>>()?,
            ),
            other => V::from_json(other),
        })
    }

    /// A variable made by a loop of the variables' `copy` section: its inputs, evaluated.
    fn variable_loop(&self, name: &str) -> Result<V, String> {
        let lp = self
            .template
            .pointer("/variables/copy")
            .and_then(Value::as_array)
            .and_then(|c| c.iter().find(|l| l["name"] == name))
            .ok_or(format!("variable {name} not declared"))?;
        let V::I(count) = self.json(&lp["count"])? else {
            return Err(format!("the count of variable {name} is not a number"));
        };
        let mut out = Vec::new();
        for i in 0..count {
            let mut ev = self.clone();
            ev.named_index.insert(name.to_owned(), i);
            out.push(ev.json(&lp["input"])?);
        }
        Ok(V::A(out))
    }

    pub fn resource_id(&self, sub: &str, rg: Option<&str>, ty: &str, names: &[String]) -> String {
        let mut id = format!("/subscriptions/{sub}");
        if let Some(rg) = rg {
            id.push_str(&format!("/resourceGroups/{rg}"));
        }
        let mut parts = ty.splitn(2, '/');
        let ns = parts.next().unwrap_or_default();
        let types: Vec<&str> = parts.next().unwrap_or_default().split('/').collect();
        id.push_str(&format!("/providers/{ns}"));
        for (t, n) in types.iter().zip(names) {
            id.push_str(&format!("/{t}/{n}"));
        }
        id
    }

    pub fn expr(&self, e: &Expr) -> Result<V, String> {
        let s = |v: V| -> Result<String, String> {
            match v {
                V::S(s) => Ok(s),
                V::I(i) => Ok(i.to_string()),
                V::B(b) => Ok(if b { "True".into() } else { "False".into() }),
                other => Err(format!("not a string: {other:?}")),
            }
        };
        let b = |v: V| -> Result<bool, String> {
            match v {
                V::B(b) => Ok(b),
                other => Err(format!("not a bool: {other:?}")),
            }
        };
        Ok(match e {
            Expr::Str(x) => V::S(x.clone()),
            Expr::Int(i) => V::I(*i),
            Expr::Prop(base, p) => {
                let v = self.expr(base)?;
                v.get(p)
                    .cloned()
                    .ok_or(format!("property {p} not found in {v:?}"))?
            }
            Expr::Index(base, i) => match (self.expr(base)?, self.expr(i)?) {
                (V::A(a), V::I(i)) => a
                    .get(i as usize)
                    .cloned()
                    .ok_or(format!("index {i} out of range"))?,
                (V::O(o), V::S(k)) => o.get(&k).cloned().ok_or(format!("key {k} not found"))?,
                (x, y) => return Err(format!("cannot index {x:?} with {y:?}")),
            },
            Expr::Call(f, args) => {
                let arg = |n: usize| -> Result<V, String> {
                    self.expr(args.get(n).ok_or(format!("{f}() needs argument {n}"))?)
                };
                let all =
                    || -> Result<Vec<V>, String> { args.iter().map(|a| self.expr(a)).collect() };
                match f.as_str() {
                    "parameters" => {
                        let k = s(arg(0)?)?;
                        self.params
                            .get(&k)
                            .cloned()
                            .ok_or(format!("parameter {k} has no value"))?
                    }
                    "variables" => {
                        let k = s(arg(0)?)?;
                        match self.template.pointer(&format!("/variables/{k}")) {
                            Some(v) if k != "copy" => self.json(v)?,
                            _ => self.variable_loop(&k)?,
                        }
                    }
                    "if" => {
                        if b(arg(0)?)? {
                            arg(1)?
                        } else {
                            arg(2)?
                        }
                    }
                    "equals" => V::B(arg(0)? == arg(1)?),
                    "not" => V::B(!b(arg(0)?)?),
                    "and" => V::B(
                        all()?
                            .into_iter()
                            .map(b)
                            .collect::<Result<Vec<_>, _>>()?
                            .iter()
                            .all(|x| *x),
                    ),
                    "or" => V::B(
                        all()?
                            .into_iter()
                            .map(b)
                            .collect::<Result<Vec<_>, _>>()?
                            .iter()
                            .any(|x| *x),
                    ),
                    "true" => V::B(true),
                    "false" => V::B(false),
                    "empty" => V::B(match arg(0)? {
                        V::S(x) => x.is_empty(),
                        V::A(a) => a.is_empty(),
                        V::O(o) => o.is_empty(),
                        _ => false,
                    }),
                    "length" => V::I(match arg(0)? {
                        V::S(x) => x.chars().count() as i64,
                        V::A(a) => a.len() as i64,
                        V::O(o) => o.len() as i64,
                        other => return Err(format!("length of {other:?}")),
                    }),
                    "string" => match arg(0)? {
                        x @ (V::A(_) | V::O(_)) => V::S(x.to_json().to_string()),
                        x => V::S(s(x)?),
                    },
                    "toLower" => V::S(s(arg(0)?)?.to_lowercase()),
                    "json" => V::from_json(
                        &serde_json::from_str::<Value>(&s(arg(0)?)?).map_err(|e| e.to_string())?,
                    ),
                    "format" => {
                        let mut out = s(arg(0)?)?;
                        for (i, a) in all()?.into_iter().skip(1).enumerate() {
                            out = out.replace(&format!("{{{i}}}"), &s(a)?);
                        }
                        V::S(out)
                    }
                    "concat" => match all()?.as_slice() {
                        [V::A(_), ..] => V::A(
                            all()?
                                .into_iter()
                                .flat_map(|x| match x {
                                    V::A(a) => a,
                                    other => vec![other],
                                })
                                .collect(),
                        ),
                        xs => V::S(
                            xs.iter()
                                .cloned()
                                .map(s)
                                .collect::<Result<Vec<_>, _>>()?
                                .concat(),
                        ),
                    },
                    "createArray" => V::A(all()?),
                    "createObject" => {
                        let xs = all()?;
                        let mut m = BTreeMap::new();
                        for kv in xs.chunks(2) {
                            let [k, v] = kv else {
                                return Err("createObject() needs key/value pairs".into());
                            };
                            m.insert(s(k.clone())?, v.clone());
                        }
                        V::O(m)
                    }
                    "guid" => V::S(format!(
                        "guid({})",
                        all()?
                            .into_iter()
                            .map(s)
                            .collect::<Result<Vec<_>, _>>()?
                            .join("|")
                    )),
                    "copyIndex" => match args.first() {
                        Some(Expr::Str(name)) if self.named_index.contains_key(name) => {
                            V::I(self.named_index[name])
                        }
                        _ => V::I(self.copy_index.ok_or("copyIndex() outside a copy loop")?),
                    },
                    "mul" | "div" | "mod" => {
                        let (V::I(a), V::I(b)) = (arg(0)?, arg(1)?) else {
                            return Err(format!("{f}() of non-integers"));
                        };
                        V::I(match f.as_str() {
                            "mul" => a * b,
                            _ if b == 0 => return Err(format!("{f}() by zero")),
                            "div" => a / b,
                            _ => a % b,
                        })
                    }
                    "max" => V::I(
                        all()?
                            .into_iter()
                            .map(|v| match v {
                                V::I(i) => Ok(i),
                                other => Err(format!("max() of {other:?}")),
                            })
                            .collect::<Result<Vec<_>, _>>()?
                            .into_iter()
                            .max()
                            .ok_or("max() of nothing")?,
                    ),
                    "int" => match arg(0)? {
                        V::I(i) => V::I(i),
                        V::S(x) => V::I(x.trim().parse().map_err(|_| format!("int({x:?})"))?),
                        other => return Err(format!("int({other:?})")),
                    },
                    "split" => V::A(
                        s(arg(0)?)?
                            .split(&s(arg(1)?)? as &str)
                            .map(|x| V::S(x.to_owned()))
                            .collect(),
                    ),
                    "join" => match arg(0)? {
                        V::A(a) => V::S(
                            a.into_iter()
                                .map(s)
                                .collect::<Result<Vec<_>, _>>()?
                                .join(&s(arg(1)?)?),
                        ),
                        other => return Err(format!("join({other:?})")),
                    },
                    "first" | "last" => match arg(0)? {
                        V::A(a) => {
                            let x = if f == "first" { a.first() } else { a.last() };
                            x.cloned().ok_or(format!("{f}() of an empty array"))?
                        }
                        V::S(x) => {
                            let c = if f == "first" {
                                x.chars().next()
                            } else {
                                x.chars().last()
                            };
                            V::S(c.map(String::from).unwrap_or_default())
                        }
                        other => return Err(format!("{f}({other:?})")),
                    },
                    "take" => {
                        let V::I(n) = arg(1)? else {
                            return Err("take() needs a count".into());
                        };
                        match arg(0)? {
                            V::A(a) => V::A(a.into_iter().take(n.max(0) as usize).collect()),
                            V::S(x) => V::S(x.chars().take(n.max(0) as usize).collect()),
                            other => return Err(format!("take({other:?})")),
                        }
                    }
                    "replace" => V::S(s(arg(0)?)?.replace(&s(arg(1)?)? as &str, &s(arg(2)?)?)),
                    "startsWith" | "endsWith" => {
                        let (x, y) = (s(arg(0)?)?.to_lowercase(), s(arg(1)?)?.to_lowercase());
                        V::B(if f == "startsWith" {
                            x.starts_with(&y)
                        } else {
                            x.ends_with(&y)
                        })
                    }
                    "union" => {
                        let mut out: Vec<V> = Vec::new();
                        for a in all()? {
                            let V::A(a) = a else {
                                return Err("union() of non-arrays".into());
                            };
                            for x in a {
                                if !out.contains(&x) {
                                    out.push(x);
                                }
                            }
                        }
                        V::A(out)
                    }
                    // Deterministic like ARM's (13 lower-case letters and digits); not its hash.
                    "uniqueString" => {
                        let text = all()?
                            .into_iter()
                            .map(s)
                            .collect::<Result<Vec<_>, _>>()?
                            .join("|");
                        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                        for b in text.bytes() {
                            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
                        }
                        let digits = b"abcdefghijklmnopqrstuvwxyz0123456789";
                        V::S(
                            (0..13)
                                .map(|i| digits[((h >> (i * 4)) % 36) as usize] as char)
                                .collect(),
                        )
                    }
                    "environment" => V::O(BTreeMap::from([(
                        "name".into(),
                        V::S(self.env.cloud.clone()),
                    )])),
                    "subscription" => V::O(BTreeMap::from([
                        (
                            "subscriptionId".into(),
                            V::S(self.env.subscription_id.clone()),
                        ),
                        (
                            "id".into(),
                            V::S(format!("/subscriptions/{}", self.env.subscription_id)),
                        ),
                    ])),
                    "resourceGroup" => {
                        let rg = self
                            .env
                            .resource_group
                            .clone()
                            .ok_or("resourceGroup() at subscription scope")?;
                        V::O(BTreeMap::from([
                            (
                                "id".into(),
                                V::S(format!(
                                    "/subscriptions/{}/resourceGroups/{rg}",
                                    self.env.subscription_id
                                )),
                            ),
                            ("name".into(), V::S(rg)),
                            ("location".into(), V::S(self.env.location.clone())),
                        ]))
                    }
                    "resourceId" | "subscriptionResourceId" => {
                        let (explicit, ty, _) = split_resource_id(args)?;
                        let xs = all()?.into_iter().map(s).collect::<Result<Vec<_>, _>>()?;
                        let pos = xs.iter().position(|x| *x == ty).unwrap_or(0);
                        let names = xs[pos + 1..].to_vec();
                        let (sub, rg) = match (f.as_str(), explicit, pos) {
                            ("subscriptionResourceId", _, 1) => (xs[0].clone(), None),
                            ("subscriptionResourceId", _, _) => {
                                (self.env.subscription_id.clone(), None)
                            }
                            (_, true, 2) => (xs[0].clone(), Some(xs[1].clone())),
                            (_, true, _) => (self.env.subscription_id.clone(), Some(xs[0].clone())),
                            _ => (
                                self.env.subscription_id.clone(),
                                Some(
                                    self.env
                                        .resource_group
                                        .clone()
                                        .ok_or("resourceId() at subscription scope")?,
                                ),
                            ),
                        };
                        V::S(self.resource_id(&sub, rg.as_deref(), &ty, &names))
                    }
                    "reference" => {
                        let id = s(arg(0)?)?;
                        let full = matches!(args.get(2), Some(Expr::Str(x)) if x.eq_ignore_ascii_case("full"));
                        (self.env.reference)(&id, full)
                    }
                    "listKeys" => V::O(BTreeMap::from([(
                        "primarySharedKey".into(),
                        V::S("<key>".into()),
                    )])),
                    other => return Err(format!("{other}() cannot be evaluated here")),
                }
            }
        })
    }
}
