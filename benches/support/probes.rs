//! Probes for the loopback bench, with no layer of ours: what a request pays
//! on a row for code it runs and for memory it writes, by cache line.
//!
//! - `code`: before each request, runs 128 small functions once each, every
//!   one of them distinct code of about one cache line ([`step`]).
//! - `code_loop`: runs one of those functions 128 times: the same
//!   instructions, on one or two lines of code. What `code` costs more than
//!   `code_loop` is what 128 more lines of code cost a request.
//! - `lines`: writes one byte in each of 128 cache lines of a buffer of the
//!   service's own: what 128 lines of data cost.

use std::hint::black_box;
use std::task::{Context, Poll};

use tower::Service;

/// Cache lines each probe covers: about the lines of code the layers add to
/// a loopback request (benches/JOURNAL.md, section 2, "What a line of code
/// costs this row").
pub(crate) const LINES: usize = 128;

/// A few one-cycle operations with constants of `K`'s own, so that each
/// `K` is a function of its own (64-bit immediates: about 80 bytes of code).
#[inline(never)]
fn step<const K: u64>(x: u64) -> u64 {
    let k = K.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((x ^ k).wrapping_add(k.rotate_left(17)) ^ k.rotate_left(31)).wrapping_add(k >> 3)
        ^ k.rotate_left(47)
}

macro_rules! steps {
    ($x:ident: $($k:literal)*) => {
        $( $x = step::<$k>($x); )*
    };
}

/// [`LINES`] distinct functions, each run once.
#[inline(never)]
fn run_code(mut x: u64) -> u64 {
    steps!(x: 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127);
    x
}

/// One of [`run_code`]'s functions, run as many times.
#[inline(never)]
fn run_code_loop(mut x: u64) -> u64 {
    for _ in 0..LINES {
        x = step::<0>(black_box(x));
    }
    x
}

/// The probe `name` runs before each request: `code`, `code_loop` or `lines`.
#[derive(Clone)]
pub(crate) struct Probe<S> {
    inner: S,
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Code,
    CodeLoop,
    /// One byte a line is written; each clone of the service has its own.
    Lines(Vec<u8>),
}

impl<S> Probe<S> {
    /// `inner` behind the probe `name`, if there is one of that name.
    pub(crate) fn new(name: &str, inner: S) -> Option<Self> {
        let kind = match name {
            "code" => Kind::Code,
            "code_loop" => Kind::CodeLoop,
            "lines" => Kind::Lines(vec![0; LINES * 64]),
            _ => return None,
        };
        Some(Self { inner, kind })
    }
}

impl<S: Service<R>, R> Service<R> for Probe<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> S::Future {
        match &mut self.kind {
            Kind::Code => {
                black_box(run_code(black_box(1)));
            }
            Kind::CodeLoop => {
                black_box(run_code_loop(black_box(1)));
            }
            Kind::Lines(buf) => {
                for byte in buf.iter_mut().step_by(64) {
                    *byte = byte.wrapping_add(1);
                }
                black_box(buf);
            }
        }
        self.inner.call(request)
    }
}
