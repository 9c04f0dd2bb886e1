//! Blob leases (Azure Storage, path style) and Kubernetes Leases (issue 21): the services a
//! replica of the product holds its single-writer lease on, their errors, the control API's
//! break and history, and the request log's `user_agent`.

use serde_json::{Value, json};

use crate::common::*;

const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
const A: &str = "aaaaaaaa-1111-0000-0000-000000000001";
const B: &str = "bbbbbbbb-2222-0000-0000-000000000002";
const K8S_TOKEN: &str = "k8s-token-dfcsync";

/// The demo with a storage account (`dfcsync` is Storage Blob Data Contributor on its
/// container; `mi-dfcsync` has no data role) and a Kubernetes API server.
fn lease_demo() -> emulator::Scenario {
    demo_with(|v| {
        v["storage"] = json!([{"account": "stdfcsync", "containers": ["dfcsync-leases", "other"]}]);
        v["kubernetes"] = json!({"namespace": "dfcsync", "token": K8S_TOKEN});
        v["clock"] = json!("frozen");
        let scope = format!(
            "/subscriptions/{SUB}/resourceGroups/rg-sentinel/providers/Microsoft.Storage/storageAccounts/stdfcsync/blobServices/default/containers/dfcsync-leases"
        );
        v["principals"][0]["roles"]
            .as_array_mut()
            .unwrap()
            .push(json!({"role": "Storage Blob Data Contributor", "scope": scope}));
    })
}

impl Env {
    fn blob_url(&self, container: &str, blob: &str) -> String {
        format!("{}/storage/stdfcsync/{container}/{blob}", self.base)
    }

    /// A Storage request: status, headers, body text.
    async fn storage(
        &self,
        method: &str,
        url: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(m, url)
            .bearer_auth(token)
            .header("x-ms-version", "2025-11-05")
            .header("Content-Length", "0");
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        let r = r.send().await.unwrap();
        let status = r.status().as_u16();
        let h = r.headers().clone();
        (status, h, r.text().await.unwrap_or_default())
    }

    async fn lease(
        &self,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, String) {
        let url = format!("{}?comp=lease", self.blob_url("dfcsync-leases", "leader"));
        self.storage("PUT", &url, token, headers).await
    }

    async fn advance(&self, by: &str) {
        self.control("POST", "clock", Some(json!({"advance": by})))
            .await;
    }
}

fn code(h: &reqwest::header::HeaderMap) -> &str {
    h.get("x-ms-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

fn header<'a>(h: &'a reqwest::header::HeaderMap, k: &str) -> &'a str {
    h.get(k).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

#[tokio::test]
async fn a_blob_lease_goes_through_its_states_with_the_service_answers() {
    let env = start(lease_demo()).await;
    let t = env.token(STORAGE_SCOPE).await;
    let blob = env.blob_url("dfcsync-leases", "leader");
    // Lease on a missing blob, or in a missing container.
    let (s, h, body) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
            ],
        )
        .await;
    assert_eq!((s, code(&h)), (404, "BlobNotFound"), "{body}");
    assert!(
        body.contains("<Error><Code>BlobNotFound</Code><Message>"),
        "{body}"
    );
    assert!(header(&h, "content-type").starts_with("application/xml"));
    let url = format!("{}?comp=lease", env.blob_url("nope", "leader"));
    let (s, h, _) = env
        .storage(
            "PUT",
            &url,
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
            ],
        )
        .await;
    // The role covers one container: another, even a missing one, is refused first.
    assert_eq!((s, code(&h)), (403, "AuthorizationPermissionMismatch"));
    // Create the blob only if absent; the second create is refused.
    let create = [("x-ms-blob-type", "BlockBlob"), ("If-None-Match", "*")];
    let (s, h, _) = env.storage("PUT", &blob, &t, &create).await;
    assert_eq!(s, 201);
    assert!(header(&h, "etag").starts_with("\"0x8D"));
    assert_eq!(header(&h, "x-ms-version"), "2025-11-05");
    assert!(!header(&h, "x-ms-request-id").is_empty());
    let etag = header(&h, "etag").to_string();
    let (s, h, _) = env.storage("PUT", &blob, &t, &create).await;
    assert_eq!((s, code(&h)), (409, "BlobAlreadyExists"));
    // Bad durations.
    for d in ["14", "61", "0", "x"] {
        let (s, h, body) = env
            .lease(
                &t,
                &[("x-ms-lease-action", "acquire"), ("x-ms-lease-duration", d)],
            )
            .await;
        assert_eq!((s, code(&h)), (400, "InvalidHeaderValue"), "{d}");
        assert!(body.contains("<HeaderName>x-ms-lease-duration</HeaderName>"));
    }
    // Acquire (A) for 15 s: 201 with the id; the ETag does not move.
    let (s, h, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
                ("x-ms-proposed-lease-id", A),
            ],
        )
        .await;
    assert_eq!(s, 201);
    assert_eq!(header(&h, "x-ms-lease-id"), A);
    assert_eq!(header(&h, "etag"), etag);
    // Another replica is refused.
    let (s, h, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
                ("x-ms-proposed-lease-id", B),
            ],
        )
        .await;
    assert_eq!((s, code(&h)), (409, "LeaseAlreadyPresent"));
    // Writes need the lease id; with it the holder's metadata is written.
    let meta = format!("{blob}?comp=metadata");
    let (s, h, _) = env
        .storage("PUT", &meta, &t, &[("x-ms-meta-holder", "replica-1")])
        .await;
    assert_eq!((s, code(&h)), (412, "LeaseIdMissing"));
    let (s, h, _) = env
        .storage(
            "PUT",
            &meta,
            &t,
            &[("x-ms-meta-holder", "replica-1"), ("x-ms-lease-id", B)],
        )
        .await;
    assert_eq!((s, code(&h)), (412, "LeaseIdMismatchWithBlobOperation"));
    let (s, _, _) = env
        .storage(
            "PUT",
            &meta,
            &t,
            &[("x-ms-meta-holder", "replica-1"), ("x-ms-lease-id", A)],
        )
        .await;
    assert_eq!(s, 200);
    // Properties.
    let (s, h, _) = env.storage("HEAD", &blob, &t, &[]).await;
    assert_eq!(s, 200);
    assert_eq!(header(&h, "x-ms-lease-state"), "leased");
    assert_eq!(header(&h, "x-ms-lease-status"), "locked");
    assert_eq!(header(&h, "x-ms-lease-duration"), "fixed");
    assert_eq!(header(&h, "x-ms-meta-holder"), "replica-1");
    // Renew with the wrong id; with the right one.
    let (s, h, _) = env
        .lease(&t, &[("x-ms-lease-action", "renew"), ("x-ms-lease-id", B)])
        .await;
    assert_eq!((s, code(&h)), (409, "LeaseIdMismatchWithLeaseOperation"));
    env.advance("10s").await;
    let (s, h, _) = env
        .lease(&t, &[("x-ms-lease-action", "renew"), ("x-ms-lease-id", A)])
        .await;
    assert_eq!((s, header(&h, "x-ms-lease-id")), (200, A));
    // 15 s without a renewal: expired; a write with the old id has lost it; B acquires.
    env.advance("15s").await;
    let (_, h, _) = env.storage("HEAD", &blob, &t, &[]).await;
    assert_eq!(header(&h, "x-ms-lease-state"), "expired");
    assert_eq!(header(&h, "x-ms-lease-status"), "unlocked");
    let (s, h, _) = env
        .storage(
            "PUT",
            &meta,
            &t,
            &[("x-ms-meta-holder", "replica-1"), ("x-ms-lease-id", A)],
        )
        .await;
    assert_eq!((s, code(&h)), (412, "LeaseLost"));
    let (s, _, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "60"),
                ("x-ms-proposed-lease-id", B),
            ],
        )
        .await;
    assert_eq!(s, 201);
    // Break with a period: breaking (202, x-ms-lease-time), renew refused, then broken.
    let (s, h, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "break"),
                ("x-ms-lease-break-period", "5"),
            ],
        )
        .await;
    assert_eq!((s, header(&h, "x-ms-lease-time")), (202, "5"));
    let (s, h, _) = env
        .lease(&t, &[("x-ms-lease-action", "renew"), ("x-ms-lease-id", B)])
        .await;
    assert_eq!((s, code(&h)), (409, "LeaseIsBrokenAndCannotBeRenewed"));
    let (s, h, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "15"),
                ("x-ms-proposed-lease-id", B),
            ],
        )
        .await;
    assert_eq!((s, code(&h)), (409, "LeaseIsBreakingAndCannotBeAcquired"));
    env.advance("5s").await;
    let (_, h, _) = env.storage("HEAD", &blob, &t, &[]).await;
    assert_eq!(header(&h, "x-ms-lease-state"), "broken");
    // A takes it back, infinite; change to B; release (B).
    let (s, _, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "acquire"),
                ("x-ms-lease-duration", "-1"),
                ("x-ms-proposed-lease-id", A),
            ],
        )
        .await;
    assert_eq!(s, 201);
    let (_, h, _) = env.storage("HEAD", &blob, &t, &[]).await;
    assert_eq!(header(&h, "x-ms-lease-duration"), "infinite");
    let (s, h, _) = env
        .lease(
            &t,
            &[
                ("x-ms-lease-action", "change"),
                ("x-ms-lease-id", A),
                ("x-ms-proposed-lease-id", B),
            ],
        )
        .await;
    assert_eq!((s, header(&h, "x-ms-lease-id")), (200, B));
    let (s, _, _) = env
        .lease(
            &t,
            &[("x-ms-lease-action", "release"), ("x-ms-lease-id", B)],
        )
        .await;
    assert_eq!(s, 200);
    let (s, h, _) = env.lease(&t, &[("x-ms-lease-action", "break")]).await;
    assert_eq!((s, code(&h)), (409, "LeaseNotPresentWithLeaseOperation"));
    // The history, on the emulator's clock.
    let l = env.control("GET", "leases", None).await;
    let b = &l["blobs"][0];
    assert_eq!(b["blob"], "leader");
    assert_eq!(b["state"], "available");
    let h: Vec<(String, String, Value)> = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["lease_id"].as_str().unwrap().to_string(),
                p["ended_by"].as_str().unwrap().to_string(),
                p["holder"].clone(),
            )
        })
        .collect();
    assert_eq!(
        h,
        vec![
            (A.into(), "expired".into(), json!("replica-1")),
            (B.into(), "broken".into(), json!("replica-1")),
            (A.into(), "changed".into(), json!("replica-1")),
            (B.into(), "released".into(), json!("replica-1")),
        ]
    );
    assert_eq!(b["history"][0]["acquired_at"], "2026-11-27T12:00:00Z");
    assert_eq!(b["history"][0]["ended_at"], "2026-11-27T12:00:25Z");
    assert_eq!(b["history"][1]["ended_at"], "2026-11-27T12:00:30Z");
}

#[tokio::test]
async fn storage_needs_its_audience_and_a_data_role_on_the_container() {
    let env = start(lease_demo()).await;
    let blob = env.blob_url("dfcsync-leases", "leader");
    let create = [("x-ms-blob-type", "BlockBlob")];
    let (s, h, _) = env.storage("PUT", &blob, "", &create).await;
    assert_eq!(s, 401);
    assert!(header(&h, "www-authenticate").contains("resource_id=https://storage.azure.com"));
    let arm = env.token(ARM_SCOPE).await;
    let (s, h, _) = env.storage("PUT", &blob, &arm, &create).await;
    assert_eq!((s, code(&h)), (401, "InvalidAuthenticationInfo"));
    let t = env.token(STORAGE_SCOPE).await;
    // The role is on one container only.
    let (s, h, _) = env
        .storage("PUT", &env.blob_url("other", "x"), &t, &create)
        .await;
    assert_eq!((s, code(&h)), (403, "AuthorizationPermissionMismatch"));
    let mi = env.token_for("mi-dfcsync", STORAGE_SCOPE).await;
    let (s, h, _) = env.storage("PUT", &blob, &mi, &create).await;
    assert_eq!((s, code(&h)), (403, "AuthorizationPermissionMismatch"));
    let (s, _, _) = env.storage("PUT", &blob, &t, &create).await;
    assert_eq!(s, 201);
}

#[tokio::test]
async fn the_control_api_breaks_leases_and_faults_fail_renewals_for_a_while() {
    let env = start(lease_demo()).await;
    let t = env.token(STORAGE_SCOPE).await;
    let blob = env.blob_url("dfcsync-leases", "leader");
    env.storage("PUT", &blob, &t, &[("x-ms-blob-type", "BlockBlob")])
        .await;
    env.lease(
        &t,
        &[
            ("x-ms-lease-action", "acquire"),
            ("x-ms-lease-duration", "30"),
            ("x-ms-proposed-lease-id", A),
        ],
    )
    .await;
    env.control(
        "POST",
        "faults",
        Some(json!({"method": "PUT", "path": "^/storage/", "headers": {"x-ms-lease-action": "^renew$"},
            "status": 503, "lasting": "20s"})),
    )
    .await;
    let renew = [("x-ms-lease-action", "renew"), ("x-ms-lease-id", A)];
    let (s, h, _) = env.lease(&t, &renew).await;
    assert_eq!((s, code(&h)), (503, "ServerBusy"));
    env.advance("19s").await;
    assert_eq!(env.lease(&t, &renew).await.0, 503);
    env.advance("1s").await;
    assert_eq!(env.lease(&t, &renew).await.0, 200);
    let r = env
        .control(
            "POST",
            "leases/break",
            Some(json!({"account": "stdfcsync", "container": "dfcsync-leases", "blob": "leader"})),
        )
        .await;
    assert_eq!(r["broken"], true);
    let (s, h, _) = env.lease(&t, &renew).await;
    assert_eq!((s, code(&h)), (409, "LeaseIsBrokenAndCannotBeRenewed"));
    let l = env.control("GET", "leases", None).await;
    assert_eq!(l["blobs"][0]["state"], "broken");
    assert_eq!(l["blobs"][0]["history"][0]["ended_by"], "broken");
    assert_eq!(
        l["blobs"][0]["history"][0]["ended_at"],
        "2026-11-27T12:00:20Z"
    );
}

impl Env {
    fn k8s_url(&self, ns: &str, name: Option<&str>) -> String {
        let base = format!(
            "{}/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
            self.base
        );
        match name {
            Some(n) => format!("{base}/{n}"),
            None => base,
        }
    }

    async fn k8s(
        &self,
        method: &str,
        url: &str,
        token: &str,
        body: Option<Value>,
        agent: &str,
    ) -> (u16, Value) {
        let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut r = self
            .http
            .request(m, url)
            .bearer_auth(token)
            .header("User-Agent", agent);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let r = r.send().await.unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn kubernetes_leases_take_turns_with_resource_versions() {
    let env = start(lease_demo()).await;
    let url = env.k8s_url("dfcsync", Some("dfcsync"));
    let list = env.k8s_url("dfcsync", None);
    let (s, v) = env.k8s("GET", &url, K8S_TOKEN, None, "replica-1").await;
    assert_eq!(s, 404);
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "NotFound");
    assert_eq!(
        v["message"],
        "leases.coordination.k8s.io \"dfcsync\" not found"
    );
    assert_eq!(v["details"]["group"], "coordination.k8s.io");
    // Auth: no token, a wrong one, another namespace.
    let (s, v) = env.k8s("GET", &url, "wrong", None, "x").await;
    assert_eq!((s, v["reason"].as_str()), (401, Some("Unauthorized")));
    let (s, v) = env
        .k8s(
            "GET",
            &env.k8s_url("kube-system", Some("x")),
            K8S_TOKEN,
            None,
            "x",
        )
        .await;
    assert_eq!((s, v["reason"].as_str()), (403, Some("Forbidden")));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("system:serviceaccount:dfcsync:dfcsync")
    );
    // Replica 1 creates and holds it.
    let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "dfcsync", "namespace": "dfcsync"},
        "spec": {"holderIdentity": "replica-1", "leaseDurationSeconds": 15,
            "acquireTime": "2026-11-27T12:00:00.000000Z", "renewTime": "2026-11-27T12:00:00.000000Z",
            "leaseTransitions": 0}});
    let (s, v) = env
        .k8s("POST", &list, K8S_TOKEN, Some(lease.clone()), "replica-1")
        .await;
    assert_eq!(s, 201, "{v}");
    let rv1 = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(v["spec"]["renewTime"], "2026-11-27T12:00:00.000000Z");
    assert_eq!(v["spec"]["holderIdentity"], "replica-1");
    let (s, v) = env
        .k8s("POST", &list, K8S_TOKEN, Some(lease.clone()), "replica-2")
        .await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(
        v["message"],
        "leases.coordination.k8s.io \"dfcsync\" already exists"
    );
    // Replica 1 renews with the version it read.
    env.advance("5s").await;
    let mut renew = lease.clone();
    renew["metadata"]["resourceVersion"] = json!(rv1);
    renew["spec"]["renewTime"] = json!("2026-11-27T12:00:05.123456789Z");
    let (s, v) = env
        .k8s("PUT", &url, K8S_TOKEN, Some(renew), "replica-1")
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["spec"]["renewTime"], "2026-11-27T12:00:05.123456Z");
    let rv2 = v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(rv1, rv2);
    // Replica 2 takes over with a stale version: 409 Conflict; with the current one, it wins.
    let mut take = lease.clone();
    take["metadata"]["resourceVersion"] = json!(rv1);
    take["spec"]["holderIdentity"] = json!("replica-2");
    take["spec"]["leaseTransitions"] = json!(1);
    let (s, v) = env
        .k8s("PUT", &url, K8S_TOKEN, Some(take.clone()), "replica-2")
        .await;
    assert_eq!((s, v["reason"].as_str()), (409, Some("Conflict")));
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("the object has been modified")
    );
    let mut no_rv = take.clone();
    no_rv["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("resourceVersion");
    let (s, v) = env
        .k8s("PUT", &url, K8S_TOKEN, Some(no_rv), "replica-2")
        .await;
    assert_eq!((s, v["reason"].as_str()), (422, Some("Invalid")));
    env.advance("20s").await;
    take["metadata"]["resourceVersion"] = json!(rv2);
    let (s, v) = env
        .k8s("PUT", &url, K8S_TOKEN, Some(take), "replica-2")
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = env.k8s("GET", &list, K8S_TOKEN, None, "replica-2").await;
    assert_eq!(s, 200);
    assert_eq!(v["kind"], "LeaseList");
    assert_eq!(v["items"][0]["spec"]["holderIdentity"], "replica-2");
    // The control API hands it to replica-3 (a takeover) and then deletes it.
    env.advance("10s").await;
    env.control(
        "POST",
        "leases/break",
        Some(json!({"namespace": "dfcsync", "name": "dfcsync", "holder": "replica-3"})),
    )
    .await;
    let (_, v) = env.k8s("GET", &url, K8S_TOKEN, None, "replica-2").await;
    assert_eq!(v["spec"]["holderIdentity"], "replica-3");
    assert_eq!(v["spec"]["leaseTransitions"], 2);
    env.control(
        "POST",
        "leases/break",
        Some(json!({"namespace": "dfcsync", "name": "dfcsync"})),
    )
    .await;
    let (s, _) = env.k8s("GET", &url, K8S_TOKEN, None, "replica-2").await;
    assert_eq!(s, 404);
    let l = env.control("GET", "leases", None).await;
    let k = &l["kubernetes"][0];
    assert_eq!(k["deleted"], true);
    let h: Vec<(String, String, String)> = k["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["holder"].as_str().unwrap().to_string(),
                p["acquired_at"].as_str().unwrap().to_string(),
                p["ended_by"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        h,
        vec![
            (
                "replica-1".into(),
                "2026-11-27T12:00:00Z".into(),
                "taken".into()
            ),
            (
                "replica-2".into(),
                "2026-11-27T12:00:25Z".into(),
                "broken".into()
            ),
            (
                "replica-3".into(),
                "2026-11-27T12:00:35Z".into(),
                "broken".into()
            ),
        ]
    );
    assert_eq!(k["history"][0]["writes"], 2);
    // The request log tells the replicas apart by their User-Agent.
    let log = env.control("GET", "requests", None).await;
    let agents: Vec<&str> = log
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["service"] == "kubernetes")
        .filter_map(|e| e["user_agent"].as_str())
        .collect();
    assert!(
        agents.contains(&"replica-1") && agents.contains(&"replica-2"),
        "{agents:?}"
    );
}
