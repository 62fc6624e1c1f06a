//! The service's MLS delivery endpoints (`/v1/mls/...`, docs/serve.md): opaque MLS bytes as
//! standard base64 in JSON, the device's bearer token in a header.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::json;

use crate::MessengerError;

/// The largest queue page asked for (the service allows 500).
pub const PAGE: u32 = 100;

/// A device's connection to the delivery service.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

/// One claimed key package.
#[derive(Debug, Deserialize)]
pub struct ClaimedKeyPackage {
    pub device_id: String,
    pub key_package: String,
}

#[derive(Debug, Deserialize)]
pub struct Claimed {
    pub key_packages: Vec<ClaimedKeyPackage>,
}

/// One entry of the device's queue.
#[derive(Debug, Clone, Deserialize)]
pub struct QueuedMessage {
    pub seq: u64,
    pub kind: String,
    pub group_id: String,
    pub epoch: u64,
    pub sender_device: String,
    pub body: String,
}

#[derive(Debug, Deserialize)]
struct QueuePage {
    messages: Vec<QueuedMessage>,
}

#[derive(Debug, Deserialize)]
struct Available {
    available: u64,
}

#[derive(Debug, Deserialize)]
struct EpochBody {
    epoch: u64,
}

#[derive(Debug, Deserialize)]
struct Recipients {
    recipients: u64,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    current_epoch: Option<u64>,
}

/// What posting a commit or a message came to.
#[derive(Debug)]
pub enum Posted {
    /// Accepted: the new epoch (a commit) or the number of recipients (a message).
    Accepted(u64),
    /// The group moved on (another member's commit): process the queue first.
    Stale,
}

async fn refusal(response: reqwest::Response) -> MessengerError {
    let status = response.status().as_u16();
    match response.json::<ErrorBody>().await {
        Ok(body) => MessengerError::Service {
            status,
            code: body.error,
            message: body.message,
        },
        Err(_) => MessengerError::Service {
            status,
            code: String::new(),
            message: "an answer without the service's error body".into(),
        },
    }
}

impl Delivery {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn publish_key_packages(&self, packages: &[Vec<u8>]) -> Result<u64, MessengerError> {
        let body =
            json!({ "key_packages": packages.iter().map(|p| B64.encode(p)).collect::<Vec<_>>() });
        let response = self
            .http
            .post(self.url("/v1/mls/key-packages"))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response).await);
        }
        Ok(response.json::<Available>().await?.available)
    }

    pub async fn key_packages_available(&self) -> Result<u64, MessengerError> {
        let response = self
            .http
            .get(self.url("/v1/mls/key-packages"))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        Ok(response.json::<Available>().await?.available)
    }

    pub async fn claim(&self, account_id: &str) -> Result<Claimed, MessengerError> {
        let response = self
            .http
            .post(self.url("/v1/mls/key-packages/claim"))
            .bearer_auth(&self.token)
            .json(&json!({ "account_id": account_id }))
            .send()
            .await?;
        match response.status() {
            StatusCode::OK => Ok(response.json().await?),
            StatusCode::NOT_FOUND => Err(MessengerError::UnknownAccount(account_id.to_string())),
            _ => Err(refusal(response).await),
        }
    }

    pub async fn create_group(&self, group_id: &str) -> Result<(), MessengerError> {
        let response = self
            .http
            .post(self.url("/v1/mls/groups"))
            .bearer_auth(&self.token)
            .json(&json!({ "group_id": group_id }))
            .send()
            .await?;
        if response.status() != StatusCode::CREATED {
            return Err(refusal(response).await);
        }
        Ok(())
    }

    /// The group's epoch as the service has it.
    pub async fn group_epoch(&self, group_id: &str) -> Result<u64, MessengerError> {
        let response = self
            .http
            .get(self.url(&format!("/v1/mls/groups/{group_id}")))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        Ok(response.json::<EpochBody>().await?.epoch)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn commit(
        &self,
        group_id: &str,
        epoch: u64,
        commit: &[u8],
        welcome: Option<&[u8]>,
        group_info: Option<&[u8]>,
        added_devices: &[String],
    ) -> Result<Posted, MessengerError> {
        let body = json!({
            "epoch": epoch,
            "commit": B64.encode(commit),
            "welcome": welcome.map(|w| B64.encode(w)),
            "group_info": group_info.map(|g| B64.encode(g)),
            "added_devices": added_devices,
            "removed_devices": Vec::<String>::new(),
        });
        let response = self
            .http
            .post(self.url(&format!("/v1/mls/groups/{group_id}/commits")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Self::posted(response, |r| async move {
            Ok(r.json::<EpochBody>().await?.epoch)
        })
        .await
    }

    pub async fn message(
        &self,
        group_id: &str,
        epoch: u64,
        message: &[u8],
    ) -> Result<Posted, MessengerError> {
        let body = json!({ "epoch": epoch, "message": B64.encode(message) });
        let response = self
            .http
            .post(self.url(&format!("/v1/mls/groups/{group_id}/messages")))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        Self::posted(response, |r| async move {
            Ok(r.json::<Recipients>().await?.recipients)
        })
        .await
    }

    async fn posted<F, Fut>(
        response: reqwest::Response,
        accepted: F,
    ) -> Result<Posted, MessengerError>
    where
        F: FnOnce(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<u64, MessengerError>>,
    {
        match response.status() {
            StatusCode::OK | StatusCode::ACCEPTED => {
                Ok(Posted::Accepted(accepted(response).await?))
            }
            StatusCode::CONFLICT => {
                let status = response.status().as_u16();
                let body: ErrorBody = response.json().await.unwrap_or(ErrorBody {
                    error: String::new(),
                    message: String::new(),
                    current_epoch: None,
                });
                if body.error == "stale_epoch" || body.current_epoch.is_some() {
                    Ok(Posted::Stale)
                } else {
                    Err(MessengerError::Service {
                        status,
                        code: body.error,
                        message: body.message,
                    })
                }
            }
            _ => Err(refusal(response).await),
        }
    }

    pub async fn queue(&self, after: u64) -> Result<Vec<QueuedMessage>, MessengerError> {
        let response = self
            .http
            .get(self.url(&format!("/v1/mls/queue?after={after}&limit={PAGE}")))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        Ok(response.json::<QueuePage>().await?.messages)
    }

    pub async fn ack(&self, up_to: u64) -> Result<(), MessengerError> {
        let response = self
            .http
            .post(self.url("/v1/mls/queue/ack"))
            .bearer_auth(&self.token)
            .json(&json!({ "up_to": up_to }))
            .send()
            .await?;
        if response.status() != StatusCode::OK {
            return Err(refusal(response).await);
        }
        Ok(())
    }
}

/// Decodes a queue entry's body.
pub fn decode_body(body: &str) -> Result<Vec<u8>, MessengerError> {
    B64.decode(body)
        .map_err(|_| MessengerError::Protocol("a queue entry's body is not base64".into()))
}
