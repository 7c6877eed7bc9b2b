//! The chat-completion request our runs send, the reply they get, and the backend trait.

use std::future::Future;

use serde::{Deserialize, Serialize};

use crate::prompts::Messages;

/// One chat-completion request. Its JSON form (without the API key, which is never part of
/// it) is what the response cache hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name.
    pub model: String,
    /// The conversation.
    pub messages: Messages,
    /// Completion length limit.
    pub max_tokens: u32,
    /// Sampling temperature; the server's default (1 for OpenAI, as the tutorial) when unset.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub temperature: Option<f32>,
}

/// Tokens used by a request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: u64,
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, o: Self) {
        self.prompt_tokens += o.prompt_tokens;
        self.completion_tokens += o.completion_tokens;
    }
}

/// A reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatReply {
    /// The first choice's text, trimmed.
    pub content: String,
    /// Tokens used (as the server reported; zero when it did not).
    pub usage: Usage,
    /// Whether the reply came from the on-disk cache (no request sent).
    #[serde(default)]
    pub cached: bool,
}

/// A request that failed for good (after the retries the backend allows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct RequestFailure {
    /// What went wrong (status, error body or transport error; never the API key).
    pub message: String,
}

/// Something that answers chat requests: the OpenAI-compatible client, or a test double.
pub trait ChatBackend: Send + Sync {
    /// Answers one request.
    fn complete(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<ChatReply, RequestFailure>> + Send;
}

impl<T: ChatBackend> ChatBackend for std::sync::Arc<T> {
    fn complete(
        &self,
        request: &ChatRequest,
    ) -> impl Future<Output = Result<ChatReply, RequestFailure>> + Send {
        (**self).complete(request)
    }
}
