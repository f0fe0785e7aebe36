//! The error a status-page document fails to parse with.

use std::fmt;

/// What kind of document failure this was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PageErrorKind {
    /// The input was empty or only whitespace.
    Empty,
    /// Not JSON at all (an HTML error page, say).
    Syntax,
    /// JSON that stops early.
    Truncated,
    /// Valid JSON of the wrong shape: a missing field or a value of the wrong type.
    Shape,
    /// Larger than the size cap, so not parsed at all. Reported by
    /// [`StatusGate::apply_webhook`](crate::gate::StatusGate::apply_webhook);
    /// the parsers themselves take any length.
    TooLarge,
}

/// A status-page document could not be read.
///
/// Carries the kind, the position and serde's message; never the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageError {
    kind: PageErrorKind,
    line: usize,
    column: usize,
    message: String,
}

impl PageError {
    pub(super) fn empty() -> Self {
        Self {
            kind: PageErrorKind::Empty,
            line: 0,
            column: 0,
            message: "empty document".to_owned(),
        }
    }

    /// A document of `len` bytes refused unread for being over `max`.
    pub(crate) fn too_large(len: usize, max: usize) -> Self {
        Self {
            kind: PageErrorKind::TooLarge,
            line: 0,
            column: 0,
            message: format!("{len} bytes, over the {max}-byte cap"),
        }
    }

    pub(super) fn from_json(err: &serde_json::Error) -> Self {
        use serde_json::error::Category;
        let kind = match err.classify() {
            Category::Eof => PageErrorKind::Truncated,
            Category::Syntax | Category::Io => PageErrorKind::Syntax,
            Category::Data => PageErrorKind::Shape,
        };
        Self {
            kind,
            line: err.line(),
            column: err.column(),
            message: err.to_string(),
        }
    }

    /// What kind of failure this was.
    pub fn kind(&self) -> PageErrorKind {
        self.kind
    }

    /// 1-based line of the failure (0 when not known).
    pub fn line(&self) -> usize {
        self.line
    }

    /// 1-based column of the failure (0 when not known).
    pub fn column(&self) -> usize {
        self.column
    }
}

impl fmt::Display for PageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unreadable status page: {}", self.message)
    }
}

impl std::error::Error for PageError {}
