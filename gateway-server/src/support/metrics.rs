//! Prometheus metrics: requests by route and status, a latency histogram,
//! provider calls and errors, webhooks, and the event bus (changes by kind
//! and origin, handler runs by outcome). Written in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gateway_core::{EventBus, HandlerOutcome, IntentChange, Publication};

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum_micros: u64,
}

#[derive(Default)]
struct Inner {
    requests: BTreeMap<(String, &'static str, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    provider_calls: BTreeMap<(String, &'static str, &'static str), u64>,
    webhooks: BTreeMap<(&'static str, &'static str), u64>,
    bus_changes: BTreeMap<(&'static str, &'static str), u64>,
    handler_runs: BTreeMap<(&'static str, &'static str), u64>,
}

/// The server's counters.
pub(crate) struct Metrics {
    inner: Mutex<Inner>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        Metrics {
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Records one finished request.
    pub(crate) fn observe_request(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        match inner.requests.get_mut(&(route.to_owned(), method, status)) {
            Some(count) => *count += 1,
            None => {
                inner.requests.insert((route.to_owned(), method, status), 1);
            }
        }
        let histogram = match inner.latency.get_mut(route) {
            Some(histogram) => histogram,
            None => inner.latency.entry(route.to_owned()).or_default(),
        };
        let seconds = elapsed.as_secs_f64();
        for (bucket, bound) in histogram.counts.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
        histogram.count += 1;
        histogram.sum_micros += elapsed.as_micros() as u64;
    }

    /// Records one provider call and its outcome (`ok` or an error kind).
    pub(crate) fn observe_provider(&self, provider: &str, operation: &'static str, outcome: &'static str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner
            .provider_calls
            .entry((provider.to_owned(), operation, outcome))
            .or_default() += 1;
    }

    /// Counts a webhook outcome: `direction` is `inbound` or `outbound`.
    pub(crate) fn observe_webhook(&self, direction: &'static str, outcome: &'static str) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner.webhooks.entry((direction, outcome)).or_default() += 1;
    }

    /// Publishes `change` on `bus` and, once its handlers are done, counts
    /// it (by kind, and origin: `local`, or `cluster` when another instance
    /// relayed it) and each handler's run (`ok` or `failed`, retries
    /// included). A duplicate the bus drops is not counted. The future
    /// returned (none for a duplicate) does the counting and yields the
    /// handlers' outcomes: run it, or drop it to count nothing more.
    pub(crate) fn publish_counted(
        self: &Arc<Self>,
        bus: &EventBus,
        change: IntentChange,
    ) -> Option<impl std::future::Future<Output = Vec<HandlerOutcome>> + Send + 'static> {
        let kind = change.kind.as_str();
        let origin = if change.context.local { "local" } else { "cluster" };
        let Publication::Dispatched(handlers) = bus.publish(change) else {
            return None;
        };
        if bus.handler_names().is_empty() {
            // No handler to wait for: counted now, no task.
            self.observe_dispatch(kind, origin, &[]);
            return None;
        }
        let metrics = Arc::clone(self);
        Some(async move {
            let outcomes = handlers.done().await;
            metrics.observe_dispatch(kind, origin, &outcomes);
            outcomes
        })
    }

    /// [`Metrics::publish_counted`], counted in the background.
    pub(crate) fn publish_counted_in_background(self: &Arc<Self>, bus: &EventBus, change: IntentChange) {
        if let Some(counted) = self.publish_counted(bus, change) {
            tokio::spawn(counted);
        }
    }

    /// Counts one dispatched change and how its handlers fared, at once, so
    /// a reader who sees the change counted sees its handlers' runs too.
    fn observe_dispatch(&self, kind: &'static str, origin: &'static str, outcomes: &[HandlerOutcome]) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        *inner.bus_changes.entry((kind, origin)).or_default() += 1;
        for outcome in outcomes {
            let result = if outcome.succeeded() { "ok" } else { "failed" };
            *inner.handler_runs.entry((outcome.handler, result)).or_default() += 1;
        }
    }

    /// The text exposition.
    pub(crate) fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP gateway_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE gateway_http_requests_total counter\n");
        for ((route, method, status), count) in &inner.requests {
            let _ = writeln!(
                out,
                "gateway_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                escape(route)
            );
        }
        out.push_str("# HELP gateway_http_request_duration_seconds HTTP request latency by route.\n");
        out.push_str("# TYPE gateway_http_request_duration_seconds histogram\n");
        for (route, histogram) in &inner.latency {
            let route = escape(route);
            for (bound, count) in BUCKETS.iter().zip(histogram.counts) {
                let _ = writeln!(
                    out,
                    "gateway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "gateway_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                histogram.count
            );
            let _ = writeln!(
                out,
                "gateway_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                histogram.sum_micros as f64 / 1e6
            );
            let _ = writeln!(
                out,
                "gateway_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                histogram.count
            );
        }
        out.push_str(
            "# HELP gateway_provider_calls_total Calls to payment providers by operation and outcome.\n",
        );
        out.push_str("# TYPE gateway_provider_calls_total counter\n");
        for ((provider, operation, outcome), count) in &inner.provider_calls {
            let _ = writeln!(
                out,
                "gateway_provider_calls_total{{provider=\"{}\",operation=\"{operation}\",outcome=\"{outcome}\"}} {count}",
                escape(provider)
            );
        }
        out.push_str("# HELP gateway_webhooks_total Webhooks by direction and outcome.\n");
        out.push_str("# TYPE gateway_webhooks_total counter\n");
        for ((direction, outcome), count) in &inner.webhooks {
            let _ = writeln!(
                out,
                "gateway_webhooks_total{{direction=\"{direction}\",outcome=\"{outcome}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP gateway_bus_changes_total Payment changes dispatched on the event bus, by kind and origin (local or cluster).\n",
        );
        out.push_str("# TYPE gateway_bus_changes_total counter\n");
        for ((kind, origin), count) in &inner.bus_changes {
            let _ = writeln!(
                out,
                "gateway_bus_changes_total{{kind=\"{kind}\",origin=\"{origin}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP gateway_handler_runs_total Payment handler runs by handler and outcome (ok or failed).\n",
        );
        out.push_str("# TYPE gateway_handler_runs_total counter\n");
        for ((handler, outcome), count) in &inner.handler_runs {
            let _ = writeln!(
                out,
                "gateway_handler_runs_total{{handler=\"{}\",outcome=\"{outcome}\"}} {count}",
                escape(handler)
            );
        }
        out.push_str("# HELP gateway_provider_errors_total Failed calls to payment providers.\n");
        out.push_str("# TYPE gateway_provider_errors_total counter\n");
        let mut errors: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for ((provider, operation, outcome), count) in &inner.provider_calls {
            if *outcome != "ok" {
                *errors.entry((provider, operation)).or_default() += count;
            }
        }
        for ((provider, operation), count) in errors {
            let _ = writeln!(
                out,
                "gateway_provider_errors_total{{provider=\"{}\",operation=\"{operation}\"}} {count}",
                escape(provider)
            );
        }
        out
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::new();
        metrics.observe_request("/v1/payments", "POST", 200, Duration::from_millis(3));
        metrics.observe_request("/v1/payments", "POST", 200, Duration::from_millis(30));
        metrics.observe_provider("mock", "create_intent", "ok");
        metrics.observe_provider("mock", "create_intent", "card_declined");
        let text = metrics.render();
        assert!(text.contains(
            "gateway_http_requests_total{route=\"/v1/payments\",method=\"POST\",status=\"200\"} 2"
        ));
        assert!(text
            .contains("gateway_http_request_duration_seconds_bucket{route=\"/v1/payments\",le=\"0.005\"} 1"));
        assert!(text.contains("gateway_http_request_duration_seconds_count{route=\"/v1/payments\"} 2"));
        assert!(
            text.contains("gateway_provider_errors_total{provider=\"mock\",operation=\"create_intent\"} 1")
        );
    }

    #[tokio::test]
    async fn counts_bus_changes_and_handler_runs_by_outcome() {
        use gateway_core::{
            ChangeSource, Currency, EventKind, HandlerError, HandlerOptions, IntentChangeContext, Money,
            PaymentIntent,
        };

        let local_only = HandlerOptions {
            local_only: true,
            retries: 0,
            ..HandlerOptions::DEFAULT
        };
        let once = HandlerOptions {
            retries: 0,
            ..HandlerOptions::DEFAULT
        };
        let bus = EventBus::builder()
            .handler("capture", Some(EventKind::RequiresCapture), local_only, |_, _| {
                Box::pin(async { Ok(()) })
            })
            .handler("refuse", Some(EventKind::RequiresCapture), once, |_, _| {
                Box::pin(async { Err(HandlerError::permanent("no")) })
            })
            .build()
            .unwrap();
        let metrics = Arc::new(Metrics::new());
        let change = |event_id: &str, local: bool| {
            let intent = PaymentIntent::fixture("pi_1", Money::parse("1.00", Currency::USD).unwrap()).build();
            let context = IntentChangeContext {
                event_id: event_id.to_owned(),
                source: ChangeSource::Api,
                local,
                received_at: 0,
                merchant: None,
            };
            IntentChange::new(EventKind::RequiresCapture, intent, None, context)
        };
        metrics.publish_counted_in_background(&bus, change("evt_local", true));
        metrics.publish_counted_in_background(&bus, change("evt_relayed", false));
        metrics.publish_counted_in_background(&bus, change("evt_local", true));
        let mut text = String::new();
        for _ in 0..500 {
            text = metrics.render();
            if text.contains("origin=\"local\"} 1") && text.contains("origin=\"cluster\"} 1") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for line in [
            "gateway_bus_changes_total{kind=\"requires_capture\",origin=\"local\"} 1",
            "gateway_bus_changes_total{kind=\"requires_capture\",origin=\"cluster\"} 1",
            "gateway_handler_runs_total{handler=\"capture\",outcome=\"ok\"} 1",
            "gateway_handler_runs_total{handler=\"refuse\",outcome=\"failed\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert!(!text.contains("handler=\"capture\",outcome=\"failed\""), "{text}");
    }
}
