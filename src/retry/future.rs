use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, SystemTime};

use http::{Method, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::Service;
use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
use tracing::Span;

use super::body::{Collect, Prefetch, Prefetched, ResponseBody, Watch};
use super::control::RetryControl;
use super::info::{RetryInfo, Stop};
use super::policy::{find, HintDecision};
use super::replay::{BufferOutcome, Buffering, Replay, ReplayBody, ReplayedBody};
use super::service::{Retry, Shared};
use super::stream_start::FirstEvent;
use super::template::{Source, Template};
use crate::classify::{is_event_stream, Classify, ErrorBody, Head, RetryReason, Verdict};
use crate::cold::cold_path;
use crate::gate::scope::Found;
use crate::gate::GateClosed;
use crate::hint::delay_hint;
use crate::BoxError;

type Outcome<B> = Result<Response<ResponseBody<B>>, BoxError>;

pin_project! {
    /// The response future of [`Retry`](super::Retry).
    ///
    /// Dropping it cancels at once: the attempt in flight, the error body
    /// being read or the backoff sleep are dropped with it. It spawns nothing.
    pub struct ResponseFuture<S, C, ReqB, ResB>
    where
        S: Service<Request<ReqB>>,
        ReqB: Body,
        ResB: Body,
    {
        #[pin]
        state: State<S::Future, S, ReqB, ResB>,
        run: Run<S, C, ReqB, ResB>,
    }
}

pin_project! {
    #[project = StateProj]
    // A service is held (boxed, so the future stays small) only by the
    // states that call one outside `Retry::call`.
    enum State<F, S, ReqB: Body, ResB: Body> {
        // Reading the request body into memory before the first attempt.
        Buffering { pending: Box<Pending<S, ReqB>> },
        // Waiting for a clone of the service to be ready for a retry.
        Ready { service: Box<S> },
        // An attempt is in flight, or its response was handed on
        // (`Run::handed_on`).
        Calling { #[pin] future: F },
        // Reading an error body to classify it.
        Reading { read: Pin<Box<Read<ResB, Collect>>> },
        // Holding back an event stream until its first event.
        Peeking { read: Pin<Box<Read<ResB, FirstEvent>>> },
        // Backing off before the next attempt.
        Sleeping { sleep: Pin<Box<Sleep>> },
        Done,
    }
}

pin_project! {
    /// A response whose body is being read. Boxed, like the other states
    /// only a failed attempt reaches, so the future a successful call moves
    /// around stays small.
    struct Read<B: Body, W> {
        parts: Option<http::response::Parts>,
        #[pin]
        prefetch: Prefetch<B, W>,
    }
}

impl<B: Body, W> Read<B, W> {
    /// Starts reading `response`'s body with `watch`, up to `cap` bytes and
    /// `timeout`.
    fn start(response: Response<B>, watch: W, cap: usize, timeout: Duration) -> Pin<Box<Self>> {
        let (parts, body) = response.into_parts();
        Box::pin(Self {
            parts: Some(parts),
            prefetch: Prefetch::new(body, watch, cap, timeout),
        })
    }
}

/// A request whose body is read into memory before its first attempt: the
/// head and the ready service wait with it until the template can be made.
/// Boxed as a whole, so that this state, larger than an attempt in flight
/// around most clients, does not set the size of every future.
struct Pending<S, B: Body> {
    buffering: Buffering<B>,
    head: Option<http::request::Parts>,
    rebuild: fn(ReplayedBody<B>) -> B,
    service: S,
}

/// The bookkeeping of one request's attempts.
struct Run<S, C, ReqB: Body, ResB: Body> {
    shared: Arc<Shared<S, C>>,
    template: Option<Template<ReqB>>,
    /// The gate named around the `poll_ready` before the call (when the
    /// policy names none) is the first one the layer found. Any other gate
    /// found is in the rare record ([`Rare::other_gate`]), so this stays a
    /// flag.
    found_first: bool,
    attempt: u32,
    max_attempts: u32,
    deposited: bool,
    /// A response was handed on from the `Calling` state, which was left as
    /// it was: the finished attempt's future is dropped with this one, as
    /// `tower::retry` does, rather than replaced by `Done` in `poll` (the
    /// drop of a state there had cost a copy of the response around the
    /// call: 38 instructions a call in memory, 84 and four lines of code a
    /// request on loopback).
    handed_on: bool,
    started: Option<Instant>,
    /// What a request answered at once and not traced does without; made on
    /// first use.
    rare: RareSlot<ResB>,
}

impl<S, C, ReqB: Body, ResB: Body> Drop for Run<S, C, ReqB, ResB> {
    // Inlined: a request without a template checks one pointer.
    #[inline]
    fn drop(&mut self) {
        if let Some(template) = self.template.take() {
            template.recycle();
        }
    }
}

/// The [`Rare`] record of a request, if it has one.
struct RareSlot<B: Body>(Option<Box<Rare<B>>>);

impl<B: Body> RareSlot<B> {
    fn get(&self) -> Option<&Rare<B>> {
        self.0.as_deref()
    }

    fn get_mut(&mut self) -> Option<&mut Rare<B>> {
        self.0.as_deref_mut()
    }

    /// The record; made on first use.
    fn make(&mut self) -> &mut Rare<B> {
        self.0.get_or_insert_with(|| {
            Box::new(Rare {
                span: None,
                retried: None,
                other_gate: None,
            })
        })
    }
}

impl<B: Body> Drop for RareSlot<B> {
    // Only the check is inlined: the drop glue of the optional box checked
    // for it after saving the registers its full drop needs.
    #[inline]
    fn drop(&mut self) {
        if let Some(rare) = self.0.take() {
            drop_rare(rare);
        }
    }
}

#[cold]
#[inline(never)]
fn drop_rare<B: Body>(rare: Box<Rare<B>>) {
    drop(rare);
}

/// What only some requests keep. Boxed, like the states only a failed
/// attempt reaches, so a request answered at once moves a smaller future,
/// and one box, so it has one pointer to check when it is dropped.
struct Rare<B: Body> {
    /// The current attempt's span; none while no subscriber has it enabled.
    /// With `tracing`'s `log` feature and no subscriber, the attempt span is
    /// not entered, so `log` sees no span records; its events still go out.
    span: Option<Span>,
    /// Made by the first outcome that could be retried.
    retried: Option<Retried<B>>,
    /// The gate found named, when it is not the first the layer found (a
    /// retry layer shared by two gate layers' services).
    other_gate: Option<Found>,
}

/// What only a request that met a retryable outcome keeps.
struct Retried<B: Body> {
    /// Why the last retryable outcome was retryable.
    reason: RetryReason,
    total_delay: Duration,
    /// The outcome a retry replaces, given back if the retry cannot be sent.
    last: Option<Outcome<B>>,
    rng: Option<fastrand::Rng>,
}

impl<B: Body> Retried<B> {
    /// The record in `rare` with `reason` as the last reason; made on first use.
    fn note(rare: &mut RareSlot<B>, reason: RetryReason) -> &mut Self {
        let retried = rare.make().retried.get_or_insert_with(|| Self {
            reason,
            total_delay: Duration::ZERO,
            last: None,
            rng: None,
        });
        retried.reason = reason;
        retried
    }
}

impl<S, C, ReqB, ResB> ResponseFuture<S, C, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify + Clone,
    ReqB: ReplayBody,
    ResB: Body,
{
    /// Keeps what a retry needs of `request` and starts its first attempt.
    ///
    /// `retry`'s service must be ready: it is called for the first attempt
    /// (or, when the body must be buffered first, taken for it, a clone left
    /// in its place). Takes `retry` whole so that the check for a fresh copy
    /// after `get_mut` is made here: in `Retry::call` it cost the layer above
    /// a copy of the request (about 40 instructions a call). A body copied
    /// for retries is looked at in place, so the request is not taken apart,
    /// and the run is built before the template is written into it (each
    /// had cost a copy of the request or of the template).
    pub(crate) fn new(retry: &mut Retry<S, C>, request: Request<ReqB>) -> Self {
        let (service, shared, scoped) = retry.for_call();
        let policy = &shared.settings.policy;
        let max_attempts = if request.extensions().is_empty() {
            policy.max_attempts.get()
        } else {
            cold_path();
            request
                .extensions()
                .get::<RetryControl>()
                .and_then(RetryControl::attempts)
                .unwrap_or(policy.max_attempts)
                .get()
        };
        let started = policy.deadline.map(|_| Instant::now());
        let mut run = Run {
            shared,
            template: None,
            found_first: false,
            attempt: 0,
            max_attempts,
            deposited: false,
            handed_on: false,
            started,
            rare: RareSlot(None),
        };
        if let Some(found) = scoped {
            run.name(found);
        }
        if max_attempts > 1 {
            let cap = run.shared.settings.policy.max_replay_body;
            let body = request.body();
            match body.replay() {
                Replay::Clone(clone) if body.size_hint().exact().is_none_or(|n| n <= cap) => {
                    let source = Source::Clone {
                        body: clone(body),
                        clone,
                    };
                    // Written only into the empty slot: an assignment
                    // called the drop of the `None` it replaced.
                    if let Some(template) = Template::new(&request, source) {
                        run.template.get_or_insert(template);
                    }
                }
                Replay::Buffer(rebuild) if body.size_hint().lower() <= cap => {
                    cold_path();
                    // The ready instance waits with the body being read; a
                    // clone takes its place in the service.
                    let (head, body) = request.into_parts();
                    let clone = service.clone();
                    let pending = Box::new(Pending {
                        buffering: Buffering::new(body, cap),
                        head: Some(head),
                        rebuild,
                        service: std::mem::replace(service, clone),
                    });
                    return Self {
                        state: State::Buffering { pending },
                        run,
                    };
                }
                Replay::Once => {}
                Replay::Clone(_) | Replay::Buffer(_) => {
                    cold_path();
                    tracing::debug!(
                        max_replay_body = cap,
                        "request body over the replay cap: sent once, not retried"
                    );
                }
            }
        }
        let future = run.call(service, request);
        Self {
            state: State::Calling { future },
            run,
        }
    }
}

impl<S, C, ReqB, ResB> Future for ResponseFuture<S, C, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    ReqB: ReplayBody,
    ResB: Body,
{
    type Output = Outcome<ResB>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let (mut state, run) = (this.state, this.run);
        // Only an attempt in flight is polled here; every other state, and
        // an outcome that is not handed on at once, goes to `Run::drive`, out
        // of line: the common path runs through fewer lines of code and a
        // smaller stack frame. On loopback with two workers whose idle CPUs
        // halt, each line of code a request runs costs it about 17 ns
        // (BENCHMARKS.md, section 2; benches/JOURNAL.md, item 25).
        loop {
            let step = match state.as_mut().project() {
                StateProj::Calling { future } => {
                    // The attempt's future finished: it is not polled again.
                    if run.handed_on {
                        cold_path();
                        state.set(State::Done);
                        return Poll::Ready(Err(polled_after_completion()));
                    }
                    // Not a block yielding the outcome past the guard's drop:
                    // that cost a copy of the response (about 35 instructions).
                    let entered = run.span().map(Span::enter);
                    let poll = future.poll(cx);
                    drop(entered);
                    // Judged where the poll left it, before it is moved out:
                    // judging the moved response kept a copy of it (about 30
                    // instructions).
                    let judged = match &poll {
                        Poll::Ready(Ok(response)) => run.judge(response),
                        Poll::Ready(Err(_)) | Poll::Pending => Judged::HandOn(Stop::Final),
                    };
                    match ready!(poll) {
                        Ok(response) => match judged {
                            // The common case, kept out of `Step` so the
                            // response is moved once.
                            Judged::HandOn(stop) => {
                                run.handed_on = true;
                                return Poll::Ready(Ok(run.hand_on(response, stop)));
                            }
                            Judged::Act(act) => {
                                cold_path();
                                Some(run.on_response(response, act))
                            }
                        },
                        Err(error) => {
                            cold_path();
                            Some(run.on_error(error.into()))
                        }
                    }
                }
                _ => None,
            };
            if let Some(outcome) = ready!(run.drive(state.as_mut(), cx, step)) {
                return Poll::Ready(outcome);
            }
        }
    }
}

/// What a finished read says, given the classifier.
trait Judge: Watch + Sized {
    fn verdict<B: Body, C: Classify>(
        read: &Prefetched<B, Self>,
        classifier: &C,
        parts: &http::response::Parts,
    ) -> Verdict;
}

impl Judge for Collect {
    /// An error body: the classifier reads what was read of it.
    fn verdict<B: Body, C: Classify>(
        read: &Prefetched<B, Self>,
        classifier: &C,
        parts: &http::response::Parts,
    ) -> Verdict {
        classifier.classify_body(parts.status, &parts.headers, read.view())
    }
}

impl Judge for FirstEvent {
    /// An event stream: only a whole first `error` event is classified.
    fn verdict<B: Body, C: Classify>(
        read: &Prefetched<B, Self>,
        classifier: &C,
        parts: &http::response::Parts,
    ) -> Verdict {
        match read.first_event() {
            Some(event) if event.name == b"error" => classifier.classify_body(
                parts.status,
                &parts.headers,
                ErrorBody::Complete(&event.data),
            ),
            _ => Verdict::Final,
        }
    }
}

fn polled_after_completion() -> BoxError {
    "retry: response future polled after completion".into()
}

/// What a response's head calls for.
enum Judged {
    /// Hand it on as it came, with this reason to stop.
    HandOn(Stop),
    /// Act on it before anything is handed on.
    Act(Act),
}

/// What is done with a response before anything is handed on.
enum Act {
    /// Hold back an event stream until its first event.
    Peek,
    /// Read the error body to classify it.
    Read,
    /// Retry it.
    Retry(RetryReason),
}

/// What to do after an attempt's outcome.
enum Step<B: Body> {
    /// The future is done with this outcome.
    Return(Outcome<B>),
    /// It goes on in another state.
    Next(Next<B>),
}

/// The states a step moves the future to.
enum Next<B: Body> {
    Read(Pin<Box<Read<B, Collect>>>),
    Peek(Pin<Box<Read<B, FirstEvent>>>),
    Sleep(Duration),
}

impl<B: Body> Next<B> {
    /// Moves `state` on.
    fn apply<F, S, ReqB: Body>(self, mut state: Pin<&mut State<F, S, ReqB, B>>) {
        match self {
            Next::Read(read) => state.set(State::Reading { read }),
            Next::Peek(read) => state.set(State::Peeking { read }),
            Next::Sleep(delay) => state.as_mut().set(State::Sleeping {
                sleep: Box::pin(tokio::time::sleep(delay)),
            }),
        }
    }
}

impl<S, C, ReqB: Body, ResB: Body> Run<S, C, ReqB, ResB> {
    /// The current attempt's span, while a subscriber has it enabled.
    fn span(&self) -> Option<&Span> {
        self.rare.get()?.span.as_ref()
    }

    /// What the request keeps once an outcome could be retried.
    fn retried(&self) -> Option<&Retried<ResB>> {
        self.rare.get()?.retried.as_ref()
    }
}

impl<S, C: Classify, ReqB: Body, ResB: Body> Run<S, C, ReqB, ResB> {
    /// The states of [`ResponseFuture::poll`] but an attempt in flight, from
    /// `step` when there is one (what an attempt's outcome calls for). Ready
    /// with `None` when a new attempt is in flight, for `poll` to poll.
    #[inline(never)]
    fn drive(
        &mut self,
        mut state: Pin<&mut State<S::Future, S, ReqB, ResB>>,
        cx: &mut Context<'_>,
        mut step: Option<Step<ResB>>,
    ) -> Poll<Option<Outcome<ResB>>>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
        S::Error: Into<BoxError>,
        ReqB: ReplayBody,
    {
        loop {
            let next = match step.take() {
                Some(next) => next,
                None => match state.as_mut().project() {
                    StateProj::Buffering { pending } => {
                        let Pending {
                            buffering,
                            head,
                            rebuild,
                            service,
                        } = &mut **pending;
                        let outcome = ready!(buffering.poll_buffer(cx));
                        let Some(head) = head.take() else {
                            state.set(State::Done);
                            return Poll::Ready(Some(Err(polled_after_completion())));
                        };
                        let request = match outcome {
                            BufferOutcome::Complete(buffered) => {
                                let source = Source::Buffered {
                                    buffered,
                                    rebuild: *rebuild,
                                };
                                let request = Request::from_parts(head, source.body());
                                self.template = Template::new(&request, source);
                                request
                            }
                            BufferOutcome::Once(body) => {
                                tracing::debug!(
                                    max_replay_body = self.shared.settings.policy.max_replay_body,
                                    "request body over the replay cap (or failed): sent once, not retried"
                                );
                                Request::from_parts(head, rebuild(body))
                            }
                        };
                        // NOTE: `service` is still the instance that `Retry::poll_ready`
                        // drove to readiness; it has not been called yet.
                        let future = self.call(service, request);
                        state.set(State::Calling { future });
                        return Poll::Ready(None);
                    }
                    StateProj::Ready { service } => {
                        // NOTE: every retry reserves capacity again before calling.
                        if let Err(error) = ready!(service.poll_ready(cx)) {
                            state.set(State::Done);
                            return Poll::Ready(Some(Err(error.into())));
                        }
                        // The gate may have closed while the copy was made ready.
                        if self.gate_closed() {
                            state.set(State::Done);
                            return Poll::Ready(Some(self.give_back_last(Stop::GateClosed)));
                        }
                        // A retry is planned only with a template (`Run::can_retry`);
                        // `None` here is a head that no longer parses.
                        let Some(request) = self.template.as_ref().and_then(Template::request)
                        else {
                            state.set(State::Done);
                            return Poll::Ready(Some(self.give_back_last(Stop::NotReplayable)));
                        };
                        let future = self.call(service, request);
                        state.set(State::Calling { future });
                        return Poll::Ready(None);
                    }
                    // Polled by `ResponseFuture::poll`, which calls this only
                    // for other states (or with a step).
                    StateProj::Calling { .. } => return Poll::Ready(None),
                    StateProj::Reading { read } => {
                        let read = read.as_mut().project();
                        ready!(self.poll_read(read.parts, read.prefetch, cx))
                    }
                    StateProj::Peeking { read } => {
                        let read = read.as_mut().project();
                        ready!(self.poll_read(read.parts, read.prefetch, cx))
                    }
                    StateProj::Sleeping { sleep } => {
                        ready!(sleep.as_mut().poll(cx));
                        // Checked before a copy of the service is made and made
                        // ready, so a gate that closed during the backoff reserves
                        // none of the inner service's capacity (a concurrency
                        // limit's permit, a buffer's slot).
                        if self.gate_closed() {
                            state.set(State::Done);
                            return Poll::Ready(Some(self.give_back_last(Stop::GateClosed)));
                        }
                        let service = Box::new(self.shared.service());
                        state.set(State::Ready { service });
                        continue;
                    }
                    StateProj::Done => return Poll::Ready(Some(Err(polled_after_completion()))),
                },
            };
            match next {
                Step::Return(outcome) => {
                    state.set(State::Done);
                    return Poll::Ready(Some(outcome));
                }
                Step::Next(next) => next.apply(state.as_mut()),
            }
        }
    }

    /// Starts an attempt on `service`, in its own span.
    // Inlined into `ResponseFuture::new`, the request goes to the service
    // with one copy fewer (about 50 instructions a call, both layers).
    #[inline(always)]
    fn call(&mut self, service: &mut S, request: Request<ReqB>) -> S::Future
    where
        S: Service<Request<ReqB>>,
    {
        self.attempt = self.attempt.saturating_add(1);
        // The check `debug_span!` starts with, made here so that the rest of
        // the macro is out of line when debug events are off.
        if STATIC_MAX_LEVEL >= LevelFilter::DEBUG && LevelFilter::current() >= LevelFilter::DEBUG {
            cold_path();
            self.open_span(request.method());
        } else if let Some(rare) = self.rare.get_mut() {
            rare.span = None;
        }
        let _entered = self.span().map(Span::enter);
        service.call(request)
    }

    /// Makes the attempt's span, if a subscriber has it enabled.
    #[inline(never)]
    fn open_span(&mut self, method: &Method) {
        let span = tracing::debug_span!(
            "attempt",
            http.request.resend_count = self.attempt - 1,
            http.request.method = %method,
        );
        // Assigned only when there is a span: replacing `None` by `None`
        // still called the old value's drop.
        if !span.is_disabled() {
            self.rare.make().span = Some(span);
        } else if let Some(rare) = self.rare.get_mut() {
            rare.span = None;
        }
    }

    fn can_retry(&self) -> Option<Stop> {
        if self.attempt >= self.max_attempts {
            Some(Stop::AttemptsExhausted)
        } else if self.template.is_none() {
            Some(Stop::NotReplayable)
        } else {
            None
        }
    }

    /// The first outcome that reached the upstream counts as one request for the budget.
    fn deposit_once(&mut self) {
        if !self.deposited {
            self.deposited = true;
            if let Some(budget) = &self.shared.settings.policy.budget {
                budget.deposit();
            }
        }
    }

    /// What to do with a response, judged from its head.
    fn judge(&mut self, response: &Response<ResB>) -> Judged {
        self.deposit_once();
        let head = self
            .shared
            .settings
            .classifier
            .classify_head(response.status(), response.headers());
        match head {
            Head::Final if self.watch_stream_start(response) => Judged::Act(Act::Peek),
            Head::Final => Judged::HandOn(Stop::Final),
            Head::Retry(reason) => self.unless_stopped(Act::Retry(reason)),
            Head::ReadBody => self.unless_stopped(Act::Read),
        }
    }

    /// `act`, unless no retry can follow: then the response is handed on.
    fn unless_stopped(&self, act: Act) -> Judged {
        match self.can_retry() {
            Some(stop) => Judged::HandOn(stop),
            None => Judged::Act(act),
        }
    }

    /// Hands `response` on as it came.
    fn hand_on(&self, response: Response<ResB>, stop: Stop) -> Response<ResponseBody<ResB>> {
        let mut response = response.map(ResponseBody::passthrough);
        self.finish(&mut response, stop);
        response
    }

    /// Acts on a response that is not handed on at once.
    fn on_response(&mut self, response: Response<ResB>, act: Act) -> Step<ResB> {
        let policy = &self.shared.settings.policy;
        match act {
            Act::Retry(reason) => self.plan(reason, Ok(response.map(ResponseBody::passthrough))),
            Act::Peek => Step::Next(Next::Peek(Read::start(
                response,
                FirstEvent::default(),
                policy.stream_start_cap,
                policy.stream_start_timeout,
            ))),
            Act::Read => Step::Next(Next::Read(Read::start(
                response,
                Collect::default(),
                policy.max_error_body,
                policy.error_body_timeout,
            ))),
        }
    }

    /// Whether this success is an event stream whose first event should be
    /// seen before it is handed on.
    fn watch_stream_start(&self, response: &Response<ResB>) -> bool {
        self.shared.settings.policy.stream_start
            && response.status().is_success()
            && self.can_retry().is_none()
            && is_event_stream(response.headers())
    }

    /// Drives the read of an error body or a stream's start, then judges it.
    fn poll_read<W: Judge>(
        &mut self,
        parts: &mut Option<http::response::Parts>,
        prefetch: Pin<&mut Prefetch<ResB, W>>,
        cx: &mut Context<'_>,
    ) -> Poll<Step<ResB>> {
        let prefetched = {
            let _entered = self.span().map(Span::enter);
            ready!(prefetch.poll(cx))
        };
        Poll::Ready(match (parts.take(), prefetched) {
            (Some(parts), Some(prefetched)) => {
                let verdict = W::verdict(&prefetched, &self.shared.settings.classifier, &parts);
                self.on_verdict(parts, prefetched, verdict)
            }
            _ => Step::Return(Err(polled_after_completion())),
        })
    }

    /// Hands the read response on, or plans its retry.
    fn on_verdict<W>(
        &mut self,
        parts: http::response::Parts,
        prefetched: Prefetched<ResB, W>,
        verdict: Verdict,
    ) -> Step<ResB> {
        let mut response = Response::from_parts(parts, ResponseBody::held(prefetched.held));
        match verdict {
            Verdict::Final => {
                self.finish(&mut response, Stop::Final);
                Step::Return(Ok(response))
            }
            Verdict::Retry(reason) => self.plan(reason, Ok(response)),
        }
    }

    fn on_error(&mut self, error: BoxError) -> Step<ResB> {
        if find::<GateClosed>(&*error).is_some() {
            // The gate answered: this attempt never went upstream.
            self.attempt = self.attempt.saturating_sub(1);
            // Never retried. When a retry met the closed gate, the caller gets
            // the last real outcome rather than the gate's error.
            return Step::Return(match self.take_last() {
                Some(last) => self.give_back(last, Stop::GateClosed),
                None => Err(error),
            });
        }
        self.deposit_once();
        if self.can_retry().is_some() {
            return Step::Return(Err(error));
        }
        let policy = &self.shared.settings.policy;
        let retry = self
            .template
            .as_ref()
            .is_some_and(|t| policy.retry_transport(&*error, t.method()));
        if !retry {
            return Step::Return(Err(error));
        }
        self.plan(RetryReason::Transport, Err(error))
    }

    /// Decides whether and when to retry an outcome the classifier wants retried.
    fn plan(&mut self, reason: RetryReason, outcome: Outcome<ResB>) -> Step<ResB> {
        Retried::note(&mut self.rare, reason);
        if let Some(stop) = self.can_retry() {
            return Step::Return(self.give_back(outcome, stop));
        }
        let hint = match &outcome {
            Ok(response) => delay_hint(response.headers(), SystemTime::now()),
            Err(_) => None,
        };
        match self.next_delay(reason, hint) {
            Ok(delay) => {
                tracing::debug!(
                    parent: self.span_id(),
                    attempt = self.attempt,
                    reason = %reason,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "retrying"
                );
                let retried = Retried::note(&mut self.rare, reason);
                retried.total_delay = retried.total_delay.saturating_add(delay);
                retried.last = Some(outcome);
                Step::Next(Next::Sleep(delay))
            }
            Err(stop) => {
                tracing::debug!(parent: self.span_id(), attempt = self.attempt, reason = %reason, ?stop, "not retrying");
                Step::Return(self.give_back(outcome, stop))
            }
        }
    }

    fn next_delay(
        &mut self,
        reason: RetryReason,
        hint: Option<Duration>,
    ) -> Result<Duration, Stop> {
        let policy = &self.shared.settings.policy;
        let delay = match policy.hint(hint) {
            HintDecision::Wait(delay) => delay,
            HintDecision::GiveUp => return Err(Stop::HintTooLong),
            HintDecision::Backoff => {
                let seed = policy.jitter_seed;
                let rng = Retried::note(&mut self.rare, reason)
                    .rng
                    .get_or_insert_with(|| {
                        seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed)
                    });
                policy.backoff.delay(self.attempt, rng)
            }
        };
        if let (Some(deadline), Some(started)) = (policy.deadline, self.started) {
            if started.elapsed().saturating_add(delay) > deadline {
                return Err(Stop::Deadline);
            }
        }
        if self.gate_closed() {
            return Err(Stop::GateClosed);
        }
        if let Some(budget) = &policy.budget {
            if !budget.withdraw() {
                return Err(Stop::BudgetExhausted);
            }
        }
        Ok(delay)
    }

    fn gate_closed(&self) -> bool {
        let shared = &self.shared;
        if let Some(gate) = &shared.settings.policy.gate {
            return gate.check().is_err();
        }
        let gate = if self.found_first {
            shared.seen.gate(&Found::First)
        } else {
            self.rare
                .get()
                .and_then(|rare| rare.other_gate.as_ref())
                .and_then(|found| shared.seen.gate(found))
        };
        gate.is_some_and(|gate| gate.check().is_err())
    }

    /// Records the gate found named around the call's `poll_ready`.
    #[inline]
    fn name(&mut self, found: Found) {
        match found {
            Found::First => self.found_first = true,
            other => self.name_other(other),
        }
    }

    /// [`Run::name`] for a gate other than the first one the layer found:
    /// kept in the rare record, so the run stays small for the common case.
    #[cold]
    #[inline(never)]
    fn name_other(&mut self, other: Found) {
        self.rare.make().other_gate = Some(other);
    }

    fn give_back(&mut self, outcome: Outcome<ResB>, stop: Stop) -> Outcome<ResB> {
        outcome.map(|mut response| {
            self.finish(&mut response, stop);
            response
        })
    }

    fn give_back_last(&mut self, stop: Stop) -> Outcome<ResB> {
        match self.take_last() {
            Some(last) => self.give_back(last, stop),
            None => Err("retry: no outcome to return".into()),
        }
    }

    fn take_last(&mut self) -> Option<Outcome<ResB>> {
        self.rare.get_mut()?.retried.as_mut()?.last.take()
    }

    /// The current attempt's span, as the parent of an event.
    fn span_id(&self) -> Option<tracing::Id> {
        self.span().and_then(Span::id)
    }

    /// Attaches [`RetryInfo`] when there is something to report.
    // Inlined, so a response answered at once makes no call here.
    #[inline(always)]
    fn finish(&self, response: &mut Response<ResponseBody<ResB>>, stop: Stop) {
        if self.attempt > 1 || stop != Stop::Final || self.retried().is_some() {
            self.attach_info(response, stop);
        }
    }

    #[cold]
    #[inline(never)]
    fn attach_info(&self, response: &mut Response<ResponseBody<ResB>>, stop: Stop) {
        let retried = self.retried();
        let info = RetryInfo {
            attempts: self.attempt,
            total_delay: retried.map_or(Duration::ZERO, |r| r.total_delay),
            last_reason: retried.map(|r| r.reason),
            stop,
            request_id: response.headers().get("request-id").cloned(),
        };
        response.extensions_mut().insert(info);
    }
}

impl<S, C, ReqB, ResB> fmt::Debug for ResponseFuture<S, C, ReqB, ResB>
where
    S: Service<Request<ReqB>>,
    ReqB: Body,
    ResB: Body,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.run.attempt)
            .field("max_attempts", &self.run.max_attempts)
            .field(
                "total_delay",
                &self.run.retried().map_or(Duration::ZERO, |r| r.total_delay),
            )
            .finish_non_exhaustive()
    }
}
