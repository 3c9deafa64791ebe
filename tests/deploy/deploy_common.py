"""What tests/deploy's checks share: rendering the kustomize overlays, the attnd config they carry,
the PromQL in the rules, the adapter rules and the dashboard, and a failure list.

The tools come from .deps/deploy-tools (scripts/install-deps.sh); a missing tool fails the test.
"""

import os
import re
import subprocess
import sys

import yaml

OVERLAYS = ("gpu", "cpu")


class Failures:
    """Collects failed checks, prints each, and exits non-zero at the end if there were any."""

    def __init__(self, quiet=False):
        self.items = []
        self.passed = 0
        self.quiet = quiet

    def check(self, ok, what):
        if ok:
            self.passed += 1
        else:
            self.items.append(what)
            if not self.quiet:
                print(f"FAIL {what}", flush=True)
        return ok

    def finish(self, name):
        print(f"{name}: {self.passed} passed, {len(self.items)} failed", flush=True)
        sys.exit(1 if self.items else 0)


def require_tool(path):
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        sys.exit(f"{path} is missing: run scripts/install-deps.sh (tests/deploy/requirements.txt)")
    return path


def render(kubectl, repo, overlay):
    """`kubectl kustomize` of deploy/k8s/overlays/<overlay> (or the base): the list of objects."""
    path = os.path.join(repo, "deploy", "k8s", "base" if overlay == "base" else f"overlays/{overlay}")
    # config/attnd.yaml lies outside the kustomization roots (README: Kubernetes).
    out = subprocess.run([kubectl, "kustomize", "--load-restrictor", "LoadRestrictionsNone", path],
                         check=False, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {path} failed:\n{out.stderr}")
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def find(objects, kind, name=None):
    return [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def attnd_container(deployment):
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "attnd")


def config_of(objects):
    """(attnd.yaml text, the container's environment as {name: value or valueFrom}) of a render."""
    deployment = find(objects, "Deployment", "attnd")[0]
    volumes = deployment["spec"]["template"]["spec"]["volumes"]
    config_map_name = next(v["configMap"]["name"] for v in volumes if v["name"] == "config")
    config_map = find(objects, "ConfigMap", config_map_name)[0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in attnd_container(deployment).get("env", [])}
    return config_map["data"]["attnd.yaml"], env


def effective_setting(config_text, env, section, key):
    """A config value as attnd resolves it: the file, then ATTND_<SECTION>_<KEY> (README)."""
    name = f"ATTND_{section.upper()}_{key.upper()}"
    if name in env and isinstance(env[name], str):
        return env[name]
    return yaml.safe_load(config_text)[section][key]


_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": 1024, "MiB": 1024**2,
          "GiB": 1024**3, "Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "K": 1000, "M": 1000**2,
          "G": 1000**3}


def parse_bytes(value):
    """attnd's byte sizes (512KB, 256MiB) and Kubernetes quantities (4Gi)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(value))
    if not match or match.group(2) not in _UNITS:
        raise ValueError(f"not a byte size: {value!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2)])


# --- PromQL --------------------------------------------------------------------------------------

# Grafana's variables, replaced by values that make the query plain PromQL.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
    "${__interval}": "15s", "$__range": "1h", "$job": ".*", "${job}": ".*", "$instance": ".*",
    "${instance}": ".*",
}


def grafana_to_promql(expr):
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    if "$" in expr:
        raise ValueError(f"unknown Grafana variable in {expr!r}")
    return expr


def adapter_to_promql(query):
    """A Prometheus adapter query template with its template fields filled in."""
    return (query.replace("<<.Series>>", "attnd_queue_depth")
            .replace("<<.LabelMatchers>>", 'namespace="ns",pod=~"p1|p2"')
            .replace("<<.GroupBy>>", "pod"))


def metric_names(expr):
    """Every metric name the PromQL expression selects. Raises on a parse error or a selector
    without a plain name (which would escape the check)."""
    import promql_parser  # from .deps/deploy-tools

    names = []
    problems = []

    def visit(node, *_):
        if isinstance(node, promql_parser.VectorSelector):
            if node.name:
                names.append(node.name)
            else:
                problems.append(f"a selector without a metric name in {expr!r}")
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    if problems:
        raise ValueError("; ".join(problems))
    return names


def rule_expressions(repo):
    """[(where, expr)] of every recording and alert rule, and the set of recorded names."""
    exprs, recorded = [], set()
    rules_dir = os.path.join(repo, "deploy", "prometheus", "rules")
    for file_name in sorted(os.listdir(rules_dir)):
        with open(os.path.join(rules_dir, file_name)) as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    name = rule.get("record") or rule.get("alert")
                    exprs.append((f"{file_name}: {name}", rule["expr"]))
                    if "record" in rule:
                        recorded.add(rule["record"])
    return exprs, recorded


def dashboard_expressions(repo):
    """[(where, PromQL)] of every panel target and templating query of the Grafana dashboard."""
    import json

    with open(os.path.join(repo, "deploy", "grafana", "attnd.json")) as f:
        dashboard = json.load(f)
    exprs = []

    def panels(items):
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            exprs.append((f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"])))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        if not match:
            raise ValueError(f"variable {variable['name']}: not label_values(selector, label): {query}")
        exprs.append((f"variable {variable['name']}", grafana_to_promql(match.group(1))))
    return exprs


def adapter_rules(repo):
    with open(os.path.join(repo, "deploy", "k8s", "prometheus-adapter", "rules.yaml")) as f:
        return yaml.safe_load(f)["rules"]
