//! Running every handler for one event: concurrently, each under its timeout,
//! retried with backoff, a panic caught, in one task with one timer.
//!
//! Per handler this allocates only the handler's own future: the handlers'
//! states live in one `Vec` per event, and one `Sleep` serves every deadline.

use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::Handler;
use crate::events::SharedChange;
use crate::handler::{HandlerContext, HandlerError, HandlerFuture};

/// How one handler fared with one event.
#[derive(Debug, Clone)]
pub struct HandlerOutcome {
    /// The handler's name.
    pub handler: &'static str,
    /// The change it was given.
    pub change: SharedChange,
    /// Attempts made (1 when the first succeeded).
    pub attempts: u32,
    /// The last failure when it never succeeded (`timed out after …`, `panicked: …`, the handler's error).
    pub error: Option<String>,
}

impl HandlerOutcome {
    /// The event id the handler was given.
    pub fn event_id(&self) -> &str {
        self.change.event_id()
    }

    /// Whether an attempt succeeded.
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

enum Slot {
    Running {
        future: HandlerFuture,
        deadline: Instant,
    },
    Waiting {
        until: Instant,
    },
    Done,
}

struct Run<'a> {
    handler: &'a Handler,
    attempts: u32,
    slot: Slot,
}

/// The longest pause between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

fn backoff(base: Duration, failed_attempts: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failed_attempts.saturating_sub(1))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(MAX_BACKOFF)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-string payload");
    format!("panicked: {text}")
}

/// Runs `handlers` for `change` and returns how each fared, in handler order.
pub(super) async fn run_handlers(
    handlers: &[&Handler],
    change: &SharedChange,
    context: &HandlerContext,
    retry_backoff: Duration,
) -> Vec<HandlerOutcome> {
    let start = Instant::now();
    let mut outcomes = Vec::with_capacity(handlers.len());
    let mut runs: Vec<Run<'_>> = handlers
        .iter()
        .map(|handler| Run {
            handler,
            attempts: 0,
            slot: Slot::Waiting { until: start },
        })
        .collect();
    let timer = tokio::time::sleep_until(start);
    tokio::pin!(timer);

    poll_fn(|cx| loop {
        let now = Instant::now();
        let mut next_wake: Option<Instant> = None;
        let mut pending = 0usize;
        for run in runs.iter_mut() {
            step(run, change, context, retry_backoff, now, cx, &mut outcomes);
            let wake = match &run.slot {
                Slot::Running { deadline, .. } => Some(*deadline),
                Slot::Waiting { until } => Some(*until),
                Slot::Done => None,
            };
            if let Some(wake) = wake {
                pending += 1;
                next_wake = Some(next_wake.map_or(wake, |earliest| earliest.min(wake)));
            }
        }
        let Some(wake) = next_wake else {
            debug_assert_eq!(pending, 0);
            return Poll::Ready(());
        };
        if wake <= now {
            continue;
        }
        timer.as_mut().reset(wake);
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
    })
    .await;
    outcomes
}

/// Advances one handler as far as it goes without waiting.
fn step(
    run: &mut Run<'_>,
    change: &SharedChange,
    context: &HandlerContext,
    retry_backoff: Duration,
    now: Instant,
    cx: &mut Context<'_>,
    outcomes: &mut Vec<HandlerOutcome>,
) {
    loop {
        let failure = match &mut run.slot {
            Slot::Done => return,
            Slot::Waiting { until } if *until > now => return,
            Slot::Waiting { .. } => {
                run.attempts += 1;
                let call = &run.handler.call;
                match catch_unwind(AssertUnwindSafe(|| call(Arc::clone(change), context.clone()))) {
                    Ok(future) => {
                        run.slot = Slot::Running {
                            future,
                            deadline: now + run.handler.options.timeout,
                        };
                        continue;
                    }
                    Err(payload) => (panic_message(payload.as_ref()), true),
                }
            }
            Slot::Running { future, deadline } => {
                match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Ready(Ok(()))) => {
                        finish(run, change, None, outcomes);
                        return;
                    }
                    Ok(Poll::Ready(Err(error))) => describe(&error),
                    Ok(Poll::Pending) if *deadline <= now => {
                        (format!("timed out after {:?}", run.handler.options.timeout), true)
                    }
                    Ok(Poll::Pending) => return,
                    Err(payload) => (panic_message(payload.as_ref()), true),
                }
            }
        };
        let (message, retryable) = failure;
        if retryable && run.attempts <= run.handler.options.retries {
            run.slot = Slot::Waiting {
                until: now + backoff(retry_backoff, run.attempts),
            };
            return;
        }
        finish(run, change, Some(message), outcomes);
        return;
    }
}

fn describe(error: &HandlerError) -> (String, bool) {
    (error.message().to_owned(), error.is_retryable())
}

fn finish(
    run: &mut Run<'_>,
    change: &SharedChange,
    error: Option<String>,
    outcomes: &mut Vec<HandlerOutcome>,
) {
    run.slot = Slot::Done;
    outcomes.push(HandlerOutcome {
        handler: run.handler.name,
        change: Arc::clone(change),
        attempts: run.attempts,
        error,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(backoff(base, 40), MAX_BACKOFF);
    }
}
