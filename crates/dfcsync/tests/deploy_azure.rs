//! `deploy/azure/azuredeploy.json`, checked the way Resource Manager would before deploying
//! it (see `deploy_support::arm`), then evaluated like a what-if for each identity choice,
//! backend, registry and cloud: each of the two jobs (a frequent change read, a slower full
//! sync) must run a real dfcsync command with variables dfcsync reads and accepts; every
//! role assignment must land where it is needed (each workspace, in whatever resource group
//! and subscription; the lease container; the health DCR; the registry) and nowhere else,
//! and with `assignRoles = false` the outputs must list exactly the same assignments as
//! commands. The health queries (workbook and analytics rules) are taken out of the template
//! and run by the project's KQL engine; `docs/deploy.md`'s parameter and output tables are
//! checked against the template.

mod deploy_support;

use std::collections::{BTreeMap, BTreeSet};

use deploy_support::arm::{self, Env, Eval, V};
use deploy_support::{
    BINARY_PATH, check_env, check_env_with_file, check_schedules, cli, flag_value, read,
};
use serde_json::{Value, json};

const RESPONDER: &str = "3e150937-b8fe-4cfb-8069-0eaf05ecd056";
const SECURITY_ADMIN: &str = "fb1c8493-542b-48eb-b624-b4c8fea62acd";
const ACR_PULL: &str = "7f951dda-4ed3-4680-a7ca-43fe172d538d";
const BLOB_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
const METRICS_PUBLISHER: &str = "3913510d-42f4-4e42-8a64-420c390055eb";

const DEPLOY_SUB: &str = "11111111-1111-1111-1111-111111111111";
const WS_SUB: &str = "22222222-2222-2222-2222-222222222222";
const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// Indexes of the resources the broken copies change.
const ENVIRONMENT: usize = 1;
const HEALTH: usize = 9;
const JOBS: usize = 11;
const GRANTS: usize = 12;

fn template() -> Value {
    serde_json::from_str(&read("deploy/azure/azuredeploy.json")).expect("azuredeploy.json is JSON")
}

fn resources<'a>(t: &'a Value, ty: &str) -> Vec<&'a Value> {
    t["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == ty)
        .collect()
}

fn one<'a>(t: &'a Value, ty: &str) -> &'a Value {
    let r = resources(t, ty);
    assert_eq!(r.len(), 1, "one {ty}");
    r[0]
}

/// The Container Apps Job resource: one, copied for each schedule.
fn job(t: &Value) -> &Value {
    one(t, "Microsoft.App/jobs")
}

/// A nested deployment, by the start of its name expression.
fn deployment<'a>(t: &'a Value, name_start: &str) -> &'a Value {
    resources(t, "Microsoft.Resources/deployments")
        .into_iter()
        .find(|d| d["name"].as_str().unwrap().starts_with(name_start))
        .unwrap_or_else(|| panic!("no deployment named {name_start}…"))
}

/// Each copy of a resource in a `copy` loop, evaluated.
fn copies(ev: &mut Eval, r: &Value) -> Vec<V> {
    let V::I(count) = ev.json(&r["copy"]["count"]).unwrap() else {
        panic!("the copy count of {} is not a number", r["type"])
    };
    let out = (0..count)
        .map(|i| {
            ev.copy_index = Some(i);
            ev.json(r).unwrap()
        })
        .collect();
    ev.copy_index = None;
    out
}

/// Each copy of the job resource, evaluated (the frequent one first).
fn jobs(ev: &mut Eval, t: &Value) -> Vec<V> {
    copies(ev, job(t))
}

fn condition(ev: &Eval, r: &Value) -> bool {
    match r.get("condition") {
        None => true,
        Some(c) => ev.json(c).unwrap() == V::B(true),
    }
}

/// A value inside an evaluated resource: object keys, or array indexes.
fn at<'v>(v: &'v V, path: &[&str]) -> &'v V {
    path.iter().fold(v, |v, k| match v {
        V::O(o) => o.get(*k).unwrap_or_else(|| panic!("no {k} in {path:?}")),
        V::A(a) => &a[k.parse::<usize>().unwrap()],
        other => panic!("{path:?}: cannot look up {k} in {other:?}"),
    })
}

fn strings(v: &V) -> Vec<String> {
    match v {
        V::A(a) => a.iter().map(|x| x.str().to_owned()).collect(),
        other => panic!("not an array: {other:?}"),
    }
}

const ARGS: &[&str] = &["properties", "template", "containers", "0", "args"];
const CRON: &[&str] = &[
    "properties",
    "configuration",
    "scheduleTriggerConfig",
    "cronExpression",
];

const ENDPOINT: &str = "https://dfcsync-health-x1y2.westeurope-1.ingest.monitor.azure.com";
const IMMUTABLE_ID: &str = "dcr-00112233445566778899aabbccddeeff";

/// What `reference()` returns after deployment, for the resources the template creates or
/// names.
fn reference(id: &str, full: bool) -> V {
    let o =
        |pairs: Vec<(&str, V)>| V::O(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
    let name = id.rsplit('/').next().unwrap();
    if id.contains("/Microsoft.ManagedIdentity/userAssignedIdentities/") {
        o(vec![
            ("principalId", V::S(format!("principal-of:{id}"))),
            ("clientId", V::S(format!("client-of:{id}"))),
        ])
    } else if id.contains("/Microsoft.App/jobs/") && full {
        o(vec![(
            "identity",
            o(vec![("principalId", V::S(format!("principal-of:{id}")))]),
        )])
    } else if id.contains("/Microsoft.OperationalInsights/workspaces/") && full {
        o(vec![("location", V::S("northeurope".into()))])
    } else if id.contains("/Microsoft.Storage/storageAccounts/") {
        o(vec![(
            "primaryEndpoints",
            o(vec![(
                "blob",
                V::S(format!("https://{name}.blob.core.windows.net/")),
            )]),
        )])
    } else if id.contains("/Microsoft.ContainerRegistry/registries/") {
        o(vec![("loginServer", V::S(format!("{name}.azurecr.io")))])
    } else if id.contains("/Microsoft.Resources/deployments/") {
        let value = |s: &str| o(vec![("value", V::S(s.into()))]);
        o(vec![(
            "outputs",
            o(vec![
                ("logsIngestionEndpoint", value(ENDPOINT)),
                ("immutableId", value(IMMUTABLE_ID)),
            ]),
        )])
    } else if id.contains("/Microsoft.Insights/dataCollectionRules/") {
        o(vec![
            (
                "endpoints",
                o(vec![("logsIngestion", V::S(ENDPOINT.into()))]),
            ),
            ("immutableId", V::S(IMMUTABLE_ID.into())),
        ])
    } else {
        panic!("reference({id}, full={full}): not expected")
    }
}

fn env(cloud: &str) -> Env<'static> {
    Env {
        subscription_id: DEPLOY_SUB.into(),
        resource_group: Some("rg-dfcsync".into()),
        location: "westeurope".into(),
        cloud: cloud.into(),
        reference: &reference,
    }
}

fn params(pairs: &[(&str, Value)]) -> BTreeMap<String, V> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), V::from_json(v)))
        .collect()
}

/// One workspace in the deployment's resource group.
fn law() -> Value {
    json!([{"subscriptionId": DEPLOY_SUB, "resourceGroup": "rg-dfcsync", "name": "law"}])
}

/// Three workspaces in two subscriptions.
fn three() -> Value {
    json!([
        {"subscriptionId": WS_SUB, "resourceGroup": "rg-sentinel", "name": "law-a"},
        {"subscriptionId": WS_SUB, "resourceGroup": "rg-sentinel", "name": "law-b"},
        {"subscriptionId": DEPLOY_SUB, "resourceGroup": "rg-soc", "name": "law-c"}
    ])
}

fn ws_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{name}"
    )
}

/// The job container's environment, evaluated.
fn job_env(ev: &Eval, t: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let V::A(vars) = ev
        .json(&job(t)["properties"]["template"]["containers"][0]["env"])
        .unwrap()
    else {
        panic!("env is not an array")
    };
    for e in vars {
        let name = e.get("name").unwrap().str().to_owned();
        let value = e.get("value").unwrap().str().to_owned();
        assert!(out.insert(name.clone(), value).is_none(), "{name} twice");
    }
    out
}

/// One role assignment the deployment makes or lists: (scope, role definition id, principal).
type Grant = (String, String, String);

/// The role assignments the deployment makes: every nested role-assignment deployment
/// (those whose condition holds), evaluated in its own subscription and resource group.
fn assignments(ev: &mut Eval, t: &Value) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for d in resources(t, "Microsoft.Resources/deployments") {
        let inner_resources = d["properties"]["template"]["resources"].as_array().unwrap();
        if inner_resources[0]["type"] != "Microsoft.Authorization/roleAssignments" {
            continue;
        }
        let count = match d.get("copy") {
            Some(c) => match ev.json(&c["count"]).unwrap() {
                V::I(n) => n,
                other => panic!("{other:?}"),
            },
            None => 1,
        };
        for i in 0..count {
            ev.copy_index = d.get("copy").map(|_| i);
            if !condition(ev, d) {
                continue;
            }
            let sub = ev.json(&d["subscriptionId"]).unwrap().str().to_owned();
            let rg = d
                .get("resourceGroup")
                .map(|r| ev.json(r).unwrap().str().to_owned());
            let inner_env = Env {
                subscription_id: sub.clone(),
                resource_group: rg.clone(),
                location: "westeurope".into(),
                cloud: "AzureCloud".into(),
                reference: &reference,
            };
            let passed: BTreeMap<String, V> = d["properties"]["parameters"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), ev.json(&v["value"]).unwrap()))
                .collect();
            let inner = Eval::new(&d["properties"]["template"], passed, &inner_env).unwrap();
            assert_eq!(
                inner_resources.len(),
                1,
                "one role assignment per deployment"
            );
            let ra = inner.json(&inner_resources[0]).unwrap();
            let props = ra.get("properties").unwrap();
            let role = props.get("roleDefinitionId").unwrap().str();
            let role = role
                .strip_prefix(&format!(
                    "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/"
                ))
                .unwrap_or_else(|| panic!("{role}: not a role of subscription {sub}"))
                .to_owned();
            let scope = match ra.get("scope") {
                Some(s) => s.str().to_owned(),
                None => format!("/subscriptions/{sub}"),
            };
            // The scope is in the deployment's own subscription and resource group.
            let home = match &rg {
                Some(rg) => format!("/subscriptions/{sub}/resourceGroups/{rg}"),
                None => format!("/subscriptions/{sub}"),
            };
            assert!(
                scope == home || scope.starts_with(&format!("{home}/")),
                "{scope} is outside {home}"
            );
            let principal = props.get("principalId").unwrap().str().to_owned();
            // Deterministic: the same scope, principal and role give the same name.
            assert_eq!(
                ra.get("name").unwrap().str(),
                format!(
                    "guid({scope}|{principal}|{})",
                    inner.params["roleDefinitionId"].str()
                )
            );
            assert_eq!(
                props.get("principalType").unwrap().str(),
                "ServicePrincipal"
            );
            out.insert((scope, role, principal));
        }
    }
    ev.copy_index = None;
    out
}

/// The commands of the output roleAssignmentCommands, read back into grants.
fn commands(ev: &Eval, t: &Value) -> BTreeSet<Grant> {
    let o = &t["outputs"]["roleAssignmentCommands"];
    let V::I(count) = ev.json(&o["copy"]["count"]).unwrap() else {
        panic!("count")
    };
    let mut out = BTreeSet::new();
    let mut ev = Eval::new(ev.template, ev.params.clone(), ev.env).unwrap();
    for i in 0..count {
        ev.copy_index = Some(i);
        let cmd = ev.json(&o["copy"]["input"]).unwrap().str().to_owned();
        let words: Vec<&str> = cmd.split_whitespace().collect();
        assert_eq!(&words[..4], ["az", "role", "assignment", "create"], "{cmd}");
        let flag = |f: &str| {
            let i = words
                .iter()
                .position(|w| *w == f)
                .unwrap_or_else(|| panic!("{cmd}: no {f}"));
            words[i + 1].to_owned()
        };
        assert_eq!(flag("--assignee-principal-type"), "ServicePrincipal");
        assert_eq!(words.len(), 12, "{cmd}: four flags and their values");
        let role = flag("--role");
        assert!(
            out.insert((flag("--scope"), role, flag("--assignee-object-id"))),
            "{cmd} twice"
        );
    }
    out
}

#[test]
fn the_template_passes_the_checks() {
    let errors = arm::check_template(&template());
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn broken_copies_of_the_template_are_refused() {
    type Break = fn(&mut Value);
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "an undeclared parameter",
            |t| t["resources"][JOBS]["name"] = json!("[parameters('jobname')]"),
            "parameters('jobname') is not declared",
        ),
        (
            "an undeclared variable",
            |t| t["resources"][ENVIRONMENT]["name"] = json!("[variables('envName')]"),
            "variables('envName') is not declared",
        ),
        (
            "an undeclared loop variable",
            |t| {
                t["variables"]["groupGrants"] =
                    json!("[concat(variables('workspaceGrant'), variables('leaseGrants'))]")
            },
            "variables('workspaceGrant') is not declared",
        ),
        (
            "copyIndex() outside a variable loop",
            |t| t["variables"]["leaseContainer"] = json!("[string(copyIndex('leaseGrants'))]"),
            "copyIndex() outside",
        ),
        (
            "a dependsOn naming nothing",
            |t| {
                t["resources"][JOBS]["dependsOn"][0] =
                    json!("[resourceId('Microsoft.App/managedEnvironments', 'other')]")
            },
            "names no resource of this template",
        ),
        (
            "a dependsOn naming no nested deployment of another scope",
            |t| {
                t["resources"][JOBS]["dependsOn"][6] = json!(
                    "[resourceId(parameters('workspaces')[0].subscriptionId, parameters('workspaces')[0].resourceGroup, 'Microsoft.Resources/deployments', 'health')]"
                )
            },
            "names no resource of this template",
        ),
        (
            "a resourceId with a missing name segment",
            |t| t["outputs"]["jobId"]["value"] = json!("[resourceId('Microsoft.App/jobs')]"),
            "name segment",
        ),
        (
            "a resourceId of a resource not in the template",
            |t| {
                t["outputs"]["jobId"]["value"] =
                    json!("[resourceId('Microsoft.App/containerApps', parameters('jobName'))]")
            },
            "no resource of this type",
        ),
        (
            "a resourceId of the lease container with another name",
            |t| {
                t["variables"]["leaseContainerId"] = json!(
                    "[resourceId('Microsoft.Storage/storageAccounts/blobServices/containers', variables('leaseAccountName'), 'default', 'leases')]"
                )
            },
            "names no resource of this template",
        ),
        (
            "a missing apiVersion",
            |t| {
                t["resources"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("apiVersion");
            },
            "apiVersion",
        ),
        (
            "an apiVersion from an expression",
            |t| t["resources"][0]["apiVersion"] = json!("[variables('appApiVersion')]"),
            "apiVersion",
        ),
        (
            "an invented role id",
            |t| {
                t["variables"]["sentinelResponderRoleId"] =
                    json!("ab8e14d6-4a74-4a29-9ba8-549422addade")
            },
            "not a built-in role id",
        ),
        (
            "a role assignment without principalType",
            |t| {
                t["resources"][GRANTS]["properties"]["template"]["resources"][0]["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("principalType");
            },
            "principalType",
        ),
        (
            "a random role assignment name",
            |t| {
                t["resources"][GRANTS]["properties"]["template"]["resources"][0]["name"] =
                    json!("[newGuid()]")
            },
            "guid(",
        ),
        (
            "a reference() without dependsOn",
            |t| {
                t["resources"][GRANTS]["dependsOn"]
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            },
            "without a dependsOn",
        ),
        (
            "a reference() of the health deployment without dependsOn",
            |t| {
                t["resources"][JOBS]["dependsOn"]
                    .as_array_mut()
                    .unwrap()
                    .remove(6);
            },
            "without a dependsOn",
        ),
        (
            "a reference() with another apiVersion",
            |t| t["variables"]["storageApiVersion"] = json!("2021-01-01"),
            "the resource is deployed with",
        ),
        (
            "a nested template missing a parameter",
            |t| {
                t["resources"][GRANTS]["properties"]["parameters"]
                    .as_object_mut()
                    .unwrap()
                    .remove("principalId");
            },
            "needs parameter \"principalId\"",
        ),
        (
            "a nested template given an unknown parameter",
            |t| t["resources"][GRANTS]["properties"]["parameters"]["extra"] = json!({"value": 1}),
            "does not declare",
        ),
        (
            "a nested template in the outer scope",
            |t| {
                t["resources"][GRANTS]["properties"]["expressionEvaluationOptions"]["scope"] =
                    json!("outer")
            },
            "scope = inner",
        ),
        (
            "copyIndex() outside a copy",
            |t| {
                t["resources"][HEALTH]["name"] =
                    json!("[format('{0}-{1}', parameters('jobName'), copyIndex())]")
            },
            "copyIndex() outside",
        ),
        (
            "a hard-coded endpoint",
            |t| {
                t["resources"][JOBS]["properties"]["template"]["containers"][0]["env"][2]["value"] =
                    json!("https://management.azure.com")
            },
            "hard-codes a cloud endpoint",
        ),
        (
            "an expression that does not parse",
            |t| {
                t["variables"]["environmentName"] =
                    json!("[format('{0}-env', parameters('jobName')]")
            },
            "expected",
        ),
        (
            "an unknown function",
            |t| {
                t["variables"]["environmentName"] =
                    json!("[fromat('{0}-env', parameters('jobName'))]")
            },
            "unknown function fromat()",
        ),
        (
            "a function that is not deterministic",
            |t| t["variables"]["customRoleId"] = json!("[newGuid()]"),
            "unknown function newGuid()",
        ),
        (
            "a dependsOn cycle through the jobs' loop",
            |t| t["resources"][ENVIRONMENT]["dependsOn"] = json!(["jobs"]),
            "cycle",
        ),
        (
            "a dependsOn cycle through one job",
            |t| {
                t["resources"][ENVIRONMENT]["dependsOn"] =
                    json!(["[resourceId('Microsoft.App/jobs', variables('syncJobs')[1].name)]"])
            },
            "cycle",
        ),
        (
            "a job named by its former name",
            |t| {
                t["outputs"]["jobId"]["value"] =
                    json!("[resourceId('Microsoft.App/jobs', parameters('jobName'))]")
            },
            "names no resource of this template",
        ),
        (
            "a copy of a job named with a misspelt property",
            |t| {
                t["outputs"]["fullSyncJobId"]["value"] =
                    json!("[resourceId('Microsoft.App/jobs', variables('syncJobs')[1].nam)]")
            },
            "names no resource of this template",
        ),
        (
            "a dependsOn naming no copy loop",
            |t| t["resources"][GRANTS]["dependsOn"][0] = json!("job"),
            "names no resource of this template",
        ),
        (
            "a reference() of any job with a dependsOn on the frequent one only",
            |t| {
                t["resources"][GRANTS]["dependsOn"][0] =
                    json!("[resourceId('Microsoft.App/jobs', variables('syncJobs')[0].name)]")
            },
            "without a dependsOn",
        ),
        (
            "the grants' deployments without their copy loop",
            |t| {
                t["resources"][GRANTS]
                    .as_object_mut()
                    .unwrap()
                    .remove("copy");
            },
            "copyIndex() outside",
        ),
        (
            "the jobs without their copy loop",
            |t| {
                t["resources"][JOBS].as_object_mut().unwrap().remove("copy");
            },
            "copyIndex() outside",
        ),
        (
            "a default outside allowedValues",
            |t| t["parameters"]["reopen"]["defaultValue"] = json!("sometimes"),
            "allowedValues",
        ),
    ];
    let good = template();
    // The indexes the cases use.
    assert_eq!(
        good["resources"][ENVIRONMENT]["type"],
        "Microsoft.App/managedEnvironments"
    );
    assert_eq!(good["resources"][JOBS]["type"], "Microsoft.App/jobs");
    assert!(
        good["resources"][JOBS]["dependsOn"][6]
            .as_str()
            .unwrap()
            .contains("healthDeploymentName")
    );
    assert_eq!(
        good["resources"][HEALTH]["name"],
        "[variables('healthDeploymentName')]"
    );
    assert_eq!(
        good["resources"][GRANTS]["copy"]["name"], "groupGrants",
        "the role assignments in resource groups"
    );
    for (what, break_it, expected) in cases {
        let mut t = good.clone();
        break_it(&mut t);
        let errors = arm::check_template(&t);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{what}: expected an error with {expected:?}, got {errors:#?}"
        );
    }
}

#[test]
fn two_jobs_run_real_dfcsync_commands_a_change_read_often_and_a_full_sync_seldom() {
    let t = template();
    let env = env("AzureCloud");
    let mut ev = Eval::new(&t, params(&[("workspaces", law())]), &env).unwrap();
    let copies = jobs(&mut ev, &t);
    assert_eq!(copies.len(), 2, "a frequent job and a full-sync job");
    let cli = cli();
    for j in &copies {
        assert_eq!(
            at(j, &["properties", "configuration", "triggerType"]).str(),
            "Schedule"
        );
        assert_eq!(
            at(
                j,
                &[
                    "properties",
                    "configuration",
                    "scheduleTriggerConfig",
                    "parallelism"
                ]
            ),
            &V::I(1)
        );
        let V::A(containers) = at(j, &["properties", "template", "containers"]) else {
            panic!("containers")
        };
        assert_eq!(containers.len(), 1);
        assert_eq!(strings(at(&containers[0], &["command"])), [BINARY_PATH]);
        // The real command line accepts them (a value parser included: --changed-within).
        assert_eq!(cli.check_args(&strings(at(j, ARGS))), Ok("sync".to_owned()));
    }
    let (frequent, full) = (&copies[0], &copies[1]);
    assert_eq!(frequent.get("name"), Some(&V::S("dfcsync".into())));
    assert_eq!(full.get("name"), Some(&V::S("dfcsync-full".into())));
    let args = strings(at(frequent, ARGS));
    let window = flag_value(&args, "--changed-within").expect("the frequent job reads the feed");
    assert_eq!(window, "15m");
    assert_eq!(
        flag_value(&strings(at(full, ARGS)), "--changed-within"),
        None
    );
    let (cron, full_cron) = (at(frequent, CRON).str(), at(full, CRON).str());
    assert_eq!((cron, full_cron), ("*/5 * * * *", "17 * * * *"));
    check_schedules(cron, window, full_cron).unwrap();
    for (cron, window, full_cron, why) in [
        ("*/5 * * * *", "15m", "15 * * * *", "also starts at"),
        ("*/5 * * * *", "6m", "17 * * * *", "does not cover"),
        ("5 * * * *", "15m", "17 * * * *", "not */N"),
        ("*/5 * * * *", "15m", "17 */2 * * *", "not M * * * *"),
    ] {
        let err = check_schedules(cron, window, full_cron).unwrap_err();
        assert!(err.contains(why), "{cron} {window} {full_cron}: {err}");
    }
    for (bad, why) in [("30s", "at least 1m"), ("15", "not a duration")] {
        let mut ev = Eval::new(
            &t,
            params(&[("workspaces", law()), ("changedWithin", json!(bad))]),
            &env,
        )
        .unwrap();
        let err = cli
            .check_args(&strings(at(&jobs(&mut ev, &t)[0], ARGS)))
            .unwrap_err();
        assert!(err.contains(why), "changedWithin = {bad}: {err}");
    }
    for bad in [
        vec!["sync", "--format", "json"],
        vec!["sync", "--output", "yaml"],
        vec!["sync", "--changed-within"],
        vec!["synchronise"],
        vec!["demo"],
        vec!["--log-format", "xml", "sync"],
    ] {
        let bad: Vec<String> = bad.into_iter().map(str::to_owned).collect();
        assert!(cli.check_args(&bad).is_err(), "{bad:?} was accepted");
    }
}

#[test]
fn both_jobs_share_everything_but_their_name_schedule_and_arguments() {
    let t = template();
    let env = env("AzureCloud");
    for identity_type in ["SystemAssigned", "UserAssignedNew"] {
        for registry in [false, true] {
            let mut p = vec![
                ("workspaces", three()),
                ("identityType", json!(identity_type)),
                ("configFile", json!("[policy]\nmax_age = \"30d\"\n")),
            ];
            if registry {
                p.push(("createRegistry", json!(true)));
                p.push(("imageDigest", json!(DIGEST)));
            }
            let mut ev = Eval::new(&t, params(&p), &env).unwrap();
            let mut copies = jobs(&mut ev, &t);
            for j in &mut copies {
                let V::O(o) = j else { unreachable!() };
                o.remove("name");
                for path in [ARGS, CRON] {
                    let (last, parent) = path.split_last().unwrap();
                    let mut v = &mut *j;
                    for k in parent {
                        v = match v {
                            V::O(o) => o.get_mut(*k).unwrap(),
                            V::A(a) => &mut a[k.parse::<usize>().unwrap()],
                            _ => unreachable!(),
                        };
                    }
                    let V::O(o) = v else { unreachable!() };
                    assert!(o.remove(*last).is_some(), "{path:?}");
                }
            }
            assert_eq!(
                copies[0], copies[1],
                "{identity_type}, registry {registry:?}"
            );
        }
    }
}

/// The principals of a deployment: one per job with system-assigned identities, the one
/// user-assigned identity otherwise.
fn principals(identity_type: &str) -> Vec<String> {
    let job_id = |name: &str| {
        format!(
            "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.App/jobs/{name}"
        )
    };
    match identity_type {
        "SystemAssigned" => vec![
            format!("principal-of:{}", job_id("dfcsync")),
            format!("principal-of:{}", job_id("dfcsync-full")),
        ],
        "UserAssignedNew" => vec![format!(
            "principal-of:/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync-identity"
        )],
        _ => vec![
            "principal-of:/subscriptions/33333333-3333-3333-3333-333333333333/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync"
                .to_owned(),
        ],
    }
}

const EXISTING_ID: &str = "/subscriptions/33333333-3333-3333-3333-333333333333/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync";

fn identity_params(identity_type: &str) -> Vec<(&'static str, Value)> {
    let mut p = vec![("identityType", json!(identity_type))];
    if identity_type == "UserAssignedExisting" {
        p.push(("existingUserAssignedIdentityId", json!(EXISTING_ID)));
    }
    p
}

/// The lease container and the health DCR of a default deployment with `three()`.
fn lease_and_health_grants(ev: &Eval, principal: &str) -> Vec<Grant> {
    let account = ev
        .json(&json!("[variables('leaseAccountName')]"))
        .unwrap()
        .str()
        .to_owned();
    vec![
        (
            format!(
                "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/dfcsync-leases"
            ),
            BLOB_CONTRIBUTOR.to_owned(),
            principal.to_owned(),
        ),
        (
            format!(
                "/subscriptions/{WS_SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Insights/dataCollectionRules/dfcsync-health"
            ),
            METRICS_PUBLISHER.to_owned(),
            principal.to_owned(),
        ),
    ]
}

#[test]
fn three_workspaces_in_two_subscriptions_each_identity_gets_the_role_on_each() {
    let t = template();
    let env = env("AzureCloud");
    for identity_type in ["SystemAssigned", "UserAssignedNew", "UserAssignedExisting"] {
        let mut p = vec![("workspaces", three())];
        p.extend(identity_params(identity_type));
        let mut ev = Eval::new(&t, params(&p), &env).unwrap();
        let vars = job_env(&ev, &t);
        let ids = [
            ws_id(WS_SUB, "rg-sentinel", "law-a"),
            ws_id(WS_SUB, "rg-sentinel", "law-b"),
            ws_id(DEPLOY_SUB, "rg-soc", "law-c"),
        ];
        assert_eq!(vars["DFCSYNC_WORKSPACES"], ids.join(","));
        let config = check_env(&vars).unwrap();
        let read: Vec<(String, String, String)> = config
            .file
            .workspaces
            .iter()
            .map(|w| {
                (
                    w.subscription_id.clone(),
                    w.resource_group.clone(),
                    w.name.clone(),
                )
            })
            .collect();
        assert_eq!(
            read,
            [
                (WS_SUB.into(), "rg-sentinel".into(), "law-a".into()),
                (WS_SUB.into(), "rg-sentinel".into(), "law-b".into()),
                (DEPLOY_SUB.into(), "rg-soc".into(), "law-c".into())
            ]
        );
        assert_eq!(config.file.auth.method.as_deref(), Some("managed_identity"));
        let ps = principals(identity_type);
        if identity_type == "SystemAssigned" {
            assert_eq!(vars["DFCSYNC_CLIENT_ID"], "");
        } else {
            assert_eq!(
                vars["DFCSYNC_CLIENT_ID"],
                ps[0].replace("principal-of:", "client-of:")
            );
        }
        // Exactly: Responder on each workspace, Blob Data Contributor on the lease container,
        // Monitoring Metrics Publisher on the DCR; for every identity; nothing else.
        let mut expected = BTreeSet::new();
        for p in &ps {
            for id in &ids {
                expected.insert((id.clone(), RESPONDER.to_owned(), p.clone()));
            }
            expected.extend(lease_and_health_grants(&ev, p));
        }
        assert_eq!(assignments(&mut ev, &t), expected, "{identity_type}");
        let out = |k: &str| ev.json(&t["outputs"][k]["value"]).unwrap();
        assert_eq!(
            out("principalIds"),
            V::A(ps.iter().map(|p| V::S(p.clone())).collect())
        );
        assert_eq!(
            out("workspaceIds"),
            V::A(ids.iter().map(|p| V::S(p.clone())).collect())
        );
    }
}

#[test]
fn without_assign_roles_nothing_is_assigned_and_the_outputs_list_the_same_assignments() {
    let t = template();
    let env = env("AzureCloud");
    for identity_type in ["SystemAssigned", "UserAssignedNew", "UserAssignedExisting"] {
        for (writeback, registry, custom) in [(false, false, false), (true, true, true)] {
            let mut p = vec![
                ("workspaces", three()),
                ("writeback", json!(writeback)),
                (
                    "securityAdminSubscriptionIds",
                    json!(["44444444-4444-4444-4444-444444444444"]),
                ),
                ("createCustomRole", json!(custom)),
            ];
            p.extend(identity_params(identity_type));
            if registry {
                p.push((
                    "registryResourceId",
                    json!("/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/myregistry"),
                ));
                p.push(("imageDigest", json!(DIGEST)));
            }
            let mut with = Eval::new(&t, params(&p), &env).unwrap();
            let made = assignments(&mut with, &t);
            assert_eq!(commands(&with, &t), made, "the commands say what was done");
            p.push(("assignRoles", json!(false)));
            let mut without = Eval::new(&t, params(&p), &env).unwrap();
            assert_eq!(
                assignments(&mut without, &t),
                BTreeSet::new(),
                "no role assignment is attempted"
            );
            let listed = commands(&without, &t);
            assert_eq!(listed, made, "{identity_type} {writeback} {registry}");
            // Per workspace and identity.
            for id in [
                ws_id(WS_SUB, "rg-sentinel", "law-a"),
                ws_id(DEPLOY_SUB, "rg-soc", "law-c"),
            ] {
                for pr in principals(identity_type) {
                    assert!(
                        listed.iter().any(|(s, _, p)| *s == id && *p == pr),
                        "{id} {pr}"
                    );
                }
            }
            if writeback {
                for pr in principals(identity_type) {
                    assert!(listed.contains(&(
                        "/subscriptions/44444444-4444-4444-4444-444444444444".into(),
                        SECURITY_ADMIN.into(),
                        pr
                    )));
                }
            }
            // Nothing else in the outputs that could be a secret.
            for (name, o) in t["outputs"].as_object().unwrap() {
                assert!(
                    !o.to_string().contains("configFile"),
                    "output {name} shows the configuration file"
                );
            }
        }
    }
}

#[test]
fn writeback_grants_security_admin_to_every_identity_on_each_listed_subscription_only() {
    let t = template();
    let subs = [
        "33333333-3333-3333-3333-333333333333",
        "44444444-4444-4444-4444-444444444444",
    ];
    for identity_type in ["SystemAssigned", "UserAssignedNew"] {
        for writeback in [false, true] {
            let env = env("AzureCloud");
            let mut p = vec![
                ("workspaces", law()),
                ("writeback", json!(writeback)),
                ("securityAdminSubscriptionIds", json!(subs)),
            ];
            p.extend(identity_params(identity_type));
            let mut ev = Eval::new(&t, params(&p), &env).unwrap();
            let config = check_env(&job_env(&ev, &t)).unwrap();
            assert_eq!(config.policy.writeback, writeback);
            let admins: BTreeSet<Grant> = assignments(&mut ev, &t)
                .into_iter()
                .filter(|g| g.1 == SECURITY_ADMIN)
                .collect();
            let mut expected = BTreeSet::new();
            if writeback {
                for s in subs {
                    for p in principals(identity_type) {
                        expected.insert((format!("/subscriptions/{s}"), SECURITY_ADMIN.into(), p));
                    }
                }
            }
            assert_eq!(admins, expected, "{identity_type} {writeback}");
        }
    }
}

#[test]
fn the_graph_backend_gets_no_workspace_role_and_no_writeback() {
    let t = template();
    let env = env("AzureCloud");
    let mut ev = Eval::new(
        &t,
        params(&[
            ("workspaces", three()),
            ("backend", json!("graph")),
            ("writeback", json!(true)),
            ("securityAdminSubscriptionIds", json!([WS_SUB])),
        ]),
        &env,
    )
    .unwrap();
    let vars = job_env(&ev, &t);
    assert_eq!(vars["DFCSYNC_BACKEND"], "graph");
    assert_eq!(vars["DFCSYNC_WORKSPACES"], "");
    assert_eq!(vars["DFCSYNC_WRITEBACK"], "false");
    let config = check_env(&vars).unwrap();
    assert_eq!(config.sync.backend, dfcsync::config::Backend::Graph);
    // Graph permissions are not Azure roles: only the lease and the health DCR remain.
    let mut expected = BTreeSet::new();
    for p in principals("SystemAssigned") {
        expected.extend(lease_and_health_grants(&ev, &p));
    }
    assert_eq!(assignments(&mut ev, &t), expected);
    assert_eq!(commands(&ev, &t), expected);
    // dfcsync itself refuses writeback with graph: the template must not pass it.
    let mut refused = vars.clone();
    refused.insert("DFCSYNC_WRITEBACK".into(), "true".into());
    assert!(check_env(&refused).is_err());
}

#[test]
fn a_private_registry_is_pulled_by_digest_with_an_identity_granted_acr_pull_first() {
    let t = template();
    let env = env("AzureCloud");
    let existing = "/subscriptions/55555555-5555-5555-5555-555555555555/resourceGroups/rg-acr/providers/Microsoft.ContainerRegistry/registries/myregistry";
    for identity_type in ["SystemAssigned", "UserAssignedNew", "UserAssignedExisting"] {
        for created in [false, true] {
            let mut p = vec![("workspaces", law()), ("imageDigest", json!(DIGEST))];
            p.extend(identity_params(identity_type));
            if created {
                p.push(("createRegistry", json!(true)));
            } else {
                p.push(("registryResourceId", json!(existing)));
            }
            let mut ev = Eval::new(&t, params(&p), &env).unwrap();
            let registry_id = if created {
                let name = ev.json(&json!("[variables('registryName')]")).unwrap();
                let name = name.str();
                assert!(
                    (5..=50).contains(&name.len())
                        && name
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
                    "{name}: not a registry name"
                );
                let r = one(&t, "Microsoft.ContainerRegistry/registries");
                assert!(condition(&ev, r));
                let r = ev.json(r).unwrap();
                assert_eq!(at(&r, &["properties", "adminUserEnabled"]), &V::B(false));
                assert_eq!(
                    at(&r, &["properties", "anonymousPullEnabled"]),
                    &V::B(false)
                );
                format!(
                    "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.ContainerRegistry/registries/{name}"
                )
            } else {
                existing.to_owned()
            };
            let login = format!("{}.azurecr.io", registry_id.rsplit('/').next().unwrap());
            let pull_identity = match identity_type {
                "SystemAssigned" => format!(
                    "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync-pull"
                ),
                "UserAssignedNew" => format!(
                    "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync-identity"
                ),
                _ => EXISTING_ID.to_owned(),
            };
            for j in jobs(&mut ev, &t) {
                let image = at(&j, &["properties", "template", "containers", "0", "image"]);
                assert_eq!(image.str(), format!("{login}/dfcsync@{DIGEST}"));
                let regs = at(&j, &["properties", "configuration", "registries"]);
                let mut want = BTreeMap::new();
                want.insert("server".to_owned(), V::S(login.clone()));
                want.insert("identity".to_owned(), V::S(pull_identity.clone()));
                assert_eq!(regs, &V::A(vec![V::O(want)]));
                // The pull identity is one of the job's.
                let ids = at(&j, &["identity", "userAssignedIdentities"]);
                assert!(ids.get(&pull_identity).is_some(), "{identity_type}");
                let ty = at(&j, &["identity", "type"]).str();
                assert_eq!(
                    ty,
                    if identity_type == "SystemAssigned" {
                        "SystemAssigned,UserAssigned"
                    } else {
                        "UserAssigned"
                    }
                );
            }
            // AcrPull on the registry, for the pull identity, deployed before the jobs.
            let pull = (
                registry_id.clone(),
                ACR_PULL.to_owned(),
                format!("principal-of:{pull_identity}"),
            );
            assert!(assignments(&mut ev, &t).contains(&pull), "{identity_type}");
            let acr = deployment(&t, "[format('{0}-acrpull'");
            assert!(
                job(&t)["dependsOn"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|d| d.as_str().unwrap().contains("-acrpull")),
                "the jobs wait for AcrPull"
            );
            assert_eq!(
                ev.json(&acr["subscriptionId"]).unwrap().str(),
                registry_id.split('/').nth(2).unwrap()
            );
            // Dropping the grant is caught: the pull would fail.
            let only_jobs_grants = {
                let mut t2 = t.clone();
                t2["resources"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|r| !r["name"].as_str().unwrap().contains("acrpull"));
                let mut ev2 = Eval::new(&t2, params(&p), &env).unwrap();
                assignments(&mut ev2, &t2)
            };
            assert!(!only_jobs_grants.contains(&pull));
        }
    }
    // The first deployment with a new registry makes it but no jobs yet: nothing to pull.
    let mut ev = Eval::new(
        &t,
        params(&[("workspaces", law()), ("createRegistry", json!(true))]),
        &env,
    )
    .unwrap();
    assert!(!condition(&ev, job(&t)));
    assert!(!condition(&ev, &t["outputs"]["jobId"]));
    let listed = commands(&ev, &t);
    assert_eq!(
        listed.len(),
        1,
        "only AcrPull, which the second run needs first"
    );
    assert!(listed.iter().all(|g| g.1 == ACR_PULL));
    assert!(assignments(&mut ev, &t).iter().all(|g| g.1 == ACR_PULL));
    // Without a registry: the image as given, no registry, no pull identity.
    let mut ev = Eval::new(
        &t,
        params(&[
            ("workspaces", law()),
            ("image", json!(format!("ghcr.io/dfcsync/dfcsync@{DIGEST}"))),
        ]),
        &env,
    )
    .unwrap();
    for j in jobs(&mut ev, &t) {
        assert_eq!(
            at(&j, &["properties", "template", "containers", "0", "image"]).str(),
            format!("ghcr.io/dfcsync/dfcsync@{DIGEST}")
        );
        assert_eq!(
            at(&j, &["properties", "configuration", "registries"]),
            &V::A(vec![])
        );
        assert_eq!(at(&j, &["identity", "type"]).str(), "SystemAssigned");
    }
}

/// Everything the deployment would make, evaluated: the resources whose condition holds, and
/// every copy of a loop.
fn what_if(t: &Value, p: &[(&str, Value)]) -> Vec<V> {
    let env = env("AzureCloud");
    let mut ev = Eval::new(t, params(p), &env).unwrap();
    let mut out = Vec::new();
    for r in t["resources"].as_array().unwrap() {
        let n = match r.get("copy") {
            Some(c) => match ev.json(&c["count"]).unwrap() {
                V::I(n) => n,
                _ => unreachable!(),
            },
            None => 1,
        };
        for i in 0..n {
            ev.copy_index = r.get("copy").map(|_| i);
            if condition(&ev, r) {
                // A nested template is evaluated in its own scope (inner): only what the outer
                // one passes it is compared here.
                let mut r = r.clone();
                if let Some(p) = r.get_mut("properties").and_then(Value::as_object_mut) {
                    p.remove("template");
                }
                out.push(ev.json(&r).unwrap());
            }
        }
    }
    ev.copy_index = None;
    for o in t["outputs"].as_object().unwrap().values() {
        if condition(&ev, o) && o.get("copy").is_none() {
            out.push(ev.json(&o["value"]).unwrap());
        }
    }
    out
}

#[test]
fn a_redeploy_with_the_same_parameters_changes_nothing() {
    let t = template();
    let p = vec![
        ("workspaces", three()),
        ("identityType", json!("UserAssignedNew")),
        ("createRegistry", json!(true)),
        ("imageDigest", json!(DIGEST)),
        ("writeback", json!(true)),
        ("securityAdminSubscriptionIds", json!([WS_SUB])),
        ("createCustomRole", json!(true)),
        ("configFile", json!("[policy]\nmax_age = \"30d\"\n")),
    ];
    let first = what_if(&t, &p);
    let second = what_if(&t, &p);
    assert_eq!(first, second);
    // No name comes from a function that differs between runs (the checks know none:
    // newGuid() and utcNow() are refused as unknown functions).
    assert!(first.iter().filter(|r| r.get("name").is_some()).count() > 15);
    // …and a different parameter does change what is deployed.
    let mut other = p.clone();
    other[0] = ("workspaces", law());
    assert_ne!(what_if(&t, &other), first);
}

#[test]
fn one_lease_shared_by_both_jobs_on_a_storage_account_without_shared_keys() {
    let t = template();
    let env = env("AzureCloud");
    let mut ev = Eval::new(&t, params(&[("workspaces", law())]), &env).unwrap();
    let account = one(&t, "Microsoft.Storage/storageAccounts");
    assert!(condition(&ev, account));
    let a = ev.json(account).unwrap();
    let name = a.get("name").unwrap().str().to_owned();
    assert!(
        (3..=24).contains(&name.len())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()),
        "{name}: not a storage account name"
    );
    for (k, v) in [
        ("allowSharedKeyAccess", V::B(false)),
        ("allowBlobPublicAccess", V::B(false)),
        ("supportsHttpsTrafficOnly", V::B(true)),
        ("minimumTlsVersion", V::S("TLS1_2".into())),
    ] {
        assert_eq!(at(&a, &["properties", k]), &v, "{k}");
    }
    let c = ev
        .json(one(
            &t,
            "Microsoft.Storage/storageAccounts/blobServices/containers",
        ))
        .unwrap();
    assert_eq!(
        c.get("name").unwrap().str(),
        format!("{name}/default/dfcsync-leases")
    );
    assert_eq!(at(&c, &["properties", "publicAccess"]).str(), "None");
    // Both jobs: the same lease variables, which dfcsync reads as one Blob lease.
    let copies = jobs(&mut ev, &t);
    let env_of = |j: &V| at(j, &["properties", "template", "containers", "0", "env"]).clone();
    assert_eq!(env_of(&copies[0]), env_of(&copies[1]));
    let vars = job_env(&ev, &t);
    let config = check_env(&vars).unwrap();
    assert_eq!(
        config.lease,
        dfcsync::config::LeaseSettings::AzureBlob {
            account_url: format!("https://{name}.blob.core.windows.net"),
            container: "dfcsync-leases".into(),
            name: None,
            duration: std::time::Duration::from_secs(30),
            scope: dfcsync::config::STORAGE_SCOPE.into(),
        }
    );
    // The role: on the container only.
    let blob: Vec<Grant> = assignments(&mut ev, &t)
        .into_iter()
        .filter(|g| g.1 == BLOB_CONTRIBUTOR)
        .collect();
    assert_eq!(blob.len(), 2);
    for g in &blob {
        assert!(g.0.ends_with(&format!(
            "/storageAccounts/{name}/blobServices/default/containers/dfcsync-leases"
        )));
    }
    // Off: no account, no role, no lease.
    let mut ev = Eval::new(
        &t,
        params(&[("workspaces", law()), ("lease", json!(false))]),
        &env,
    )
    .unwrap();
    assert!(!condition(&ev, account));
    let config = check_env(&job_env(&ev, &t)).unwrap();
    assert_eq!(config.lease, dfcsync::config::LeaseSettings::None);
    assert!(
        assignments(&mut ev, &t)
            .iter()
            .all(|g| g.1 != BLOB_CONTRIBUTOR)
    );
}

/// The columns of `DfcSync_CL` the product writes (docs/health.md).
const HEALTH_COLUMNS: &[(&str, &str)] = dfcsync::health::COLUMNS;

fn health(t: &Value) -> &Value {
    &deployment(t, "[variables('healthDeploymentName')]")["properties"]["template"]
}

fn inner_resource<'a>(t: &'a Value, ty: &str) -> Vec<&'a Value> {
    health(t)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == ty)
        .collect()
}

/// The health deployment's template, evaluated with what the outer one passes it.
fn health_eval<'t>(ev: &Eval, t: &'t Value, inner_env: &'t Env<'t>) -> Eval<'t> {
    let d = deployment(t, "[variables('healthDeploymentName')]");
    let passed: BTreeMap<String, V> = d["properties"]["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), ev.json(&v["value"]).unwrap()))
        .collect();
    Eval::new(&d["properties"]["template"], passed, inner_env).unwrap()
}

#[test]
fn the_health_table_its_dcr_and_the_jobs_variables_agree() {
    let t = template();
    let env = env("AzureCloud");
    let ev = Eval::new(&t, params(&[("workspaces", three())]), &env).unwrap();
    let d = deployment(&t, "[variables('healthDeploymentName')]");
    assert!(condition(&ev, d));
    // In the first workspace's subscription and resource group.
    assert_eq!(ev.json(&d["subscriptionId"]).unwrap().str(), WS_SUB);
    assert_eq!(ev.json(&d["resourceGroup"]).unwrap().str(), "rg-sentinel");
    let inner_env = Env {
        subscription_id: WS_SUB.into(),
        resource_group: Some("rg-sentinel".into()),
        location: "westeurope".into(),
        cloud: "AzureCloud".into(),
        reference: &reference,
    };
    let inner = health_eval(&ev, &t, &inner_env);
    let table = inner
        .json(inner_resource(&t, "Microsoft.OperationalInsights/workspaces/tables")[0])
        .unwrap();
    assert_eq!(table.get("name").unwrap().str(), "law-a/DfcSync_CL");
    assert_eq!(
        at(&table, &["properties", "schema", "name"]).str(),
        "DfcSync_CL"
    );
    let cols = |v: &V| -> Vec<(String, String)> {
        match v {
            V::A(a) => a
                .iter()
                .map(|c| {
                    (
                        c.get("name").unwrap().str().to_owned(),
                        c.get("type").unwrap().str().to_owned(),
                    )
                })
                .collect(),
            _ => panic!("columns"),
        }
    };
    let expected: Vec<(String, String)> = HEALTH_COLUMNS
        .iter()
        .map(|(n, ty)| ((*n).to_owned(), (*ty).to_owned()))
        .collect();
    // The table API spells datetime "dateTime" (KnownColumnTypeEnum); the DCR "datetime".
    let table_cols: Vec<(String, String)> = cols(at(&table, &["properties", "schema", "columns"]))
        .into_iter()
        .map(|(n, ty)| {
            (
                n,
                if ty == "dateTime" {
                    "datetime".into()
                } else {
                    ty
                },
            )
        })
        .collect();
    assert_eq!(table_cols, expected);
    let dcr_json = inner_resource(&t, "Microsoft.Insights/dataCollectionRules")[0];
    assert_eq!(dcr_json["apiVersion"], "2023-03-11");
    let dcr = inner.json(dcr_json).unwrap();
    assert_eq!(dcr.get("kind").unwrap().str(), "Direct");
    assert_eq!(
        dcr.get("location").unwrap().str(),
        "northeurope",
        "the workspace's region"
    );
    let stream = "Custom-DfcSync_CL";
    assert_eq!(
        cols(at(
            &dcr,
            &["properties", "streamDeclarations", stream, "columns"]
        )),
        expected
    );
    let flow = at(&dcr, &["properties", "dataFlows", "0"]);
    assert_eq!(strings(flow.get("streams").unwrap()), [stream]);
    assert_eq!(flow.get("outputStream").unwrap().str(), stream);
    let dest = flow.get("destinations").unwrap();
    let la = at(&dcr, &["properties", "destinations", "logAnalytics", "0"]);
    assert_eq!(strings(dest), [la.get("name").unwrap().str()]);
    assert_eq!(
        la.get("workspaceResourceId").unwrap().str(),
        ws_id(WS_SUB, "rg-sentinel", "law-a")
    );
    // The outputs the jobs read are the DCR's endpoint and immutable id.
    let outs = health(&t)["outputs"].as_object().unwrap();
    assert_eq!(
        inner
            .json(&outs["logsIngestionEndpoint"]["value"])
            .unwrap()
            .str(),
        ENDPOINT
    );
    assert_eq!(
        inner.json(&outs["immutableId"]["value"]).unwrap().str(),
        IMMUTABLE_ID
    );
    let vars = job_env(&ev, &t);
    assert_eq!(vars["DFCSYNC_HEALTH_ENDPOINT"], ENDPOINT);
    assert_eq!(vars["DFCSYNC_HEALTH_DCR_IMMUTABLE_ID"], IMMUTABLE_ID);
    assert_eq!(vars["DFCSYNC_HEALTH_STREAM"], stream);
    let config = check_env(&vars).unwrap();
    let h = config.health.expect("health rows are on");
    assert_eq!(
        (
            h.endpoint.as_str(),
            h.dcr_immutable_id.as_str(),
            h.stream.as_str()
        ),
        (ENDPOINT, IMMUTABLE_ID, stream)
    );
    // Off: no table, no variables.
    let ev = Eval::new(
        &t,
        params(&[("workspaces", three()), ("health", json!(false))]),
        &env,
    )
    .unwrap();
    assert!(!condition(&ev, d));
    assert!(check_env(&job_env(&ev, &t)).unwrap().health.is_none());
}

#[test]
fn the_workbook_and_the_rules_are_on_the_first_workspace() {
    let t = template();
    let env = env("AzureCloud");
    let ev = Eval::new(&t, params(&[("workspaces", three())]), &env).unwrap();
    let inner_env = Env {
        subscription_id: WS_SUB.into(),
        resource_group: Some("rg-sentinel".into()),
        location: "westeurope".into(),
        cloud: "AzureCloud".into(),
        reference: &reference,
    };
    let inner = health_eval(&ev, &t, &inner_env);
    let ws = ws_id(WS_SUB, "rg-sentinel", "law-a");
    let wb = inner
        .json(inner_resource(&t, "Microsoft.Insights/workbooks")[0])
        .unwrap();
    assert_eq!(wb.get("kind").unwrap().str(), "shared");
    assert_eq!(
        wb.get("name").unwrap().str(),
        format!("guid({ws}|dfcsync-health-workbook)")
    );
    assert_eq!(at(&wb, &["properties", "category"]).str(), "sentinel");
    assert_eq!(at(&wb, &["properties", "sourceId"]).str(), ws);
    let data: Value =
        serde_json::from_str(at(&wb, &["properties", "serializedData"]).str()).unwrap();
    assert_eq!(data["version"], "Notebook/1.0");
    assert_eq!(data, health(&t)["variables"]["workbook"]);
    let rules = inner_resource(&t, "Microsoft.SecurityInsights/alertRules");
    assert_eq!(rules.len(), 2);
    for r in rules {
        let r = inner.json(r).unwrap();
        assert_eq!(r.get("kind").unwrap().str(), "Scheduled");
        assert_eq!(
            r.get("scope").unwrap().str(),
            "Microsoft.OperationalInsights/workspaces/law-a"
        );
        let p = r.get("properties").unwrap();
        for k in [
            "displayName",
            "enabled",
            "severity",
            "query",
            "queryFrequency",
            "queryPeriod",
            "triggerOperator",
            "triggerThreshold",
            "suppressionEnabled",
            "suppressionDuration",
        ] {
            assert!(p.get(k).is_some(), "a scheduled rule needs {k}");
        }
        assert_eq!(
            at(p, &["incidentConfiguration", "createIncident"]),
            &V::B(true)
        );
    }
}

/// The rules' queries as deployed, for a frequent job every `every` minutes.
fn rule_queries(every: u32) -> (String, String, String, String) {
    let t = template();
    let env = env("AzureCloud");
    let ev = Eval::new(
        &t,
        params(&[
            ("workspaces", law()),
            ("cronExpression", json!(format!("*/{every} * * * *"))),
        ]),
        &env,
    )
    .unwrap();
    let inner_env = Env {
        subscription_id: DEPLOY_SUB.into(),
        resource_group: Some("rg-dfcsync".into()),
        location: "westeurope".into(),
        cloud: "AzureCloud".into(),
        reference: &reference,
    };
    let inner = health_eval(&ev, &t, &inner_env);
    let rules = inner_resource(&t, "Microsoft.SecurityInsights/alertRules");
    let get = |i: usize, k: &str| {
        inner
            .json(&rules[i]["properties"][k])
            .unwrap()
            .str()
            .to_owned()
    };
    (
        get(0, "query"),
        get(0, "queryFrequency"),
        get(0, "queryPeriod"),
        get(1, "query"),
    )
}

use kql::{Column, ColumnType, Database, QueryOptions, Table, Value as K};

fn now() -> chrono::DateTime<chrono::Utc> {
    "2026-12-07T12:00:00Z".parse().unwrap()
}

/// A `DfcSync_CL` table with the given rows (column name → value; the rest null).
fn health_db(rows: Vec<Vec<(&str, K)>>) -> Database {
    let ty = |t: &str| match t {
        "datetime" => ColumnType::DateTime,
        "int" => ColumnType::Int,
        "long" => ColumnType::Long,
        "boolean" => ColumnType::Bool,
        "dynamic" => ColumnType::Dynamic,
        _ => ColumnType::String,
    };
    let mut table = Table::new(
        "DfcSync_CL",
        HEALTH_COLUMNS
            .iter()
            .map(|(n, t)| Column::new(*n, ty(t)))
            .collect(),
    );
    for r in rows {
        let mut row = vec![K::Null; HEALTH_COLUMNS.len()];
        for (k, v) in r {
            let i = HEALTH_COLUMNS
                .iter()
                .position(|(n, _)| *n == k)
                .unwrap_or_else(|| panic!("no column {k}"));
            row[i] = v;
        }
        table.rows.push(row);
    }
    let mut db = Database::new();
    db.insert("DfcSync_CL", table);
    db
}

fn ago(minutes: i64) -> K {
    K::DateTime(now() - chrono::TimeDelta::minutes(minutes))
}

fn s(x: &str) -> K {
    K::String(x.into())
}

fn rows_of(q: &str, db: &Database) -> usize {
    kql::run(q, db, &QueryOptions::new(now()))
        .unwrap_or_else(|e| panic!("{q}\n{e}"))
        .rows
        .len()
}

#[test]
fn the_stale_rule_fires_after_three_periods_and_when_there_is_no_row_at_all() {
    let (q, freq, period, _) = rule_queries(5);
    assert!(q.contains("ago(15m)"), "{q}");
    assert_eq!((freq.as_str(), period.as_str()), ("PT5M", "PT15M"));
    let cycle = |m: i64| vec![("TimeGenerated", ago(m)), ("Kind", s("cycle"))];
    // No row at all (nothing ever ran, or nothing can write): it fires.
    assert_eq!(rows_of(&q, &health_db(vec![])), 1);
    // Only other kinds of rows: it fires.
    assert_eq!(
        rows_of(
            &q,
            &health_db(vec![vec![("TimeGenerated", ago(1)), ("Kind", s("action"))]])
        ),
        1
    );
    assert_eq!(
        rows_of(&q, &health_db(vec![cycle(20)])),
        1,
        "20 minutes ago"
    );
    assert_eq!(rows_of(&q, &health_db(vec![cycle(20), cycle(4)])), 0);
    // Every 10 minutes: 30 minutes of silence, and a rule every 10 minutes.
    let (q, freq, period, _) = rule_queries(10);
    assert!(q.contains("ago(30m)"), "{q}");
    assert_eq!((freq.as_str(), period.as_str()), ("PT10M", "PT30M"));
    assert_eq!(rows_of(&q, &health_db(vec![cycle(25)])), 0);
    // Every 2 minutes: the rule runs every 5 (the least), looking back at least as far.
    let (q, freq, period, _) = rule_queries(2);
    assert!(q.contains("ago(6m)"), "{q}");
    assert_eq!((freq.as_str(), period.as_str()), ("PT5M", "PT6M"));
}

#[test]
fn the_held_rule_fires_for_an_incident_held_in_every_full_sync_for_over_a_day() {
    let (_, _, _, q) = rule_queries(5);
    let held = |name: &str, m: i64| {
        vec![
            ("TimeGenerated", ago(m)),
            ("Kind", s("held")),
            ("Workspace", s("sub/rg/law")),
            ("IncidentName", s(name)),
            ("IncidentNumber", K::Long(7)),
            ("Reason", s("too many alerts")),
            ("HoldKind", s("alert_cap")),
        ]
    };
    let mut rows = Vec::new();
    // Held hourly for 30 hours, still held: fires.
    for h in 0..30 {
        rows.push(held("long", h * 60 + 3));
    }
    // Held for 3 hours only: not yet.
    for h in 0..3 {
        rows.push(held("recent", h * 60 + 3));
    }
    // Held for 30 hours but released 5 hours ago: no longer.
    for h in 5..35 {
        rows.push(held("released", h * 60 + 3));
    }
    // Held a day ago and again now, not in between: not every cycle.
    rows.push(held("twice", 26 * 60));
    rows.push(held("twice", 3));
    let out = kql::run(&q, &health_db(rows), &QueryOptions::new(now())).unwrap();
    let names: Vec<String> = out
        .rows
        .iter()
        .map(|r| {
            let i = out
                .columns
                .iter()
                .position(|c| c.name == "IncidentName")
                .unwrap();
            match &r[i] {
                K::String(x) => x.to_string(),
                other => panic!("{other:?}"),
            }
        })
        .collect();
    assert_eq!(names, ["long"]);
    for c in ["Workspace", "IncidentNumber", "Reason", "HeldSince"] {
        assert!(out.columns.iter().any(|x| x.name == c), "no column {c}");
    }
}

#[test]
fn every_workbook_query_runs_on_health_rows() {
    let t = template();
    let items = health(&t)["variables"]["workbook"]["items"]
        .as_array()
        .unwrap();
    let action = |m: i64, ws: &str, result: &str| {
        vec![
            ("TimeGenerated", ago(m)),
            ("Kind", s("action")),
            ("Workspace", s(ws)),
            ("Action", s("close")),
            ("Result", s(result)),
            ("IncidentNumber", K::Long(3)),
            ("AlertsChangedAt", ago(m + 2)),
            ("WrittenAt", ago(m)),
        ]
    };
    let db = health_db(vec![
        action(10, "sub/rg/a", "applied"),
        action(70, "sub/rg/b", "failed"),
        vec![
            ("TimeGenerated", ago(5)),
            ("Kind", s("cycle")),
            ("Succeeded", K::Bool(true)),
            ("WorkspacesFailed", K::Int(0)),
            ("WorkspacesReached", K::Int(2)),
            ("Error", s("")),
        ],
        vec![
            ("TimeGenerated", ago(5)),
            ("Kind", s("held")),
            ("Workspace", s("sub/rg/a")),
            ("IncidentName", s("i")),
            ("Reason", s("r")),
        ],
    ]);
    let mut queries = 0;
    for item in items.iter().filter(|i| i["type"] == 3) {
        let q = item["content"]["query"].as_str().unwrap();
        queries += 1;
        let result = kql::run(q, &db, &QueryOptions::new(now()))
            .unwrap_or_else(|e| panic!("{}: {q}\n{e}", item["name"]));
        assert!(
            !result.rows.is_empty(),
            "{}: no rows from {q}",
            item["name"]
        );
    }
    assert_eq!(queries, 5);
    // The latency is the time from the alerts' change to the write: 2 minutes here.
    let latency = items.iter().find(|i| i["name"] == "latency").unwrap()["content"]["query"]
        .as_str()
        .unwrap();
    assert!(latency.contains("WrittenAt - AlertsChangedAt"));
    assert!(latency.contains("percentiles(LatencySeconds, 50, 90, 99)"));
    let r = kql::run(latency, &db, &QueryOptions::new(now())).unwrap();
    for p in ["50", "90", "99"] {
        let col = r
            .columns
            .iter()
            .position(|c| c.name == format!("percentile_LatencySeconds_{p}"))
            .unwrap_or_else(|| panic!("{:?}", r.columns));
        assert_eq!(r.rows[0][col], K::Real(120.0), "p{p}");
    }
}

#[test]
fn the_jobs_logs_go_through_a_diagnostic_setting_without_shared_keys() {
    let t = template();
    let text = read("deploy/azure/azuredeploy.json");
    assert!(!text.contains("listKeys"), "no shared key");
    let env = env("AzureCloud");
    let ev = Eval::new(&t, params(&[("workspaces", law())]), &env).unwrap();
    let e = ev
        .json(one(&t, "Microsoft.App/managedEnvironments"))
        .unwrap();
    assert_eq!(
        at(&e, &["properties", "appLogsConfiguration", "destination"]).str(),
        "azure-monitor"
    );
    let ds_json = one(&t, "Microsoft.Insights/diagnosticSettings");
    assert!(condition(&ev, ds_json));
    let ds = ev.json(ds_json).unwrap();
    assert_eq!(
        ds.get("scope").unwrap().str(),
        "Microsoft.App/managedEnvironments/dfcsync-env"
    );
    assert_eq!(
        at(&ds, &["properties", "workspaceId"]).str(),
        format!(
            "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.OperationalInsights/workspaces/dfcsync-logs"
        )
    );
    let V::A(logs) = at(&ds, &["properties", "logs"]) else {
        panic!()
    };
    let cats: Vec<&str> = logs
        .iter()
        .map(|l| l.get("category").unwrap().str())
        .collect();
    assert_eq!(cats, ["ContainerAppConsoleLogs", "ContainerAppSystemLogs"]);
    let ev = Eval::new(
        &t,
        params(&[("workspaces", law()), ("diagnosticLogs", json!(false))]),
        &env,
    )
    .unwrap();
    assert!(!condition(&ev, ds_json));
    let e = ev
        .json(one(&t, "Microsoft.App/managedEnvironments"))
        .unwrap();
    assert_eq!(
        at(&e, &["properties", "appLogsConfiguration", "destination"]).str(),
        "none"
    );
}

#[test]
fn a_configuration_file_is_a_secret_mounted_where_dfcsync_config_points() {
    let t = template();
    let env = env("AzureCloud");
    let file = read("dfcsync.example.toml");
    let mut ev = Eval::new(
        &t,
        params(&[("workspaces", law()), ("configFile", json!(file))]),
        &env,
    )
    .unwrap();
    assert_eq!(t["parameters"]["configFile"]["type"], "securestring");
    let j = &jobs(&mut ev, &t)[0];
    let secrets = at(j, &["properties", "configuration", "secrets"]);
    assert_eq!(at(secrets, &["0", "value"]).str(), file);
    let secret_name = at(secrets, &["0", "name"]).str();
    let volume = at(j, &["properties", "template", "volumes", "0"]);
    assert_eq!(volume.get("storageType").unwrap().str(), "Secret");
    assert_eq!(
        at(volume, &["secrets", "0", "secretRef"]).str(),
        secret_name
    );
    let mount = at(
        j,
        &[
            "properties",
            "template",
            "containers",
            "0",
            "volumeMounts",
            "0",
        ],
    );
    assert_eq!(
        mount.get("volumeName").unwrap().str(),
        volume.get("name").unwrap().str()
    );
    let mounted = format!(
        "{}/{}",
        mount.get("mountPath").unwrap().str(),
        at(volume, &["secrets", "0", "path"]).str()
    );
    let vars = job_env(&ev, &t);
    assert_eq!(vars["DFCSYNC_CONFIG"], mounted);
    // dfcsync reads it there, and the variables still win.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("dfcsync.toml");
    std::fs::write(
        &local,
        "[policy]\nreopen = \"never\"\nproduct_names = [\"Azure Security Center\"]\n",
    )
    .unwrap();
    let config = check_env_with_file(&vars, Some(&local)).unwrap();
    assert_eq!(config.policy.reopen, dfcsync::policy::ReopenPolicy::Own);
    assert_eq!(config.policy.product_names, ["Azure Security Center"]);
    // Without a file: no secret, no volume, no DFCSYNC_CONFIG.
    let mut ev = Eval::new(&t, params(&[("workspaces", law())]), &env).unwrap();
    let j = &jobs(&mut ev, &t)[0];
    assert_eq!(
        at(j, &["properties", "configuration", "secrets"]),
        &V::A(vec![])
    );
    assert_eq!(at(j, &["properties", "template", "volumes"]), &V::A(vec![]));
    assert_eq!(job_env(&ev, &t)["DFCSYNC_CONFIG"], "");
}

/// The actions dfcsync's clients call on a workspace (crates/dfcsync/src/azure/sentinel.rs and
/// log_analytics.rs; the query reads SecurityIncident and SecurityAlert).
const CUSTOM_ROLE_ACTIONS: &[&str] = &[
    "Microsoft.OperationalInsights/workspaces/read",
    "Microsoft.OperationalInsights/workspaces/query/read",
    "Microsoft.OperationalInsights/workspaces/query/SecurityIncident/read",
    "Microsoft.OperationalInsights/workspaces/query/SecurityAlert/read",
    "Microsoft.SecurityInsights/incidents/read",
    "Microsoft.SecurityInsights/incidents/write",
    "Microsoft.SecurityInsights/incidents/comments/read",
    "Microsoft.SecurityInsights/incidents/comments/write",
];

#[test]
fn the_custom_role_has_exactly_the_actions_dfcsync_calls_and_replaces_responder() {
    let t = template();
    let env = env("AzureCloud");
    let mut ev = Eval::new(
        &t,
        params(&[("workspaces", three()), ("createCustomRole", json!(true))]),
        &env,
    )
    .unwrap();
    let def_json = one(&t, "Microsoft.Authorization/roleDefinitions");
    assert!(condition(&ev, def_json));
    let def = ev.json(def_json).unwrap();
    let id = def.get("name").unwrap().str().to_owned();
    let perms = at(&def, &["properties", "permissions", "0"]);
    assert_eq!(strings(perms.get("actions").unwrap()), CUSTOM_ROLE_ACTIONS);
    assert_eq!(perms.get("dataActions").unwrap(), &V::A(vec![]));
    assert_eq!(
        strings(at(&def, &["properties", "assignableScopes"])),
        [
            format!("/subscriptions/{WS_SUB}/resourceGroups/rg-sentinel"),
            format!("/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-soc"),
        ],
        "each workspace's resource group, once"
    );
    // The paths the clients call: incidents, their comments, the workspace, the query.
    let sentinel = read("crates/dfcsync/src/azure/sentinel.rs");
    for path in [
        "/providers/Microsoft.SecurityInsights/incidents",
        "/comments",
    ] {
        assert!(sentinel.contains(path), "{path}");
    }
    let la = read("crates/dfcsync/src/azure/log_analytics.rs");
    assert!(la.contains("/v1/workspaces/{}/query"));
    let grants = assignments(&mut ev, &t);
    let on_workspaces: BTreeSet<&String> = grants
        .iter()
        .filter(|g| g.0.contains("/Microsoft.OperationalInsights/workspaces/"))
        .map(|g| &g.1)
        .collect();
    assert_eq!(on_workspaces, BTreeSet::from([&id]));
}

#[test]
fn the_roles_are_exactly_those_dfcsync_needs() {
    // Least privilege (architecture.md): Sentinel Responder on the workspaces (or the custom
    // role), Security Admin only for writeback, AcrPull on the registry, Storage Blob Data
    // Contributor on the lease container, Monitoring Metrics Publisher on the health DCR.
    // No other role id appears anywhere in the template.
    let text = read("deploy/azure/azuredeploy.json");
    let mut ids: Vec<&str> = text
        .match_indices('-')
        .filter_map(|(i, _)| text.get(i.checked_sub(8)?..i + 28))
        .filter(|s| {
            s.len() == 36
                && s.chars().enumerate().all(|(i, c)| {
                    if [8, 13, 18, 23].contains(&i) {
                        c == '-'
                    } else {
                        c.is_ascii_hexdigit()
                    }
                })
        })
        .collect();
    ids.sort();
    ids.dedup();
    let mut expected = vec![
        RESPONDER,
        SECURITY_ADMIN,
        ACR_PULL,
        BLOB_CONTRIBUTOR,
        METRICS_PUBLISHER,
    ];
    expected.sort();
    assert_eq!(ids, expected);
}

#[test]
fn the_cloud_follows_the_cloud_deployed_to() {
    let t = template();
    for (azure_env, cloud, arm_host) in [
        ("AzureCloud", "public", "https://management.azure.com"),
        (
            "AzureUSGovernment",
            "usgov",
            "https://management.usgovcloudapi.net",
        ),
        (
            "AzureChinaCloud",
            "china",
            "https://management.chinacloudapi.cn",
        ),
    ] {
        let env = env(azure_env);
        let ev = Eval::new(&t, params(&[("workspaces", law())]), &env).unwrap();
        let vars = job_env(&ev, &t);
        assert_eq!(vars["DFCSYNC_CLOUD"], cloud);
        let config = check_env(&vars).unwrap();
        let c = dfcsync::azure::cloud::Cloud::from_config(&config.file.azure).unwrap();
        assert_eq!(c.arm, arm_host);
    }
    for v in t["parameters"]["cloud"]["allowedValues"]
        .as_array()
        .unwrap()
    {
        let env = env("AzureCloud");
        let ev = Eval::new(
            &t,
            params(&[("workspaces", law()), ("cloud", v.clone())]),
            &env,
        )
        .unwrap();
        check_env(&job_env(&ev, &t)).unwrap();
    }
    let env = env("AzureCloud");
    assert!(
        Eval::new(
            &t,
            params(&[("workspaces", law()), ("cloud", json!("germany"))]),
            &env
        )
        .is_err()
    );
}

#[test]
fn every_allowed_policy_value_is_accepted_by_dfcsync_as_given() {
    let t = template();
    let env = env("AzureCloud");
    for p in [
        "reopen",
        "backend",
        "resolvedClassification",
        "dismissedClassification",
    ] {
        for v in t["parameters"][p]["allowedValues"].as_array().unwrap() {
            let ev = Eval::new(&t, params(&[("workspaces", law()), (p, v.clone())]), &env).unwrap();
            let config = check_env(&job_env(&ev, &t)).unwrap_or_else(|e| panic!("{p} = {v}: {e}"));
            let got = match p {
                "reopen" => format!("{:?}", config.policy.reopen).to_lowercase(),
                "backend" => config.sync.backend.as_str().to_owned(),
                "resolvedClassification" => format!(
                    "{}/{}",
                    config.policy.resolved.classification(),
                    config.policy.resolved.reason().unwrap()
                ),
                _ => format!(
                    "{}/{}",
                    config.policy.dismissed.classification(),
                    config.policy.dismissed.reason().unwrap()
                ),
            };
            assert_eq!(got, v.as_str().unwrap(), "{p}");
        }
    }
    for b in [false, true] {
        let ev = Eval::new(
            &t,
            params(&[("workspaces", law()), ("respectManualChanges", json!(b))]),
            &env,
        )
        .unwrap();
        let config = check_env(&job_env(&ev, &t)).unwrap();
        assert_eq!(config.file.policy.respect_manual_changes, Some(b));
    }
}

#[test]
fn the_workspaces_are_the_only_required_parameter() {
    let t = template();
    let required: Vec<&String> = t["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.get("defaultValue").is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(required, vec!["workspaces"]);
    let env = env("AzureCloud");
    assert!(
        Eval::new(&t, BTreeMap::new(), &env).is_err(),
        "workspaces is required"
    );
}

#[test]
fn job_names_are_those_container_apps_accepts() {
    // Container Apps (and Jobs): lower-case letters, digits and '-', a letter first, a letter
    // or digit last, no '--', at most 32 characters (docs/azure-services.md §5.7). The
    // full-sync job adds "-full".
    let valid = |n: &str| {
        let b = n.as_bytes();
        (2..=32).contains(&n.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.contains("--")
    };
    let t = template();
    let max = t["parameters"]["jobName"]["maxLength"].as_u64().unwrap() as usize;
    let min = t["parameters"]["jobName"]["minLength"].as_u64().unwrap() as usize;
    assert!(valid(&format!("{}-full", "a".repeat(max))));
    assert!(!valid(&format!("{}-full", "a".repeat(max + 1))));
    assert_eq!(min, 2);
    let form: Value = serde_json::from_str(&read("deploy/azure/createUiDefinition.json")).unwrap();
    let el = form["parameters"]["basics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "jobName")
        .unwrap();
    let re = regex_lite(el["constraints"]["regex"].as_str().unwrap());
    for (name, ok) in [
        ("dfcsync", true),
        ("d1", true),
        ("a-b-c", true),
        (&"a".repeat(max) as &str, true),
        (&"a".repeat(max + 1) as &str, false),
        ("a", false),
        ("1abc", false),
        ("abc-", false),
        ("a--b", false),
        ("Dfcsync", false),
        ("dfc_sync", false),
    ] {
        assert_eq!(re(name), ok, "{name}");
        if ok {
            assert!(valid(name) && valid(&format!("{name}-full")), "{name}");
        }
    }
}

/// The form's job name pattern, which must be exactly this one (a JavaScript regex the portal
/// runs; checked here by hand).
fn regex_lite(pattern: &str) -> impl Fn(&str) -> bool {
    assert_eq!(pattern, "^(?!.*--)[a-z][a-z0-9-]{0,25}[a-z0-9]$");
    |n: &str| {
        let b = n.as_bytes();
        !n.contains("--")
            && (2..=27).contains(&n.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    }
}

/// The names in the first column of a table under `heading` in docs/deploy.md (names in
/// backticks, several per row allowed).
fn documented(heading: &str) -> Vec<String> {
    let doc = read("docs/deploy.md");
    let section: Vec<&str> = doc
        .lines()
        .skip_while(|l| l.trim() != heading)
        .skip(1)
        .take_while(|l| !l.starts_with("#"))
        .collect();
    assert!(!section.is_empty(), "no {heading} in docs/deploy.md");
    let mut out = Vec::new();
    for l in section.iter().filter(|l| l.starts_with('|')).skip(2) {
        let first = l.split('|').nth(1).unwrap();
        for part in first.split('`').skip(1).step_by(2) {
            out.push(part.to_owned());
        }
    }
    out
}

#[test]
fn the_documented_parameters_and_outputs_are_the_templates() {
    let t = template();
    for (heading, key) in [("### Parameters", "parameters"), ("### Outputs", "outputs")] {
        let mut doc = documented(heading);
        let n = doc.len();
        doc.sort();
        doc.dedup();
        assert_eq!(doc.len(), n, "{heading}: a name documented twice");
        let mut real: Vec<String> = t[key].as_object().unwrap().keys().cloned().collect();
        real.sort();
        assert_eq!(doc, real, "{heading} of docs/deploy.md");
    }
}

mod portal_form {
    use super::*;
    use deploy_support::arm::Expr;

    const FUNCTIONS: &[&str] = &[
        "basics", "steps", "location", "first", "skip", "split", "if", "equals", "parse", "concat",
    ];

    fn form() -> Value {
        serde_json::from_str(&read("deploy/azure/createUiDefinition.json")).unwrap()
    }

    /// Every element of the form: (step, name) with step "basics" for the basics blade.
    fn elements(f: &Value) -> BTreeMap<(String, String), Value> {
        let p = &f["parameters"];
        let mut out = BTreeMap::new();
        for e in p["basics"].as_array().unwrap() {
            out.insert(
                ("basics".into(), e["name"].as_str().unwrap().into()),
                e.clone(),
            );
        }
        for s in p["steps"].as_array().unwrap() {
            for e in s["elements"].as_array().unwrap() {
                out.insert(
                    (
                        s["name"].as_str().unwrap().into(),
                        e["name"].as_str().unwrap().into(),
                    ),
                    e.clone(),
                );
            }
        }
        out
    }

    /// Every element an expression reads (`basics('x')`, `steps('s').x`).
    fn reads(e: &Expr, out: &mut Vec<(String, String)>, errors: &mut Vec<String>) {
        match e {
            Expr::Prop(b, p) => {
                if let Expr::Call(f, a) = &**b
                    && f == "steps"
                    && let Some(Expr::Str(s)) = a.first()
                {
                    out.push((s.clone(), p.clone()));
                    return;
                }
                reads(b, out, errors);
            }
            Expr::Call(f, a) => {
                if !FUNCTIONS.contains(&f.as_str()) {
                    errors.push(format!("unknown function {f}()"));
                }
                if f == "basics"
                    && let Some(Expr::Str(x)) = a.first()
                {
                    out.push(("basics".into(), x.clone()));
                }
                for x in a {
                    reads(x, out, errors);
                }
            }
            Expr::Index(b, i) => {
                reads(b, out, errors);
                reads(i, out, errors);
            }
            Expr::Str(_) | Expr::Int(_) => {}
        }
    }

    fn check(f: &Value, t: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        let els = elements(f);
        let params = t["parameters"].as_object().unwrap();
        let outputs = f["parameters"]["outputs"].as_object().unwrap();
        for (name, v) in outputs {
            if !params.contains_key(name) {
                errors.push(format!("output {name} is not a parameter of the template"));
            }
            let text = arm::expression_text(v.as_str().unwrap()).unwrap();
            let mut used = Vec::new();
            match arm::parse(text) {
                Ok(e) => reads(&e, &mut used, &mut errors),
                Err(e) => errors.push(format!("output {name}: {e}")),
            }
            for u in used {
                if !els.contains_key(&u) {
                    errors.push(format!(
                        "output {name} reads {}.{}, which is not in the form",
                        u.0, u.1
                    ));
                }
            }
        }
        for (k, p) in params {
            if p.get("defaultValue").is_none() && !outputs.contains_key(k) {
                errors.push(format!("the form does not set the required parameter {k}"));
            }
        }
        // A drop-down feeding a parameter with allowedValues offers only those.
        for ((step, name), e) in &els {
            let Some(allowed) = e
                .pointer("/constraints/allowedValues")
                .and_then(Value::as_array)
            else {
                continue;
            };
            let target = outputs.iter().find(|(_, v)| {
                v.as_str() == Some(&format!("[steps('{step}').{name}]"))
                    || v.as_str() == Some(&format!("[basics('{name}')]"))
            });
            let Some((param, _)) = target else { continue };
            let Some(param_allowed) = params[param]["allowedValues"].as_array() else {
                continue;
            };
            for a in allowed {
                if !param_allowed.contains(&a["value"]) {
                    errors.push(format!(
                        "{step}.{name} offers {}, which {param} does not allow",
                        a["value"]
                    ));
                }
            }
            let default_label = e["defaultValue"].as_str().unwrap_or_default();
            if !allowed.iter().any(|a| a["label"] == default_label) {
                errors.push(format!(
                    "{step}.{name}: default {default_label:?} is not one of its labels"
                ));
            }
        }
        // A text box starts from the template's own literal default: the form deploys what
        // the template describes when nothing is changed.
        for ((step, name), e) in &els {
            let (Some("Microsoft.Common.TextBox"), Some(default)) =
                (e["type"].as_str(), e["defaultValue"].as_str())
            else {
                continue;
            };
            let target = outputs.iter().find(|(_, v)| {
                v.as_str() == Some(&format!("[steps('{step}').{name}]"))
                    || v.as_str() == Some(&format!("[basics('{name}')]"))
            });
            let Some((param, _)) = target else { continue };
            if let Some(d) = params[param]["defaultValue"].as_str()
                && arm::expression_text(d).is_none()
                && d != default
            {
                errors.push(format!(
                    "{step}.{name} starts from {default:?}, the template's {param} from {d:?}"
                ));
            }
        }
        errors
    }

    #[test]
    fn the_portal_form_sets_real_parameters_from_real_elements() {
        let errors = check(&form(), &template());
        assert!(errors.is_empty(), "{}", errors.join("\n"));
    }

    #[test]
    fn every_change_window_the_form_allows_is_one_dfcsync_accepts() {
        // The pattern: 1 to 4 digits without a leading zero, then minutes, hours or days.
        // The smallest and the largest value of each unit are windows dfcsync accepts
        // (at least 1m), hence every value between.
        let el = &elements(&form())[&("sync".to_owned(), "changedWithin".to_owned())];
        assert_eq!(el["constraints"]["regex"], "^[1-9][0-9]{0,3}[mhd]$");
        for unit in ["m", "h", "d"] {
            for n in [1, 9999] {
                let args = ["sync", "--changed-within", &format!("{n}{unit}")].map(str::to_owned);
                deploy_support::parses(&args).unwrap();
            }
        }
        assert!(
            deploy_support::parses(&["sync", "--changed-within", "0m"].map(str::to_owned)).is_err()
        );
    }

    #[test]
    fn a_broken_form_is_refused() {
        let t = template();
        type Break = fn(&mut Value);
        let cases: Vec<(Break, &str)> = vec![
            (
                |f| f["parameters"]["outputs"]["workspace"] = json!("[basics('workspace').name]"),
                "not a parameter",
            ),
            (
                |f| {
                    f["parameters"]["outputs"]
                        .as_object_mut()
                        .unwrap()
                        .remove("workspaces");
                },
                "required parameter workspaces",
            ),
            (
                |f| f["parameters"]["outputs"]["reopen"] = json!("[steps('sync').reopening]"),
                "not in the form",
            ),
            (
                |f| f["parameters"]["outputs"]["image"] = json!("[basics('img')]"),
                "not in the form",
            ),
            (
                |f| {
                    f["parameters"]["steps"][0]["elements"][0]["constraints"]["allowedValues"][1]
                        ["value"] = json!("UserAssigned")
                },
                "does not allow",
            ),
            (
                |f| f["parameters"]["steps"][1]["elements"][2]["defaultValue"] = json!("0 * * * *"),
                "the template's fullSyncCronExpression from \"17 * * * *\"",
            ),
        ];
        for (break_it, expected) in cases {
            let mut f = form();
            break_it(&mut f);
            let errors = check(&f, &t);
            assert!(
                errors.iter().any(|e| e.contains(expected)),
                "{expected}: {errors:#?}"
            );
        }
    }
}

#[test]
fn docs_health_shows_the_templates_columns_and_queries() {
    let doc = read("docs/health.md");
    let t = template();
    let v = &health(&t)["variables"];
    let mut queries: Vec<String> = v["workbook"]["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == 3)
        .map(|i| i["content"]["query"].as_str().unwrap().to_owned())
        .collect();
    queries.push(v["heldQuery"].as_str().unwrap().to_owned());
    // The stale rule as deployed with the default schedule (every 5 minutes).
    queries.push(rule_queries(5).0);
    for q in queries {
        assert!(
            doc.contains(&format!("```kusto\n{q}\n```")),
            "docs/health.md does not show:\n{q}"
        );
    }
    let rows: Vec<(String, String)> = doc
        .lines()
        .skip_while(|l| !l.starts_with("| column | type |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_owned(), cells[2].to_owned())
        })
        .collect();
    let expected: Vec<(String, String)> = HEALTH_COLUMNS
        .iter()
        .map(|(n, ty)| ((*n).to_owned(), (*ty).to_owned()))
        .collect();
    assert_eq!(rows, expected);
}
