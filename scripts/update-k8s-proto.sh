#!/usr/bin/env bash
# Regenerates crates/flotilla-apiserver/data/k8s-proto.json.gz: the protobuf field tables of
# Kubernetes' built-in types (field tag -> JSON name and wire type), so the API server can decode
# request bodies in Kubernetes' protobuf encoding (what kubectl's typed clients send).
#
# Source: the crates.io package k8s-pb (prost code generated from Kubernetes' generated.proto
# files, Apache-2.0). prost renames fields to snake_case; the JSON names come back from the
# vendored OpenAPI definitions (data/k8s-definitions.json.gz) by matching names case- and
# underscore-insensitively.
set -euo pipefail
K8S_PB_VERSION="${K8S_PB_VERSION:-0.9.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "fetch-k8s-pb"
version = "0.0.0"
edition = "2021"
[dependencies]
k8s-pb = "=${K8S_PB_VERSION}"
TOML
echo "" > "$work/src/lib.rs"
(cd "$work" && cargo vendor --quiet vendor >/dev/null)
python3 - "$work/vendor/k8s-pb/src" "$root/crates/flotilla-apiserver/data" <<'PY'
import gzip, json, os, re, sys
src, data = sys.argv[1:]
defs = json.load(gzip.open(os.path.join(data, "k8s-definitions.json.gz"), "rt"))["definitions"]

def def_name(module):
    parts = module.split(".")
    head = {"apiextensions_apiserver": "apiextensions-apiserver", "kube_aggregator": "kube-aggregator"}.get(parts[0], parts[0])
    return "io.k8s." + ".".join([head] + parts[1:])

by_lower = {k.lower(): k for k in defs}

def norm(s):
    return s.replace("_", "").replace("-", "").lower()

attr_re = re.compile(r'#\[prost\(([^]]*)\)\]\s*pub (?:r#)?(\w+):')

def fields_of(body):
    # Yields (attrs, name, type); a type ends at the first comma outside angle brackets.
    for m in attr_re.finditer(body):
        depth, i = 0, m.end()
        while i < len(body):
            c = body[i]
            if c == '<':
                depth += 1
            elif c == '>':
                depth -= 1
            elif c == ',' and depth == 0:
                break
            i += 1
        yield m.group(1), m.group(2), re.sub(r'\s+', '', body[m.end():i]).rstrip(',').replace(',>', '>')
messages = {}
parent_props = {}
for dirpath, _, files in os.walk(src):
    if "mod.rs" not in files:
        continue
    module = ".".join(os.path.relpath(dirpath, src).split(os.sep))
    if module == ".":
        continue
    text = open(os.path.join(dirpath, "mod.rs")).read()
    for m in re.finditer(r'pub struct (\w+) \{(.*?)\n\}', text, re.S):
        name, body = m.group(1), m.group(2)
        full = def_name(module) + "." + name
        props = (defs.get(full) or defs.get(by_lower.get(full.lower(), "")) or {}).get("properties", {})
        by_norm = {norm(p): p for p in props}
        parent_props[full] = set(by_norm)
        fields = []
        for attrs, rust_name, rust_type in fields_of(body):
            tag = int(re.search(r'tag = "(\d+)"', attrs).group(1))
            json_name = by_norm.get(norm(rust_name))
            inline = False
            if json_name is None and props and attrs.split(",")[0].strip() == "message":
                # A Go struct embedded inline in JSON (IngressRule.ingressRuleValue,
                # Volume.volumeSource, Probe.handler): its fields belong to the parent.
                inline = True
            if json_name is None:
                # Types with no OpenAPI definition (wrappers such as Time) keep the proto name.
                json_name = re.sub(r'_([a-z])', lambda x: x.group(1).upper(), rust_name)
            repeated = "repeated" in attrs
            def resolve(path):
                path = path.strip().replace("::prost::alloc::boxed::Box<", "").rstrip(">")
                segs = path.split("::")
                mod = module.split(".")
                while segs and segs[0] == "super":
                    mod = mod[:-1]
                    segs = segs[1:]
                if len(segs) == 1:
                    return def_name(module) + "." + segs[0]
                return def_name(".".join(mod + segs[:-1])) + "." + segs[-1]
            kind = attrs.split(",")[0].strip()
            if kind.startswith("btree_map"):
                k, v = re.search(r'btree_map = "(\w+), (\w+)"', attrs).groups()
                if v == "message":
                    inner = re.search(r'BTreeMap<[^,]+,\s*(.+)>$', rust_type.strip()).group(1)
                    v = "message:" + resolve(inner)
                ty = "map:" + v
            elif kind == "message":
                found = re.search(r'(?:Option|Vec)<(.+)>$', rust_type)
                if found is None:
                    raise SystemExit(f"{full}.{rust_name}: cannot read type {rust_type!r}")
                inner = found.group(1)
                ty = "message:" + resolve(inner)
            elif kind.startswith("bytes"):
                ty = "bytes"
            else:
                ty = kind
            fields.append([tag, json_name, ty, repeated, inline])
        messages[full] = fields
# An embedded message is inline only if its own fields are the parent's JSON properties;
# otherwise the field is merely newer than the OpenAPI definitions and keeps its name.
for full, fields in messages.items():
    for f in fields:
        if not f[4]:
            continue
        inner = messages.get(f[2].split(":", 1)[1], [])
        names = {norm(x[1]) for x in inner if not x[4]}
        if not names or not names <= parent_props.get(full, set()):
            f[4] = False
out = os.path.join(data, "k8s-proto.json.gz")
with gzip.open(out, "wt", compresslevel=9) as f:
    json.dump({"source": "k8s-pb", "messages": messages}, f, separators=(",", ":"), sort_keys=True)
print(f"wrote {out}: {len(messages)} messages")
PY
