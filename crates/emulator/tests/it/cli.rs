//! The command end to end: `azure-emulator --scenario FILE --config-out FILE` prints the URL,
//! the CA path and the ready configuration, serves, and stops on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::*;

#[tokio::test]
async fn command_prints_url_ca_and_config_then_serves() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.json");
    std::fs::write(&scenario, DEMO).unwrap();
    let config_out = dir.path().join("dfcsync.toml");
    let mut child = Command::new(env!("CARGO_BIN_EXE_azure-emulator"))
        .arg("--scenario")
        .arg(&scenario)
        .arg("--config-out")
        .arg(&config_out)
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    line.clear();
    out.read_line(&mut line).unwrap();
    let ca = line.trim().strip_prefix("ca ").unwrap().to_string();
    let pem = std::fs::read(&ca).unwrap();
    line.clear();
    out.read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        format!("# dfcsync configuration for the emulator at {url}")
    );
    let config = std::fs::read_to_string(&config_out).unwrap();
    assert!(config.contains(&format!("arm = \"{url}\"")));
    assert!(config.contains(&format!("tls_ca_file = \"{ca}\"")));

    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = http
        .post(format!("{url}/{TENANT}/oauth2/v2.0/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", CLIENT_ID),
            ("client_secret", SECRET),
            ("scope", ARM_SCOPE),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ep: serde_json::Value = http
        .get(format!("{url}/_emulator/endpoints"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ep["ca"], ca.as_str());

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?}");
}
