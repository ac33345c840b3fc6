//! The request entry point: routing of non-resource paths, content negotiation, body limits and
//! the response helpers shared by the handlers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use flotilla_store::Store;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use parking_lot::RwLock;
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::Registry;
use crate::request::{parse_resource_path, Query};
use crate::schema::{Schema, GIT_VERSION, KUBERNETES_VERSION};

/// The response body type: a full buffer, or a stream for watches.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// The largest request body accepted, as kube-apiserver's default (3 MiB).
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// Tuning of the API server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// How often a watch with `allowWatchBookmarks` receives a bookmark.
    pub bookmark_interval: Duration,
    /// The longest a watch may last without `timeoutSeconds` (kube-apiserver picks 30-60 min).
    pub max_watch: Duration,
    /// How long a read at a future resourceVersion waits before 504.
    pub rv_wait: Duration,
    /// How long Events are kept after their last occurrence (kube-apiserver's `--event-ttl`).
    pub event_ttl: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(60),
            max_watch: Duration::from_secs(1800),
            rv_wait: Duration::from_secs(3),
            event_ttl: Duration::from_secs(3600),
        }
    }
}

/// A Kubernetes-compatible API server over a [`Store`]. Cheap to clone.
#[derive(Clone)]
pub struct ApiServer {
    pub(crate) state: Arc<State>,
}

pub(crate) struct State {
    pub store: Store,
    pub registry: RwLock<Registry>,
    pub schema: Arc<Schema>,
    pub config: ServerConfig,
    pub ready: std::sync::atomic::AtomicBool,
    /// Set once the server shuts down; background tasks and watches end.
    pub shutdown: tokio::sync::watch::Sender<bool>,
    /// Validating admission checks registered by the embedding program, per (group, plural).
    pub validators: RwLock<Vec<(String, String, ValidateFn)>>,
    /// Parsed Roles and bindings for authorization.
    pub rbac: crate::auth::RbacCache,
    /// Whether this replica runs the controllers (always, unless replicas share etcd).
    pub leadership: RwLock<flotilla_store::Leadership>,
}

/// A validating admission check: given the new object and, on updates, the current one, the
/// field causes that make the write invalid (none to admit it).
pub type ValidateFn = Arc<dyn Fn(&Value, Option<&Value>) -> Vec<crate::Cause> + Send + Sync>;

/// How the client wants a response encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// Plain JSON objects and lists.
    Json,
    /// YAML.
    Yaml,
    /// `meta.k8s.io` Table (version v1 or v1beta1).
    Table(&'static str),
    /// `meta.k8s.io/v1` PartialObjectMetadata(List).
    Metadata,
    /// The OpenAPI v2 document in protobuf (the media type it was asked for); only
    /// `/openapi/v2` answers it.
    OpenApiV2Protobuf(&'static str),
    /// Aggregated discovery (`apidiscovery.k8s.io/v2` APIGroupDiscoveryList); only `/api` and
    /// `/apis` answer it.
    AggregatedDiscovery,
}

/// The media type of aggregated discovery responses.
pub(crate) const AGGREGATED_DISCOVERY: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

impl ApiServer {
    /// An API server over `store` with the built-in kinds.
    pub fn new(store: Store, config: ServerConfig) -> Self {
        Self {
            state: Arc::new(State {
                store,
                registry: RwLock::new(Registry::default()),
                schema: Schema::builtin(),
                config,
                ready: std::sync::atomic::AtomicBool::new(false),
                shutdown: tokio::sync::watch::channel(false).0,
                validators: RwLock::new(Vec::new()),
                rbac: Default::default(),
                leadership: RwLock::new(flotilla_store::Leadership::always()),
            }),
        }
    }

    /// Sets whether this replica runs the controllers. Call before [`Self::start`]; without it
    /// the server always does (one replica).
    pub fn set_leadership(&self, leadership: flotilla_store::Leadership) {
        *self.state.leadership.write() = leadership;
    }

    /// This replica's leadership (to resign it on shutdown).
    pub fn leadership(&self) -> flotilla_store::Leadership {
        self.state.leadership.read().clone()
    }

    /// Whether this replica runs the controllers now.
    pub fn is_leader(&self) -> bool {
        self.state.leadership.read().is_leader()
    }

    /// Runs a controller while this replica leads: `run` starts when leadership is gained and
    /// is dropped (cancelled) when it is lost or the server shuts down, and starts afresh on
    /// the next term. Controllers are level-triggered, so a new term resumes from the store.
    pub fn spawn_controller<F, Fut>(&self, name: &'static str, run: F)
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let leadership = self.state.leadership.read().clone();
        leadership.spawn_controller(name, self.stopped(), run);
    }

    /// Runs `task` on this replica, leader or not, until the server stops: for what every
    /// replica must do for itself (each serves the CRDs any replica writes). Controllers that
    /// change objects run through [`Self::spawn_controller`] instead.
    pub fn spawn_follower<F>(&self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stopped = self.stopped();
        tokio::spawn(async move {
            tokio::select! {
                _ = stopped => {}
                _ = task => tracing::debug!(follower = name, "ended"),
            }
        });
    }

    /// Registers a validating admission check for objects of `group`/`plural` (every version),
    /// run after schema validation and defaulting on every create and update.
    pub fn add_validator(&self, group: &str, plural: &str, f: ValidateFn) {
        self.state
            .validators
            .write()
            .push((group.to_string(), plural.to_string(), f));
    }

    pub(crate) fn run_validators(
        &self,
        res: &crate::registry::Resource,
        obj: &Value,
        old: Option<&Value>,
    ) -> Vec<crate::Cause> {
        let fs: Vec<ValidateFn> = self
            .state
            .validators
            .read()
            .iter()
            .filter(|(g, p, _)| *g == res.group && *p == res.plural)
            .map(|(_, _, f)| f.clone())
            .collect();
        fs.iter().flat_map(|f| f(obj, old)).collect()
    }

    /// The store the server writes to.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Stops the server's background work: controllers end and open watches close, so the
    /// store is released once the last request finishes.
    pub fn shutdown(&self) {
        self.state
            .ready
            .store(false, std::sync::atomic::Ordering::SeqCst);
        self.state.shutdown.send_replace(true);
    }

    /// Resolves once [`Self::shutdown`] has been called.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.state.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }

    /// Marks the server ready (`/readyz` answers ok from now on).
    pub fn set_ready(&self) {
        self.state
            .ready
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Handles one request. The caller has authenticated it.
    pub async fn handle<B>(&self, req: Request<B>) -> Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (parts, body) = req.into_parts();
        tracing::debug!(method = %parts.method, uri = %parts.uri, content_type = ?parts.headers.get(header::CONTENT_TYPE), "request");
        let query = Query::parse(parts.uri.query());
        if let Some(d) = query.get("dryRun").filter(|d| !d.is_empty() && *d != "All") {
            // Validated as kube-apiserver validates the request's options object.
            let options = match parts.method {
                Method::POST => "CreateOptions",
                Method::PUT => "UpdateOptions",
                Method::PATCH => "PatchOptions",
                Method::DELETE => "DeleteOptions",
                _ => "GetOptions",
            };
            return error_response(&ApiError::invalid(
                "meta.k8s.io",
                options,
                "",
                vec![crate::errors::Cause::not_supported(
                    "dryRun",
                    &serde_json::json!([d]),
                    &["All"],
                )],
            ));
        }
        let path = parts.uri.path().to_string();
        let output = match negotiate(parts.headers.get(header::ACCEPT), &path) {
            Ok(o) => o,
            Err(e) => return error_response(&e),
        };
        let body = if matches!(
            parts.method,
            Method::POST | Method::PUT | Method::PATCH | Method::DELETE
        ) {
            match Limited::new(body, MAX_BODY).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    let too_large = e
                        .downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some();
                    return error_response(&if too_large {
                        ApiError::too_large(MAX_BODY)
                    } else {
                        ApiError::bad_request(format!("reading the request body: {e}"))
                    });
                }
            }
        } else {
            Bytes::new()
        };
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let user = parts
            .extensions
            .get::<Arc<crate::auth::UserInfo>>()
            .cloned();
        if let Some(u) = &user {
            if let Err(e) = self.authorize(u, &parts.method, &path, &query) {
                return error_response(&e);
            }
        }
        let ctx = crate::rest::Ctx {
            user,
            method: parts.method.clone(),
            query,
            output,
            content_type,
            body,
            user_agent,
        };
        match self.route(&path, ctx).await {
            Ok(r) => r,
            Err(e) => error_response(&e),
        }
    }

    /// RBAC for a request of an authenticated user; health and version are public.
    fn authorize(
        &self,
        user: &crate::auth::UserInfo,
        method: &Method,
        path: &str,
        query: &Query,
    ) -> ApiResult<()> {
        use crate::auth::{allowed, forbidden, verb_of, Action};
        let info;
        let action = match parse_resource_path(path) {
            Some(i) => {
                info = i;
                Action::Resource {
                    verb: verb_of(method, &info, query.flag("watch")),
                    info: &info,
                }
            }
            None => {
                let p = path.trim_end_matches('/');
                if matches!(p, "/healthz" | "/livez" | "/readyz" | "/version" | "") {
                    return Ok(());
                }
                Action::NonResource {
                    verb: method.as_str().to_ascii_lowercase(),
                    path: p,
                }
            }
        };
        if allowed(&self.state.store, &self.state.rbac, user, &action) {
            Ok(())
        } else {
            Err(forbidden(user, &action))
        }
    }

    async fn route(&self, path: &str, ctx: crate::rest::Ctx) -> ApiResult<Response<ResponseBody>> {
        if let Some(info) = parse_resource_path(path) {
            return self.resource_request(info, ctx).await;
        }
        let get_only = |ctx: &crate::rest::Ctx| -> ApiResult<()> {
            if ctx.method == Method::GET || ctx.method == Method::HEAD {
                Ok(())
            } else {
                Err(ApiError::method_not_allowed(ctx.method.as_str(), path))
            }
        };
        match path.trim_end_matches('/') {
            "/flotilla/backup" => {
                get_only(&ctx)?;
                self.backup().await
            }
            "/version" => {
                get_only(&ctx)?;
                Ok(json_response(StatusCode::OK, &version_info()))
            }
            p if p == "/healthz"
                || p == "/livez"
                || p.starts_with("/healthz/")
                || p.starts_with("/livez/") =>
            {
                Ok(text_response(StatusCode::OK, "ok"))
            }
            p if p == "/readyz" || p.starts_with("/readyz/") => {
                if self.state.ready.load(std::sync::atomic::Ordering::SeqCst) {
                    Ok(text_response(StatusCode::OK, "ok"))
                } else {
                    Ok(text_response(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "[-]informer-sync failed: not ready yet\nreadyz check failed",
                    ))
                }
            }
            p if p.starts_with("/openapi") => {
                get_only(&ctx)?;
                crate::openapi::serve(self, p, &ctx)
            }
            "/metrics" => {
                get_only(&ctx)?;
                Ok(bytes_response(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    Bytes::from(self.metrics()),
                ))
            }
            _ => {
                get_only(&ctx)?;
                crate::discovery::serve(self, path.trim_end_matches('/'), &ctx)
            }
        }
    }
}

impl ApiServer {
    /// The Prometheus metrics kube components share with Flotilla so far: whether this
    /// replica leads, as client-go's leader election reports it (the name is the leader
    /// Lease's, `flotilla-hub`).
    fn metrics(&self) -> String {
        format!(
            "# HELP leader_election_master_status [ALPHA] Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.\n\
             # TYPE leader_election_master_status gauge\n\
             leader_election_master_status{{name=\"flotilla-hub\"}} {}\n",
            u8::from(self.leadership().is_leader())
        )
    }
}

/// `/version`.
pub fn version_info() -> Value {
    json!({
        "major": KUBERNETES_VERSION.0,
        "minor": KUBERNETES_VERSION.1,
        "gitVersion": GIT_VERSION,
        "gitCommit": "flotilla",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "n/a (flotilla, rust)",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a }),
    })
}

/// Chooses the response encoding from an Accept header, for a request to `path`: media types
/// only some paths serve (OpenAPI v2 protobuf, aggregated discovery) are passed over elsewhere,
/// so the client's next choice applies, as kube-apiserver negotiates per endpoint.
pub(crate) fn negotiate(accept: Option<&HeaderValue>, path: &str) -> ApiResult<Output> {
    let Some(accept) = accept.and_then(|a| a.to_str().ok()) else {
        return Ok(Output::Json);
    };
    let mut fallback = None;
    for media in accept.split(',') {
        let mut params = media.split(';').map(str::trim);
        let ty = params.next().unwrap_or("");
        let mut as_ = "";
        let mut g = "";
        let mut v = "";
        for p in params {
            match p.split_once('=') {
                Some(("as", x)) => as_ = x,
                Some(("g", x)) => g = x,
                Some(("v", x)) => v = x,
                _ => {}
            }
        }
        if let Some(m) = crate::openapi_proto::MEDIA_TYPES.iter().find(|m| **m == ty) {
            if path == "/openapi/v2" {
                return Ok(Output::OpenApiV2Protobuf(m));
            }
            continue;
        }
        let json_like = matches!(ty, "application/json" | "*/*" | "application/*");
        if json_like && (g, v, as_) == ("apidiscovery.k8s.io", "v2", "APIGroupDiscoveryList") {
            if matches!(path.trim_end_matches('/'), "/api" | "/apis") {
                return Ok(Output::AggregatedDiscovery);
            }
            continue;
        }
        if json_like && g == "meta.k8s.io" {
            match (as_, v) {
                ("Table", "v1") => return Ok(Output::Table("v1")),
                ("Table", "v1beta1") => return Ok(Output::Table("v1beta1")),
                ("PartialObjectMetadata" | "PartialObjectMetadataList", "v1") => {
                    return Ok(Output::Metadata)
                }
                _ => continue,
            }
        }
        if !as_.is_empty() {
            // An aggregated-discovery or other typed request we do not serve: skip it so the
            // client's fallback media type is used.
            continue;
        }
        if json_like {
            fallback.get_or_insert(Output::Json);
        } else if ty == "application/yaml" {
            fallback.get_or_insert(Output::Yaml);
        }
    }
    fallback.ok_or_else(|| {
        let segments = path.trim_matches('/').split('/').count();
        let discovery = (path.starts_with("/api/") || path == "/api") && segments <= 2
            || (path.starts_with("/apis/") || path == "/apis") && segments <= 3;
        if discovery {
            ApiError::discovery_not_acceptable()
        } else {
            ApiError::not_acceptable()
        }
    })
}

impl ApiServer {
    /// `GET /flotilla/backup`: every object at one consistent revision, as the JSON lines of
    /// [`flotilla_store::backup`], streamed.
    async fn backup(&self) -> ApiResult<Response<ResponseBody>> {
        use flotilla_store::backup;
        self.state
            .store
            .sync()
            .await
            .map_err(crate::rest::sync_error)?;
        let snap = self.state.store.snapshot();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            if tx.send(backup::header(&snap)).await.is_err() {
                return;
            }
            let mut n = 0;
            let mut chunk = Vec::with_capacity(1 << 20);
            for o in snap.range("/", None) {
                chunk.extend_from_slice(&backup::object_line(o));
                n += 1;
                if chunk.len() >= 1 << 20 {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(1 << 20));
                    if tx.send(Bytes::from(full)).await.is_err() {
                        return;
                    }
                }
            }
            chunk.extend_from_slice(&backup::trailer(n));
            let _ = tx.send(Bytes::from(chunk)).await;
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let body = http_body_util::StreamBody::new(futures::StreamExt::map(stream, |b| {
            Ok::<_, Infallible>(hyper::body::Frame::data(b))
        }));
        let mut r = Response::new(BodyExt::boxed(body));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-ndjson"),
        );
        Ok(r)
    }
}

/// A JSON response.
pub fn json_response(code: StatusCode, v: &Value) -> Response<ResponseBody> {
    bytes_response(
        code,
        "application/json",
        Bytes::from(serde_json::to_vec(v).expect("JSON values encode")),
    )
}

/// A response with raw bytes.
pub fn bytes_response(code: StatusCode, content_type: &str, b: Bytes) -> Response<ResponseBody> {
    let mut r = Response::new(Full::new(b).boxed());
    *r.status_mut() = code;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(content_type).expect("static content types are valid"),
    );
    r
}

fn text_response(code: StatusCode, text: &'static str) -> Response<ResponseBody> {
    bytes_response(
        code,
        "text/plain; charset=utf-8",
        Bytes::from_static(text.as_bytes()),
    )
}

/// The Status response of an error.
pub fn error_response(e: &ApiError) -> Response<ResponseBody> {
    if e.plain_text {
        return bytes_response(
            StatusCode::NOT_FOUND,
            "text/plain; charset=utf-8",
            Bytes::from(e.message.clone()),
        );
    }
    json_response(
        StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        &e.to_status(),
    )
}
