//! The blocking HTTP client behind the upstream: `ureq` (rustls with ring, keep-alive pool,
//! per-request deadline, no redirects) driven by dedicated threads, never by a worker.
//!
//! Each request first passes webhook validation (§3) for its resolved URL, once per process.
//! Every call is recorded in `hubmq_upstream_requests_total{event,outcome}` and
//! `hubmq_upstream_request_duration_seconds`.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubmq_metrics::{record_upstream, UpstreamEvent, UpstreamOutcome};

use super::event::{validation_passes, validation_request};
use super::{CallError, HttpRequest, HttpResponse, UpstreamSettings};

/// Largest response body read; anything longer is cut (upstream answers are small).
const MAX_BODY: u64 = 1 << 20;

/// Backoff before the retries of an unblocking event (§6).
const RETRY_DELAYS: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(3),
    Duration::from_secs(5),
];

/// Threads serving unblocking events; each owns a queue (sharded by connection id).
const NOTIFY_THREADS: usize = 2;

type Reply = flume::Sender<Result<HttpResponse, CallError>>;

struct Job {
    validate_url: String,
    req: HttpRequest,
    event: UpstreamEvent,
    reply: Option<Reply>,
}

/// State shared by the client threads.
struct Ctx {
    agent: ureq::Agent,
    validate: bool,
    public_host: String,
    /// Resolved URLs that passed validation (success cached for the process lifetime).
    validated: Mutex<HashSet<String>>,
}

pub struct Pool {
    blocking: flume::Sender<Job>,
    notify: Vec<flume::Sender<Job>>,
}

impl Pool {
    pub fn start(s: &UpstreamSettings) -> std::io::Result<Pool> {
        let agent = ureq::AgentBuilder::new()
            .redirects(0)
            .timeout_connect(Duration::from_secs(5))
            .max_idle_connections(64)
            .max_idle_connections_per_host(16)
            .user_agent(concat!("hubmq/", env!("CARGO_PKG_VERSION")))
            .build();
        let ctx = Arc::new(Ctx {
            agent,
            validate: s.validate_webhooks,
            public_host: s.public_host.clone(),
            validated: Mutex::new(HashSet::new()),
        });
        let (tx, rx) = flume::bounded::<Job>(s.queue.max(1));
        for i in 0..s.threads.max(1) {
            let (rx, ctx) = (rx.clone(), ctx.clone());
            std::thread::Builder::new()
                .name(format!("hubmq-upstream-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        let res = ctx.run(&job);
                        if let Some(reply) = job.reply {
                            let _ = reply.send(res);
                        }
                    }
                })?;
        }
        let mut notify = Vec::new();
        for i in 0..NOTIFY_THREADS {
            let (ntx, nrx) = flume::bounded::<Job>(s.queue.max(1));
            let ctx = ctx.clone();
            std::thread::Builder::new()
                .name(format!("hubmq-upstream-notify-{i}"))
                .spawn(move || {
                    while let Ok(job) = nrx.recv() {
                        ctx.run_with_retries(&job);
                    }
                })?;
            notify.push(ntx);
        }
        Ok(Pool {
            blocking: tx,
            notify,
        })
    }

    /// Queues a blocking request; the answer arrives on the returned channel.
    pub fn submit(
        &self,
        validate_url: String,
        req: HttpRequest,
        event: UpstreamEvent,
    ) -> Result<flume::Receiver<Result<HttpResponse, CallError>>, CallError> {
        let (tx, rx) = flume::bounded(1);
        let job = Job {
            validate_url,
            req,
            event,
            reply: Some(tx),
        };
        match self.blocking.try_send(job) {
            Ok(()) => Ok(rx),
            Err(_) => {
                tracing::warn!("upstream request queue full; request refused");
                record_upstream(event, UpstreamOutcome::Error, 0.0);
                Err(CallError::Overloaded)
            }
        }
    }

    /// Queues an unblocking request on the queue of `shard`.
    pub fn notify(
        &self,
        validate_url: String,
        req: HttpRequest,
        event: UpstreamEvent,
        shard: &str,
    ) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        shard.hash(&mut h);
        let i = (h.finish() % self.notify.len().max(1) as u64) as usize;
        let Some(q) = self.notify.get(i) else { return };
        let job = Job {
            validate_url,
            req,
            event,
            reply: None,
        };
        if q.try_send(job).is_err() {
            tracing::warn!(
                event = event.label(),
                "upstream event queue full; event dropped"
            );
            metrics::counter!("hubmq_upstream_dropped_total", "event" => event.label())
                .increment(1);
        }
    }
}

impl Ctx {
    fn run(&self, job: &Job) -> Result<HttpResponse, CallError> {
        if let Err(e) = self.ensure_validated(&job.validate_url) {
            record_upstream(job.event, UpstreamOutcome::Error, 0.0);
            return Err(e);
        }
        let started = Instant::now();
        let res = execute(&self.agent, &job.req);
        let outcome = match &res {
            Ok(r) if (200..300).contains(&r.status) => UpstreamOutcome::Ok,
            Ok(_) => UpstreamOutcome::Rejected,
            Err(CallError::Timeout) => UpstreamOutcome::Timeout,
            Err(_) => UpstreamOutcome::Error,
        };
        record_upstream(job.event, outcome, started.elapsed().as_secs_f64());
        if let Err(e) = &res {
            tracing::warn!(url = %job.req.url, event = job.event.label(), error = %e, "upstream call failed");
        }
        res
    }

    /// Unblocking events: up to 3 retries on transport errors, 408 and 5xx; the answer is only
    /// logged.
    fn run_with_retries(&self, job: &Job) {
        for attempt in 0..=RETRY_DELAYS.len() {
            let res = self.run(job);
            let transient = match &res {
                Ok(r) => r.status == 408 || r.status >= 500,
                Err(CallError::Timeout | CallError::Unreachable(_)) => true,
                Err(_) => false,
            };
            match &res {
                Ok(r) if (200..300).contains(&r.status) => return,
                Ok(r) => {
                    tracing::info!(url = %job.req.url, status = r.status, "upstream event answered with an error")
                }
                Err(_) => {}
            }
            if !transient {
                return;
            }
            if let Some(d) = RETRY_DELAYS.get(attempt) {
                std::thread::sleep(*d);
            }
        }
    }

    fn ensure_validated(&self, url: &str) -> Result<(), CallError> {
        // An empty URL: a request that is no Web PubSub event (nothing to validate).
        if !self.validate || url.is_empty() {
            return Ok(());
        }
        if self
            .validated
            .lock()
            .map(|v| v.contains(url))
            .unwrap_or(false)
        {
            return Ok(());
        }
        let req = validation_request(url, &self.public_host);
        match execute(&self.agent, &req) {
            Ok(r) if validation_passes(r.status, &r.headers, &self.public_host) => {
                if let Ok(mut v) = self.validated.lock() {
                    v.insert(url.to_owned());
                }
                Ok(())
            }
            Ok(r) => {
                tracing::error!(
                    url,
                    status = r.status,
                    "upstream webhook validation failed (no matching WebHook-Allowed-Origin)"
                );
                Err(CallError::ValidationFailed)
            }
            Err(e) => {
                tracing::error!(url, error = %e, "upstream webhook validation request failed");
                Err(CallError::ValidationFailed)
            }
        }
    }
}

/// Performs one request; any HTTP status is an `Ok` response.
fn execute(agent: &ureq::Agent, req: &HttpRequest) -> Result<HttpResponse, CallError> {
    let mut r = agent
        .request(req.method.as_str(), &req.url)
        .timeout(req.timeout);
    for (k, v) in &req.headers {
        r = r.set(k, v);
    }
    let resp = match r.send_bytes(&req.body) {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(ureq::Error::Transport(t)) => return Err(transport_error(&t)),
    };
    let status = resp.status();
    let mut headers = Vec::new();
    for name in resp.headers_names() {
        for v in resp.all(&name) {
            headers.push((name.clone(), v.to_owned()));
        }
    }
    let mut body = Vec::new();
    if let Err(e) = resp.into_reader().take(MAX_BODY).read_to_end(&mut body) {
        return Err(if e.kind() == std::io::ErrorKind::TimedOut {
            CallError::Timeout
        } else {
            CallError::Unreachable(e.to_string())
        });
    }
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn transport_error(t: &ureq::Transport) -> CallError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return CallError::Timeout;
            }
        }
        source = e.source();
    }
    CallError::Unreachable(t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::TcpListener;

    use super::super::Method;

    /// A one-shot HTTP server answering each connection with `answer`; returns its URL and
    /// the raw requests it saw.
    fn serve(answers: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut c, _)) = l.accept() else { return };
                let mut buf = vec![0u8; 8192];
                let n = c.read(&mut buf).unwrap_or(0);
                s.lock()
                    .expect("lock")
                    .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                let _ = c.write_all(answer.as_bytes());
            }
        });
        (url, seen)
    }

    fn settings() -> UpstreamSettings {
        UpstreamSettings {
            public_host: "hubmq.test".into(),
            threads: 1,
            ..UpstreamSettings::default()
        }
    }

    fn post(url: &str, timeout: Duration) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: url.to_owned(),
            headers: vec![("ce-id".into(), "0".into())],
            body: b"{}".to_vec(),
            timeout,
        }
    }

    #[test]
    fn validates_once_then_posts_and_reads_error_statuses() {
        let (url, seen) = serve(vec![
            "HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: *\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\nConnection: close\r\nX-A: 1\r\n\r\nnope",
            "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
        ]);
        let pool = Pool::start(&settings()).expect("pool");
        let ev = UpstreamEvent::Connect;
        let rx = pool
            .submit(
                format!("{url}/validate"),
                post(&format!("{url}/connect"), Duration::from_secs(5)),
                ev,
            )
            .expect("queued");
        let r = rx.recv().expect("reply").expect("response");
        assert_eq!((r.status, r.body.as_slice()), (401, &b"nope"[..]));
        assert!(r
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("x-a") && v == "1"));
        let rx = pool
            .submit(
                format!("{url}/validate"),
                post(&format!("{url}/connect"), Duration::from_secs(5)),
                ev,
            )
            .expect("queued");
        assert_eq!(rx.recv().expect("reply").expect("response").status, 204);
        let seen = seen.lock().expect("lock");
        assert!(
            seen[0].starts_with("OPTIONS /validate HTTP/1.1"),
            "{}",
            seen[0]
        );
        assert!(seen[0]
            .to_ascii_lowercase()
            .contains("webhook-request-origin: hubmq.test"));
        assert!(seen[1].starts_with("POST /connect HTTP/1.1"), "{}", seen[1]);
        assert!(
            seen[2].starts_with("POST /connect"),
            "validation is cached: {}",
            seen[2]
        );
    }

    #[test]
    fn failed_validation_and_dead_upstream_are_errors() {
        let (url, _) = serve(vec![
            "HTTP/1.1 200 OK\r\nWebHook-Allowed-Origin: other.host\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ]);
        let pool = Pool::start(&settings()).expect("pool");
        let rx = pool
            .submit(
                format!("{url}/v"),
                post(&format!("{url}/c"), Duration::from_secs(5)),
                UpstreamEvent::Connect,
            )
            .expect("queued");
        assert_eq!(rx.recv().expect("reply"), Err(CallError::ValidationFailed));

        let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", dead.local_addr().expect("addr"));
        drop(dead);
        let mut s = settings();
        s.validate_webhooks = false;
        let pool = Pool::start(&s).expect("pool");
        let rx = pool
            .submit(
                String::new(),
                post(&format!("{url}/c"), Duration::from_secs(5)),
                UpstreamEvent::Connect,
            )
            .expect("queued");
        assert!(matches!(
            rx.recv().expect("reply"),
            Err(CallError::Unreachable(_))
        ));
    }

    #[test]
    fn slow_upstream_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", l.local_addr().expect("addr"));
        std::thread::spawn(move || {
            let conn = l.accept();
            std::thread::sleep(Duration::from_secs(3));
            drop(conn);
        });
        let mut s = settings();
        s.validate_webhooks = false;
        let pool = Pool::start(&s).expect("pool");
        let t = Instant::now();
        let rx = pool
            .submit(
                String::new(),
                post(&format!("{url}/c"), Duration::from_millis(300)),
                UpstreamEvent::Connect,
            )
            .expect("queued");
        assert_eq!(rx.recv().expect("reply"), Err(CallError::Timeout));
        assert!(t.elapsed() < Duration::from_secs(2));
    }
}
