//! `[metrics]` and `[log]`: where metrics are served and how the broker logs.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{opt_socket_addr, Config};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsCfg {
    /// Served on every http/https listener.
    pub path: String,
    /// Optional dedicated plain-HTTP listener for metrics only.
    #[serde(
        deserialize_with = "opt_socket_addr",
        skip_serializing_if = "Option::is_none"
    )]
    pub bind: Option<SocketAddr>,
}

impl Default for MetricsCfg {
    fn default() -> Self {
        MetricsCfg {
            path: "/metrics".to_owned(),
            bind: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Log {
    /// A `tracing` filter (`info`, `info,hubmq_net=debug`); `RUST_LOG` / `HUBMQ_LOG` win.
    pub level: String,
    pub format: LogFormat,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

impl Config {
    pub(super) fn validate_metrics(&self) -> Result<(), (String, String)> {
        let path = &self.metrics.path;
        if !path.starts_with('/') || path.len() < 2 || path.contains(['?', '#', ' ']) {
            return Err((
                "metrics.path".into(),
                format!("{path:?} must be an absolute path such as \"/metrics\""),
            ));
        }
        // The data and admin routes must stay reachable.
        for taken in ["/clients/", "/api/", "/healthz", "/readyz", "/mqtt"] {
            let taken_trim = taken.trim_end_matches('/');
            if path.starts_with(taken) || path == taken_trim {
                return Err((
                    "metrics.path".into(),
                    format!("{path:?} collides with the {taken} route"),
                ));
            }
        }
        Ok(())
    }

    pub(super) fn validate_log(&self) -> Result<(), (String, String)> {
        if self.log.level.trim().is_empty() {
            return Err((
                "log.level".into(),
                "must not be empty (e.g. \"info\")".into(),
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return Err((
                "log.level".into(),
                format!("invalid filter {:?}: {e}", self.log.level),
            ));
        }
        Ok(())
    }
}
