//! The admin endpoints, sans-IO (CONTRACT "Admin endpoints"): per-core counters rendered in the
//! Prometheus text format, and the HTTP/1.1 answers to `GET /metrics`, `/healthz` and
//! `/bindings/{aor}`. The runtime accepts the connections, feeds the bytes to
//! [`handle_request`] and writes back what it appends; nothing here does I/O or reads a clock.

mod http;
mod metrics;

pub use self::http::{
    handle_request, AdminView, Handled, MAX_BODY, MAX_HEAD, MAX_HEADERS, MAX_REQUEST,
};
pub use self::metrics::{CloseCause, CoreMetrics, Metrics, Refusal, REGISTER_STATUSES};
