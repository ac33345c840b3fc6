//! Decoding of Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) into JSON,
//! driven by the field tables in `data/k8s-proto.json.gz` (vendored by
//! `scripts/update-k8s-proto.sh`). kubectl's typed clients (`kubectl create configmap`, ...)
//! send request bodies this way; responses are always JSON, which those clients accept.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use base64::Engine;
use serde_json::{Map, Value};

const PROTO_GZ: &[u8] = include_bytes!("../data/k8s-proto.json.gz");

/// The media type of Kubernetes' protobuf encoding.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

const MAGIC: &[u8] = b"k8s\0";

#[derive(Debug, Clone)]
enum Ty {
    String,
    Bool,
    Int32,
    Int64,
    Double,
    Bytes,
    Message(String),
    Map(Box<Ty>),
}

#[derive(Debug, Clone)]
struct Field {
    name: String,
    ty: Ty,
    repeated: bool,
    /// An embedded struct whose fields JSON shows in the parent.
    inline: bool,
}

type Messages = HashMap<String, HashMap<u64, Field>>;

fn parse_ty(s: &str) -> Ty {
    if let Some(m) = s.strip_prefix("message:") {
        return Ty::Message(m.to_string());
    }
    if let Some(v) = s.strip_prefix("map:") {
        return Ty::Map(Box::new(parse_ty(v)));
    }
    match s {
        "bool" => Ty::Bool,
        "int32" => Ty::Int32,
        "int64" => Ty::Int64,
        "double" => Ty::Double,
        "bytes" => Ty::Bytes,
        _ => Ty::String,
    }
}

fn messages() -> &'static Messages {
    static M: OnceLock<Messages> = OnceLock::new();
    M.get_or_init(|| {
        let mut text = String::new();
        flate2::read::GzDecoder::new(PROTO_GZ)
            .read_to_string(&mut text)
            .expect("the vendored protobuf tables are valid gzip");
        let doc: Value =
            serde_json::from_str(&text).expect("the vendored protobuf tables are JSON");
        let mut out = Messages::new();
        for (name, fields) in doc["messages"].as_object().into_iter().flatten() {
            let mut m = HashMap::new();
            for f in fields.as_array().into_iter().flatten() {
                let tag = f[0].as_u64().unwrap_or(0);
                m.insert(
                    tag,
                    Field {
                        name: f[1].as_str().unwrap_or("").to_string(),
                        ty: parse_ty(f[2].as_str().unwrap_or("string")),
                        repeated: f[3].as_bool().unwrap_or(false),
                        inline: f[4].as_bool().unwrap_or(false),
                    },
                );
            }
            out.insert(name.clone(), m);
        }
        out
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let (&b, rest) = self.buf.split_first().ok_or("truncated varint")?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.buf.len() < n {
            return Err("truncated field".into());
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let n = self.varint()? as usize;
        self.take(n)
    }

    /// The next (field number, wire type, payload) triple.
    fn field(&mut self) -> Result<(u64, Wire<'a>), String> {
        let key = self.varint()?;
        let wire = match key & 7 {
            0 => Wire::Varint(self.varint()?),
            1 => Wire::Fixed64(u64::from_le_bytes(
                self.take(8)?.try_into().map_err(|_| "bad fixed64")?,
            )),
            2 => Wire::Len(self.bytes()?),
            5 => Wire::Fixed32(u32::from_le_bytes(
                self.take(4)?.try_into().map_err(|_| "bad fixed32")?,
            )),
            w => return Err(format!("unsupported wire type {w}")),
        };
        Ok((key >> 3, wire))
    }
}

enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(&'a [u8]),
}

fn scalar(ty: &Ty, w: &Wire<'_>) -> Result<Value, String> {
    Ok(match (ty, w) {
        (Ty::Bool, Wire::Varint(v)) => Value::Bool(*v != 0),
        (Ty::Int32, Wire::Varint(v)) => Value::from(*v as i64 as i32),
        (Ty::Int64, Wire::Varint(v)) => Value::from(*v as i64),
        (Ty::Double, Wire::Fixed64(v)) => {
            serde_json::Number::from_f64(f64::from_bits(*v)).map_or(Value::Null, Value::Number)
        }
        (Ty::Double, Wire::Fixed32(v)) => {
            serde_json::Number::from_f64(f64::from(f32::from_bits(*v)))
                .map_or(Value::Null, Value::Number)
        }
        (Ty::String, Wire::Len(b)) => Value::String(
            std::str::from_utf8(b)
                .map_err(|_| "invalid UTF-8 in a string field")?
                .to_string(),
        ),
        (Ty::Bytes, Wire::Len(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        _ => return Err("field has an unexpected wire type".into()),
    })
}

fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let mut n = nanos.unsigned_abs();
    let mut out = String::new();
    let h = n / 3_600_000_000_000;
    n %= 3_600_000_000_000;
    let m = n / 60_000_000_000;
    n %= 60_000_000_000;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let secs = n as f64 / 1e9;
    let s = format!("{secs:.9}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    out.push_str(&format!("{s}s"));
    if neg {
        format!("-{out}")
    } else {
        out
    }
}

/// Decodes one message of type `def` (an OpenAPI definition name) into JSON.
fn message(def: &str, bytes: &[u8], depth: usize) -> Result<Value, String> {
    if depth > 64 {
        return Err("message nesting too deep".into());
    }
    let short = def.rsplit('.').next().unwrap_or(def);
    let mut r = Reader { buf: bytes };
    let mut raw: Vec<(u64, Wire<'_>)> = Vec::new();
    while !r.buf.is_empty() {
        raw.push(r.field()?);
    }
    let first = |n: u64| raw.iter().find(|(f, _)| *f == n).map(|(_, w)| w);
    match def {
        d if d.ends_with("meta.v1.Time") || d.ends_with("meta.v1.MicroTime") => {
            let secs = match first(1) {
                Some(Wire::Varint(v)) => *v as i64,
                _ => 0,
            };
            let nanos = match first(2) {
                Some(Wire::Varint(v)) => *v as i64 as i32,
                _ => 0,
            };
            if secs == 0 && nanos == 0 {
                // Go's zero time, which JSON shows as null.
                return Ok(Value::Null);
            }
            let t = chrono::DateTime::from_timestamp(secs, nanos.max(0) as u32)
                .ok_or("time out of range")?;
            let fmt = if short == "MicroTime" {
                "%Y-%m-%dT%H:%M:%S%.6fZ"
            } else {
                "%Y-%m-%dT%H:%M:%SZ"
            };
            return Ok(Value::String(t.format(fmt).to_string()));
        }
        d if d.ends_with("meta.v1.Duration") => {
            let n = match first(1) {
                Some(Wire::Varint(v)) => *v as i64,
                _ => 0,
            };
            return Ok(Value::String(go_duration(n)));
        }
        d if d.ends_with("intstr.IntOrString") => {
            let is_string = matches!(first(1), Some(Wire::Varint(1)));
            return Ok(if is_string {
                match first(3) {
                    Some(w) => scalar(&Ty::String, w)?,
                    None => Value::String(String::new()),
                }
            } else {
                match first(2) {
                    Some(w) => scalar(&Ty::Int32, w)?,
                    None => Value::from(0),
                }
            });
        }
        d if d.ends_with("resource.Quantity") => {
            return match first(1) {
                Some(w) => scalar(&Ty::String, w),
                None => Ok(Value::String("0".into())),
            };
        }
        d if d.ends_with("runtime.RawExtension")
            || d.ends_with("apiextensions.v1.JSON")
            || d.ends_with("meta.v1.FieldsV1") =>
        {
            return match first(1) {
                Some(Wire::Len(b)) if !b.is_empty() => {
                    serde_json::from_slice(b).map_err(|e| format!("embedded JSON: {e}"))
                }
                _ => Ok(Value::Null),
            };
        }
        _ => {}
    }
    let fields = messages()
        .get(def)
        .ok_or_else(|| format!("no protobuf description of {def}"))?;
    let mut out = Map::new();
    for (num, w) in raw {
        let Some(f) = fields.get(&num) else { continue };
        let value = match (&f.ty, &w) {
            (Ty::Message(m), Wire::Len(b)) => message(m, b, depth + 1)?,
            (Ty::Map(v), Wire::Len(b)) => {
                let mut er = Reader { buf: b };
                let (mut key, mut val) = (String::new(), None);
                while !er.buf.is_empty() {
                    match er.field()? {
                        (1, Wire::Len(k)) => key = String::from_utf8_lossy(k).into_owned(),
                        (2, vw) => {
                            val = Some(match (&**v, &vw) {
                                (Ty::Message(m), Wire::Len(mb)) => message(m, mb, depth + 1)?,
                                (t, vw) => scalar(t, vw)?,
                            })
                        }
                        _ => {}
                    }
                }
                let default = match &**v {
                    Ty::String | Ty::Bytes => Value::String(String::new()),
                    _ => Value::Null,
                };
                let entry = out
                    .entry(f.name.clone())
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(m) = entry {
                    m.insert(key, val.unwrap_or(default));
                }
                continue;
            }
            // Packed repeated numbers.
            (Ty::Int32 | Ty::Int64 | Ty::Bool, Wire::Len(b)) if f.repeated => {
                let mut pr = Reader { buf: b };
                let entry = out
                    .entry(f.name.clone())
                    .or_insert_with(|| Value::Array(vec![]));
                while !pr.buf.is_empty() {
                    let v = scalar(&f.ty, &Wire::Varint(pr.varint()?))?;
                    if let Value::Array(a) = entry {
                        a.push(v);
                    }
                }
                continue;
            }
            (t, w) => {
                let v = scalar(t, w).map_err(|e| format!("{def}.{}: {e}", f.name))?;
                // Go's encoder writes every non-pointer field; JSON omits empty strings.
                if !f.repeated && v.as_str() == Some("") {
                    continue;
                }
                v
            }
        };
        if value.is_null() && !f.repeated {
            continue;
        }
        if f.inline {
            if let Value::Object(inner) = value {
                out.extend(inner);
            }
            continue;
        }
        if f.repeated {
            let entry = out
                .entry(f.name.clone())
                .or_insert_with(|| Value::Array(vec![]));
            if let Value::Array(a) = entry {
                a.push(value);
            }
        } else {
            out.insert(f.name.clone(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a protobuf request body (the `k8s\0` envelope around a `runtime.Unknown`) whose
/// object is of definition `def`, into the object's JSON with apiVersion and kind set.
pub fn decode(body: &[u8], def: &str) -> Result<Value, String> {
    let rest = body
        .strip_prefix(MAGIC)
        .ok_or("the body does not start with the Kubernetes protobuf prefix")?;
    let mut r = Reader { buf: rest };
    let (mut api_version, mut kind, mut raw, mut encoding) =
        (String::new(), String::new(), &[][..], String::new());
    while !r.buf.is_empty() {
        match r.field()? {
            (1, Wire::Len(tm)) => {
                let mut tr = Reader { buf: tm };
                while !tr.buf.is_empty() {
                    match tr.field()? {
                        (1, Wire::Len(v)) => api_version = String::from_utf8_lossy(v).into_owned(),
                        (2, Wire::Len(v)) => kind = String::from_utf8_lossy(v).into_owned(),
                        _ => {}
                    }
                }
            }
            (2, Wire::Len(b)) => raw = b,
            (3, Wire::Len(b)) => encoding = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
    }
    if !encoding.is_empty() {
        return Err(format!("content encoding {encoding:?} is not supported"));
    }
    let obj = message(def, raw, 0)?;
    let mut out = Map::new();
    out.insert("apiVersion".into(), Value::String(api_version));
    out.insert("kind".into(), Value::String(kind));
    if let Value::Object(m) = obj {
        out.extend(m);
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    fn len_field(num: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(num << 3 | 2, out);
        varint(payload.len() as u64, out);
        out.extend_from_slice(payload);
    }

    fn varint_field(num: u64, v: u64, out: &mut Vec<u8>) {
        varint(num << 3, out);
        varint(v, out);
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        len_field(1, api_version.as_bytes(), &mut tm);
        len_field(2, kind.as_bytes(), &mut tm);
        let mut unknown = Vec::new();
        len_field(1, &tm, &mut unknown);
        len_field(2, raw, &mut unknown);
        let mut out = b"k8s\0".to_vec();
        out.extend(unknown);
        out
    }

    #[test]
    fn decodes_a_configmap_and_a_secret() {
        // ConfigMap{metadata{name: "a", labels{app: web}}, data{k: v}, binaryData{b: [1,2]}, immutable: true}
        let mut meta = Vec::new();
        len_field(1, b"a", &mut meta);
        let mut label = Vec::new();
        len_field(1, b"app", &mut label);
        len_field(2, b"web", &mut label);
        len_field(11, &label, &mut meta);
        let mut cm = Vec::new();
        len_field(1, &meta, &mut cm);
        let mut entry = Vec::new();
        len_field(1, b"k", &mut entry);
        len_field(2, b"v", &mut entry);
        len_field(2, &entry, &mut cm);
        let mut bin = Vec::new();
        len_field(1, b"b", &mut bin);
        len_field(2, &[1, 2], &mut bin);
        len_field(3, &bin, &mut cm);
        varint_field(4, 1, &mut cm);
        let v = decode(
            &envelope("v1", "ConfigMap", &cm),
            "io.k8s.api.core.v1.ConfigMap",
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "labels": {"app": "web"}},
                   "data": {"k": "v"}, "binaryData": {"b": "AQI="}, "immutable": true})
        );
        assert_eq!(
            decode(b"{}", "io.k8s.api.core.v1.ConfigMap").unwrap_err(),
            "the body does not start with the Kubernetes protobuf prefix"
        );
        assert_eq!(
            decode(
                &envelope("v1", "ConfigMap", &[0x0a, 0x05, 0x01]),
                "io.k8s.api.core.v1.ConfigMap"
            )
            .unwrap_err(),
            "truncated field"
        );
    }

    #[test]
    fn decodes_special_types() {
        // IntOrString as int and as string; Time; Quantity; repeated messages.
        let mut port = Vec::new();
        varint_field(3, 80, &mut port); // port
        let mut target = Vec::new();
        varint_field(1, 1, &mut target);
        len_field(3, b"http", &mut target);
        len_field(4, &target, &mut port); // targetPort
        let mut spec = Vec::new();
        len_field(1, &port, &mut spec);
        len_field(1, &port, &mut spec);
        let mut svc = Vec::new();
        len_field(2, &spec, &mut svc);
        let v = decode(
            &envelope("v1", "Service", &svc),
            "io.k8s.api.core.v1.Service",
        )
        .unwrap();
        assert_eq!(
            v["spec"]["ports"],
            json!([{"port": 80, "targetPort": "http"}, {"port": 80, "targetPort": "http"}])
        );

        let mut time = Vec::new();
        varint_field(1, 1_700_000_000, &mut time);
        assert_eq!(
            message("io.k8s.apimachinery.pkg.apis.meta.v1.Time", &time, 0).unwrap(),
            json!("2023-11-14T22:13:20Z")
        );
        let mut q = Vec::new();
        len_field(1, b"500m", &mut q);
        assert_eq!(
            message("io.k8s.apimachinery.pkg.api.resource.Quantity", &q, 0).unwrap(),
            json!("500m")
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
    }
}
