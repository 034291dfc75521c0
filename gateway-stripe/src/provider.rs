//! [`StripeProvider`]: the [`PaymentProvider`] trait on async-stripe.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use gateway_core::{
    CancelIntent, Capabilities, CaptureIntent, CaptureMethod, ConfirmIntent, CreateCustomer, CreateIntent,
    CreateRefund, Currency, Customer, EventObject, IdempotencyKey, Metadata, PaymentIntent, PaymentProvider,
    ProviderConfig, ProviderError, ProviderEvent, ProviderFactory, Refund, SavedPaymentMethod, UpdateIntent,
    VerifiedWebhook, WebhookError, WebhookRequest, WireAmountRules,
};
use secrecy::ExposeSecret;
use serde_json::Value;
use stripe::{Client, ClientBuilder, RequestStrategy, StripeRequest};
use stripe_core::customer::{
    CreateCustomer as StripeCreateCustomer, ListPaymentMethodsCustomer, ListPaymentMethodsCustomerType,
};
use stripe_core::payment_intent::{
    CancelPaymentIntent, CancelPaymentIntentCancellationReason, CapturePaymentIntent, ConfirmPaymentIntent,
    ConfirmPaymentIntentOffSession, CreatePaymentIntent, CreatePaymentIntentOffSession,
    RetrievePaymentIntent, UpdatePaymentIntent,
};
use stripe_core::refund::{
    CreateRefund as StripeCreateRefund, CreateRefundReason, ListRefund, RetrieveRefund,
};
use stripe_core::PaymentIntentCaptureMethod;
use stripe_payment::payment_method::{AttachPaymentMethod, DetachPaymentMethod};
use tokio::time::Instant;

use crate::config::StripeConfig;
use crate::convert::{
    customer_from_stripe, intent_from_stripe, method_from_stripe, refund_from_stripe, refund_names_intent,
    stripe_currency,
};
use crate::transport::{deadline, send, Call};
use crate::webhook::{
    event_kind, intent_from_event_object, refund_from_event_object, verify_request, EventKind,
};

/// The name the Stripe provider is registered under.
pub const STRIPE_PROVIDER_NAME: &str = "stripe";

/// Pages of saved payment methods read at most (100 each).
const MAX_LIST_PAGES: usize = 10;

/// One Stripe account behind the [`PaymentProvider`] trait.
///
/// Every mutating call sends the caller's [`IdempotencyKey`] as Stripe's
/// `Idempotency-Key`. A call ends within [`StripeConfig::timeout`], retries
/// and pauses included; only what Stripe documents as safe is retried (rate
/// limits, a key still in use, a connection never opened; a 5xx on a read),
/// with the same key, so a retry never charges twice. A timeout or an
/// unreadable success is [`ProviderError::OutcomeUnknown`], a 5xx
/// [`ProviderError::Unavailable`] with its status.
///
/// Amounts go out and come back through [`WireAmountRules::STRIPE`]:
/// [`gateway_core::Money`]'s ISO 4217 minor units become Stripe's wire amounts
/// (MGA in whole ariary, ISK and UGX with two decimals), and what Stripe
/// would refuse (under the minimum, over the maximum, a three-decimal amount
/// not ending in 0) is refused before anything is sent. Calls the trait
/// does not cover go through [`StripeProvider::client`].
#[derive(Clone)]
pub struct StripeProvider {
    client: Client,
    config: Arc<StripeConfig>,
    /// What the secret key says: `Some(false)` for `sk_test_`/`rk_test_`,
    /// `Some(true)` for `sk_live_`/`rk_live_`, `None` for another shape.
    livemode: Option<bool>,
}

/// The mode a Stripe secret or restricted key is for: `Some(true)` live,
/// `Some(false)` test, `None` when its prefix says neither.
pub(crate) fn key_livemode(key: &str) -> Option<bool> {
    match key.get(..8) {
        Some("sk_live_" | "rk_live_") => Some(true),
        Some("sk_test_" | "rk_test_") => Some(false),
        _ => None,
    }
}

/// The error for an object whose `livemode` is not the key's: the key is not
/// what the gateway thinks it is, so the answer cannot be trusted either way.
/// It is "outcome unknown", never a failure: a mutating call was carried out
/// by Stripe and may have moved money; the gateway keeps the payment as it
/// stands and resolution asks again (and refuses again, loudly, until an
/// operator fixes the key).
fn livemode_mismatch(kind: &str, id: &str, object: bool, key: bool) -> ProviderError {
    tracing::error!(
        object = kind,
        id,
        object_livemode = object,
        key_livemode = key,
        "Stripe answered with an object of the other mode than the configured key: not trusted; check the key"
    );
    ProviderError::outcome_unknown_with(format!(
        "livemode_mismatch: Stripe answered a {kind} with livemode {object}, but the key is for livemode {key}; \
         the answer is not trusted (whether money moved is unknown)"
    ))
}

impl fmt::Debug for StripeProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeProvider")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `http://host:port`, `http://host:port/` or `http://host:port/v1` → `http://host:port/`.
fn normalize_api_base(api_base: &str) -> Result<String, ProviderError> {
    let trimmed = api_base.trim().trim_end_matches('/');
    let trimmed = trimmed.strip_suffix("/v1").unwrap_or(trimmed);
    if !(trimmed.starts_with("http://") || trimmed.starts_with("https://")) {
        return Err(ProviderError::invalid(
            Some("invalid_setting"),
            Some("api_base"),
            "api_base must be an http:// or https:// URL, e.g. http://127.0.0.1:12111",
        ));
    }
    Ok(format!("{trimmed}/"))
}

fn stripe_metadata(metadata: &Metadata) -> HashMap<String, String> {
    metadata
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn invalid_event(message: impl Into<String>) -> ProviderError {
    ProviderError::invalid(Some("invalid_event"), None, message)
}

impl StripeProvider {
    /// A provider for the account `config` describes.
    pub fn new(config: StripeConfig) -> Result<Self, ProviderError> {
        // No client timeout: one deadline covers the whole call (see `transport`).
        let mut builder = ClientBuilder::new(config.expose_secret_key())
            // Retries are ours (with the caller's idempotency key), never the client's.
            .request_strategy(RequestStrategy::Once)
            .app_info("gateway", Some(env!("CARGO_PKG_VERSION").to_owned()), None);
        if let Some(api_base) = &config.api_base {
            builder = builder.url(normalize_api_base(api_base)?);
        }
        let client = builder.build().map_err(|error| {
            // The client's configuration errors name the setting, never its value.
            ProviderError::invalid(Some("invalid_setting"), None, error.to_string())
        })?;
        let livemode = key_livemode(config.expose_secret_key());
        Ok(StripeProvider {
            client,
            config: Arc::new(config),
            livemode,
        })
    }

    /// Builds a provider from the registry's settings (see [`StripeConfig::from_provider_config`]).
    pub fn from_provider_config(config: &ProviderConfig) -> Result<Self, ProviderError> {
        StripeProvider::new(StripeConfig::from_provider_config(config)?)
    }

    /// The underlying async-stripe client, for the Stripe calls the trait does not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The account's settings.
    pub fn config(&self) -> &StripeConfig {
        &self.config
    }

    /// `intent` as the gateway's, refused when its `livemode` is not the key's.
    fn checked_intent(&self, intent: &stripe_core::PaymentIntent) -> Result<PaymentIntent, ProviderError> {
        if let Some(key) = self.livemode.filter(|key| *key != intent.livemode) {
            return Err(livemode_mismatch(
                "payment_intent",
                intent.id.as_str(),
                intent.livemode,
                key,
            ));
        }
        intent_from_stripe(intent, STRIPE_PROVIDER_NAME)
    }

    /// Sends `request` as `call`, within one deadline from now.
    async fn execute<R>(&self, request: &R, call: Call<'_>) -> Result<R::Output, ProviderError>
    where
        R: StripeRequest + Sync,
        R::Output: miniserde::Deserialize + Send,
    {
        send(&self.client, &self.config, request, call, deadline(&self.config)).await
    }

    /// The currency of an intent, for amounts the trait gives without one
    /// (captures and refunds): read from Stripe within `by`.
    async fn intent_currency(&self, intent_id: &str, by: Instant) -> Result<Currency, ProviderError> {
        let intent = send(
            &self.client,
            &self.config,
            &RetrievePaymentIntent::new(intent_id),
            Call::Read,
            by,
        )
        .await?;
        Ok(self.checked_intent(&intent)?.currency)
    }

    /// The refund, with its intent resolved through the charge when Stripe did not name it.
    async fn fetch_refund(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        let refund = self.execute(&RetrieveRefund::new(refund_id), Call::Read).await?;
        if refund_names_intent(&refund) {
            return refund_from_stripe(&refund, STRIPE_PROVIDER_NAME, None);
        }
        let expanded = RetrieveRefund::new(refund_id).expand(vec!["charge".to_owned()]);
        let refund = self.execute(&expanded, Call::Read).await?;
        refund_from_stripe(&refund, STRIPE_PROVIDER_NAME, None)
    }

    /// The event's intent from its object, or from the API when the object lacks a needed field.
    async fn event_intent(&self, object: &Value, created: i64) -> Result<PaymentIntent, ProviderError> {
        match intent_from_event_object(object, STRIPE_PROVIDER_NAME, created) {
            Ok(intent) => Ok(intent),
            Err(_incomplete) => {
                let id = object
                    .get("id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| invalid_event("payment_intent event without an object id"))?;
                self.retrieve_intent(id).await
            }
        }
    }

    /// The refund a `charge.refunded` event is about: the newest in the charge's
    /// `refunds` list (older API versions), or the newest listed through the API.
    async fn charge_refund(&self, charge: &Value) -> Result<Refund, ProviderError> {
        let charge_intent = charge.get("payment_intent").and_then(|intent| match intent {
            Value::String(id) => Some(id.as_str()),
            other => other.get("id").and_then(Value::as_str),
        });
        let newest = charge
            .pointer("/refunds/data")
            .and_then(Value::as_array)
            .and_then(|refunds| {
                refunds
                    .iter()
                    .max_by_key(|refund| refund.get("created").and_then(Value::as_i64).unwrap_or(i64::MIN))
            });
        if let Some(refund) = newest {
            match refund_from_event_object(refund, STRIPE_PROVIDER_NAME, charge_intent) {
                Ok(refund) => return Ok(refund),
                Err(_incomplete) => {
                    if let Some(id) = refund.get("id").and_then(Value::as_str) {
                        return self.fetch_refund(id).await;
                    }
                }
            }
        }
        let charge_id = charge
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid_event("charge.refunded event without a charge id"))?;
        let listed = self
            .execute(&ListRefund::new().charge(charge_id).limit(1), Call::Read)
            .await?;
        let refund = listed
            .data
            .first()
            .ok_or_else(|| invalid_event(format!("charge {charge_id} has no refund")))?;
        refund_from_stripe(refund, STRIPE_PROVIDER_NAME, charge_intent.map(str::to_owned))
    }
}

#[async_trait]
impl PaymentProvider for StripeProvider {
    fn name(&self) -> &str {
        STRIPE_PROVIDER_NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            webhooks: !self.config.webhook_secrets.is_empty(),
            ..Capabilities::FULL
        }
    }

    async fn create_intent(
        &self,
        request: CreateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let capture_method = match request.capture_method {
            CaptureMethod::Automatic => PaymentIntentCaptureMethod::Automatic,
            CaptureMethod::Manual => PaymentIntentCaptureMethod::Manual,
        };
        let mut create = CreatePaymentIntent::new(
            WireAmountRules::STRIPE.charge_to_wire(request.amount)?,
            stripe_currency(request.amount.currency()),
        )
        .capture_method(capture_method)
        .confirm(request.confirm);
        if !request.metadata.is_empty() {
            create = create.metadata(stripe_metadata(&request.metadata));
        }
        if let Some(customer) = request.customer {
            create = create.customer(customer);
        }
        if let Some(method) = request.payment_method {
            create = create.payment_method(method);
        }
        if request.off_session {
            create = create.off_session(CreatePaymentIntentOffSession::Bool(true));
        }
        if let Some(return_url) = request.return_url {
            create = create.return_url(return_url);
        }
        if let Some(description) = request.description {
            create = create.description(description);
        }
        if let Some(suffix) = request.statement_descriptor_suffix {
            create = create.statement_descriptor_suffix(suffix);
        }
        if let Some(email) = request.receipt_email {
            create = create.receipt_email(email);
        }
        let intent = self.execute(&create, Call::Write(key)).await?;
        self.checked_intent(&intent)
    }

    async fn retrieve_intent(&self, intent_id: &str) -> Result<PaymentIntent, ProviderError> {
        let intent = self
            .execute(&RetrievePaymentIntent::new(intent_id), Call::Read)
            .await?;
        self.checked_intent(&intent)
    }

    async fn update_intent(
        &self,
        intent_id: &str,
        request: UpdateIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut update = UpdatePaymentIntent::new(intent_id);
        if let Some(amount) = request.amount {
            // The currency goes along, so an amount is never read in another currency.
            update = update
                .amount(WireAmountRules::STRIPE.charge_to_wire(amount)?)
                .currency(stripe_currency(amount.currency()));
        }
        if let Some(metadata) = request.metadata {
            // Stripe merges the keys sent into the intent's metadata.
            update = update.metadata(stripe_metadata(&metadata));
        }
        if let Some(description) = request.description {
            update = update.description(description);
        }
        let intent = self.execute(&update, Call::Write(key)).await?;
        self.checked_intent(&intent)
    }

    async fn confirm_intent(
        &self,
        intent_id: &str,
        request: ConfirmIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut confirm = ConfirmPaymentIntent::new(intent_id);
        if let Some(method) = request.payment_method {
            confirm = confirm.payment_method(method);
        }
        if let Some(return_url) = request.return_url {
            confirm = confirm.return_url(return_url);
        }
        if request.off_session {
            confirm = confirm.off_session(ConfirmPaymentIntentOffSession::Bool(true));
        }
        let intent = self.execute(&confirm, Call::Write(key)).await?;
        self.checked_intent(&intent)
    }

    async fn capture_intent(
        &self,
        intent_id: &str,
        request: CaptureIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let by = deadline(&self.config);
        let mut capture = CapturePaymentIntent::new(intent_id);
        if let Some(amount) = request.amount_to_capture {
            let currency = self.intent_currency(intent_id, by).await?;
            capture = capture.amount_to_capture(WireAmountRules::STRIPE.to_wire(
                amount,
                currency,
                "amount_to_capture",
            )?);
        }
        let intent = send(&self.client, &self.config, &capture, Call::Write(key), by).await?;
        self.checked_intent(&intent)
    }

    async fn cancel_intent(
        &self,
        intent_id: &str,
        request: CancelIntent,
        key: &IdempotencyKey,
    ) -> Result<PaymentIntent, ProviderError> {
        let mut cancel = CancelPaymentIntent::new(intent_id);
        if let Some(reason) = request.reason {
            let reason = match reason.as_str() {
                "duplicate" => CancelPaymentIntentCancellationReason::Duplicate,
                "fraudulent" => CancelPaymentIntentCancellationReason::Fraudulent,
                "requested_by_customer" => CancelPaymentIntentCancellationReason::RequestedByCustomer,
                "abandoned" => CancelPaymentIntentCancellationReason::Abandoned,
                other => {
                    return Err(ProviderError::invalid(
                        Some("parameter_invalid"),
                        Some("cancellation_reason"),
                        format!("unknown cancellation reason {other:?}"),
                    ))
                }
            };
            cancel = cancel.cancellation_reason(reason);
        }
        let intent = self.execute(&cancel, Call::Write(key)).await?;
        self.checked_intent(&intent)
    }

    async fn create_refund(
        &self,
        request: CreateRefund,
        key: &IdempotencyKey,
    ) -> Result<Refund, ProviderError> {
        let by = deadline(&self.config);
        let mut create = StripeCreateRefund::new().payment_intent(request.payment_intent.clone());
        if let Some(amount) = request.amount {
            let currency = self.intent_currency(&request.payment_intent, by).await?;
            create = create.amount(WireAmountRules::STRIPE.to_wire(amount, currency, "amount")?);
        }
        if let Some(reason) = request.reason {
            let reason = match reason.as_str() {
                "duplicate" => CreateRefundReason::Duplicate,
                "fraudulent" => CreateRefundReason::Fraudulent,
                "requested_by_customer" => CreateRefundReason::RequestedByCustomer,
                other => {
                    return Err(ProviderError::invalid(
                        Some("parameter_invalid"),
                        Some("reason"),
                        format!("unknown refund reason {other:?}"),
                    ))
                }
            };
            create = create.reason(reason);
        }
        if !request.metadata.is_empty() {
            create = create.metadata(stripe_metadata(&request.metadata));
        }
        let refund = send(&self.client, &self.config, &create, Call::Write(key), by).await?;
        refund_from_stripe(&refund, STRIPE_PROVIDER_NAME, Some(request.payment_intent))
    }

    async fn retrieve_refund(&self, refund_id: &str) -> Result<Refund, ProviderError> {
        self.fetch_refund(refund_id).await
    }

    async fn create_customer(
        &self,
        request: CreateCustomer,
        key: &IdempotencyKey,
    ) -> Result<Customer, ProviderError> {
        let mut create = StripeCreateCustomer::new();
        if let Some(email) = request.email {
            create = create.email(email);
        }
        if let Some(name) = request.name {
            create = create.name(name);
        }
        if !request.metadata.is_empty() {
            create = create.metadata(stripe_metadata(&request.metadata));
        }
        let customer = self.execute(&create, Call::Write(key)).await?;
        Ok(customer_from_stripe(&customer, STRIPE_PROVIDER_NAME))
    }

    async fn attach_payment_method(
        &self,
        customer_id: &str,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let attach = AttachPaymentMethod::new(payment_method_id).customer(customer_id);
        let method = self.execute(&attach, Call::Write(key)).await?;
        Ok(method_from_stripe(&method, STRIPE_PROVIDER_NAME))
    }

    async fn list_payment_methods(
        &self,
        customer_id: &str,
    ) -> Result<Vec<SavedPaymentMethod>, ProviderError> {
        let mut methods = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_LIST_PAGES {
            let mut list = ListPaymentMethodsCustomer::new(customer_id)
                .type_(ListPaymentMethodsCustomerType::Card)
                .limit(100);
            if let Some(after) = &after {
                list = list.starting_after(after.clone());
            }
            let page = self.execute(&list, Call::Read).await?;
            methods.extend(
                page.data
                    .iter()
                    .map(|method| method_from_stripe(method, STRIPE_PROVIDER_NAME)),
            );
            match (page.has_more, page.data.last()) {
                (true, Some(last)) => after = Some(last.id.as_str().to_owned()),
                _ => break,
            }
        }
        Ok(methods)
    }

    async fn detach_payment_method(
        &self,
        payment_method_id: &str,
        key: &IdempotencyKey,
    ) -> Result<SavedPaymentMethod, ProviderError> {
        let method = self
            .execute(&DetachPaymentMethod::new(payment_method_id), Call::Write(key))
            .await?;
        Ok(method_from_stripe(&method, STRIPE_PROVIDER_NAME))
    }

    fn verify_webhook(&self, request: &WebhookRequest) -> Result<VerifiedWebhook, WebhookError> {
        let secrets: Vec<&[u8]> = self
            .config
            .webhook_secrets
            .iter()
            .map(|secret| secret.expose_secret().as_bytes())
            .collect();
        verify_request(request, &secrets, self.config.webhook_tolerance, self.livemode)
    }

    async fn interpret_webhook(&self, webhook: &VerifiedWebhook) -> Result<ProviderEvent, ProviderError> {
        let event: Value = serde_json::from_slice(&webhook.body)
            .map_err(|error| invalid_event(format!("the event is not JSON: {error}")))?;
        let created = event
            .get("created")
            .and_then(Value::as_i64)
            .or(webhook.created)
            .unwrap_or_default();
        let object = event.pointer("/data/object").unwrap_or(&Value::Null);
        let object = match event_kind(&webhook.event_type, object) {
            EventKind::Intent => EventObject::Intent {
                intent: self.event_intent(object, created).await?,
            },
            EventKind::Refund => {
                let refund = match refund_from_event_object(object, STRIPE_PROVIDER_NAME, None) {
                    Ok(refund) => refund,
                    Err(_incomplete) => {
                        let id = object
                            .get("id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| invalid_event("refund event without an object id"))?;
                        self.fetch_refund(id).await?
                    }
                };
                EventObject::Refund { refund }
            }
            // A charge made without a payment intent (the legacy Charges API) is not the gateway's.
            EventKind::ChargeRefunded if object.get("payment_intent") == Some(&Value::Null) => {
                EventObject::Unhandled
            }
            EventKind::ChargeRefunded => EventObject::Refund {
                refund: self.charge_refund(object).await?,
            },
            EventKind::Unhandled => EventObject::Unhandled,
        };
        Ok(ProviderEvent {
            id: webhook.event_id.clone(),
            provider: STRIPE_PROVIDER_NAME.to_owned(),
            event_type: webhook.event_type.clone(),
            created,
            object,
        })
    }
}

fn build_stripe(config: &ProviderConfig) -> Result<Arc<dyn PaymentProvider>, ProviderError> {
    Ok(Arc::new(StripeProvider::from_provider_config(config)?))
}

gateway_core::submit_provider!(ProviderFactory {
    name: STRIPE_PROVIDER_NAME,
    description: "Stripe, through async-stripe (API base URL configurable for a local double)",
    build: build_stripe,
});

/// Keeps this crate's provider registration in the binary.
///
/// A crate nothing refers to can be dropped by the linker, and its
/// registration with it (dtolnay/inventory#7). Call this once (for example
/// at the start of `main`) in a binary that only links `gateway-stripe` for
/// its registration; naming any other item of the crate works as well.
pub fn link() -> &'static str {
    STRIPE_PROVIDER_NAME
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_bases_are_normalized() {
        assert_eq!(
            normalize_api_base("http://127.0.0.1:1").unwrap(),
            "http://127.0.0.1:1/"
        );
        assert_eq!(
            normalize_api_base("http://127.0.0.1:1/v1/").unwrap(),
            "http://127.0.0.1:1/"
        );
        assert!(normalize_api_base("127.0.0.1:1").is_err());
    }

    #[test]
    fn debug_leaves_the_key_out() {
        let provider = StripeProvider::new(StripeConfig::new("sk_test_very_secret")).unwrap();
        let debug = format!("{provider:?}");
        assert!(!debug.contains("very_secret"), "{debug}");
    }
}
