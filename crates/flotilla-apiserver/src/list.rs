//! List and watch: selectors, paging at one revision, resourceVersion semantics, bookmarks.

use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine;
use bytes::{Bytes, BytesMut};
use flotilla_store::{EventKind, Object, Snapshot};
use http::{Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{json, Value};

use crate::errors::{ApiError, ApiResult};
use crate::registry::Resource;
use crate::rest::{parse, store_error, Ctx};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::server::{bytes_response, json_response, ApiServer, Output, ResponseBody};

/// The namespace and name encoded in a storage key.
pub(crate) fn ns_name(res: &Resource, key: &str) -> (Option<String>, String) {
    let rest = &key[res.key_prefix(None).len()..];
    match (res.namespaced, rest.split_once('/')) {
        (true, Some((ns, name))) => (Some(ns.to_string()), name.to_string()),
        _ => (None, rest.to_string()),
    }
}

/// Label and field selectors of a list, watch or deletecollection.
pub(crate) struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub fn from_query(res: &Resource, q: &crate::request::Query) -> ApiResult<Self> {
        let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""))
            .map_err(ApiError::bad_request)?;
        for r in &fields.0 {
            let known = matches!(r.field.as_str(), "metadata.name" | "metadata.namespace")
                || res.selectable_fields.iter().any(|f| f == &r.field);
            if !known {
                // Custom resources and kinds with their own field labels answer as their
                // conversion function does; the others with the default metadata-only
                // conversion's wording.
                return Err(ApiError::bad_request(
                    if res.selectable_fields.is_empty() && !res.custom {
                        format!(
                        "{:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
                        r.field
                    )
                    } else {
                        format!("field label not supported: {}", r.field)
                    },
                ));
            }
        }
        Ok(Self { labels, fields })
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty() && self.fields.0.is_empty()
    }

    pub fn matches(&self, res: &Resource, obj: &Object) -> bool {
        if !self.labels.matches(|k| obj.attrs.label(k)) {
            return false;
        }
        if self.fields.0.is_empty() {
            return true;
        }
        let (ns, name) = ns_name(res, &obj.key);
        self.fields.matches(|f| match f {
            "metadata.name" => Some(name.as_str()),
            "metadata.namespace" => Some(ns.as_deref().unwrap_or("")),
            other => obj.attrs.field(other),
        })
    }
}

/// The `resourceVersion` parameter; a value that is not one is refused with kube-apiserver's
/// words (Go's `strconv.ParseUint` error).
pub(crate) fn parse_rv(q: &crate::request::Query) -> ApiResult<Option<u64>> {
    match q.get("resourceVersion") {
        None | Some("") => Ok(None),
        Some(s) => {
            let why = if !s.bytes().all(|b| b.is_ascii_digit()) {
                "invalid syntax"
            } else {
                match s.parse::<u64>() {
                    Ok(v) => return Ok(Some(v)),
                    Err(_) => "value out of range",
                }
            };
            let shown = serde_json::to_string(s).unwrap_or_default();
            Err(ApiError::bad_request(format!(
                "invalid resource version: resourceVersion: Invalid value: {shown}: strconv.ParseUint: parsing {shown}: {why}"
            )))
        }
    }
}

const CONTINUE_EXPIRED: &str = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.";

fn encode_continue(rv: u64, start: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start});
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string())
}

fn decode_continue(s: &str) -> ApiResult<(u64, String)> {
    let bad = |why: &str| {
        ApiError::bad_request(format!(
            "invalid continue token: continue key is not valid: {why}"
        ))
    };
    // Go's base64.RawURLEncoding, which ignores bits left over after the last byte.
    const TOKEN: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_allow_trailing_bits(true)
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
    );
    let raw = TOKEN.decode(s.trim_end_matches('=')).map_err(|e| match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            bad(&format!("illegal base64 data at input byte {at}"))
        }
        _ => bad(&format!("illegal base64 data at input byte {}", s.len())),
    })?;
    let v: Value = serde_json::from_slice(&raw).map_err(|e| bad(&go_json_error(&raw, &e)))?;
    if v["v"] != "meta.k8s.io/v1" {
        return Err(bad(
            "incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        ));
    }
    let rv = v["rv"]
        .as_u64()
        .ok_or_else(|| bad("incorrect encoded start resourceVersion (version meta.k8s.io/v1)"))?;
    let start = v["start"]
        .as_str()
        .ok_or_else(|| bad("the start key is missing"))?
        .to_string();
    Ok((rv, start))
}

/// Go's encoding/json wording for JSON that does not start with a value, which
/// kube-apiserver's continue-token errors quote; serde's message otherwise.
fn go_json_error(raw: &[u8], e: &serde_json::Error) -> String {
    let Some(&c) = raw.iter().find(|b| !b" \t\r\n".contains(b)) else {
        return "unexpected end of JSON input".into();
    };
    if b"{[\"tfn-0123456789".contains(&c) {
        return e.to_string();
    }
    let shown = match c {
        b'\'' => "'\\''".to_string(),
        b'"' => "'\"'".to_string(),
        0x20..=0x7e => format!("'{}'", c as char),
        0x07 => "'\\a'".into(),
        0x08 => "'\\b'".into(),
        0x0c => "'\\f'".into(),
        0x0b => "'\\v'".into(),
        0x00..=0x1f | 0x7f => format!("'\\x{c:02x}'"),
        0x80..=0x9f | 0xad => format!("'\\u{:04x}'", c as u32),
        _ => format!("'{}'", c as char),
    };
    format!("invalid character {shown} looking for beginning of value")
}

/// kube-apiserver's validation of list and watch options (`ValidateListOptions`): every
/// problem as a cause of one 422 on `ListOptions.meta.k8s.io`. Streaming lists
/// (`sendInitialEvents`) are served, as by kube-apiserver with its WatchList feature on.
fn validate_list_options(q: &crate::request::Query, watch: bool) -> ApiResult<()> {
    use crate::errors::Cause;
    let rv_match = q.get("resourceVersionMatch").unwrap_or("");
    let send_initial = q.get("sendInitialEvents");
    let has_continue = q.get("continue").is_some_and(|c| !c.is_empty());
    let mut causes = Vec::new();
    let continued = || {
        Cause::forbidden(
            "resourceVersionMatch",
            "resourceVersionMatch is forbidden when continue is provided",
        )
    };
    if watch {
        if send_initial.is_some() && rv_match != "NotOlderThan" {
            causes.push(Cause::forbidden(
                "resourceVersionMatch",
                "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
        if !rv_match.is_empty() {
            if send_initial.is_none() {
                causes.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
                ));
            }
            if rv_match != "NotOlderThan" {
                causes.push(Cause::not_supported(
                    "resourceVersionMatch",
                    &json!(rv_match),
                    &["NotOlderThan"],
                ));
            }
            if has_continue {
                causes.push(continued());
            }
        }
    } else {
        if !rv_match.is_empty() {
            let rv = q.get("resourceVersion").unwrap_or("");
            if rv.is_empty() {
                causes.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch is forbidden unless resourceVersion is provided",
                ));
            }
            if has_continue {
                causes.push(continued());
            }
            if !matches!(rv_match, "Exact" | "NotOlderThan") {
                causes.push(Cause::not_supported(
                    "resourceVersionMatch",
                    &json!(rv_match),
                    &["Exact", "NotOlderThan", ""],
                ));
            }
            if rv_match == "Exact" && rv == "0" {
                causes.push(Cause::forbidden(
                    "resourceVersionMatch",
                    "resourceVersionMatch \"exact\" is forbidden for resourceVersion \"0\"",
                ));
            }
        }
        if send_initial.is_some() {
            causes.push(Cause::forbidden(
                "sendInitialEvents",
                "sendInitialEvents is forbidden for list",
            ));
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid("meta.k8s.io", "ListOptions", "", causes))
    }
}

impl ApiServer {
    /// Waits (up to the configured time) until the store has committed revision `rv`.
    async fn wait_rv(&self, rv: u64) -> ApiResult<()> {
        self.state
            .store
            .wait_for(rv, self.state.config.rv_wait)
            .await
            .map_err(|e| store_error(e, Default::default()))
    }

    pub(crate) async fn list(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        ctx: &Ctx,
    ) -> ApiResult<Response<ResponseBody>> {
        let q = &ctx.query;
        let filter = Filter::from_query(res, q)?;
        let prefix = res.key_prefix(ns);
        let limit: usize = match q.get("limit") {
            None | Some("") => 0,
            Some(s) => s
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid limit: {s:?}")))?,
        };
        validate_list_options(q, false)?;
        let rv = parse_rv(q)?;
        let rv_match = q.get("resourceVersionMatch").unwrap_or("");
        let store = &self.state.store;
        let (snap, start): (Snapshot, Option<String>) = if let Some(token) =
            q.get("continue").filter(|c| !c.is_empty())
        {
            if rv.is_some_and(|r| r != 0) {
                return Err(ApiError::bad_request(
                    "specifying resource version is not allowed when using continue",
                ));
            }
            let (at, start) = decode_continue(token)?;
            let snap = store.snapshot_at(at, &prefix).map_err(|e| match e {
                flotilla_store::Error::Compacted { .. } => {
                    let mut err = ApiError::gone(CONTINUE_EXPIRED);
                    // As kube-apiserver, offer a token that continues at the latest revision.
                    err.details = Some(json!({"causes": [{"reason": "ResourceVersionTooOld", "message": "continue token expired"}]}));
                    err
                }
                e => store_error(e, Default::default()),
            })?;
            (snap, Some(start))
        } else {
            match (rv_match, rv) {
                ("", None) | ("", Some(0)) | ("NotOlderThan", Some(0)) => (store.snapshot(), None),
                ("" | "NotOlderThan", Some(r)) => {
                    self.wait_rv(r).await?;
                    (store.snapshot(), None)
                }
                ("Exact", Some(r)) => {
                    if store.revision() < r {
                        self.wait_rv(r).await?;
                    }
                    let snap = store.snapshot_at(r, &prefix).map_err(|e| match e {
                        flotilla_store::Error::Compacted { requested, oldest } => ApiError::gone(
                            format!("too old resource version: {requested} ({oldest})"),
                        ),
                        e => store_error(e, Default::default()),
                    })?;
                    (snap, None)
                }
                (other, _) => {
                    // validate_list_options refused every other combination.
                    return Err(ApiError::bad_request(format!(
                    "resourceVersionMatch {other:?} is not supported (Exact and NotOlderThan are)"
                )));
                }
            }
        };
        // A field selector on metadata.name within one namespace is a point lookup.
        let mut items: Vec<&Arc<Object>> = Vec::new();
        let mut next_key = None;
        let mut iter = snap
            .range(&prefix, start.as_deref())
            .filter(|o| filter.matches(res, o));
        for o in iter.by_ref() {
            if limit > 0 && items.len() == limit {
                next_key = items.last().map(|l| l.key.to_string());
                // Only continue when something that matches remains.
                let _ = o;
                break;
            }
            items.push(o);
        }
        let mut metadata = json!({"resourceVersion": snap.rev.to_string()});
        if res.custom {
            // kube-apiserver's lists of custom resources always carry `continue` (unstructured
            // list metadata keeps the empty string).
            metadata["continue"] = json!("");
        }
        if let Some(k) = &next_key {
            metadata["continue"] = json!(encode_continue(snap.rev, k));
            if filter.is_empty() {
                metadata["remainingItemCount"] = json!(snap.count(&prefix, Some(k)));
            }
        }
        match ctx.output {
            Output::Json
            | Output::Yaml
            | Output::OpenApiV2Protobuf(_)
            | Output::AggregatedDiscovery => {
                let mut buf = BytesMut::with_capacity(
                    items.iter().map(|o| o.data.len() + 1).sum::<usize>() + 256,
                );
                buf.extend_from_slice(
                    format!(
                        "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
                        res.kind,
                        res.api_version(),
                        metadata
                    )
                    .as_bytes(),
                );
                for (i, o) in items.iter().enumerate() {
                    if i > 0 {
                        buf.extend_from_slice(b",");
                    }
                    // kube-apiserver's lists of built-in kinds carry no apiVersion and kind
                    // in their items (its encoder drops them); custom resources keep theirs.
                    if crate::convert::needs_conversion(res) {
                        let mut v = self.present(res, parse(o));
                        if let (false, Some(m)) = (res.custom, v.as_object_mut()) {
                            m.remove("apiVersion");
                            m.remove("kind");
                        }
                        buf.extend_from_slice(&serde_json::to_vec(&v).expect("JSON encodes"));
                    } else {
                        match without_type_meta(&o.data).filter(|_| !res.custom) {
                            Some(rest) => {
                                buf.extend_from_slice(b"{");
                                buf.extend_from_slice(rest);
                            }
                            None => buf.extend_from_slice(&o.data),
                        }
                    }
                }
                buf.extend_from_slice(b"]}");
                if ctx.output == Output::Yaml {
                    let v: Value = serde_json::from_slice(&buf).expect("we wrote valid JSON");
                    let y =
                        serde_yaml::to_string(&v).map_err(|e| ApiError::internal(e.to_string()))?;
                    return Ok(bytes_response(
                        StatusCode::OK,
                        "application/yaml",
                        Bytes::from(y),
                    ));
                }
                Ok(bytes_response(
                    StatusCode::OK,
                    "application/json",
                    buf.freeze(),
                ))
            }
            out => {
                let objs: Vec<Value> = items.iter().map(|o| self.present(res, parse(o))).collect();
                Ok(json_response(
                    StatusCode::OK,
                    &crate::table::render_list(res, objs, metadata, out),
                ))
            }
        }
    }

    pub(crate) async fn watch(
        &self,
        res: &Arc<Resource>,
        ns: Option<&str>,
        ctx: &Ctx,
    ) -> ApiResult<Response<ResponseBody>> {
        let q = &ctx.query;
        let filter = Filter::from_query(res, q)?;
        let prefix = res.key_prefix(ns);
        let rv = parse_rv(q)?;
        let bookmarks = q.flag("allowWatchBookmarks");
        let send_initial = match q.get("sendInitialEvents") {
            Some("true") => Some(true),
            Some("false") => Some(false),
            _ => None,
        };
        validate_list_options(q, true)?;
        let timeout = match q.get("timeoutSeconds") {
            Some(s) => std::time::Duration::from_secs(
                s.parse()
                    .map_err(|_| ApiError::bad_request(format!("invalid timeoutSeconds: {s:?}")))?,
            ),
            None => self.state.config.max_watch,
        };
        let store = &self.state.store;
        // Initial state: for watches without a resourceVersion (or "0"), and when asked for.
        let initial = match (send_initial, rv) {
            (Some(true), _) => true,
            (Some(false), _) => false,
            (None, None | Some(0)) => true,
            (None, Some(_)) => false,
        };
        let (initial_objs, from) = if initial {
            if let Some(r) = rv.filter(|r| *r > 0) {
                self.wait_rv(r).await?;
            }
            let snap = store.snapshot();
            let objs: Vec<Arc<Object>> = snap
                .range(&prefix, None)
                .filter(|o| filter.matches(res, o))
                .cloned()
                .collect();
            (objs, snap.rev)
        } else {
            let from = match rv {
                Some(r) if r > 0 => r,
                _ => store.revision(),
            };
            if from > store.revision() {
                self.wait_rv(from).await?;
            }
            (Vec::new(), from)
        };
        let mut watcher = match store.watch(&prefix, from) {
            Ok(w) => w,
            Err(flotilla_store::Error::Compacted { requested, oldest }) => {
                // kube-apiserver answers 200 and sends the 410 as an ERROR event.
                let status =
                    ApiError::gone(format!("too old resource version: {requested} ({oldest})"))
                        .to_status();
                let line = format!("{}\n", json!({"type": "ERROR", "object": status}));
                return Ok(bytes_response(
                    StatusCode::OK,
                    "application/json",
                    Bytes::from(line),
                ));
            }
            Err(e) => return Err(store_error(e, Default::default())),
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(256);
        let server = self.clone();
        let res = res.clone();
        let output = ctx.output;
        let interval = self.state.config.bookmark_interval;
        let stopped = self.stopped();
        tokio::spawn(async move {
            tokio::pin!(stopped);
            let deadline = tokio::time::Instant::now() + timeout;
            // As kube-apiserver: the end of the initial events is marked for clients that
            // take bookmarks.
            let send_initial_end = send_initial == Some(true) && bookmarks;
            for o in initial_objs {
                let line = server.watch_line(&res, "ADDED", &o.data, output);
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            if send_initial_end {
                let line = bookmark_line(&res, from, true);
                if tx.send(line).await.is_err() {
                    return;
                }
            }
            let mut ticker =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => return,
                    _ = &mut stopped => return,
                    _ = tx.closed() => return,
                    _ = ticker.tick(), if bookmarks => {
                        let line = bookmark_line(&res, watcher.progress(), false);
                        if tx.send(line).await.is_err() { return; }
                    }
                    ev = watcher.next() => {
                        let ev = match ev {
                            Ok(ev) => ev,
                            Err(e) => {
                                let status = store_error(e, Default::default()).to_status();
                                let _ = tx.send(Bytes::from(format!("{}\n", json!({"type": "ERROR", "object": status})))).await;
                                return;
                            }
                        };
                        let now = filter.matches(&res, &ev.object);
                        let before = ev.prev.as_ref().is_some_and(|p| filter.matches(&res, p));
                        let ty = match (ev.kind, before, now) {
                            (EventKind::Put, true, true) => "MODIFIED",
                            (EventKind::Put, false, true) => "ADDED",
                            (EventKind::Put, true, false) => "DELETED",
                            (EventKind::Delete, true, _) => "DELETED",
                            _ => continue,
                        };
                        let line = match (&ev.prev, before, now) {
                            // An object leaving the selection is sent as kube-apiserver's watch
                            // cache sends it: its previous content at the event's revision.
                            (Some(prev), true, false) if ev.kind == EventKind::Put => {
                                let mut v: Value = serde_json::from_slice(&prev.data).expect("stored objects are JSON");
                                v["metadata"]["resourceVersion"] = json!(ev.rev.to_string());
                                let data = Bytes::from(serde_json::to_vec(&v).expect("JSON encodes"));
                                server.watch_line(&res, ty, &data, output)
                            }
                            _ => server.watch_line(&res, ty, &ev.object.data, output),
                        };
                        if tx.send(line).await.is_err() { return; }
                    }
                }
            }
        });
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let body = StreamBody::new(futures::StreamExt::map(stream, |b| {
            Ok::<_, Infallible>(Frame::data(b))
        }));
        let mut resp = Response::new(BodyExt::boxed(body));
        resp.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        Ok(resp)
    }

    fn watch_line(&self, res: &Resource, ty: &str, data: &Bytes, output: Output) -> Bytes {
        let mut buf = BytesMut::with_capacity(data.len() + 40);
        buf.extend_from_slice(format!("{{\"type\":\"{ty}\",\"object\":").as_bytes());
        match output {
            Output::Json
            | Output::Yaml
            | Output::OpenApiV2Protobuf(_)
            | Output::AggregatedDiscovery
                if !crate::convert::needs_conversion(res)
                    || crate::convert::stored_in_version(res, data) =>
            {
                buf.extend_from_slice(data)
            }
            out => {
                let v: Value = serde_json::from_slice(data).expect("stored objects are JSON");
                let v = self.present(res, v);
                let v = match out {
                    Output::Json
                    | Output::Yaml
                    | Output::OpenApiV2Protobuf(_)
                    | Output::AggregatedDiscovery => v,
                    out => crate::table::render_one(res, v, out),
                };
                buf.extend_from_slice(&serde_json::to_vec(&v).expect("JSON encodes"));
            }
        }
        buf.extend_from_slice(b"}\n");
        buf.freeze()
    }
}

fn bookmark_line(res: &Resource, rv: u64, initial_end: bool) -> Bytes {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    let ev = json!({"type": "BOOKMARK", "object": {"kind": res.kind, "apiVersion": res.api_version(), "metadata": meta}});
    Bytes::from(format!("{ev}\n"))
}

/// The stored JSON of an object after its leading `{"apiVersion":"..","kind":"..",` (how the
/// store writes every object), or None when it does not start that way.
fn without_type_meta(data: &[u8]) -> Option<&[u8]> {
    let rest = data.strip_prefix(b"{\"apiVersion\":\"")?;
    let q = rest.iter().position(|&b| b == b'"')?;
    let rest = rest[q + 1..].strip_prefix(b",\"kind\":\"")?;
    let q = rest.iter().position(|&b| b == b'"')?;
    rest[q + 1..].strip_prefix(b",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_items_lose_their_type_meta_only_in_the_stored_form() {
        assert_eq!(
            without_type_meta(br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#),
            Some(&br#""metadata":{}}"#[..])
        );
        assert_eq!(
            without_type_meta(br#"{"kind":"ConfigMap","apiVersion":"v1"}"#),
            None
        );
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let t = encode_continue(42, "/core/configmaps/default/b");
        assert_eq!(
            decode_continue(&t).unwrap(),
            (42, "/core/configmaps/default/b".to_string())
        );
        assert_eq!(decode_continue("not-a-token").unwrap_err().code, 400);
        let wrong = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(r#"{"v":"x","rv":1,"start":""}"#);
        assert_eq!(decode_continue(&wrong).unwrap_err().code, 400);
    }
}
