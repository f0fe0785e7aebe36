//! A loopback HTTP/1 server that plays a script of replies, standing in for
//! the provider's API. Real TCP on 127.0.0.1, real hyper on both ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// One scripted reply.
#[derive(Clone, Debug)]
pub(crate) enum Reply {
    /// A response with these headers and body chunks.
    Respond {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<Bytes>,
    },
    /// Close the connection without answering.
    Reset,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Self {
        Reply::Respond {
            status,
            headers: Vec::new(),
            chunks: Vec::new(),
        }
    }

    /// The provider's JSON error body for `kind`.
    pub(crate) fn error(status: u16, kind: &str) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .header("request-id", &format!("req_{status}_{kind}"))
            .body(format!(
                r#"{{"type":"error","error":{{"type":"{kind}","message":"scripted {kind}"}}}}"#
            ))
    }

    pub(crate) fn ok(body: &str) -> Self {
        Self::status(200)
            .header("content-type", "application/json")
            .body(body.to_owned())
    }

    pub(crate) fn header(mut self, name: &'static str, value: &str) -> Self {
        if let Reply::Respond { headers, .. } = &mut self {
            headers.push((name, value.to_owned()));
        }
        self
    }

    pub(crate) fn body(self, body: impl Into<Bytes>) -> Self {
        self.chunks(vec![body.into()])
    }

    pub(crate) fn chunks(mut self, body: Vec<Bytes>) -> Self {
        if let Reply::Respond { chunks, .. } = &mut self {
            *chunks = body;
        }
        self
    }
}

/// What the server received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    pub(crate) method: Method,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    last: Option<Reply>,
    seen: Vec<Seen>,
}

/// The scripted provider.
#[derive(Clone)]
pub(crate) struct Provider {
    pub(crate) addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Provider {
    /// Starts a provider that plays `script`, then repeats its last reply.
    pub(crate) async fn start(script: Vec<Reply>) -> Provider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State {
            script: script.into(),
            ..State::default()
        }));
        let provider = Provider { addr, state };
        let server = provider.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let server = server.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let server = server.clone();
                        async move { server.answer(request).await }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        provider
    }

    async fn answer(&self, request: Request<Incoming>) -> Result<Response<Chunks>, std::io::Error> {
        let (parts, body) = request.into_parts();
        let body = body
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        let reply = {
            let mut state = self.state.lock().unwrap();
            state.seen.push(Seen {
                method: parts.method,
                headers: parts.headers,
                body,
            });
            let next = state.script.pop_front().or_else(|| state.last.clone());
            state.last = next.clone();
            next.unwrap_or(Reply::Reset)
        };
        match reply {
            Reply::Reset => Err(std::io::Error::other("scripted reset")),
            Reply::Respond {
                status,
                headers,
                chunks,
            } => {
                let mut response = Response::new(Chunks::new(chunks));
                *response.status_mut() = StatusCode::from_u16(status).unwrap();
                for (name, value) in headers {
                    response.headers_mut().append(name, value.parse().unwrap());
                }
                Ok(response)
            }
        }
    }

    /// Plays `script` from the next request on (then repeats its last reply),
    /// in place of what was left of the previous one.
    pub(crate) fn play(&self, script: Vec<Reply>) {
        let mut state = self.state.lock().unwrap();
        state.script = script.into();
        state.last = None;
    }

    /// Every request received so far.
    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// How many requests were received.
    pub(crate) fn hits(&self) -> usize {
        self.state.lock().unwrap().seen.len()
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// The reference client of these tests: hyper-util's legacy client.
pub(crate) fn client<B>() -> Client<HttpConnector, B>
where
    B: hyper::body::Body + Send + 'static + Unpin,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

/// A body of chunks, one frame each.
pub(crate) struct Chunks(VecDeque<Bytes>);

impl Chunks {
    pub(crate) fn new(chunks: Vec<Bytes>) -> Self {
        Chunks(chunks.into())
    }
}

impl hyper::body::Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        std::task::Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }
}
