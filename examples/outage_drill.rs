//! The outage drill: watch `StatusGateLayer` + `RetryLayer` get a client
//! through a provider outage. No network, no set-up:
//!
//! ```text
//! cargo run --example outage_drill            # with both layers
//! cargo run --example outage_drill -- --bare  # the same drill, no layers
//! ```
//!
//! It starts two loopback servers (127.0.0.1, real TCP, real HTTP):
//! - a provider answering like the Anthropic API on `POST /v1/messages`: a
//!   few `529 overloaded_error` / `500 api_error` while healthy, nine failures
//!   in ten attempts during its outage;
//! - an Atlassian Statuspage serving `/api/v2/summary.json` from real
//!   captures (`tests/fixtures/statuspage/`): operational, then a major outage
//!   with an open incident, then operational again. Each change is pushed to
//!   the gate as the Statuspage webhook a subscribed page sends (handed to
//!   `StatusGate::apply_webhook`, as a webhook route would), and the gate
//!   confirms it with an immediate poll of the page.
//!
//! Then it sends one request every 150 ms through a hyper-util legacy client
//! and prints, as each request ends, its outcome, its attempts and the
//! statuses the provider answered (counted on the server), the time spent
//! backing off, and every change of the gate's state. It ends with a summary
//! table, after about 15 s.
//!
//! Time is compressed by configuration only: backoff starts at 100 ms, the
//! outage lasts seconds, and the status page pushes its changes instead of
//! waiting for the next poll (the gate polls at its public minimum,
//! [`MIN_POLL_INTERVAL`], 10 s). Nothing is simulated inside the layers.
//!
//! `tests/demo_smoke.rs` includes this file as a module and runs [`run`] in
//! both modes, checking the figures.
#![allow(clippy::print_stdout)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tower::{Service, ServiceBuilder, ServiceExt};
use tower_api_guard::backoff::Backoff;
use tower_api_guard::gate::{CloseCause, GateClosed, GateStatus, StatusGate, MIN_POLL_INTERVAL};
use tower_api_guard::retry::{RetryInfo, RetryLayer, Stop};
use tower_api_guard::BoxError;

/// The status page captures served by the drill (real GitHub Statuspage
/// answers, see `tests/fixtures/statuspage/SOURCES.md`).
const PAGE_OPERATIONAL: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/statuspage/github_summary_operational_2019-12-30.json"
));
const PAGE_MAJOR_OUTAGE: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/statuspage/github_summary_major_outage_2020-04-02.json"
));

/// The retry layer's settings: the defaults (the provider's recipe, 5 s
/// doubling to 120 s) shortened so the drill runs in seconds.
const RETRY_ATTEMPTS: u32 = 4;
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));

/// The request every drill request sends.
const MESSAGE: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"ping"}]}"#;

/// Which client the drill drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `StatusGateLayer` + `RetryLayer` on the hyper-util client.
    Layers,
    /// The hyper-util client alone.
    Bare,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Layers => "StatusGateLayer + RetryLayer",
            Mode::Bare => "bare hyper-util client, no layers",
        }
    }
}

/// The drill's schedule, as offsets from its start.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    /// How many requests to send.
    pub(crate) requests: u32,
    /// Time between two requests.
    pub(crate) spacing: Duration,
    /// When the provider starts and stops failing nine attempts in ten.
    pub(crate) outage: (Duration, Duration),
    /// When the status page opens and resolves its incident (it notices the
    /// outage late and resolves it late, as status pages do).
    pub(crate) incident: (Duration, Duration),
}

impl Plan {
    /// The drill `cargo run --example outage_drill` runs: 100 requests over 15 s.
    pub(crate) fn standard() -> Self {
        Self {
            requests: 100,
            spacing: Duration::from_millis(150),
            outage: (Duration::from_millis(3_400), Duration::from_secs(10)),
            incident: (Duration::from_secs(4), Duration::from_millis(10_500)),
        }
    }
}

/// How one request ended. Every request has exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A 2xx answer.
    Succeeded(StatusCode),
    /// An error answer handed to the caller.
    Failed(StatusCode),
    /// A transport error.
    Error(String),
    /// Held back by the gate (`GateClosed`): never sent upstream.
    ShortCircuited,
}

/// One request, as the caller saw it.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// 1-based request number.
    pub(crate) id: u32,
    /// When it was sent, from the drill's start.
    pub(crate) sent: Duration,
    /// When its outcome was known.
    pub(crate) ended: Duration,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Attempts the retry layer reports (`RetryInfo::of`); 0 when short-circuited.
    pub(crate) attempts: u32,
    /// Time spent backing off between attempts (`RetryInfo::total_delay`).
    pub(crate) waited: Duration,
    /// Why the retry layer stopped, when it had a say.
    pub(crate) stop: Option<Stop>,
    /// What the gate said, when it held the request back.
    pub(crate) closed: Option<String>,
    /// The statuses the provider answered to this request, in order (counted
    /// on the server).
    pub(crate) upstream: Vec<u16>,
    /// When each of those attempts reached the provider, from the drill's start.
    pub(crate) upstream_at: Vec<Duration>,
}

/// What a drill run measured.
#[derive(Clone, Debug)]
pub(crate) struct Summary {
    /// Which client ran.
    pub(crate) mode: Mode,
    /// One record per request, in request order.
    pub(crate) records: Vec<Record>,
    /// Requests the provider received, all attempts included.
    pub(crate) upstream_attempts: u64,
    /// When the incident was opened and resolved on the status page.
    pub(crate) incident: (Duration, Duration),
    /// Status page requests received (polls).
    pub(crate) status_polls: u64,
    /// Wall time of the whole drill.
    pub(crate) elapsed: Duration,
}

impl Summary {
    fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.records.iter().filter(|r| f(&r.outcome)).count()
    }

    /// Requests sent by the caller.
    pub(crate) fn requests(&self) -> usize {
        self.records.len()
    }

    /// Requests that ended with a 2xx.
    pub(crate) fn succeeded(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Succeeded(_)))
    }

    /// Requests that ended with an error answer or a transport error.
    pub(crate) fn failed(&self) -> usize {
        self.count(|o| matches!(o, Outcome::Failed(_) | Outcome::Error(_)))
    }

    /// Requests the gate held back.
    pub(crate) fn short_circuited(&self) -> usize {
        self.count(|o| matches!(o, Outcome::ShortCircuited))
    }

    /// Upstream attempts per request.
    pub(crate) fn amplification(&self) -> f64 {
        let requests = self.requests().max(1);
        self.upstream_attempts as f64 / requests as f64
    }

    /// Backoff time, summed over requests.
    pub(crate) fn waited(&self) -> Duration {
        self.records.iter().map(|r| r.waited).sum()
    }

    /// The summary table.
    pub(crate) fn table(&self) -> String {
        let mut t = String::new();
        let incident = format!(
            "{:.2}–{:.2} s",
            self.incident.0.as_secs_f64(),
            self.incident.1.as_secs_f64()
        );
        let rows: [(&str, String, &str); 10] = [
            ("requests", self.requests().to_string(), ""),
            ("succeeded", self.succeeded().to_string(), ""),
            ("failed", self.failed().to_string(), ""),
            (
                "short-circuited",
                self.short_circuited().to_string(),
                "held back by the gate, never sent",
            ),
            (
                "upstream attempts",
                self.upstream_attempts.to_string(),
                "counted by the provider",
            ),
            (
                "amplification",
                format!("{:.2}", self.amplification()),
                "upstream attempts / requests",
            ),
            (
                "time spent waiting",
                secs(self.waited()),
                "backoff, summed over requests",
            ),
            ("incident open", incident, "on the status page"),
            ("status page polls", self.status_polls.to_string(), ""),
            ("wall time", secs(self.elapsed), ""),
        ];
        let _ = writeln!(t, "summary: {}", self.mode.label());
        for (name, value, note) in rows {
            let row = format!("  {name:<20}{value:>12}  {note}");
            let _ = writeln!(t, "{}", row.trim_end());
        }
        t
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// A provider that answers like the Anthropic API on `POST /v1/messages`.
struct Provider {
    start: Instant,
    outage: (Duration, Duration),
    attempts: AtomicU64,
    /// Statuses answered per drill request (`x-drill-request`), and when.
    log: Mutex<BTreeMap<u32, Vec<(u16, Duration)>>>,
}

impl Provider {
    /// The schedule: while healthy, one attempt in six fails (alternating
    /// `529 overloaded_error` and `500 api_error`); during the outage, nine
    /// in ten do.
    fn answer(&self, request: &http::request::Parts) -> Response<Full<Bytes>> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst);
        let at = self.start.elapsed();
        let failing = at >= self.outage.0 && at < self.outage.1;
        let error = if failing {
            match n % 10 {
                9 => None,
                k if k % 2 == 0 => Some((529, "overloaded_error", "Overloaded")),
                _ => Some((500, "api_error", "Internal server error")),
            }
        } else {
            match n % 12 {
                0 => Some((529, "overloaded_error", "Overloaded")),
                6 => Some((500, "api_error", "Internal server error")),
                _ => None,
            }
        };
        let (status, body) = match error {
            Some((status, kind, message)) => (
                status,
                format!(r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}}}}"#),
            ),
            None => (
                200,
                format!(
                    r#"{{"id":"msg_drill_{n}","type":"message","role":"assistant","content":[{{"type":"text","text":"pong"}}],"stop_reason":"end_turn"}}"#
                ),
            ),
        };
        if let Some(id) = request
            .headers
            .get("x-drill-request")
            .and_then(|v| v.to_str().ok()?.parse::<u32>().ok())
        {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            log.entry(id).or_default().push((status, at));
        }
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        if let Ok(id) = http::HeaderValue::from_str(&format!("req_drill_{n}")) {
            headers.insert("request-id", id);
        }
        response
    }

    fn upstream_of(&self, id: u32) -> Vec<(u16, Duration)> {
        let log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        log.get(&id).cloned().unwrap_or_default()
    }
}

/// A status page serving one of the captures, with an ETag per capture.
struct StatusPage {
    page: Mutex<(&'static str, &'static [u8])>,
    polls: AtomicU64,
}

impl StatusPage {
    fn set(&self, etag: &'static str, body: &'static [u8]) {
        *self.page.lock().unwrap_or_else(PoisonError::into_inner) = (etag, body);
    }

    fn answer(&self, request: &http::request::Parts) -> Response<Full<Bytes>> {
        self.polls.fetch_add(1, Ordering::SeqCst);
        let (etag, body) = *self.page.lock().unwrap_or_else(PoisonError::into_inner);
        let mut response = Response::new(Full::new(Bytes::new()));
        if request.uri.path() != "/api/v2/summary.json" {
            *response.status_mut() = StatusCode::NOT_FOUND;
            return response;
        }
        let unchanged = request
            .headers
            .get("if-none-match")
            .is_some_and(|v| v.as_bytes() == etag.as_bytes());
        response
            .headers_mut()
            .insert("etag", http::HeaderValue::from_static(etag));
        if unchanged {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
        } else {
            response.headers_mut().insert(
                "content-type",
                http::HeaderValue::from_static("application/json"),
            );
            *response.body_mut() = Full::new(Bytes::from_static(body));
        }
        response
    }
}

/// Serves `answer` on a fresh loopback port; the task ends with the runtime.
async fn serve<F>(answer: F) -> io::Result<SocketAddr>
where
    F: Fn(&http::request::Parts) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let answer = Arc::clone(&answer);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                    let answer = Arc::clone(&answer);
                    async move {
                        let (parts, body) = request.into_parts();
                        // Read the request to its end, as a real server does.
                        let _ = body.collect().await;
                        let response = answer(&parts);
                        // A few milliseconds of "work" before the answer leaves.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The webhook bodies a subscribed Statuspage would send for the incident
/// of the major-outage capture: created, then resolved.
fn webhooks() -> Result<(Vec<u8>, Vec<u8>), BoxError> {
    let page: serde_json::Value = serde_json::from_slice(PAGE_MAJOR_OUTAGE)?;
    let incident = page
        .get("incidents")
        .and_then(|list| list.get(0))
        .cloned()
        .ok_or("the major-outage capture has an incident")?;
    let mut resolved = incident.clone();
    if let Some(fields) = resolved.as_object_mut() {
        fields.insert("status".into(), "resolved".into());
    }
    let opened = serde_json::json!({
        "page": { "status_indicator": "major", "status_description": "Partial System Outage" },
        "incident": incident,
    });
    let resolved = serde_json::json!({
        "page": { "status_indicator": "none", "status_description": "All Systems Operational" },
        "incident": resolved,
    });
    Ok((serde_json::to_vec(&opened)?, serde_json::to_vec(&resolved)?))
}

/// What the drill prints, in the order things happen.
enum Event {
    Done(Record),
    Gate(Duration, GateStatus),
    Page(Duration, String),
}

fn describe_closed(closed: &GateClosed) -> String {
    let by = match closed.cause() {
        CloseCause::Webhook => "webhook",
        CloseCause::StatusPage => "status page poll",
        CloseCause::Unreadable => "unreadable page",
        CloseCause::Manual => "hand",
        _ => "other",
    };
    let mut s = format!("by {by}");
    if let Some(indicator) = closed.indicator() {
        let _ = write!(s, ", indicator {indicator}");
    }
    if let Some(incident) = closed.incidents().first() {
        let _ = write!(s, ", incident \"{}\"", incident.name);
    }
    s
}

fn line(record: &Record) -> String {
    let outcome = match &record.outcome {
        Outcome::Succeeded(s) => format!("ok {}", s.as_u16()),
        Outcome::Failed(s) => format!("FAILED {}", s.as_u16()),
        Outcome::Error(_) => "FAILED transport".to_owned(),
        Outcome::ShortCircuited => "short-circuited".to_owned(),
    };
    let attempts = match record.attempts {
        1 => "1 attempt ".to_owned(),
        n => format!("{n} attempts"),
    };
    let waited = if record.waited.is_zero() {
        String::new()
    } else {
        format!("waited {:>4} ms", record.waited.as_millis())
    };
    let mut detail = record
        .upstream
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" → ");
    match (&record.outcome, record.stop) {
        (Outcome::ShortCircuited, _) => {
            detail = format!(
                "GateClosed: {}",
                record.closed.as_deref().unwrap_or("closed")
            );
        }
        (Outcome::Error(e), _) => detail = e.clone(),
        (_, Some(Stop::BudgetExhausted)) => detail.push_str("  (retry budget spent)"),
        (_, Some(Stop::AttemptsExhausted)) => detail.push_str("  (attempts exhausted)"),
        (_, Some(Stop::GateClosed)) => detail.push_str("  (gate closed: no retry)"),
        (_, Some(Stop::Deadline)) => detail.push_str("  (deadline)"),
        _ => {}
    }
    let took = record.ended.saturating_sub(record.sent).as_millis();
    format!(
        "{:>6.2}s  #{:<3}  {:<16} {:>5} ms  {}  {:<14} {}",
        record.ended.as_secs_f64(),
        record.id,
        outcome,
        took,
        attempts,
        waited,
        detail
    )
    .trim_end()
    .to_owned()
}

/// Sends one request and records how it ended.
async fn one<S, B>(
    mut service: S,
    url: String,
    id: u32,
    start: Instant,
    provider: Arc<Provider>,
) -> Record
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>>,
    S::Error: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    let sent = start.elapsed();
    let request = Request::post(url)
        .header("content-type", "application/json")
        .header("anthropic-version", "2023-06-01")
        .header("x-drill-request", id)
        .body(Full::new(Bytes::from_static(MESSAGE.as_bytes())));
    let result = match request {
        Ok(request) => match service.ready().await {
            Ok(ready) => ready.call(request).await.map_err(Into::into),
            Err(e) => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    };
    let mut record = Record {
        id,
        sent,
        ended: sent,
        outcome: Outcome::ShortCircuited,
        attempts: 0,
        waited: Duration::ZERO,
        stop: None,
        closed: None,
        upstream: Vec::new(),
        upstream_at: Vec::new(),
    };
    match result {
        Ok(response) => {
            let info = RetryInfo::of(&response);
            let status = response.status();
            let body = response.into_body().collect().await;
            record.attempts = info.attempts;
            record.waited = info.total_delay;
            record.stop = Some(info.stop);
            record.outcome = match body {
                Err(e) => Outcome::Error(format!("reading the body: {}", e.into())),
                Ok(_) if status.is_success() => Outcome::Succeeded(status),
                Ok(_) => Outcome::Failed(status),
            };
        }
        Err(err) => match err.downcast_ref::<GateClosed>() {
            Some(closed) => {
                let indicator = closed.indicator().map_or("-".into(), ToString::to_string);
                record.closed = Some(format!("indicator {indicator}, not sent"));
            }
            None => {
                record.attempts = 1;
                record.outcome = Outcome::Error(err.to_string());
            }
        },
    }
    record.ended = start.elapsed();
    (record.upstream, record.upstream_at) = provider.upstream_of(id).into_iter().unzip();
    record
}

/// Runs the drill with `mode`, writing the live display and the summary table
/// to `out`, and returns the figures.
pub(crate) async fn run<W: Write>(
    mode: Mode,
    plan: Plan,
    out: &mut W,
) -> Result<Summary, BoxError> {
    let start = Instant::now();
    let provider = Arc::new(Provider {
        start,
        outage: plan.outage,
        attempts: AtomicU64::new(0),
        log: Mutex::new(BTreeMap::new()),
    });
    let page = Arc::new(StatusPage {
        page: Mutex::new(("\"operational\"", PAGE_OPERATIONAL)),
        polls: AtomicU64::new(0),
    });
    let provider_addr = serve({
        let provider = Arc::clone(&provider);
        move |r| provider.answer(r)
    })
    .await?;
    let page_addr = serve({
        let page = Arc::clone(&page);
        move |r| page.answer(r)
    })
    .await?;
    let url = format!("http://{provider_addr}/v1/messages");

    writeln!(out, "outage drill: {}", mode.label())?;
    writeln!(
        out,
        "  provider     http://{provider_addr}/v1/messages  outage (9 in 10 attempts fail) {:.1}s → {:.1}s",
        plan.outage.0.as_secs_f64(),
        plan.outage.1.as_secs_f64()
    )?;
    writeln!(
        out,
        "  status page  http://{page_addr}/api/v2/summary.json  incident {:.1}s → {:.1}s",
        plan.incident.0.as_secs_f64(),
        plan.incident.1.as_secs_f64()
    )?;
    writeln!(
        out,
        "  {} requests, one every {} ms",
        plan.requests,
        plan.spacing.as_millis()
    )?;

    // The client: hyper-util's legacy client, with or without the layers.
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let gate = match mode {
        Mode::Bare => None,
        Mode::Layers => {
            let gate = StatusGate::builder()
                .base_url(format!("http://{page_addr}"))
                .poll_interval(MIN_POLL_INTERVAL)
                .build()?;
            gate.polled().await?;
            writeln!(out, "  gate         polls every {} s (its minimum); the page pushes its changes as webhooks", MIN_POLL_INTERVAL.as_secs())?;
            writeln!(
                out,
                "  retry        {RETRY_ATTEMPTS} attempts, backoff {} ms doubling to {} ms (full jitter), default budget",
                BACKOFF.initial().as_millis(),
                BACKOFF.max().as_millis()
            )?;
            Some(gate)
        }
    };
    writeln!(out)?;
    writeln!(
        out,
        "   end  req   outcome              took  attempts    backoff        provider answered"
    )?;

    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();

    // The status page's timeline: open the incident, then resolve it.
    let (opened_hook, resolved_hook) = webhooks()?;
    let controller = tokio::spawn({
        let (page, gate, tx, plan) = (Arc::clone(&page), gate.clone(), tx.clone(), plan.clone());
        async move {
            sleep_until(start + plan.incident.0).await;
            let opened = start.elapsed();
            page.set("\"major-outage\"", PAGE_MAJOR_OUTAGE);
            let _ = tx.send(Event::Page(
                opened,
                "incident opened (major): page now says Partial System Outage".into(),
            ));
            if let Some(gate) = &gate {
                let _ = gate.apply_webhook(&opened_hook);
            }
            sleep_until(start + plan.incident.1).await;
            page.set("\"operational\"", PAGE_OPERATIONAL);
            let _ = tx.send(Event::Page(
                start.elapsed(),
                "incident resolved: page now says All Systems Operational".into(),
            ));
            if let Some(gate) = &gate {
                let _ = gate.apply_webhook(&resolved_hook);
            }
            let resolved = start.elapsed();
            (opened, resolved)
        }
    });

    // Every change of the gate's state, as it happens.
    let watcher = gate.as_ref().map(|gate| {
        let mut changes = gate.subscribe();
        let tx = tx.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                let status = changes.borrow_and_update().clone();
                if tx.send(Event::Gate(start.elapsed(), status)).is_err() {
                    break;
                }
            }
        })
    });

    // The steady stream of requests.
    let launcher = {
        let (tx, plan, provider, url) =
            (tx.clone(), plan.clone(), Arc::clone(&provider), url.clone());
        let layered = gate.as_ref().map(|gate| {
            // The recommended order: the gate outside, the retry layer inside
            // (see examples/retry_and_gate.rs).
            ServiceBuilder::new()
                .layer(gate.layer())
                .layer(
                    RetryLayer::new()
                        .max_attempts(NonZeroU32::new(RETRY_ATTEMPTS).unwrap_or(NonZeroU32::MIN))
                        .backoff(BACKOFF),
                )
                .service(client.clone())
        });
        tokio::spawn(async move {
            for id in 1..=plan.requests {
                sleep_until(start + plan.spacing * (id - 1)).await;
                let (tx, provider, url) = (tx.clone(), Arc::clone(&provider), url.clone());
                match &layered {
                    Some(layered) => {
                        let service = layered.clone();
                        tokio::spawn(async move {
                            let _ =
                                tx.send(Event::Done(one(service, url, id, start, provider).await));
                        });
                    }
                    None => {
                        let service = client.clone();
                        tokio::spawn(async move {
                            let _ =
                                tx.send(Event::Done(one(service, url, id, start, provider).await));
                        });
                    }
                }
            }
        })
    };
    drop(tx);

    let mut records = Vec::new();
    while records.len() < plan.requests as usize {
        let Some(event) = rx.recv().await else { break };
        match event {
            Event::Done(record) => {
                writeln!(out, "{}", line(&record))?;
                records.push(record);
            }
            Event::Gate(at, GateStatus::Open) => {
                writeln!(
                    out,
                    "{:>6.2}s  ■ gate OPEN: requests go through",
                    at.as_secs_f64()
                )?;
            }
            Event::Gate(at, GateStatus::Closed(closed)) => {
                writeln!(
                    out,
                    "{:>6.2}s  ■ gate CLOSED {}",
                    at.as_secs_f64(),
                    describe_closed(&closed)
                )?;
            }
            Event::Page(at, what) => {
                writeln!(out, "{:>6.2}s  ■ status page: {what}", at.as_secs_f64())?
            }
        }
    }
    launcher.await?;
    let incident = controller.await?;
    if let Some(watcher) = watcher {
        watcher.abort();
    }
    records.sort_by_key(|r| r.id);
    let summary = Summary {
        mode,
        records,
        upstream_attempts: provider.attempts.load(Ordering::SeqCst),
        incident,
        status_polls: page.polls.load(Ordering::SeqCst),
        elapsed: start.elapsed(),
    };
    writeln!(out)?;
    write!(out, "{}", summary.table())?;
    Ok(summary)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let mut mode = Mode::Layers;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--bare" => mode = Mode::Bare,
            "-h" | "--help" => {
                println!("usage: cargo run --example outage_drill [-- --bare]");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?} (try --help)").into()),
        }
    }
    let summary = run(mode, Plan::standard(), &mut io::stdout()).await?;
    if mode == Mode::Layers {
        println!("\nrun `cargo run --example outage_drill -- --bare` for the same drill without the layers");
    } else {
        println!(
            "\n{} of {} requests failed; run without --bare to see the layers at work",
            summary.failed(),
            summary.requests()
        );
    }
    Ok(())
}
