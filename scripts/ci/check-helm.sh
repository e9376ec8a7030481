#!/usr/bin/env bash
# The Helm chart: `helm lint --strict` and `helm template` (through helm-python-sdk, which
# embeds Helm's Go SDK: no helm binary), for each shipper (vector, fluent-bit) with a PVC and
# with an emptyDir, plus one "everything on" variant; then every rendered manifest through
# kubernetes-validate --strict (the oldest supported Kubernetes and the newest known) and
# yamllint. The ServiceMonitor and the PrometheusRule are CRDs kubernetes-validate has no
# schema for: they are checked against small schemas of their fields here, and the optional
# PrometheusRule and dashboard ConfigMap must carry the files under examples/. Containment
# (respond.*) must keep the admin token in its own Secret, mounted as a file, never in the
# environment, and pass the flags respond.* asks for. Bad values must be refused too.
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
        "respond": {
            "mode": "enforce",
            "existingSecret": "slack-admin",
            "existingSecretKey": "xoxp",
            "exemptUsers": ["U0OWNER", "breakglass@example.com"],
            "maxPerHour": 3,
            "minSeverity": "critical",
            "slackAllowlist": True,
        },
    },
    # Containment: planned with an admin token the chart keeps in a Secret of its own; and
    # only Slack's allowlist read (a bare `off` from YAML is false, and means off).
    "respond-plan": {"respond": {"mode": "plan", "token": "xoxp-admin-placeholder"}},
    "respond-allowlist-only": {
        "respond": {"mode": False, "slackAllowlist": True, "token": "xoxp-admin-placeholder"},
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

# Containment: the admin token rides in its own Secret, mounted as a file beside (never in)
# the audit token's, never in an environment variable; the flags follow respond.*.
RESPOND_DIR = "/var/run/secrets/slack-audit-source-respond"
def check_respond(name, values, docs):
    global failed
    def bad(message):
        global failed
        print(f"check-helm: {name}: {message}", file=sys.stderr)
        failed = True
    respond = values.get("respond", {})
    mode = respond.get("mode", "off")
    mode = "off" if mode is False else mode
    has_token = bool(respond.get("existingSecret") or respond.get("token"))
    deploy = next(d for d in docs if d["kind"] == "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    containers = pod.get("initContainers", []) + pod["containers"]
    reader = next(c for c in pod["containers"] if c["name"] == "reader")
    args = reader["args"]
    secrets = [d for d in docs if d["kind"] == "Secret"]
    made = [d for d in secrets if d["metadata"]["name"].endswith("-respond-token")]
    if respond.get("token") and not respond.get("existingSecret"):
        if len(made) != 1 or set(made[0]["data"]) != {"token"}:
            bad("no Secret of its own for the admin token")
    elif made:
        bad("an admin token Secret was made without respond.token")
    want_secret = respond.get("existingSecret") or (made[0]["metadata"]["name"] if made else None)
    vols = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in reader["volumeMounts"]}
    flag = f"--respond-token-file={RESPOND_DIR}/token"
    if has_token:
        vol = vols.get("respond-token", {}).get("secret", {})
        if vol.get("secretName") != want_secret or vol.get("secretName") == vols["token"]["secret"]["secretName"]:
            bad(f"the admin token volume is {vol}, not its own Secret {want_secret}")
        key = respond.get("existingSecretKey", "token") if respond.get("existingSecret") else "token"
        if vol.get("items") != [{"key": key, "path": "token"}]:
            bad(f"the admin token volume maps {vol.get('items')}")
        m = mounts.get("respond-token", {})
        if m.get("mountPath") != RESPOND_DIR or m.get("readOnly") is not True:
            bad(f"the admin token is mounted as {m}")
        if flag not in args or not any(a.startswith("--web-api-url=") for a in args):
            bad(f"the reader is not given the admin token file: {args}")
    elif "respond-token" in vols or flag in args:
        bad("an admin token is mounted without one configured")
    # Never an environment variable: no container reads the admin token's Secret from env.
    for c in containers:
        for e in c.get("env", []) or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef") or {}
            if want_secret and ref.get("name") == want_secret:
                bad(f"container {c['name']} reads the admin token from env {e['name']}")
        for ef in c.get("envFrom", []) or []:
            if want_secret and (ef.get("secretRef") or {}).get("name") == want_secret:
                bad(f"container {c['name']} loads the admin token's Secret into its environment")
    if "xoxp-admin-placeholder" in json.dumps(deploy):
        bad("the admin token shows in the Deployment")
    respond_args = sorted(a for a in args if a.startswith("--respond") and not a.startswith("--respond-token-file"))
    if mode == "off":
        want = []
    else:
        want = [f"--respond={mode}", f"--respond-max-per-hour={respond.get('maxPerHour', 5)}",
                f"--respond-min-severity={respond.get('minSeverity', 'high')}"]
        if respond.get("exemptUsers"):
            want.append("--respond-exempt-users=" + ",".join(respond["exemptUsers"]))
    if respond_args != sorted(want):
        bad(f"respond flags {respond_args}, expected {sorted(want)}")
    if ("--slack-allowlist" in args) != bool(respond.get("slackAllowlist")):
        bad(f"--slack-allowlist does not follow respond.slackAllowlist: {args}")

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
        check_respond(name, values, core)
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
        "enforce without an admin token": {**token, "respond": {"mode": "enforce"}},
        "Slack's allowlist without an admin token": {**token, "respond": {"slackAllowlist": True}},
        "an unknown respond mode": {**token, "respond": {"mode": "on", "token": "xoxp-a"}},
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
