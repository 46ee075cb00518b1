#!/usr/bin/env bash
# Checks the monitoring pack in this directory, offline:
#   1. promtool check rules   mesolive-recording.yml mesolive-alerts.yml
#   2. promtool test rules    tests/*.yml
#   3. the dashboard is valid JSON, and every query in it parses as PromQL (promtool)
#   4. conventions: every alert has severity critical|warning, summary, description and
#      runbook_url = README anchor #runbook-<alertname lowercased>, and README.md has that
#      `### Runbook: <AlertName>` section; every alert has a test case
#      where it fires and one where it does not; every recording rule is tested; every dashboard
#      panel uses ${datasource} and $instance, and only recording rules that exist
#   5. prints `metrics:` then every metric name the dashboard and the rules read (sorted, one a
#      line): what a running daemon's /metrics must export. Prometheus's own `up` and the
#      recorded `mesolive:*` series are not listed.
#
# Usage: check.sh            all of the above; exit 0 only if everything passed
#        check.sh --metrics  only the metric names, one a line, no header (needs python3 only)
#
# Needs: promtool (Debian: apt-get install -y prometheus), python3 with PyYAML
# (apt-get install -y python3-yaml). A missing tool is an error (exit 2), never a skip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

die() { printf 'check.sh: %s\n' "$*" >&2; exit 2; }

mode=all
case "${1:-}" in
  "") ;;
  --metrics) mode=metrics ;;
  -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (usage: check.sh [--metrics])" ;;
esac

command -v python3 >/dev/null 2>&1 || die "python3 not found: it is needed to read the dashboard and the rules"

# The pack's files, relative to this directory.
rules=(mesolive-recording.yml mesolive-alerts.yml)
dashboard=mesolive-dashboard.json

# Python helper: `names` prints the metric names; `lint` checks the conventions; `dashboard-rules`
# writes the dashboard's queries as a rule file for promtool. `names` uses the standard library
# only, so that --metrics works wherever python3 does.
helper() {
  python3 - "$@" <<'PY'
import json, re, sys, glob

RUNBOOK = "https://github.com/mesolive/mesolive-supervisor#runbook-"
RULE_FILES = ["mesolive-recording.yml", "mesolive-alerts.yml"]
DASHBOARD = "mesolive-dashboard.json"

def rule_exprs(path):
    """The `expr:` values of a rule file, read line by line (plain, quoted or block scalars)."""
    out, lines, i = [], open(path, encoding="utf-8").read().splitlines(), 0
    while i < len(lines):
        m = re.match(r"^(\s*)(?:-\s+)?expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        indent = len(lines[i - 1]) - len(lines[i - 1].lstrip()) + (2 if lines[i - 1].lstrip().startswith("- ") else 0)
        value = m.group(2).strip()
        if value[:1] in ("|", ">"):
            block = []
            while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > indent):
                block.append(lines[i].strip())
                i += 1
            out.append("\n".join(block).strip())
        elif value[:1] == "'":
            out.append(value[1:-1].replace("''", "'"))
        elif value[:1] == '"':
            out.append(json.loads(value))
        else:
            out.append(re.sub(r"\s+#.*$", "", value))
    return out

def record_names(path):
    return re.findall(r"^\s*-?\s*record:\s*['\"]?([A-Za-z0-9_:]+)", open(path, encoding="utf-8").read(), re.M)

def dashboard_exprs(dash):
    exprs = []
    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "expr" and isinstance(value, str):
                    exprs.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(dash.get("panels", []))
    for var in dash.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            q = var.get("query")
            exprs.append(q.get("query", "") if isinstance(q, dict) else str(q or ""))
    return exprs

def metric_names(expr):
    bare = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    return set(re.findall(r"(?<![A-Za-z0-9_:])(mesolive_[A-Za-z0-9_]+)", bare))

def load_dashboard():
    return json.load(open(DASHBOARD, encoding="utf-8"))

def all_exprs():
    exprs = [e for f in RULE_FILES for e in rule_exprs(f)]
    return exprs + dashboard_exprs(load_dashboard())

def cmd_names():
    names = set()
    for e in all_exprs():
        names |= metric_names(e)
    print("\n".join(sorted(names)))

def for_promtool(expr):
    # Grafana's label_values(selector, label) variable query: check the selector.
    expr = re.sub(r"^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$", r"\1", expr, flags=re.S)
    return (expr.replace("$__rate_interval", "1m").replace("${__rate_interval}", "1m")
                .replace("$__interval", "1m").replace("$__range", "1h")
                .replace("$instance", ".*").replace("${instance}", ".*"))

def cmd_dashboard_rules(out_path):
    exprs = dashboard_exprs(load_dashboard())
    rules = [{"record": "dashboard_query_%d" % i, "expr": for_promtool(e)} for i, e in enumerate(exprs)]
    json.dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}, open(out_path, "w"), indent=1)
    print("%d dashboard queries" % len(exprs))

def cmd_lint():
    try:
        import yaml
    except ImportError:
        print("check.sh: PyYAML not found (python3 -c 'import yaml' failed): install python3-yaml "
              "(Debian) or PyYAML (pip)", file=sys.stderr)
        sys.exit(2)
    problems = []
    alerts, records = {}, []
    for f in RULE_FILES:
        doc = yaml.safe_load(open(f, encoding="utf-8"))
        parsed = []
        for group in doc["groups"]:
            for rule in group["rules"]:
                parsed.append(rule["expr"].strip())
                if "alert" in rule:
                    alerts[rule["alert"]] = rule
                else:
                    records.append(rule["record"])
        # The line reader behind --metrics must see exactly what YAML sees.
        if [" ".join(e.split()) for e in rule_exprs(f)] != [" ".join(e.split()) for e in parsed]:
            problems.append("%s: the line-based expr reader disagrees with YAML (keep `expr:` plain, quoted or a | block)" % f)
        if sorted(record_names(f)) != sorted(r["record"] for g in doc["groups"] for r in g["rules"] if "record" in r):
            problems.append("%s: the record-name reader disagrees with YAML" % f)

    for name, rule in alerts.items():
        sev = rule.get("labels", {}).get("severity")
        if sev not in ("critical", "warning"):
            problems.append("%s: labels.severity is %r, not critical|warning" % (name, sev))
        ann = rule.get("annotations", {})
        for key in ("summary", "description", "runbook_url"):
            if not ann.get(key):
                problems.append("%s: annotations.%s missing" % (name, key))
        want = RUNBOOK + name.lower()
        if ann.get("runbook_url") and ann["runbook_url"] != want:
            problems.append("%s: runbook_url is %s, expected %s" % (name, ann["runbook_url"], want))
    readme = open("../../README.md", encoding="utf-8").read()
    for name in alerts:
        if ("\n### Runbook: %s\n" % name) not in readme:
            problems.append("%s: README.md has no '### Runbook: %s' section (its runbook_url anchor)" % (name, name))

    fires, quiet, tested_exprs = set(), set(), []
    test_files = sorted(glob.glob("tests/*.yml"))
    if not test_files:
        problems.append("no test file in tests/")
    for f in test_files:
        doc = yaml.safe_load(open(f, encoding="utf-8"))
        for test in doc.get("tests", []):
            for case in test.get("alert_rule_test", []) or []:
                exp = case.get("exp_alerts") or []
                (fires if exp else quiet).add(case["alertname"])
                for alert in exp:
                    if "exp_labels" not in alert or "exp_annotations" not in alert:
                        problems.append("%s: a firing case of %s lacks exp_labels or exp_annotations" % (f, case["alertname"]))
            for case in test.get("promql_expr_test", []) or []:
                tested_exprs.append(case["expr"])
    for name in sorted(alerts):
        if name not in fires:
            problems.append("%s: no test case where it fires" % name)
        if name not in quiet:
            problems.append("%s: no test case where it does not fire" % name)
    for rec in records:
        if not any(re.search(r"(?<![A-Za-z0-9_:])%s(?![A-Za-z0-9_:])" % re.escape(rec), e) for e in tested_exprs):
            problems.append("recording rule %s: no promql_expr_test reads it" % rec)

    dash = load_dashboard()
    variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        problems.append("dashboard: no `datasource` variable of type datasource/prometheus")
    if "instance" not in variables:
        problems.append("dashboard: no `instance` variable")
    def check_ds(where, d):
        if not isinstance(d, dict) or d.get("uid") != "${datasource}":
            problems.append("%s: datasource is %r, expected uid ${datasource}" % (where, d))
    check_ds("variable instance", variables.get("instance", {}).get("datasource"))
    panels = dash.get("panels", [])
    for p in list(panels):
        panels.extend(p.get("panels", []))
    defined = set(records)
    for p in panels:
        if p.get("type") == "row":
            continue
        where = "dashboard panel %r" % p.get("title")
        check_ds(where, p.get("datasource"))
        if not p.get("targets"):
            problems.append("%s: no query" % where)
        for t in p.get("targets", []):
            check_ds(where, t.get("datasource"))
            expr = t.get("expr", "")
            if "$instance" not in expr:
                problems.append("%s: query does not filter on $instance: %s" % (where, expr))
            for rec in re.findall(r"(?<![A-Za-z0-9_])(mesolive:[A-Za-z0-9_:]+)", expr):
                if rec not in defined:
                    problems.append("%s: reads %s, which no recording rule defines" % (where, rec))
        if re.search(r'job\s*[=!]~?', json.dumps(p.get("targets", []))):
            problems.append("%s: a query matches on job (the pack must not assume a job name)" % where)
    for name, rule in alerts.items():
        if re.search(r"job\s*[=!]~?", rule["expr"]):
            problems.append("%s: the expression matches on job (the pack must not assume a job name)" % name)

    for p in problems:
        print("  FAIL: " + p)
    if problems:
        sys.exit(1)
    print("  %d alerts, %d recording rules, %d dashboard panels: conventions hold" % (
        len(alerts), len(records), sum(1 for p in panels if p.get("type") != "row")))

cmd = sys.argv[1]
if cmd == "names":
    cmd_names()
elif cmd == "lint":
    cmd_lint()
elif cmd == "dashboard-rules":
    cmd_dashboard_rules(sys.argv[2])
PY
}

if [ "$mode" = metrics ]; then
  helper names
  exit 0
fi

if ! command -v promtool >/dev/null 2>&1; then
  die "promtool not found: it is required to check and test the rules (Debian/Ubuntu: apt-get install -y prometheus; or put promtool from a Prometheus release on PATH). Nothing was checked."
fi

failed=0
step() { printf '\n== %s\n' "$*"; }
run() { "$@" || { failed=1; printf 'check.sh: FAILED: %s\n' "$*" >&2; }; }

step "promtool: $(promtool --version 2>&1 | head -n 1)"

step "rules: promtool check rules"
run promtool check rules "${rules[@]}"

step "rule unit tests: promtool test rules tests/*.yml"
run promtool test rules tests/*.yml

step "dashboard: JSON"
if python3 -m json.tool "$dashboard" >/dev/null; then
  echo "  $dashboard: valid JSON"
else
  failed=1; echo "check.sh: FAILED: $dashboard is not valid JSON" >&2
fi

step "dashboard: every query parses (promtool check rules on the queries)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if helper dashboard-rules "$tmp/dashboard-queries.json"; then
  run promtool check rules "$tmp/dashboard-queries.json"
else
  failed=1; echo "check.sh: FAILED: could not read the dashboard's queries" >&2
fi

step "conventions"
set +e
helper lint
rc=$?
set -e
case $rc in
  0) ;;
  2) exit 2 ;;
  *) failed=1; echo "check.sh: FAILED: conventions (see FAIL lines above)" >&2 ;;
esac

if [ "$failed" -ne 0 ]; then
  printf '\ncheck.sh: the monitoring pack has problems (see above)\n' >&2
  exit 1
fi

printf '\nmetrics:\n'
helper names
