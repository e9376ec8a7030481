#!/usr/bin/env bash
# The Helm chart: `helm lint --strict` and `helm template` (through helm-python-sdk, which
# embeds Helm's Go SDK: no helm binary), for each shipper (vector, fluent-bit) with a PVC and
# with an emptyDir, plus one "everything on" variant; then every rendered manifest through
# kubernetes-validate --strict (the oldest supported Kubernetes and the newest known) and
# yamllint. The ServiceMonitor and the PrometheusRule are CRDs kubernetes-validate has no
# schema for: they are checked against small schemas of their fields here, and the optional
# PrometheusRule and dashboard ConfigMap must carry the files under examples/. Bad values must be refused too.
# Also hadolint on the Dockerfile, the image the chart runs (no Docker engine here to build it).
# Needs scripts/ci/install-ops.sh. Takes about 10 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
chart=helm/slack-audit-source
venv=.ci/venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "check-helm: $venv is missing; run scripts/ci/install-ops.sh" >&2
  exit 1
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "check-helm: lint and render"
timeout 120 "$venv/bin/python" - "$chart" "$out" <<'PY'
import json, os, sys
import helm_python as helm
import jsonschema, yaml

chart, out = sys.argv[1], sys.argv[2]
token = {"slack": {"token": "xoxp-placeholder"}}
variants = {
    "vector-pvc": {"shipper": {"kind": "vector"}},
    "vector-emptydir": {"shipper": {"kind": "vector"}, "persistence": {"enabled": False}},
    "fluent-bit-pvc": {"shipper": {"kind": "fluent-bit"}},
    "fluent-bit-emptydir": {"shipper": {"kind": "fluent-bit"}, "persistence": {"enabled": False}},
    "everything": {
        "shipper": {"kind": "fluent-bit", "nativeSidecar": False},
        "slack": {"existingSecret": "slack-token", "existingSecretKey": "xoxp"},
        "elasticsearch": {"url": "https://es.example.internal:9243", "existingSecret": "es-creds"},
        "metrics": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}},
            "grafanaDashboard": {"enabled": True, "annotations": {"grafana_folder": "Security"}},
        },
        "traceRequests": {"enabled": True},
        "source": {"actions": ["user_login", "anomaly"], "extraArgs": ["--overlap=5m"]},
    },
}
# Each variant replaces the token defaults only where it says so.
def merged(v):
    base = json.loads(json.dumps(token))
    if "slack" in v:
        base = {}
    base.update(v)
    return base

failed = False
# Lints once per shipper: lint renders the templates too.
for name, values in variants.items():
    report = helm.lint(chart, merged(values), strict=True)
    errors = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    if errors:
        print(f"check-helm: lint {name}: {errors}", file=sys.stderr)
        failed = True

servicemonitor_schema = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {"type": "object", "required": ["matchLabels"]},
                "namespaceSelector": {"type": "object"},
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["port"],
                        "properties": {k: {"type": "string"} for k in ["port", "path", "interval", "scrapeTimeout"]},
                    },
                },
            },
        },
    },
}

prometheusrule_schema = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["groups"],
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["name", "rules"],
                        "properties": {
                            "name": {"type": "string"},
                            "interval": {"type": "string"},
                            "rules": {
                                "type": "array",
                                "minItems": 1,
                                "items": {
                                    "type": "object",
                                    "additionalProperties": False,
                                    "required": ["alert", "expr"],
                                    "properties": {
                                        "alert": {"type": "string"},
                                        "expr": {"type": "string"},
                                        "for": {"type": "string"},
                                        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                                    },
                                },
                            },
                        },
                    },
                },
            },
        },
    },
}
crd_schemas = {"ServiceMonitor": servicemonitor_schema, "PrometheusRule": prometheusrule_schema}

# The optional monitoring objects: present only when enabled, and carrying the shipped files.
def check_monitoring(name, values, docs):
    global failed
    want_rule = values.get("metrics", {}).get("prometheusRule", {}).get("enabled", False)
    want_dash = values.get("metrics", {}).get("grafanaDashboard", {}).get("enabled", False)
    rules = [d for d in docs if d["kind"] == "PrometheusRule"]
    dashboards = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard")]
    if len(rules) != int(want_rule) or len(dashboards) != int(want_dash):
        print(f"check-helm: {name}: {len(rules)} PrometheusRule and {len(dashboards)} dashboard ConfigMap", file=sys.stderr)
        failed = True
    for r in rules:
        shipped = yaml.safe_load(open("examples/prometheus/alerts.yaml"))
        if r["spec"] != shipped:
            print(f"check-helm: {name}: the PrometheusRule differs from examples/prometheus/alerts.yaml", file=sys.stderr)
            failed = True
    for d in dashboards:
        shipped = json.load(open("examples/grafana/slack-audit-source.json"))
        if json.loads(d["data"]["slack-audit-source.json"]) != shipped or d["metadata"]["labels"].get("grafana_dashboard") != "1":
            print(f"check-helm: {name}: the dashboard ConfigMap differs from the example or lacks its label", file=sys.stderr)
            failed = True

with helm.Chart.load(chart) as c:
    for name, values in variants.items():
        rendered = c.render(merged(values), name="sas", namespace="audit", is_install=True)
        core, crds = [], []
        for path, text in sorted(rendered.items()):
            if path.endswith("NOTES.txt"):
                continue
            for doc in yaml.safe_load_all(text):
                if doc is None:
                    continue
                (crds if doc.get("kind") in crd_schemas else core).append(doc)
        for doc in crds:
            jsonschema.validate(doc, crd_schemas[doc["kind"]])
        check_monitoring(name, values, core + crds)
        kinds = sorted(d["kind"] for d in core + crds)
        print(f"  {name}: {' '.join(kinds)}")
        want = {"ConfigMap", "Deployment", "Service", "ServiceAccount"}
        if not want <= set(kinds):
            print(f"check-helm: {name} lacks {want - set(kinds)}", file=sys.stderr)
            failed = True
        with open(os.path.join(out, f"{name}.core.yaml"), "w") as f:
            yaml.safe_dump_all(core, f, sort_keys=False)
        # The raw text too, as helm template prints it, for yamllint.
        with open(os.path.join(out, f"{name}.raw.yaml"), "w") as f:
            for path, text in sorted(rendered.items()):
                if not path.endswith("NOTES.txt") and text.strip():
                    f.write(f"---\n# Source: {path}\n{text.strip()}\n")
        notes = rendered.get("slack-audit-source/templates/NOTES.txt", "")
        if values.get("persistence", {}).get("enabled") is False and "WARNING: persistence.enabled=false" not in notes:
            print(f"check-helm: {name}: NOTES.txt does not warn about the emptyDir", file=sys.stderr)
            failed = True

    # Values the chart must refuse.
    for name, values in {
        "unknown shipper": {**token, "shipper": {"kind": "logstash"}},
        "no token": {},
        "31 actions": {**token, "source": {"actions": [f"a{i}" for i in range(31)]}},
    }.items():
        try:
            c.render(values, name="sas", namespace="audit")
        except Exception:
            continue
        print(f"check-helm: values with {name} were accepted", file=sys.stderr)
        failed = True

sys.exit(1 if failed else 0)
PY

echo "check-helm: kubernetes-validate --strict"
for k8s in 1.29.0 1.37.0; do
  timeout 120 "$venv/bin/kubernetes-validate" --strict --quiet -k "$k8s" "$out"/*.core.yaml
done

echo "check-helm: yamllint"
cat >"$out/yamllint.yml" <<'YML'
extends: default
rules:
  line-length: {max: 120}
  document-start: disable
  comments: {min-spaces-from-content: 1}
  truthy: {check-keys: false}
YML
timeout 60 yamllint --strict -c "$out/yamllint.yml" "$chart/Chart.yaml" "$chart/values.yaml" "$out"/*.raw.yaml
echo "check-helm: hadolint Dockerfile"
timeout 60 "$venv/bin/hadolint" Dockerfile
echo "check-helm: ok"
