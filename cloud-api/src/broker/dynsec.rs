//! Device logins on Mosquitto, managed through its dynamic security plugin.
//!
//! METCON logs in as the broker's dynsec admin and sends JSON commands on
//! `$CONTROL/dynamic-security/v1`: at enrollment a role with the device's own topics
//! (publish `reading`, `live`, `photo`, `status`; subscribe and receive `cmd`, `config`) and a
//! client with the generated password; on revocation `disableClient`, which also disconnects
//! the device at once. The broker's static configuration is in `deploy/mosquitto/`.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use metcon_shared::topic::{Channel, DeviceId, Topic};
use rumqttc::{AsyncClient, Event, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};

const CONTROL: &str = "$CONTROL/dynamic-security/v1";
const RESPONSE: &str = "$CONTROL/dynamic-security/v1/response";

/// Builds the admin login's connection settings for a given client id.
pub type OptionsFor = std::sync::Arc<dyn Fn(String) -> MqttOptions + Send + Sync>;

/// The connection settings of the dynsec admin login.
#[derive(Clone)]
pub struct DynsecAdmin {
    options: OptionsFor,
    client_id: String,
}

impl std::fmt::Debug for DynsecAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynsecAdmin").finish_non_exhaustive()
    }
}

fn role_name(device: &DeviceId) -> String {
    format!("metcon-device-{device}")
}

/// The ACLs of a device's role: its own topics and nothing else.
pub fn device_acls(device: &DeviceId) -> Vec<Value> {
    let t = |c| Topic::new(device.clone(), c).to_string();
    let mut acls = Vec::new();
    for c in [
        Channel::Reading,
        Channel::Live,
        Channel::Photo,
        Channel::Status,
    ] {
        acls.push(
            json!({ "acltype": "publishClientSend", "topic": t(c), "priority": 0, "allow": true }),
        );
    }
    for c in [Channel::Cmd, Channel::Config] {
        acls.push(
            json!({ "acltype": "subscribeLiteral", "topic": t(c), "priority": 0, "allow": true }),
        );
        acls.push(json!({ "acltype": "publishClientReceive", "topic": t(c), "priority": 0, "allow": true }));
    }
    acls
}

impl DynsecAdmin {
    /// `options` must log in as a client with the dynsec admin role; each exchange uses a
    /// fresh client id derived from `client_id`.
    pub fn new(options: OptionsFor, client_id: String) -> DynsecAdmin {
        DynsecAdmin { options, client_id }
    }

    /// Sends the commands and waits for the responses; `tolerate` lists errors that are fine
    /// (e.g. "Role already exists" when a device enrolls again).
    async fn send(&self, commands: Vec<Value>, tolerate: &[&str]) -> Result<()> {
        let mut options = (self.options)(format!(
            "{}-dynsec-{}",
            self.client_id,
            uuid::Uuid::new_v4().simple()
        ));
        options.set_clean_session(true);
        options.set_manual_acks(false);
        let (client, mut events) = AsyncClient::new(options, 16);
        let n = commands.len();
        let run = async {
            let mut sent = false;
            loop {
                match events.poll().await.context("while talking to the broker")? {
                    Event::Incoming(Incoming::ConnAck(_)) => {
                        client.subscribe(RESPONSE, QoS::AtLeastOnce).await?;
                    }
                    Event::Incoming(Incoming::SubAck(_)) if !sent => {
                        let body = serde_json::to_vec(&json!({ "commands": commands }))?;
                        client
                            .publish(CONTROL, QoS::AtLeastOnce, false, body)
                            .await?;
                        sent = true;
                    }
                    Event::Incoming(Incoming::Publish(p)) if p.topic == RESPONSE => {
                        let v: Value = serde_json::from_slice(&p.payload)
                            .context("the broker's dynsec response is not JSON")?;
                        let responses = v["responses"].as_array().cloned().unwrap_or_default();
                        if responses.len() < n {
                            continue;
                        }
                        for r in responses {
                            if let Some(err) = r.get("error").and_then(Value::as_str) {
                                if !tolerate.iter().any(|t| err.contains(t)) {
                                    bail!("broker refused {}: {err}", r["command"]);
                                }
                            }
                        }
                        return Ok(());
                    }
                    _ => {}
                }
            }
        };
        let out = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap_or_else(|_| {
                Err(anyhow::anyhow!(
                    "the broker did not answer dynsec commands within 10 s"
                ))
            });
        let _ = client.disconnect().await;
        out
    }

    /// Creates (or refreshes) the device's role and login.
    pub async fn grant(&self, device: &DeviceId, password: &str) -> Result<()> {
        let role = role_name(device);
        self.send(
            vec![
                json!({ "command": "createRole", "rolename": role, "acls": device_acls(device) }),
                json!({ "command": "createClient", "username": device.as_str(), "password": password,
                        "clientid": format!("metcon-edge-{device}"), "roles": [{ "rolename": role }] }),
            ],
            &["already exists"],
        )
        .await?;
        // an existing client (enrolled again) gets the new password and is enabled
        self.send(
            vec![
                json!({ "command": "setClientPassword", "username": device.as_str(), "password": password }),
                json!({ "command": "enableClient", "username": device.as_str() }),
            ],
            &[],
        )
        .await
    }

    /// Gives the cloud's own login (the dynsec admin) the right to publish commands and
    /// configuration to devices and to talk to the other replicas. Idempotent.
    pub async fn bootstrap(&self, cloud_user: &str) -> Result<()> {
        let acls = vec![
            json!({ "acltype": "publishClientSend", "topic": "metcon/v1/#", "priority": 0, "allow": true }),
            json!({ "acltype": "publishClientReceive", "topic": "metcon/v1/#", "priority": 0, "allow": true }),
            json!({ "acltype": "subscribePattern", "topic": "metcon/v1/#", "priority": 0, "allow": true }),
            json!({ "acltype": "subscribePattern", "topic": "$share/#", "priority": 0, "allow": true }),
        ];
        self.send(
            vec![
                json!({ "command": "createRole", "rolename": "metcon-cloud", "acls": acls }),
                json!({ "command": "addClientRole", "username": cloud_user, "rolename": "metcon-cloud", "priority": 10 }),
            ],
            &["already exists", "already has"],
        )
        .await
    }

    /// Disables the device's login; Mosquitto disconnects it at once.
    pub async fn revoke(&self, device: &DeviceId) -> Result<()> {
        self.send(
            vec![json!({ "command": "disableClient", "username": device.as_str() })],
            &["not found"],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_role_covers_its_own_topics_only() {
        let d = DeviceId::parse("scale-01").expect("id");
        let acls = device_acls(&d);
        assert_eq!(acls.len(), 8);
        for a in &acls {
            let topic = a["topic"].as_str().expect("topic");
            assert!(topic.starts_with("metcon/v1/dev/scale-01/"), "{topic}");
            assert!(!topic.contains('+') && !topic.contains('#'));
        }
    }
}
