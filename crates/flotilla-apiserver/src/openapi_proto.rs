//! The OpenAPI v2 document in protobuf (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`),
//! the encoding kubectl before 1.29 and client-go's `discovery.OpenAPISchema()` ask for. The
//! messages are gnostic's `openapi.v2` (github.com/google/gnostic-models, `OpenAPIv2.proto`);
//! this module writes them straight from the JSON document, field numbers as in that file.
//!
//! As kube-apiserver (which marshals Go maps, so sorted), every map — paths, definitions,
//! properties, responses, vendor extensions — is written in key order. A free-form value
//! (`default`, `enum`, `example`, a vendor extension) is gnostic's `Any` with its `yaml` text;
//! JSON is YAML, so the value's JSON is written there.

use serde_json::{Map, Value};

/// The media types a client asks for the protobuf document with (the first is what kubectl and
/// client-go send; kube-openapi also answers the second, newer spelling).
pub(crate) const MEDIA_TYPES: [&str; 2] = [
    "application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
    RESPONSE_MEDIA_TYPE,
];

/// The content type of the answer, whichever spelling was asked for, as kube-apiserver sends it:
/// Go's `mime.ParseMediaType`, which clients run on it, refuses the `@` of the other.
pub(crate) const RESPONSE_MEDIA_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// A protobuf message being written.
#[derive(Default)]
struct Msg(Vec<u8>);

impl Msg {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u8) {
        self.varint(u64::from(field) << 3 | u64::from(wire));
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.key(field, 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    /// A proto3 string: the empty string is the default and not written.
    fn string(&mut self, field: u32, s: &str) {
        if !s.is_empty() {
            self.bytes(field, s.as_bytes());
        }
    }

    /// An embedded message; written even when empty, as a set message field is.
    fn message(&mut self, field: u32, m: Msg) {
        self.bytes(field, &m.0);
    }

    fn boolean(&mut self, field: u32, b: bool) {
        if b {
            self.key(field, 0);
            self.varint(1);
        }
    }

    fn int64(&mut self, field: u32, v: i64) {
        if v != 0 {
            self.key(field, 0);
            self.varint(v as u64);
        }
    }

    fn double(&mut self, field: u32, v: f64) {
        if v != 0.0 {
            self.key(field, 1);
            self.0.extend_from_slice(&v.to_le_bytes());
        }
    }
}

fn str_of<'a>(o: &'a Map<String, Value>, k: &str) -> &'a str {
    o.get(k).and_then(Value::as_str).unwrap_or("")
}

fn bool_of(o: &Map<String, Value>, k: &str) -> bool {
    o.get(k).and_then(Value::as_bool).unwrap_or(false)
}

fn int_of(o: &Map<String, Value>, k: &str) -> i64 {
    o.get(k)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
        .unwrap_or(0)
}

fn double_of(o: &Map<String, Value>, k: &str) -> f64 {
    o.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

fn strings(m: &mut Msg, field: u32, v: Option<&Value>) {
    match v {
        Some(Value::Array(a)) => {
            for s in a.iter().filter_map(Value::as_str) {
                m.bytes(field, s.as_bytes());
            }
        }
        Some(Value::String(s)) => m.bytes(field, s.as_bytes()),
        _ => {}
    }
}

/// The entries of a JSON object in key order.
fn sorted(o: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut v: Vec<_> = o.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

/// `Any { yaml = 2 }`.
fn any(v: &Value) -> Msg {
    let mut m = Msg::default();
    m.string(2, &serde_json::to_string(v).expect("JSON encodes"));
    m
}

/// The `x-` keys of an object as repeated `NamedAny` (name = 1, value = 2).
fn vendor_extensions(m: &mut Msg, field: u32, o: &Map<String, Value>) {
    for (k, v) in sorted(o) {
        if k.starts_with("x-") {
            let mut n = Msg::default();
            n.string(1, k);
            n.message(2, any(v));
            m.message(field, n);
        }
    }
}

/// A named entry (`NamedSchema`, `NamedPathItem`, ...): name = 1, value = 2.
fn named(name: &str, value: Msg) -> Msg {
    let mut n = Msg::default();
    n.string(1, name);
    n.message(2, value);
    n
}

fn external_docs(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.string(1, str_of(o, "description"));
    m.string(2, str_of(o, "url"));
    vendor_extensions(&mut m, 3, o);
    m
}

fn schema(v: &Value) -> Msg {
    let mut m = Msg::default();
    let Some(o) = v.as_object() else {
        return m;
    };
    m.string(1, str_of(o, "$ref"));
    m.string(2, str_of(o, "format"));
    m.string(3, str_of(o, "title"));
    m.string(4, str_of(o, "description"));
    if let Some(d) = o.get("default") {
        m.message(5, any(d));
    }
    m.double(6, double_of(o, "multipleOf"));
    m.double(7, double_of(o, "maximum"));
    m.boolean(8, bool_of(o, "exclusiveMaximum"));
    m.double(9, double_of(o, "minimum"));
    m.boolean(10, bool_of(o, "exclusiveMinimum"));
    m.int64(11, int_of(o, "maxLength"));
    m.int64(12, int_of(o, "minLength"));
    m.string(13, str_of(o, "pattern"));
    m.int64(14, int_of(o, "maxItems"));
    m.int64(15, int_of(o, "minItems"));
    m.boolean(16, bool_of(o, "uniqueItems"));
    m.int64(17, int_of(o, "maxProperties"));
    m.int64(18, int_of(o, "minProperties"));
    strings(&mut m, 19, o.get("required"));
    if let Some(Value::Array(e)) = o.get("enum") {
        for x in e {
            m.message(20, any(x));
        }
    }
    match o.get("additionalProperties") {
        // AdditionalPropertiesItem: oneof { Schema schema = 1; bool boolean = 2; }
        Some(Value::Bool(b)) => {
            let mut a = Msg::default();
            a.key(2, 0);
            a.varint(u64::from(*b));
            m.message(21, a);
        }
        Some(s @ Value::Object(_)) => {
            let mut a = Msg::default();
            a.message(1, schema(s));
            m.message(21, a);
        }
        _ => {}
    }
    if let Some(t) = o.get("type") {
        let mut ti = Msg::default();
        strings(&mut ti, 1, Some(t));
        m.message(22, ti);
    }
    match o.get("items") {
        Some(s @ Value::Object(_)) => {
            let mut it = Msg::default();
            it.message(1, schema(s));
            m.message(23, it);
        }
        Some(Value::Array(a)) => {
            let mut it = Msg::default();
            for s in a {
                it.message(1, schema(s));
            }
            m.message(23, it);
        }
        _ => {}
    }
    if let Some(Value::Array(a)) = o.get("allOf") {
        for s in a {
            m.message(24, schema(s));
        }
    }
    if let Some(Value::Object(p)) = o.get("properties") {
        let mut props = Msg::default();
        for (k, s) in sorted(p) {
            props.message(1, named(k, schema(s)));
        }
        m.message(25, props);
    }
    m.string(26, str_of(o, "discriminator"));
    m.boolean(27, bool_of(o, "readOnly"));
    if let Some(Value::Object(d)) = o.get("externalDocs") {
        m.message(29, external_docs(d));
    }
    if let Some(e) = o.get("example") {
        m.message(30, any(e));
    }
    vendor_extensions(&mut m, 31, o);
    m
}

/// The fields a non-body parameter shares, numbered from `type`'s field on; `header`, `path`
/// and `query`/`formData` differ only in where that run starts.
fn primitive_fields(m: &mut Msg, o: &Map<String, Value>, type_field: u32) {
    let f = type_field;
    m.string(f, str_of(o, "type"));
    m.string(f + 1, str_of(o, "format"));
    if let Some(i) = o.get("items").and_then(Value::as_object) {
        m.message(f + 2, primitives_items(i));
    }
    m.string(f + 3, str_of(o, "collectionFormat"));
    if let Some(d) = o.get("default") {
        m.message(f + 4, any(d));
    }
    m.double(f + 5, double_of(o, "maximum"));
    m.boolean(f + 6, bool_of(o, "exclusiveMaximum"));
    m.double(f + 7, double_of(o, "minimum"));
    m.boolean(f + 8, bool_of(o, "exclusiveMinimum"));
    m.int64(f + 9, int_of(o, "maxLength"));
    m.int64(f + 10, int_of(o, "minLength"));
    m.string(f + 11, str_of(o, "pattern"));
    m.int64(f + 12, int_of(o, "maxItems"));
    m.int64(f + 13, int_of(o, "minItems"));
    m.boolean(f + 14, bool_of(o, "uniqueItems"));
    if let Some(Value::Array(e)) = o.get("enum") {
        for x in e {
            m.message(f + 15, any(x));
        }
    }
    m.double(f + 16, double_of(o, "multipleOf"));
}

fn primitives_items(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    primitive_fields(&mut m, o, 1);
    vendor_extensions(&mut m, 18, o);
    m
}

/// `ParametersItem`: oneof { Parameter parameter = 1; JsonReference json_reference = 2; }
fn parameter(v: &Value) -> Msg {
    let mut item = Msg::default();
    let Some(o) = v.as_object() else {
        return item;
    };
    if let Some(r) = o.get("$ref").and_then(Value::as_str) {
        let mut j = Msg::default();
        j.string(1, r);
        j.string(2, str_of(o, "description"));
        item.message(2, j);
        return item;
    }
    let location = str_of(o, "in");
    let mut p = Msg::default();
    if location == "body" {
        let mut b = Msg::default();
        b.string(1, str_of(o, "description"));
        b.string(2, str_of(o, "name"));
        b.string(3, location);
        b.boolean(4, bool_of(o, "required"));
        if let Some(s) = o.get("schema") {
            b.message(5, schema(s));
        }
        vendor_extensions(&mut b, 6, o);
        p.message(1, b);
    } else {
        // NonBodyParameter: oneof { header = 1; formData = 2; query = 3; path = 4; } — all start
        // required, in, description, name; query and formData add allowEmptyValue.
        let (which, with_empty, extensions) = match location {
            "header" => (1, false, 22),
            "formData" => (2, true, 23),
            "path" => (4, false, 22),
            _ => (3, true, 23),
        };
        let mut s = Msg::default();
        s.boolean(1, bool_of(o, "required"));
        s.string(2, location);
        s.string(3, str_of(o, "description"));
        s.string(4, str_of(o, "name"));
        if with_empty {
            s.boolean(5, bool_of(o, "allowEmptyValue"));
        }
        primitive_fields(&mut s, o, if with_empty { 6 } else { 5 });
        vendor_extensions(&mut s, extensions, o);
        let mut nb = Msg::default();
        nb.message(which, s);
        p.message(2, nb);
    }
    item.message(1, p);
    item
}

/// `Responses { repeated NamedResponseValue response_code = 1; vendor_extension = 2; }`
fn responses(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    for (code, r) in sorted(o) {
        if code.starts_with("x-") {
            continue;
        }
        let Some(ro) = r.as_object() else { continue };
        // ResponseValue: oneof { Response response = 1; JsonReference json_reference = 2; }
        let mut rv = Msg::default();
        if let Some(x) = ro.get("$ref").and_then(Value::as_str) {
            let mut j = Msg::default();
            j.string(1, x);
            rv.message(2, j);
        } else {
            let mut resp = Msg::default();
            resp.string(1, str_of(ro, "description"));
            if let Some(s) = ro.get("schema") {
                let mut si = Msg::default();
                si.message(1, schema(s));
                resp.message(2, si);
            }
            vendor_extensions(&mut resp, 5, ro);
            rv.message(1, resp);
        }
        m.message(1, named(code, rv));
    }
    vendor_extensions(&mut m, 2, o);
    m
}

fn operation(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    strings(&mut m, 1, o.get("tags"));
    m.string(2, str_of(o, "summary"));
    m.string(3, str_of(o, "description"));
    if let Some(Value::Object(d)) = o.get("externalDocs") {
        m.message(4, external_docs(d));
    }
    m.string(5, str_of(o, "operationId"));
    strings(&mut m, 6, o.get("produces"));
    strings(&mut m, 7, o.get("consumes"));
    if let Some(Value::Array(ps)) = o.get("parameters") {
        for p in ps {
            m.message(8, parameter(p));
        }
    }
    if let Some(Value::Object(r)) = o.get("responses") {
        m.message(9, responses(r));
    }
    strings(&mut m, 10, o.get("schemes"));
    m.boolean(11, bool_of(o, "deprecated"));
    if let Some(Value::Array(reqs)) = o.get("security") {
        for r in reqs {
            m.message(12, security_requirement(r));
        }
    }
    vendor_extensions(&mut m, 13, o);
    m
}

/// `SecurityRequirement { repeated NamedStringArray additional_properties = 1; }`
fn security_requirement(v: &Value) -> Msg {
    let mut m = Msg::default();
    if let Some(o) = v.as_object() {
        for (k, scopes) in sorted(o) {
            let mut a = Msg::default();
            strings(&mut a, 1, Some(scopes));
            m.message(1, named(k, a));
        }
    }
    m
}

fn path_item(o: &Map<String, Value>) -> Msg {
    let mut m = Msg::default();
    m.string(1, str_of(o, "$ref"));
    for (field, verb) in [
        (2, "get"),
        (3, "put"),
        (4, "post"),
        (5, "delete"),
        (6, "options"),
        (7, "head"),
        (8, "patch"),
    ] {
        if let Some(Value::Object(op)) = o.get(verb) {
            m.message(field, operation(op));
        }
    }
    if let Some(Value::Array(ps)) = o.get("parameters") {
        for p in ps {
            m.message(9, parameter(p));
        }
    }
    vendor_extensions(&mut m, 10, o);
    m
}

/// `SecurityDefinitionsItem`: only the kinds kube-apiserver publishes (apiKey, basic).
fn security_definition(o: &Map<String, Value>) -> Msg {
    let mut item = Msg::default();
    let mut s = Msg::default();
    if str_of(o, "type") == "basic" {
        s.string(1, "basic");
        s.string(2, str_of(o, "description"));
        vendor_extensions(&mut s, 3, o);
        item.message(1, s);
    } else {
        s.string(1, str_of(o, "type"));
        s.string(2, str_of(o, "name"));
        s.string(3, str_of(o, "in"));
        s.string(4, str_of(o, "description"));
        vendor_extensions(&mut s, 5, o);
        item.message(2, s);
    }
    item
}

/// The protobuf `openapi.v2.Document` of a Swagger 2.0 JSON document.
pub(crate) fn document(doc: &Value) -> Vec<u8> {
    let mut m = Msg::default();
    let Some(o) = doc.as_object() else {
        return m.0;
    };
    m.string(1, str_of(o, "swagger"));
    if let Some(Value::Object(i)) = o.get("info") {
        let mut info = Msg::default();
        info.string(1, str_of(i, "title"));
        info.string(2, str_of(i, "version"));
        info.string(3, str_of(i, "description"));
        vendor_extensions(&mut info, 7, i);
        m.message(2, info);
    }
    m.string(3, str_of(o, "host"));
    m.string(4, str_of(o, "basePath"));
    strings(&mut m, 5, o.get("schemes"));
    strings(&mut m, 6, o.get("consumes"));
    strings(&mut m, 7, o.get("produces"));
    if let Some(Value::Object(p)) = o.get("paths") {
        let mut paths = Msg::default();
        vendor_extensions(&mut paths, 1, p);
        for (k, item) in sorted(p) {
            if let Some(io) = item.as_object().filter(|_| !k.starts_with("x-")) {
                paths.message(2, named(k, path_item(io)));
            }
        }
        m.message(8, paths);
    }
    if let Some(Value::Object(d)) = o.get("definitions") {
        let mut defs = Msg::default();
        for (k, s) in sorted(d) {
            defs.message(1, named(k, schema(s)));
        }
        m.message(9, defs);
    }
    if let Some(Value::Array(reqs)) = o.get("security") {
        for r in reqs {
            m.message(12, security_requirement(r));
        }
    }
    if let Some(Value::Object(sd)) = o.get("securityDefinitions") {
        let mut defs = Msg::default();
        for (k, d) in sorted(sd) {
            if let Some(d) = d.as_object() {
                defs.message(1, named(k, security_definition(d)));
            }
        }
        m.message(13, defs);
    }
    vendor_extensions(&mut m, 16, o);
    m.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads a message's top-level fields as (number, wire type, payload) for the checks below.
    fn fields(b: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
        fn varint(b: &[u8], i: &mut usize) -> u64 {
            let (mut v, mut s) = (0u64, 0);
            loop {
                let x = b[*i];
                *i += 1;
                v |= u64::from(x & 0x7f) << s;
                if x < 0x80 {
                    return v;
                }
                s += 7;
            }
        }
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let k = varint(b, &mut i);
            let (f, w) = (k >> 3, (k & 7) as u8);
            let payload = match w {
                0 => varint(b, &mut i).to_le_bytes().to_vec(),
                1 => {
                    i += 8;
                    b[i - 8..i].to_vec()
                }
                2 => {
                    let n = varint(b, &mut i) as usize;
                    i += n;
                    b[i - n..i].to_vec()
                }
                _ => panic!("unexpected wire type {w}"),
            };
            out.push((f, w, payload));
        }
        out
    }

    fn field(b: &[u8], n: u64) -> Vec<Vec<u8>> {
        fields(b)
            .into_iter()
            .filter(|f| f.0 == n)
            .map(|f| f.2)
            .collect()
    }

    #[test]
    fn a_document_carries_version_paths_and_definitions_in_key_order() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.33.13"},
            "paths": {"/b": {"get": {"operationId": "b"}}, "/a": {"get": {"operationId": "a"}}},
            "definitions": {"Z": {"type": "string"}, "A": {"type": "object", "required": ["x"]}},
        });
        let b = document(&doc);
        assert_eq!(field(&b, 1), vec![b"2.0".to_vec()]);
        let info = &field(&b, 2)[0];
        assert_eq!(field(info, 1), vec![b"Kubernetes".to_vec()]);
        let paths = &field(&b, 8)[0];
        let names: Vec<_> = field(paths, 2)
            .iter()
            .map(|p| field(p, 1)[0].clone())
            .collect();
        assert_eq!(names, vec![b"/a".to_vec(), b"/b".to_vec()]);
        let defs = &field(&b, 9)[0];
        let first = &field(defs, 1)[0];
        assert_eq!(field(first, 1), vec![b"A".to_vec()]);
        let a = &field(first, 2)[0];
        assert_eq!(field(a, 19), vec![b"x".to_vec()]);
        let ty = &field(a, 22)[0];
        assert_eq!(field(ty, 1), vec![b"object".to_vec()]);
    }

    #[test]
    fn vendor_extensions_are_named_anys_with_their_json_as_yaml() {
        let s = schema(&json!({
            "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}],
            "x-kubernetes-patch-merge-key": "name",
        }));
        let ext = field(&s.0, 31);
        assert_eq!(ext.len(), 2);
        assert_eq!(
            field(&ext[0], 1),
            vec![b"x-kubernetes-group-version-kind".to_vec()]
        );
        let any = &field(&ext[0], 2)[0];
        let yaml = String::from_utf8(field(any, 2)[0].clone()).unwrap();
        let back: Value = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(back, json!([{"group": "", "kind": "Pod", "version": "v1"}]));
    }

    #[test]
    fn parameters_are_typed_by_location() {
        let q = parameter(
            &json!({"name": "pretty", "in": "query", "type": "string", "uniqueItems": true}),
        );
        let p = &field(&q.0, 1)[0];
        let nb = &field(p, 2)[0];
        let query = &field(nb, 3)[0];
        assert_eq!(field(query, 2), vec![b"query".to_vec()]);
        assert_eq!(field(query, 4), vec![b"pretty".to_vec()]);
        assert_eq!(field(query, 6), vec![b"string".to_vec()]);
        assert_eq!(field(query, 20), vec![1u64.to_le_bytes().to_vec()]);
        let body = parameter(
            &json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": "#/definitions/X"}}),
        );
        let bp = &field(&field(&body.0, 1)[0], 1)[0];
        assert_eq!(field(bp, 2), vec![b"body".to_vec()]);
        let s = &field(bp, 5)[0];
        assert_eq!(field(s, 1), vec![b"#/definitions/X".to_vec()]);
        let r = parameter(&json!({"$ref": "#/parameters/pretty"}));
        let j = &field(&r.0, 2)[0];
        assert_eq!(field(j, 1), vec![b"#/parameters/pretty".to_vec()]);
    }

    #[test]
    fn additional_properties_are_a_schema_or_a_boolean() {
        let s = schema(&json!({"additionalProperties": {"type": "string"}}));
        let a = &field(&s.0, 21)[0];
        assert_eq!(field(&field(a, 1)[0], 22).len(), 1);
        let s = schema(&json!({"additionalProperties": false}));
        let a = &field(&s.0, 21)[0];
        assert_eq!(fields(a), vec![(2, 0, 0u64.to_le_bytes().to_vec())]);
    }
}
