#!/usr/bin/env bash
# Regenerates crates/flotilla-apiserver/data/k8s-definitions.json.gz: the OpenAPI v2 definitions of
# the Kubernetes release whose API Flotilla serves, with Kubernetes' own x-kubernetes-* metadata
# (patch merge keys and strategies, list types, group-version-kinds, descriptions).
#
# Source: the PyPI package kubernetes-validate, which ships Kubernetes' published OpenAPI
# definitions converted to JSON schema (Apache-2.0). This script undoes that conversion
# (nullable type lists, $defs references, the apiVersion/kind enums the converter adds) so the
# result is the swagger "definitions" object again.
set -euo pipefail
K8S_VERSION="${K8S_VERSION:-1.33.0}"
PKG_VERSION="${PKG_VERSION:-1.37.0}"
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip download --quiet --no-deps "kubernetes-validate==${PKG_VERSION}" -d "$work"
python3 - "$work" "$K8S_VERSION" "$root/crates/flotilla-apiserver/data/k8s-definitions.json.gz" <<'PY'
import glob, gzip, json, sys, zipfile
work, version, out = sys.argv[1:]
wheel = glob.glob(f"{work}/*.whl")[0]
name = f"kubernetes_validate/kubernetes-json-schema/v{version}-local/_definitions.json"
defs = json.loads(zipfile.ZipFile(wheel).read(name))["$defs"]

def fix(x, parent_key=None):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k == "$ref" and isinstance(v, str):
                out[k] = v.replace("#/$defs/", "#/definitions/")
            elif k == "type" and isinstance(v, list):
                rest = [t for t in v if t != "null"]
                out[k] = rest[0] if len(rest) == 1 else rest
            elif k == "properties" and isinstance(v, dict):
                props = {}
                for pk, pv in v.items():
                    pv = fix(pv, pk)
                    if pk in ("apiVersion", "kind") and isinstance(pv, dict):
                        pv.pop("enum", None)
                    props[pk] = pv
                out[k] = props
            else:
                out[k] = fix(v, k)
        return out
    if isinstance(x, list):
        return [fix(v) for v in x]
    return x

defs = {k: fix(v) for k, v in defs.items()}
defs["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] = {
    "description": "IntOrString is a type that can hold an int32 or a string.",
    "type": "string", "format": "int-or-string"}
defs["io.k8s.apimachinery.pkg.api.resource.Quantity"] = dict(
    defs["io.k8s.apimachinery.pkg.api.resource.Quantity"], type="string")
defs["io.k8s.apimachinery.pkg.api.resource.Quantity"].pop("oneOf", None)
with gzip.open(out, "wt", compresslevel=9) as f:
    json.dump({"kubernetesVersion": version, "definitions": defs}, f, separators=(",", ":"), sort_keys=True)
print(f"wrote {out}: {len(defs)} definitions of Kubernetes {version}")
PY
