//! `deploy/azure/azuredeploy.json`, checked the way Resource Manager would before deploying
//! it (see `deploy_support::arm`), then evaluated for each identity choice and cloud: each
//! of the two jobs (a frequent change read, a slower full sync) must run a real dfcsync
//! command with variables dfcsync reads and accepts, and the role assignments of every
//! identity must land on the Sentinel workspace, in whatever resource group and
//! subscription it is.

mod deploy_support;

use std::collections::BTreeMap;

use deploy_support::arm::{self, Env, Eval, V};
use deploy_support::{BINARY_PATH, check_env, check_schedules, cli, flag_value, read};
use serde_json::{Value, json};

const RESPONDER: &str = "3e150937-b8fe-4cfb-8069-0eaf05ecd056";
const SECURITY_ADMIN: &str = "fb1c8493-542b-48eb-b624-b4c8fea62acd";

const DEPLOY_SUB: &str = "11111111-1111-1111-1111-111111111111";
const WS_SUB: &str = "22222222-2222-2222-2222-222222222222";

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

/// The Container Apps Job resource: one, copied for each schedule.
fn job(t: &Value) -> &Value {
    let jobs = resources(t, "Microsoft.App/jobs");
    assert_eq!(jobs.len(), 1, "one Container Apps Job resource");
    jobs[0]
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

/// What `reference()` returns after deployment, for the resources the template creates or
/// names.
fn reference(id: &str, full: bool) -> V {
    let o =
        |pairs: Vec<(&str, V)>| V::O(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect());
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
    } else if id.contains("/Microsoft.OperationalInsights/workspaces/") {
        o(vec![("customerId", V::S("log-customer-id".into()))])
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

/// The job container's environment, evaluated.
fn job_env(ev: &Eval, t: &Value) -> BTreeMap<String, String> {
    let container = &job(t)["properties"]["template"]["containers"][0];
    let mut out = BTreeMap::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = ev.json(&e["value"]).unwrap();
        assert!(
            out.insert(name.clone(), value.str().to_owned()).is_none(),
            "{name} twice"
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
            |t| t["resources"][3]["name"] = json!("[parameters('jobname')]"),
            "parameters('jobname') is not declared",
        ),
        (
            "an undeclared variable",
            |t| t["resources"][1]["name"] = json!("[variables('envName')]"),
            "variables('envName') is not declared",
        ),
        (
            "a dependsOn naming nothing",
            |t| {
                t["resources"][3]["dependsOn"][0] =
                    json!("[resourceId('Microsoft.App/managedEnvironments', 'other')]")
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
                t["resources"][4]["properties"]["template"]["resources"][0]["properties"]
                    .as_object_mut()
                    .unwrap()
                    .remove("principalType");
            },
            "principalType",
        ),
        (
            "a random role assignment name",
            |t| {
                t["resources"][4]["properties"]["template"]["resources"][0]["name"] =
                    json!("[newGuid()]")
            },
            "guid(",
        ),
        (
            "a reference() without dependsOn",
            |t| {
                t["resources"][4]["dependsOn"]
                    .as_array_mut()
                    .unwrap()
                    .remove(0);
            },
            "without a dependsOn",
        ),
        (
            "a reference() with another apiVersion",
            |t| {
                t["resources"][1]["properties"]["appLogsConfiguration"]["logAnalyticsConfiguration"]
                    ["customerId"] = json!(
                    "[reference(resourceId('Microsoft.OperationalInsights/workspaces', variables('logWorkspaceName')), '2020-08-01').customerId]"
                )
            },
            "the resource is deployed with",
        ),
        (
            "a nested template missing a parameter",
            |t| {
                t["resources"][4]["properties"]["parameters"]
                    .as_object_mut()
                    .unwrap()
                    .remove("principalIds");
            },
            "needs parameter \"principalIds\"",
        ),
        (
            "a nested template given an unknown parameter",
            |t| t["resources"][4]["properties"]["parameters"]["extra"] = json!({"value": 1}),
            "does not declare",
        ),
        (
            "a nested template in the outer scope",
            |t| {
                t["resources"][4]["properties"]["expressionEvaluationOptions"]["scope"] =
                    json!("outer")
            },
            "scope = inner",
        ),
        (
            "copyIndex() outside a copy",
            |t| {
                t["resources"][4]["name"] =
                    json!("[format('{0}-{1}', parameters('jobName'), copyIndex())]")
            },
            "copyIndex() outside",
        ),
        (
            "a hard-coded endpoint",
            |t| {
                t["resources"][3]["properties"]["template"]["containers"][0]["env"][1]["value"] =
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
            "a dependsOn cycle through the jobs' loop",
            |t| t["resources"][1]["dependsOn"] = json!(["jobs"]),
            "cycle",
        ),
        (
            "a dependsOn cycle through one job",
            |t| {
                t["resources"][1]["dependsOn"] =
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
            |t| t["resources"][4]["dependsOn"][0] = json!("job"),
            "names no resource of this template",
        ),
        (
            "a reference() of the full-sync job with a dependsOn on the frequent one only",
            |t| {
                t["resources"][4]["dependsOn"][0] =
                    json!("[resourceId('Microsoft.App/jobs', variables('syncJobs')[0].name)]")
            },
            "without a dependsOn",
        ),
        (
            "the role assignments of a nested template without their copy loop",
            |t| {
                t["resources"][4]["properties"]["template"]["resources"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("copy");
            },
            "copyIndex() outside",
        ),
        (
            "the jobs without their copy loop",
            |t| {
                t["resources"][3].as_object_mut().unwrap().remove("copy");
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
        good["resources"][1]["type"],
        "Microsoft.App/managedEnvironments"
    );
    assert_eq!(good["resources"][3]["type"], "Microsoft.App/jobs");
    assert_eq!(
        good["resources"][4]["type"],
        "Microsoft.Resources/deployments"
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
    let mut ev = Eval::new(&t, params(&[("workspaceName", json!("law"))]), &env).unwrap();
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
    // The frequent job reads what changed within the default window; the full one reads all.
    let args = strings(at(frequent, ARGS));
    let window = flag_value(&args, "--changed-within").expect("the frequent job reads the feed");
    assert_eq!(window, "15m");
    assert_eq!(
        flag_value(&strings(at(full, ARGS)), "--changed-within"),
        None
    );
    // Every 5 minutes, and hourly at a minute the frequent one never starts at; the window
    // covers a period and ingestion.
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
    // The check above refuses a window dfcsync refuses, and what dfcsync does not know.
    for (bad, why) in [("30s", "at least 1m"), ("15", "not a duration")] {
        let mut ev = Eval::new(
            &t,
            params(&[
                ("workspaceName", json!("law")),
                ("changedWithin", json!(bad)),
            ]),
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
        for registry in ["", "myregistry.azurecr.io"] {
            let mut ev = Eval::new(
                &t,
                params(&[
                    ("workspaceName", json!("law")),
                    ("identityType", json!(identity_type)),
                    ("registryServer", json!(registry)),
                ]),
                &env,
            )
            .unwrap();
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

/// The principals the template grants roles to: one per job with system-assigned
/// identities, the one user-assigned identity otherwise; passed to a nested deployment.
fn granted(ev: &Eval, deployment: &Value) -> Vec<V> {
    match ev
        .json(&deployment["properties"]["parameters"]["principalIds"]["value"])
        .unwrap()
    {
        V::A(a) => a,
        other => panic!("principalIds: {other:?}"),
    }
}

/// A nested deployment's template, evaluated with what the outer one passes it.
fn nested<'t>(ev: &Eval, d: &'t Value, inner_env: &'t Env<'t>) -> Eval<'t> {
    let passed: BTreeMap<String, V> = d["properties"]["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), ev.json(&v["value"]).unwrap()))
        .collect();
    Eval::new(&d["properties"]["template"], passed, inner_env).unwrap()
}

/// The role assignments a nested deployment makes: one per principal, evaluated.
fn role_assignments(inner: &mut Eval) -> Vec<V> {
    let ra = &inner.template["resources"][0];
    assert_eq!(ra["type"], "Microsoft.Authorization/roleAssignments");
    assert_eq!(
        inner.template["resources"].as_array().unwrap().len(),
        1,
        "one role assignment resource, copied for each principal"
    );
    copies(inner, ra)
}

#[test]
fn each_identity_choice_gets_the_responder_role_on_the_workspace_in_another_subscription() {
    let t = template();
    let existing = format!(
        "/subscriptions/{WS_SUB}/resourceGroups/rg-identities/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync-mi"
    );
    let new_id = format!(
        "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.ManagedIdentity/userAssignedIdentities/dfcsync-identity"
    );
    let job_id = |name: &str| {
        format!(
            "/subscriptions/{DEPLOY_SUB}/resourceGroups/rg-dfcsync/providers/Microsoft.App/jobs/{name}"
        )
    };
    let cases = [
        (
            "SystemAssigned",
            vec![
                format!("principal-of:{}", job_id("dfcsync")),
                format!("principal-of:{}", job_id("dfcsync-full")),
            ],
            None,
            None,
        ),
        (
            "UserAssignedNew",
            vec![format!("principal-of:{new_id}")],
            Some(format!("client-of:{new_id}")),
            Some(new_id.clone()),
        ),
        (
            "UserAssignedExisting",
            vec![format!("principal-of:{existing}")],
            Some(format!("client-of:{existing}")),
            Some(existing.clone()),
        ),
    ];
    let workspace_id = format!(
        "/subscriptions/{WS_SUB}/resourceGroups/rg-sentinel/providers/Microsoft.OperationalInsights/workspaces/law-sentinel"
    );
    // Role assignments are made only by the nested deployments, one resource in each.
    assert!(resources(&t, "Microsoft.Authorization/roleAssignments").is_empty());
    for (identity_type, principals, client_id, uami) in cases {
        let env = env("AzureCloud");
        let mut ev = Eval::new(
            &t,
            params(&[
                ("workspaceName", json!("law-sentinel")),
                ("workspaceResourceGroup", json!("rg-sentinel")),
                ("workspaceSubscriptionId", json!(WS_SUB)),
                ("identityType", json!(identity_type)),
                ("existingUserAssignedIdentityId", json!(existing)),
            ]),
            &env,
        )
        .unwrap();
        // The new identity is created only when asked for.
        let mi = resources(&t, "Microsoft.ManagedIdentity/userAssignedIdentities")[0];
        assert_eq!(
            ev.json(&mi["condition"]).unwrap(),
            V::B(identity_type == "UserAssignedNew"),
            "{identity_type}"
        );
        // Each job's identity: its own, or the one user-assigned identity.
        for j in jobs(&mut ev, &t) {
            let identity = j.get("identity").unwrap();
            match &uami {
                None => assert_eq!(identity.get("type"), Some(&V::S("SystemAssigned".into()))),
                Some(id) => {
                    assert_eq!(identity.get("type"), Some(&V::S("UserAssigned".into())));
                    let V::O(ids) = identity.get("userAssignedIdentities").unwrap() else {
                        panic!("{identity:?}")
                    };
                    assert_eq!(ids.keys().collect::<Vec<_>>(), [id], "{identity:?}");
                }
            }
        }
        // The environment dfcsync gets, and the configuration it makes of it.
        let vars = job_env(&ev, &t);
        let config = check_env(&vars).unwrap_or_else(|e| panic!("{identity_type}: {e}"));
        let ws = &config.file.workspaces;
        assert_eq!(ws.len(), 1);
        assert_eq!(
            (
                ws[0].subscription_id.as_str(),
                ws[0].resource_group.as_str(),
                ws[0].name.as_str()
            ),
            (WS_SUB, "rg-sentinel", "law-sentinel")
        );
        assert_eq!(config.file.auth.method.as_deref(), Some("managed_identity"));
        assert_eq!(config.file.auth.client_id, client_id, "{identity_type}");
        assert_eq!(config.file.azure.cloud.as_deref(), Some("public"));
        // The role assignments: a nested deployment in the workspace's subscription and
        // resource group, scoped to the workspace, one per principal.
        let nested_deployments: Vec<&Value> = resources(&t, "Microsoft.Resources/deployments")
            .into_iter()
            .filter(|d| d.get("copy").is_none())
            .collect();
        assert_eq!(nested_deployments.len(), 1);
        let d = nested_deployments[0];
        assert_eq!(ev.json(&d["subscriptionId"]).unwrap(), V::S(WS_SUB.into()));
        assert_eq!(
            ev.json(&d["resourceGroup"]).unwrap(),
            V::S("rg-sentinel".into())
        );
        let expected: Vec<V> = principals.iter().map(|p| V::S(p.clone())).collect();
        assert_eq!(granted(&ev, d), expected, "{identity_type}");
        let inner_env = Env {
            subscription_id: WS_SUB.into(),
            resource_group: Some("rg-sentinel".into()),
            location: "westeurope".into(),
            cloud: "AzureCloud".into(),
            reference: &reference,
        };
        let mut inner = nested(&ev, d, &inner_env);
        let assignments = role_assignments(&mut inner);
        assert_eq!(assignments.len(), principals.len(), "{identity_type}");
        for (ra, principal) in assignments.iter().zip(&principals) {
            assert_eq!(ra.get("scope"), Some(&V::S(workspace_id.clone())));
            let props = ra.get("properties").unwrap();
            assert_eq!(
                props.get("roleDefinitionId"),
                Some(&V::S(format!(
                    "/subscriptions/{WS_SUB}/providers/Microsoft.Authorization/roleDefinitions/{RESPONDER}"
                )))
            );
            assert_eq!(
                props.get("principalId"),
                Some(&V::S(principal.clone())),
                "{identity_type}"
            );
            // Deterministic: the same scope, principal and role give the same name.
            assert_eq!(
                ra.get("name"),
                Some(&V::S(format!(
                    "guid({workspace_id}|{principal}|{RESPONDER})"
                )))
            );
        }
        // The outputs name the jobs and the principals.
        let out = |k: &str| ev.json(&t["outputs"][k]["value"]).unwrap();
        assert_eq!(out("principalIds"), V::A(expected));
        assert_eq!(out("jobId"), V::S(job_id("dfcsync")));
        assert_eq!(out("fullSyncJobId"), V::S(job_id("dfcsync-full")));
        // No Security Admin without writeback.
        let sa = resources(&t, "Microsoft.Resources/deployments")
            .into_iter()
            .find(|d| d.get("copy").is_some())
            .unwrap();
        assert_eq!(ev.json(&sa["copy"]["count"]).unwrap(), V::I(0));
    }
}

#[test]
fn writeback_grants_security_admin_to_every_identity_on_each_listed_subscription_only() {
    let t = template();
    let subs = [
        "33333333-3333-3333-3333-333333333333",
        "44444444-4444-4444-4444-444444444444",
    ];
    let sa = resources(&t, "Microsoft.Resources/deployments")
        .into_iter()
        .find(|d| d.get("copy").is_some())
        .expect("the Security Admin deployments");
    let responder = resources(&t, "Microsoft.Resources/deployments")
        .into_iter()
        .find(|d| d.get("copy").is_none())
        .expect("the Sentinel Responder deployment");
    for identity_type in ["SystemAssigned", "UserAssignedNew"] {
        for writeback in [false, true] {
            let env = env("AzureCloud");
            let mut ev = Eval::new(
                &t,
                params(&[
                    ("workspaceName", json!("law-sentinel")),
                    ("identityType", json!(identity_type)),
                    ("writeback", json!(writeback)),
                    ("securityAdminSubscriptionIds", json!(subs)),
                ]),
                &env,
            )
            .unwrap();
            let vars = job_env(&ev, &t);
            let config = check_env(&vars).unwrap();
            assert_eq!(config.policy.writeback, writeback);
            let count = ev.json(&sa["copy"]["count"]).unwrap();
            assert_eq!(count, V::I(if writeback { 2 } else { 0 }));
            if !writeback {
                continue;
            }
            // The same principals as the Responder role: every identity a job runs with.
            let principals = granted(&ev, responder);
            assert_eq!(
                principals.len(),
                if identity_type == "SystemAssigned" {
                    2
                } else {
                    1
                }
            );
            for (i, sub) in subs.iter().enumerate() {
                ev.copy_index = Some(i as i64);
                assert_eq!(ev.json(&sa["subscriptionId"]).unwrap(), V::S((*sub).into()));
                assert!(sa.get("resourceGroup").is_none(), "subscription scope");
                assert_eq!(granted(&ev, sa), principals);
                let inner_env = Env {
                    subscription_id: (*sub).into(),
                    resource_group: None,
                    location: "westeurope".into(),
                    cloud: "AzureCloud".into(),
                    reference: &reference,
                };
                let mut inner = nested(&ev, sa, &inner_env);
                let assignments = role_assignments(&mut inner);
                assert_eq!(assignments.len(), principals.len());
                for (ra, principal) in assignments.iter().zip(&principals) {
                    assert!(ra.get("scope").is_none(), "the subscription itself");
                    let props = ra.get("properties").unwrap();
                    assert_eq!(
                        props.get("roleDefinitionId"),
                        Some(&V::S(format!(
                            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{SECURITY_ADMIN}"
                        )))
                    );
                    assert_eq!(props.get("principalId"), Some(principal));
                    assert_eq!(
                        ra.get("name"),
                        Some(&V::S(format!(
                            "guid(/subscriptions/{sub}|{}|{SECURITY_ADMIN})",
                            principal.str()
                        )))
                    );
                }
            }
        }
    }
}

#[test]
fn the_roles_are_exactly_those_dfcsync_needs() {
    // Least privilege (architecture.md): Sentinel Responder on the workspace, and Security
    // Admin only for writeback. No other role id appears anywhere in the template.
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
    assert_eq!(ids, vec![RESPONDER, SECURITY_ADMIN]);
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
        let ev = Eval::new(&t, params(&[("workspaceName", json!("law"))]), &env).unwrap();
        let vars = job_env(&ev, &t);
        assert_eq!(vars["DFCSYNC_CLOUD"], cloud);
        let config = check_env(&vars).unwrap();
        let c = dfcsync::azure::cloud::Cloud::from_config(&config.file.azure).unwrap();
        assert_eq!(c.arm, arm_host);
    }
    // Every allowed value is a cloud dfcsync knows.
    for v in t["parameters"]["cloud"]["allowedValues"]
        .as_array()
        .unwrap()
    {
        let env = env("AzureCloud");
        let ev = Eval::new(
            &t,
            params(&[("workspaceName", json!("law")), ("cloud", v.clone())]),
            &env,
        )
        .unwrap();
        check_env(&job_env(&ev, &t)).unwrap();
    }
    // And ARM refuses one it does not.
    let env = env("AzureCloud");
    assert!(
        Eval::new(
            &t,
            params(&[("workspaceName", json!("law")), ("cloud", json!("germany"))]),
            &env
        )
        .is_err()
    );
}

#[test]
fn every_allowed_policy_value_is_accepted_by_dfcsync() {
    let t = template();
    for p in ["reopen"] {
        for v in t["parameters"][p]["allowedValues"].as_array().unwrap() {
            let env = env("AzureCloud");
            let ev = Eval::new(
                &t,
                params(&[("workspaceName", json!("law")), (p, v.clone())]),
                &env,
            )
            .unwrap();
            check_env(&job_env(&ev, &t)).unwrap_or_else(|e| panic!("{p} = {v}: {e}"));
        }
    }
    for b in [false, true] {
        let env = env("AzureCloud");
        let ev = Eval::new(
            &t,
            params(&[
                ("workspaceName", json!("law")),
                ("respectManualChanges", json!(b)),
            ]),
            &env,
        )
        .unwrap();
        let config = check_env(&job_env(&ev, &t)).unwrap();
        assert_eq!(config.file.policy.respect_manual_changes, Some(b));
    }
}

#[test]
fn the_workspace_parameter_is_the_only_required_one() {
    let t = template();
    let required: Vec<&String> = t["parameters"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, p)| p.get("defaultValue").is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(required, vec!["workspaceName"]);
    // Deployed with defaults, the workspace is in the deployment's resource group.
    let env = env("AzureCloud");
    let ev = Eval::new(&t, params(&[("workspaceName", json!("law"))]), &env).unwrap();
    let config = check_env(&job_env(&ev, &t)).unwrap();
    assert_eq!(config.file.workspaces[0].subscription_id, DEPLOY_SUB);
    assert_eq!(config.file.workspaces[0].resource_group, "rg-dfcsync");
    assert!(
        Eval::new(&t, BTreeMap::new(), &env).is_err(),
        "workspaceName is required"
    );
}

/// `createUiDefinition.json`: the portal form of the "Deploy to Azure" button.
mod portal_form {
    use super::*;
    use deploy_support::arm::Expr;

    const FUNCTIONS: &[&str] = &[
        "basics", "steps", "location", "first", "skip", "split", "if", "equals", "parse",
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
                        .remove("workspaceName");
                },
                "required parameter workspaceName",
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
