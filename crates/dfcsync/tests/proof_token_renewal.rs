//! A token the service refuses before the cache thinks it expired (clock skew, revocation;
//! here the emulator's clock jumps two hours) is renewed, and the call succeeds. Found by
//! the chaos test: the SDK credential kept its own copy of the refused token, so "renewing"
//! handed the same token back and every cycle failed until the SDK's copy expired.

mod proof_support;

use dfcsync::config::Config;
use proof_support::*;
use serde_json::json;

#[tokio::test]
async fn a_refused_token_is_renewed() {
    let (s, _) = scenario(2, "0s", None);
    let emu = start(&s).await;
    let config = Config::parse(&config_text(&emu, None, ""), "renewal.toml").unwrap();
    let conn = connect(&config, fast()).await;
    let w = &config.file.workspaces[0];
    let ws = conn
        .sentinel
        .workspace(&w.subscription_id, &w.resource_group, &w.name)
        .await
        .expect("first call");
    let q = dfcsync::observe::query::sync_query(&config.policy);
    conn.log_analytics
        .query(&ws.customer_id, &q, None)
        .await
        .expect("first query");
    let ctl = control(&conn, &emu);
    post(&ctl, &emu, "/_emulator/clock", json!({"advance": "2h"})).await;
    // Log Analytics first: it refuses an expired token with 403, not 401.
    conn.log_analytics
        .query(&ws.customer_id, &q, None)
        .await
        .expect("Log Analytics after the token expired at the service");
    conn.sentinel
        .workspace(&w.subscription_id, &w.resource_group, &w.name)
        .await
        .expect("ARM after the token expired at the service");
}
