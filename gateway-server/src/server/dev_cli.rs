//! Developer commands against a running gateway, with an API key:
//!
//! * `gateway listen --forward-to URL`: this merchant's events as they
//!   happen (the gateway's `GET /v1/events/stream`), each POSTed to `URL`
//!   exactly as a webhook endpoint receives it (body, `Gateway-Signature`
//!   signed with the endpoint's secrets, `Gateway-Event-Id`), one line per
//!   event with the local answer. After a lost connection it reconnects with
//!   `Last-Event-ID`, so the gateway replays what it missed, in order, and
//!   nothing is forwarded twice.
//! * `gateway trigger TYPE`: a sandbox (mock provider) payment that produces
//!   an event of that type, so the endpoints get a real, signed delivery.
//! * `gateway events resend EVT_ID`: the event queued again for delivery.
//!
//! These run no server and read no server configuration: only
//! `--api-base` (`GATEWAY_API_BASE`) and `--api-key` (`GATEWAY_API_KEY`).

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::server::sse::{SseMessage, SseParser};

/// Where the gateway is and the key to call it with.
#[derive(Debug, Args)]
pub(crate) struct Remote {
    /// The gateway's base URL.
    #[arg(long, env = "GATEWAY_API_BASE", default_value = "http://127.0.0.1:8080")]
    api_base: String,
    /// The merchant's API key.
    #[arg(long, env = "GATEWAY_API_KEY", hide_env_values = true)]
    api_key: String,
}

/// The developer commands (see the module documentation).
#[derive(Debug, Subcommand)]
pub(crate) enum DevCommand {
    /// Forward this merchant's events, signed, to a local URL as they happen.
    Listen(ListenArgs),
    /// Create a sandbox payment that produces an event of TYPE (e.g. payment.completed).
    Trigger(TriggerArgs),
    /// Work with stored events.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
}

/// `gateway listen`.
#[derive(Debug, Args)]
pub(crate) struct ListenArgs {
    #[command(flatten)]
    remote: Remote,
    /// Where to POST each event (e.g. http://localhost:3000/webhooks).
    #[arg(long)]
    forward_to: String,
    /// Only these event types, comma-separated (default: the endpoint's own filter).
    #[arg(long, value_delimiter = ',')]
    events: Vec<String>,
    /// The webhook endpoint whose secrets sign the forwarded events
    /// (default: the merchant's first enabled endpoint).
    #[arg(long)]
    endpoint: Option<String>,
    /// Start after this event (replays the ones after it) instead of with new events only.
    #[arg(long)]
    after: Option<String>,
}

/// `gateway trigger`.
#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    #[command(flatten)]
    remote: Remote,
    /// The event type to produce.
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(TRIGGERS.iter().map(|t| t.event_type)))]
    event_type: String,
}

/// `gateway events …`.
#[derive(Debug, Subcommand)]
pub(crate) enum EventsAction {
    /// Queue an event for delivery again.
    Resend {
        #[command(flatten)]
        remote: Remote,
        /// The event id (`evt_…`).
        id: String,
        /// Only to this endpoint (default: every enabled endpoint that takes its type).
        #[arg(long)]
        endpoint: Option<String>,
    },
}

/// Runs a developer command (on an actix runtime: the client is awc); the
/// error is what `main` prints.
pub(crate) async fn run(command: DevCommand) -> Result<(), String> {
    match command {
        DevCommand::Listen(args) => listen(args).await,
        DevCommand::Trigger(args) => trigger(args).await,
        DevCommand::Events {
            action: EventsAction::Resend { remote, id, endpoint },
        } => resend(remote, &id, endpoint).await,
    }
}

/// A failed call of the gateway's API.
#[derive(Debug)]
struct CallError {
    /// The HTTP status, when the gateway answered.
    status: Option<u16>,
    message: String,
    /// The payment the failure is about, when it names one (a decline).
    payment_id: Option<String>,
}

impl CallError {
    /// Whether trying again cannot help (a refused key, an unknown id, bad input).
    fn is_final(&self) -> bool {
        self.status
            .is_some_and(|status| (400..500).contains(&status) && status != 408 && status != 429)
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The gateway's API, with the merchant's key.
struct Api {
    base: String,
    key: String,
    client: awc::Client,
}

impl Api {
    fn new(remote: Remote) -> Self {
        Api {
            base: remote.api_base.trim_end_matches('/').to_owned(),
            key: remote.api_key,
            // Streams stay open: their idle bound is the stream's keep-alive.
            client: awc::Client::builder().disable_timeout().finish(),
        }
    }

    fn request(&self, method: awc::http::Method, path: &str) -> awc::ClientRequest {
        self.client
            .request(method, format!("{}{path}", self.base))
            .insert_header(("X-API-Key", self.key.as_str()))
            .insert_header(("User-Agent", "gateway-cli"))
    }

    /// GETs `path`; the envelope's `data`.
    async fn get(&self, path: &str) -> Result<Value, CallError> {
        let request = self.request(awc::http::Method::GET, path);
        Self::answer(request.timeout(CALL_TIMEOUT).send().await).await
    }

    /// POSTs `body` to `path` with a fresh `Idempotency-Key`; the envelope's `data`.
    async fn post(&self, path: &str, body: &Value) -> Result<Value, CallError> {
        let key = format!("cli-{}", uuid::Uuid::now_v7().simple());
        let request = self
            .request(awc::http::Method::POST, path)
            .insert_header(("Idempotency-Key", key));
        Self::answer(request.timeout(CALL_TIMEOUT).send_json(body).await).await
    }

    async fn answer<S>(
        sent: Result<awc::ClientResponse<S>, awc::error::SendRequestError>,
    ) -> Result<Value, CallError>
    where
        S: futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>> + Unpin,
    {
        let mut response = sent.map_err(|error| CallError {
            payment_id: None,
            status: None,
            message: format!("cannot reach the gateway: {error}"),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body()
            .limit(MAX_ANSWER_BYTES)
            .await
            .map_err(|error| CallError {
                payment_id: None,
                status: Some(status),
                message: format!("reading the gateway's answer (HTTP {status}): {error}"),
            })?;
        envelope_data(status, &body)
    }
}

/// How long one API call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest API answer read.
const MAX_ANSWER_BYTES: usize = 4 << 20;

/// The `data` of a success envelope, or the failure's code and message.
fn envelope_data(status: u16, body: &[u8]) -> Result<Value, CallError> {
    let envelope: Value = serde_json::from_slice(body).map_err(|_| CallError {
        payment_id: None,
        status: Some(status),
        message: format!("the gateway answered HTTP {status} without a JSON envelope"),
    })?;
    if envelope["success"] == Value::Bool(true) {
        return Ok(envelope["data"].clone());
    }
    let error = &envelope["error"];
    Err(CallError {
        status: Some(status),
        message: format!(
            "HTTP {status} {}: {}",
            error["code"].as_str().unwrap_or("error"),
            error["message"].as_str().unwrap_or("(no message)")
        ),
        payment_id: error["payment_id"].as_str().map(str::to_owned),
    })
}

/// The webhook endpoint `listen` signs with: the one named, or the first enabled one.
async fn choose_endpoint(api: &Api, named: Option<String>) -> Result<String, String> {
    if let Some(id) = named {
        return Ok(id);
    }
    let endpoints = api
        .get("/v1/webhook-endpoints?limit=100")
        .await
        .map_err(|error| format!("listing the webhook endpoints: {error}"))?;
    endpoints["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|endpoint| endpoint["enabled"] != Value::Bool(false))
        .and_then(|endpoint| endpoint["id"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| {
            "this merchant has no enabled webhook endpoint, whose secret would sign the forwarded \
             events: create one (POST /v1/webhook-endpoints or PUT /v1/merchant/webhook) or name one with --endpoint"
                .to_owned()
        })
}

/// The pause before reconnecting after `failures` failed connections in a row.
fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << failures.min(5))).min(Duration::from_secs(10))
}

/// How long a stream may stay silent (the gateway sends a comment every 15 s).
const STREAM_IDLE: Duration = Duration::from_secs(45);

async fn listen(args: ListenArgs) -> Result<(), String> {
    let forward_to = awc::http::Uri::try_from(args.forward_to.as_str())
        .ok()
        .filter(|uri| matches!(uri.scheme_str(), Some("http" | "https")) && uri.host().is_some())
        .ok_or_else(|| format!("--forward-to {:?} is not an http(s) URL", args.forward_to))?;
    let api = Api::new(args.remote);
    let endpoint = choose_endpoint(&api, args.endpoint).await?;
    let mut last_seen = args.after;
    let mut failures = 0u32;
    eprintln!("gateway listen: forwarding the events of endpoint {endpoint} to {forward_to} (Ctrl-C stops)");
    let forwarder = awc::Client::builder().timeout(Duration::from_secs(30)).finish();
    loop {
        let stopped = tokio::signal::ctrl_c();
        let session = stream_session(
            &api,
            &forwarder,
            &forward_to,
            &endpoint,
            &args.events,
            &mut last_seen,
        );
        let ended = tokio::select! {
            ended = session => ended,
            _ = stopped => return Ok(()),
        };
        match ended {
            Ok(forwarded) => {
                if forwarded > 0 {
                    failures = 0;
                }
                eprintln!("gateway listen: the stream ended; reconnecting");
            }
            Err(error) if error.is_final() => return Err(error.to_string()),
            Err(error) => {
                failures = failures.saturating_add(1);
                let delay = reconnect_delay(failures);
                eprintln!(
                    "gateway listen: {error}; reconnecting in {} ms",
                    delay.as_millis()
                );
                actix_web::rt::time::sleep(delay).await;
            }
        }
    }
}

/// One connection to the event stream: forwards each event until the stream
/// ends; returns how many were forwarded. `last_seen` follows every event
/// forwarded, so the next session resumes after it.
async fn stream_session(
    api: &Api,
    forwarder: &awc::Client,
    forward_to: &awc::http::Uri,
    endpoint: &str,
    types: &[String],
    last_seen: &mut Option<String>,
) -> Result<u64, CallError> {
    let mut path = format!("/v1/events/stream?endpoint={}", encode(endpoint));
    if !types.is_empty() {
        path.push_str(&format!("&types={}", encode(&types.join(","))));
    }
    let mut request = api
        .request(awc::http::Method::GET, &path)
        .insert_header(("Accept", "text/event-stream"));
    if let Some(id) = last_seen.as_deref() {
        request = request.insert_header(("Last-Event-ID", id));
    }
    let mut response = request.send().await.map_err(|error| CallError {
        payment_id: None,
        status: None,
        message: format!("cannot reach the gateway: {error}"),
    })?;
    if !response.status().is_success() {
        let status = response.status().as_u16();
        let body = response.body().limit(MAX_ANSWER_BYTES).await.unwrap_or_default();
        return Err(envelope_data(status, &body).err().unwrap_or(CallError {
            payment_id: None,
            status: Some(status),
            message: format!("HTTP {status}"),
        }));
    }
    eprintln!(
        "gateway listen: connected{}",
        last_seen
            .as_deref()
            .map(|id| format!(", resuming after {id}"))
            .unwrap_or_default()
    );
    let mut parser = SseParser::default();
    let mut forwarded = 0;
    loop {
        let chunk = match actix_web::rt::time::timeout(STREAM_IDLE, response.next()).await {
            Err(_) => {
                return Err(CallError {
                    payment_id: None,
                    status: None,
                    message: format!("no word from the gateway for {} s", STREAM_IDLE.as_secs()),
                })
            }
            Ok(None) => return Ok(forwarded),
            Ok(Some(Err(error))) => {
                return Err(CallError {
                    payment_id: None,
                    status: None,
                    message: format!("the stream broke: {error}"),
                })
            }
            Ok(Some(Ok(chunk))) => chunk,
        };
        for message in parser.push(&chunk) {
            if message.event.as_deref() == Some("end") {
                let why = envelope_data(200, message.data.as_bytes())
                    .err()
                    .map(|error| error.message)
                    .unwrap_or_default();
                eprintln!("gateway listen: the gateway ended the stream {why}");
                return Ok(forwarded);
            }
            let Some(id) = message.id.clone() else {
                continue;
            };
            println!("{}", forward(forwarder, forward_to, &message).await);
            *last_seen = Some(id);
            forwarded += 1;
        }
    }
}

/// POSTs one event to the local URL as an endpoint receives it; the line printed for it.
async fn forward(client: &awc::Client, to: &awc::http::Uri, message: &SseMessage) -> String {
    let id = message.id.as_deref().unwrap_or_default();
    let kind = message.event.as_deref().unwrap_or("event");
    let mut request = client
        .post(to.clone())
        .insert_header(("Content-Type", "application/json"))
        .insert_header(("User-Agent", "Gateway-Webhooks/1 (gateway listen)"))
        .insert_header(("Gateway-Event-Id", id));
    if let Some(signature) = message.field("signature") {
        request = request.insert_header(("Gateway-Signature", signature));
    }
    let started = Instant::now();
    let answer = match request.send_body(message.data.clone()).await {
        Ok(response) => format!("{}", response.status()),
        Err(error) => format!("failed: {error}"),
    };
    format!(
        "{}  {kind:<28} {id}  -> {answer} ({} ms)",
        crate::support::clock::rfc3339(crate::support::clock::now_ms()),
        started.elapsed().as_millis()
    )
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// How `gateway trigger` produces one event type.
struct Trigger {
    event_type: &'static str,
    /// The payment created: the mock's test card, and its capture method.
    payment_method: &'static str,
    manual_capture: bool,
    /// What follows the payment's creation.
    then: Then,
}

/// The step after creating the payment.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Nothing,
    Cancel,
    /// Refund this share of the amount, in minor units.
    Refund(i64),
}

/// The amount of a triggered payment, in minor units of USD.
const TRIGGER_AMOUNT: i64 = 2000;

/// The event types `gateway trigger` can produce, and how. (`refund.failed`
/// and `refund.canceled` come from the customer's bank days later; the mock
/// offers them to in-process tests, `MockProvider::settle_refund`, not
/// through the API.)
const TRIGGERS: &[Trigger] = &[
    Trigger {
        event_type: "payment.completed",
        payment_method: "pm_card_visa",
        manual_capture: false,
        then: Then::Nothing,
    },
    Trigger {
        event_type: "payment.failed",
        payment_method: "pm_card_chargeDeclined",
        manual_capture: false,
        then: Then::Nothing,
    },
    Trigger {
        event_type: "payment.pending",
        payment_method: "pm_card_threeDSecure2Required",
        manual_capture: false,
        then: Then::Nothing,
    },
    Trigger {
        event_type: "payment.requires_capture",
        payment_method: "pm_card_visa",
        manual_capture: true,
        then: Then::Nothing,
    },
    Trigger {
        event_type: "payment.canceled",
        payment_method: "pm_card_visa",
        manual_capture: true,
        then: Then::Cancel,
    },
    Trigger {
        event_type: "payment.partially_refunded",
        payment_method: "pm_card_visa",
        manual_capture: false,
        then: Then::Refund(TRIGGER_AMOUNT / 4),
    },
    Trigger {
        event_type: "payment.refunded",
        payment_method: "pm_card_visa",
        manual_capture: false,
        then: Then::Refund(TRIGGER_AMOUNT),
    },
];

/// How long `trigger` waits for its event to be stored.
const TRIGGER_WAIT: Duration = Duration::from_secs(15);

async fn trigger(args: TriggerArgs) -> Result<(), String> {
    let plan = TRIGGERS
        .iter()
        .find(|t| t.event_type == args.event_type)
        .ok_or_else(|| format!("cannot trigger {:?}", args.event_type))?;
    let api = Api::new(args.remote);
    let created = api
        .post(
            "/v1/payments",
            &json!({
                "amount": format!("{}.{:02}", TRIGGER_AMOUNT / 100, TRIGGER_AMOUNT % 100),
                "currency": "USD",
                // The mock only: a trigger never moves real money.
                "provider": "mock",
                "payment_method": plan.payment_method,
                "capture_method": if plan.manual_capture { "manual" } else { "automatic" },
                "return_url": "https://example.com/checkout/return",
                "description": format!("gateway trigger {}", plan.event_type),
                "metadata": {"gateway_trigger": plan.event_type},
            }),
        )
        .await;
    let (id, status) = match created {
        Ok(payment) => (
            payment["id"]
                .as_str()
                .ok_or("the gateway's answer has no payment id")?
                .to_owned(),
            payment["status"].as_str().unwrap_or("?").to_owned(),
        ),
        // A decline is the answer this trigger asked for (402, naming the payment).
        Err(CallError {
            status: Some(402),
            payment_id: Some(id),
            ..
        }) => (id, "failed".to_owned()),
        Err(error) => return Err(format!("creating the payment: {error}")),
    };
    eprintln!("gateway trigger: payment {id} is {status}");
    match plan.then {
        Then::Nothing => {}
        Then::Cancel => {
            api.post(&format!("/v1/payments/{id}/cancel"), &json!({}))
                .await
                .map_err(|error| format!("canceling payment {id}: {error}"))?;
            eprintln!("gateway trigger: payment {id} canceled");
        }
        Then::Refund(minor) => {
            let refund = api
                .post(
                    "/v1/refunds",
                    &json!({"payment_id": id, "amount": format!("{}.{:02}", minor / 100, minor % 100)}),
                )
                .await
                .map_err(|error| format!("refunding payment {id}: {error}"))?;
            eprintln!(
                "gateway trigger: refund {} is {}",
                refund["id"].as_str().unwrap_or("?"),
                refund["status"].as_str().unwrap_or("?")
            );
        }
    }
    let event = wait_for_event(&api, &id, plan.event_type).await?;
    println!("{event}");
    eprintln!(
        "gateway trigger: {} {event} stored; the endpoints that take it get a signed delivery",
        plan.event_type
    );
    Ok(())
}

/// The id of the payment's event of `event_type`, once stored.
async fn wait_for_event(api: &Api, payment_id: &str, event_type: &str) -> Result<String, String> {
    let deadline = Instant::now() + TRIGGER_WAIT;
    let path = format!(
        "/v1/events?payment_id={}&type={}&limit=1",
        encode(payment_id),
        encode(event_type)
    );
    loop {
        let page = api
            .get(&path)
            .await
            .map_err(|error| format!("looking for the {event_type} event: {error}"))?;
        if let Some(id) = page["data"][0]["id"].as_str() {
            return Ok(id.to_owned());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "payment {payment_id} produced no {event_type} event within {} s",
                TRIGGER_WAIT.as_secs()
            ));
        }
        actix_web::rt::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn resend(remote: Remote, id: &str, endpoint: Option<String>) -> Result<(), String> {
    let api = Api::new(remote);
    let path = format!("/v1/events/{}", encode(id));
    let delivery_ids = |event: &Value| -> Vec<String> {
        event["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|delivery| delivery["id"].as_str().map(str::to_owned))
            .collect()
    };
    let before = delivery_ids(
        &api.get(&path)
            .await
            .map_err(|error| format!("reading {id}: {error}"))?,
    );
    let body = endpoint.map_or_else(|| json!({}), |endpoint| json!({"endpoint_id": endpoint}));
    let event = api
        .post(&format!("{path}/resend"), &body)
        .await
        .map_err(|error| format!("resending {id}: {error}"))?;
    // The answer lists every delivery of the event; the queued ones are the new ones.
    let queued: Vec<&Value> = event["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|delivery| {
            delivery["id"]
                .as_str()
                .is_some_and(|id| !before.iter().any(|old| old == id))
        })
        .collect();
    for delivery in &queued {
        println!(
            "{}  {}  {}",
            delivery["id"].as_str().unwrap_or("?"),
            delivery["endpoint_id"].as_str().unwrap_or("?"),
            delivery["status"].as_str().unwrap_or("?")
        );
    }
    eprintln!(
        "gateway events resend: {id} queued for {} endpoint(s)",
        queued.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_data_and_errors() {
        assert_eq!(
            envelope_data(200, br#"{"success":true,"data":{"id":"x"}}"#).unwrap(),
            json!({"id": "x"})
        );
        let refused = envelope_data(
            401,
            br#"{"success":false,"error":{"code":"invalid_api_key","message":"no such key"}}"#,
        )
        .unwrap_err();
        assert_eq!(refused.message, "HTTP 401 invalid_api_key: no such key");
        assert!(refused.is_final());
        let busy = envelope_data(503, b"<html>").unwrap_err();
        assert!(!busy.is_final() && busy.message.contains("503"));
        assert!(!envelope_data(429, br#"{"success":false,"error":{}}"#)
            .unwrap_err()
            .is_final());
    }

    #[test]
    fn reconnects_back_off_to_ten_seconds() {
        assert_eq!(reconnect_delay(1), Duration::from_secs(1));
        assert_eq!(reconnect_delay(2), Duration::from_secs(2));
        assert_eq!(reconnect_delay(40), Duration::from_secs(10));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("payment.completed,refund.failed"),
            "payment.completed%2Crefund.failed"
        );
        assert_eq!(encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn every_trigger_names_a_merchant_event() {
        for trigger in TRIGGERS {
            assert!(
                trigger.event_type.starts_with("payment.") || trigger.event_type.starts_with("refund."),
                "{}",
                trigger.event_type
            );
            if let Then::Refund(minor) = trigger.then {
                assert!(minor > 0 && minor <= TRIGGER_AMOUNT);
            }
        }
    }
}
