#!/usr/bin/env bash
# The alerting rules and the Grafana dashboard we ship (examples/prometheus, examples/grafana;
# the chart serves the same files):
# - `promtool check rules` and `promtool test rules` (each alert fires in one test and stays
#   quiet in another);
# - every dashboard expression parses: each becomes a recording rule, with Grafana's variables
#   replaced, and goes through `promtool check rules`;
# - every metric the rules and the dashboard name is one the binary exports (a string literal
#   "slack_source_..." in src/, histograms with their _bucket/_sum/_count series); a dashboard
#   naming an unknown metric is refused, which this script proves on a bad copy first;
# - the example files are the chart's files.
# Needs promtool (scripts/ci/install-ops.sh). Takes a second.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v promtool >/dev/null || { echo "check-monitoring: promtool missing; run scripts/ci/install-ops.sh" >&2; exit 1; }
rules=examples/prometheus/alerts.yaml
dashboard=examples/grafana/slack-audit-source.json
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for pair in "$rules:helm/slack-audit-source/files/prometheus-alerts.yaml" \
  "$dashboard:helm/slack-audit-source/files/grafana-dashboard.json"; do
  if ! cmp -s "${pair%%:*}" "${pair#*:}"; then
    echo "check-monitoring: ${pair%%:*} differs from ${pair#*:}" >&2
    exit 1
  fi
done

echo "check-monitoring: promtool check rules, promtool test rules"
promtool check rules "$rules"
promtool test rules examples/prometheus/alerts.test.yaml

# The metric names the binary can export.
grep -rhoE '"slack_source_[a-z0-9_]+"' src | tr -d '"' | sort -u >"$work/exported"

# Writes the dashboard's expressions as recording rules to $2, and the metric names they use
# that are not exported to stdout.
check_dashboard() {
  python3 - "$1" "$2" "$work/exported" <<'PY'
import json, re, sys
dashboard, rules_out, exported = sys.argv[1:4]
known = set(open(exported).read().split())
def exprs(panels):
    for p in panels:
        for t in p.get("targets", []):
            if t.get("expr"):
                yield p.get("title", "?"), t["expr"]
        yield from exprs(p.get("panels", []))
found = list(exprs(json.load(open(dashboard))["panels"]))
if not found:
    sys.exit("check-monitoring: the dashboard has no expressions")
with open(rules_out, "w") as f:
    f.write("groups:\n  - name: dashboard\n    rules:\n")
    for i, (title, expr) in enumerate(found):
        # Grafana's variables, as Grafana would substitute them.
        e = expr.replace("$__rate_interval", "5m").replace("$__range", "1h").replace("$instance", ".*")
        if "$" in e:
            sys.exit(f"check-monitoring: panel {title!r}: an unknown variable in {expr!r}")
        f.write(f"      - record: dashboard:expr_{i}\n        expr: {json.dumps(e)}\n")
unknown = set()
for title, expr in found:
    for name in re.findall(r"slack_source_[a-z0-9_]+", expr):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in known and base not in known:
            unknown.add(f"{name} (panel {title!r})")
for u in sorted(unknown):
    print(u)
PY
}

# A bad copy must be refused, or the name check below proves nothing.
python3 - "$dashboard" "$work/bad.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
d["panels"].append({"title": "bad", "targets": [{"expr": "rate(slack_source_no_such_metric_total[5m])"}]})
json.dump(d, open(sys.argv[2], "w"))
PY
if [ -z "$(check_dashboard "$work/bad.json" "$work/bad-rules.yaml")" ]; then
  echo "check-monitoring: the name check did not notice an unknown metric" >&2
  exit 1
fi

echo "check-monitoring: dashboard expressions parse and name exported metrics only"
unknown=$(check_dashboard "$dashboard" "$work/dashboard-rules.yaml")
promtool check rules "$work/dashboard-rules.yaml" >/dev/null
for name in $(grep -oE 'slack_source_[a-z0-9_]+' "$rules" | sort -u); do
  base=$(sed -E 's/_(bucket|sum|count)$//' <<<"$name")
  grep -qx "$name" "$work/exported" || grep -qx "$base" "$work/exported" || unknown+=$'\n'"$name ($rules)"
done
if [ -n "${unknown//$'\n'/}" ]; then
  echo "check-monitoring: these metrics are not exported by the binary:$unknown" >&2
  exit 1
fi
echo "check-monitoring: ok ($(grep -c 'record:' "$work/dashboard-rules.yaml") dashboard expressions)"
