#!/usr/bin/env bash
# The shipper configs the chart renders must not drift from the examples they were taken
# from. Renders the chart (helm-python-sdk, as check-helm.sh) for each shipper and compares,
# parsed, every setting that matters with examples/:
#   Vector: the chart's vector.yaml against examples/vector/http_server.yaml (source framing
#     and decoding, the metadata-stripping remap, id_key, bulk action, api_version,
#     request_retry_partial, acknowledgements, buffer), and the sink settings of
#     examples/vector/exec.yaml too;
#   Fluent Bit: the chart's fluent-bit.conf against examples/fluent-bit/http.yaml (the http
#     input's sizes and storage, the es output's Id_Key, Write_Operation, Time_Key,
#     Retry_Limit, Suppress_Type_Name, Trace_Error), and the es output of exec.conf and
#     stdin.conf too.
# Needs scripts/ci/install-ops.sh. Takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=.ci/venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import helm_python' 2>/dev/null; then
  echo "check-shippers: $venv is missing; run scripts/ci/install-ops.sh" >&2
  exit 1
fi
timeout 120 "$venv/bin/python" - helm/slack-audit-source examples <<'PY'
import sys
import helm_python as helm
import yaml

chart, examples = sys.argv[1], sys.argv[2]
failed = []


def check(what, got, want):
    if got != want:
        failed.append(f"{what}: chart has {got!r}, examples have {want!r}")


def norm(v):
    """Fluent Bit's booleans and words, whatever the file format made of them."""
    if v is True:
        return "on"
    if v is False:
        return "off"
    s = str(v).strip().lower()
    return {"true": "on", "false": "off"}.get(s, s)


def classic(text):
    """Fluent Bit's classic format: [SECTION] then `Key Value`; keys lower-case."""
    sections = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            sections.append((line[1:-1].upper(), {}))
            continue
        key, _, value = line.partition(" ")
        sections[-1][1][key.lower()] = value.strip()
    return sections


def section(sections, kind, name):
    for k, m in sections:
        if k == kind and m.get("name", "").lower() == name:
            return m
    raise SystemExit(f"check-shippers: no [{kind}] named {name}")


def remap_lines(doc, sink):
    """The remap program feeding `sink`, as a list of non-empty lines."""
    inputs = doc["sinks"][sink]["inputs"]
    if len(inputs) != 1 or inputs[0] not in doc.get("transforms", {}):
        failed.append(f"the elasticsearch sink's input {inputs} is not one remap transform")
        return []
    t = doc["transforms"][inputs[0]]
    check("the remap's type", t["type"], "remap")
    return [l.strip() for l in t["source"].splitlines() if l.strip()]


def render(kind):
    values = {"slack": {"token": "xoxp-placeholder"}, "shipper": {"kind": kind}}
    with helm.Chart.load(chart) as c:
        out = c.render(values, name="sas", namespace="audit", is_install=True)
    for path, text in out.items():
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc and doc.get("kind") == "ConfigMap" and doc["metadata"]["name"].endswith("-shipper"):
                return doc["data"]
    raise SystemExit(f"check-shippers: no shipper ConfigMap for {kind}")


# Vector.
rendered = yaml.safe_load(render("vector")["vector.yaml"])
http = yaml.safe_load(open(f"{examples}/vector/http_server.yaml"))
exec_ = yaml.safe_load(open(f"{examples}/vector/exec.yaml"))
src, want_src = rendered["sources"]["slack_audit"], http["sources"]["slack_audit"]
for k in ["type", "method", "framing", "decoding"]:
    check(f"vector source {k}", src.get(k), want_src.get(k))
check("vector remap program", remap_lines(rendered, "elasticsearch"), remap_lines(http, "elasticsearch"))
sink, want_sink = rendered["sinks"]["elasticsearch"], http["sinks"]["elasticsearch"]
for k in ["type", "mode", "api_version", "id_key", "request_retry_partial", "acknowledgements", "buffer"]:
    check(f"vector sink {k}", sink.get(k), want_sink.get(k))
check("vector bulk action", sink["bulk"]["action"], want_sink["bulk"]["action"])
exec_sink = exec_["sinks"]["elasticsearch"]
for k in ["mode", "api_version", "id_key", "request_retry_partial"]:
    check(f"vector sink {k} (exec.yaml)", sink.get(k), exec_sink.get(k))
check("vector bulk action (exec.yaml)", sink["bulk"]["action"], exec_sink["bulk"]["action"])
id_copy = f".{want_sink['id_key']} = .event.id"
for name, doc in [("chart", rendered), ("http_server.yaml", http), ("exec.yaml", exec_)]:
    if id_copy not in remap_lines(doc, "elasticsearch"):
        failed.append(f"{name}: the remap does not copy event.id to the id_key field ({id_copy})")

# Fluent Bit.
conf = classic(render("fluent-bit")["fluent-bit.conf"])
fb = yaml.safe_load(open(f"{examples}/fluent-bit/http.yaml"))
out, want_out = section(conf, "OUTPUT", "es"), fb["pipeline"]["outputs"][0]
inp, want_in = section(conf, "INPUT", "http"), fb["pipeline"]["inputs"][0]
out_keys = ["id_key", "write_operation", "time_key", "retry_limit", "suppress_type_name", "trace_error"]
for k in out_keys:
    check(f"fluent-bit es {k}", norm(out.get(k)), norm(want_out.get(k)))
for k in ["buffer_max_size", "buffer_chunk_size", "successful_response_code", "storage.type"]:
    check(f"fluent-bit http {k}", norm(inp.get(k)), norm(want_in.get(k)))
for f in ["exec.conf", "stdin.conf"]:
    es = section(classic(open(f"{examples}/fluent-bit/{f}").read()), "OUTPUT", "es")
    for k in out_keys:
        check(f"fluent-bit es {k} ({f})", norm(out.get(k)), norm(es.get(k)))

for f in failed:
    print(f"check-shippers: {f}", file=sys.stderr)
if failed:
    sys.exit(1)
print("check-shippers: the chart's Vector and Fluent Bit configs match the examples")
PY
