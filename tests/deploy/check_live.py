"""deploy/ against a live attnd (the CPU backend, loopback ports chosen by the kernel):

1. Every metric name the Grafana dashboard, the recording and alert rules and the Prometheus
   adapter rules use is one attnd exposes on /metrics (a histogram's _bucket, _sum and _count
   count as exposed), or is recorded by the rules, or is on a short list of names from elsewhere
   (Prometheus' `up`, kube-state-metrics) or from GPU pools only (checked to be registered in
   server/ instead, since a CPU attnd cannot show them).
2. A real Prometheus, with deploy/prometheus/prometheus.yml (its target rewritten to the live
   attnd, its intervals shortened), scrapes it and evaluates every rule without an error, no
   alert fires, and every dashboard query runs; the ones that must have data have it.
3. attnd starts with each overlay's rendered ConfigMap and ATTND_* environment (listen addresses
   moved to loopback, the backend to cpu): the config the pods get is one attnd accepts.

  check_live.py --repo DIR --tools DIR --attnd BIN --attnctl BIN --prometheus BIN
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import deploy_common as dc  # noqa: E402

# Names used in deploy/ that no attnd exposes, and where they come from.
EXTERNAL = {
    "up": "Prometheus: the scrape's own health",
    "kube_pod_container_status_ready": "kube-state-metrics: the readiness probe (gRPC health)",
}
# Exposed only by CUDA devices' pools (README, Metrics): checked against the source instead.
GPU_ONLY = ("attnd_pool_limit_bytes", "attnd_pool_peak_used_bytes", "attnd_pool_allocation_failures_total")
# Dashboard queries that must return data once attnd has served a few requests.
MUST_HAVE_DATA = (
    "attnd_requests_total", "attnd_request_duration_seconds_bucket", "attnd_queue_depth",
    "attnd_batch_size_bucket", "attnd_plans_total", "attnd_chunk_tokens_bucket",
    "attnd_pool_used_bytes", "attnd_compute_duration_seconds_bucket",
)


class Attnd:
    """attnd started with a config file and environment; its addresses from the `serving` line."""

    def __init__(self, binary, config_text, env=None):
        self.config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        self.config.write(config_text)
        self.config.close()
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("ATTND_")}
        full_env.update(env or {})
        self.process = subprocess.Popen([binary, "--config", self.config.name], env=full_env,
                                        stderr=subprocess.PIPE, text=True)
        self.log = []
        self.serving = threading.Event()
        self.target = self.metrics = None
        threading.Thread(target=self._read, daemon=True).start()
        if not self.serving.wait(30):
            self.stop()
            raise RuntimeError("attnd did not serve within 30 s:\n" + "".join(self.log))

    def _read(self):
        for line in self.process.stderr:
            self.log.append(line)
            if '"serving"' in line:
                fields = json.loads(line)
                self.target, self.metrics = fields["listen"], fields["metrics_listen"]
                self.serving.set()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        os.unlink(self.config.name)


def loopback_config(config_text, backend="cpu"):
    config = yaml.safe_load(config_text)
    config["server"]["listen"] = "127.0.0.1:0"
    config["metrics"]["listen"] = "127.0.0.1:0"
    config["backend"]["kind"] = backend
    return yaml.safe_dump(config)


def http_get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def exposed_names(metrics_text):
    names = set()
    for line in metrics_text.splitlines():
        match = re.match(r"# TYPE (\S+) (\S+)", line)
        if match:
            names.add(match.group(1))
            if match.group(2) == "histogram":
                names.update(match.group(1) + s for s in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return names


def registered_in_source(repo, name):
    for root, _, files in os.walk(os.path.join(repo, "server")):
        for file_name in files:
            if file_name.endswith(".cc"):
                with open(os.path.join(root, file_name)) as f:
                    if f'"{name}"' in f.read():
                        return True
    return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_attnctl(attnctl, target, *args, timeout=120):
    return subprocess.run([attnctl, "--target", target, "--timeout", "30s", *args],
                          capture_output=True, text=True, timeout=timeout)


def check_names(repo, used, exposed, recorded, fail):
    for where, names in used:
        for name in names:
            if name in exposed or name in recorded or name in EXTERNAL:
                fail.check(True, name)
            elif name in GPU_ONLY:
                fail.check(registered_in_source(repo, name), f"{where}: {name} (GPU pools) is not registered in server/")
            else:
                fail.check(False, f"{where}: {name} is not a metric attnd exposes")


def check_with_prometheus(args, attnd, dashboard, rule_count, fail):
    with open(os.path.join(args.repo, "deploy", "prometheus", "prometheus.yml")) as f:
        config = yaml.safe_load(f)
    rules_dir = os.path.abspath(os.path.join(args.repo, "deploy", "prometheus"))
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [os.path.join(rules_dir, r) for r in config["rule_files"]]
    job = next(j for j in config["scrape_configs"] if j["job_name"] == "attnd")
    fail.check(job["static_configs"][0]["targets"] == ["127.0.0.1:9464"], "prometheus.yml's target is not attnd's default metrics address")
    job["static_configs"] = [{"targets": [attnd.metrics]}]
    job["scrape_interval"], job["scrape_timeout"] = "1s", "1s"
    with tempfile.TemporaryDirectory() as tmp:
        config_path = os.path.join(tmp, "prometheus.yml")
        with open(config_path, "w") as f:
            yaml.safe_dump(config, f)
        address = f"127.0.0.1:{free_port()}"
        prometheus = subprocess.Popen(
            [args.prometheus, f"--config.file={config_path}", f"--storage.tsdb.path={tmp}/data",
             f"--web.listen-address={address}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            _query_prometheus(f"http://{address}", args, attnd, dashboard, rule_count, fail)
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(30)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()


def _api(base, path, **params):
    url = f"{base}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    body = json.loads(http_get(url))
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def _query_prometheus(base, args, attnd, dashboard, rule_count, fail):
    deadline = time.time() + 60
    while True:
        try:
            http_get(f"{base}/-/ready", timeout=2)
            break
        except OSError:
            if time.time() > deadline:
                raise RuntimeError("Prometheus not ready within 60 s")
            time.sleep(0.5)
    # Traffic across several scrapes, so rate() over the 1m windows has two points or more.
    load = run_attnctl(args.attnctl, attnd.target, "load", "--concurrency", "2", "--duration", "6s",
                       "--batch", "1", "--q-len", "64", "--kv-len", "96", "--heads", "2",
                       "--head-dim", "32")
    fail.check(load.returncode == 0, f"attnctl load: {load.stdout}{load.stderr}")
    time.sleep(3)  # the last scrape and a rule evaluation after it

    up = _api(base, "query", query='up{job="attnd"}')["result"]
    fail.check(len(up) == 1 and up[0]["value"][1] == "1", f'up{{job="attnd"}}: {up}')
    groups = _api(base, "rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    fail.check(len(rules) == rule_count, f"Prometheus loaded {len(rules)} rules, the files have {rule_count}")
    for rule in rules:
        fail.check(rule["health"] == "ok", f"rule {rule['name']}: {rule['health']} {rule.get('lastError', '')}")
    firing = [a["labels"]["alertname"] for a in _api(base, "alerts")["alerts"] if a["state"] == "firing"]
    fail.check(not firing, f"alerts firing against a healthy attnd: {firing}")
    recorded = _api(base, "query", query='job_method_code:attnd_requests:rate5m{method="Attend",code="OK"}')["result"]
    fail.check(recorded and float(recorded[0]["value"][1]) > 0, f"recorded Attend OK rate: {recorded}")

    for where, expr in dashboard:
        try:
            result = _api(base, "query", query=expr)["result"]
        except Exception as e:  # a query Prometheus refuses
            fail.check(False, f"dashboard {where}: {e}")
            continue
        if any(name in expr for name in MUST_HAVE_DATA):
            fail.check(bool(result), f"dashboard {where}: no data for {expr}")


def check_overlay_configs(args, fail):
    kubectl = dc.require_tool(os.path.join(args.tools, "bin", "kubectl"))
    for overlay in dc.OVERLAYS:
        config_text, env = dc.config_of(dc.render(kubectl, args.repo, overlay))
        # Values only a pod has: a resourceFieldRef stands for a number of CPUs.
        plain = {k: (v if isinstance(v, str) else "2") for k, v in env.items() if k.startswith("ATTND_")}
        plain["ATTND_BACKEND_KIND"] = "cpu"  # no GPU here; the overlay's value is checked by check_k8s
        try:
            server = Attnd(args.attnd, loopback_config(config_text), plain)
            health = run_attnctl(args.attnctl, server.target, "health")
            fail.check(health.returncode == 0 and health.stdout == "SERVING\n",
                       f"{overlay}: attnctl health: {health.stdout}{health.stderr}")
            server.stop()
        except RuntimeError as e:
            fail.check(False, f"{overlay}: attnd refused the overlay's config and environment: {e}")


def main():
    parser = argparse.ArgumentParser()
    for flag in ("--repo", "--tools", "--attnd", "--attnctl", "--prometheus"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    for tool in (args.attnd, args.attnctl, args.prometheus):
        dc.require_tool(tool)
    fail = dc.Failures()

    # The extractor itself: an unknown name must be caught.
    probe = dc.Failures(quiet=True)
    check_names(args.repo, [("probe", dc.metric_names("rate(attnd_no_such_total[5m])"))], set(), set(), probe)
    fail.check(len(probe.items) == 1, "the name check let an unknown metric through")

    with open(os.path.join(args.repo, "config", "attnd.yaml")) as f:
        attnd = Attnd(args.attnd, loopback_config(f.read()))
    try:
        # Requests that make every lazily created series appear (plans, compute time by variant).
        for request in (["attend", "--batch", "1", "--q-len", "33", "--kv-len", "70", "--heads", "2",
                         "--head-dim", "16", "--check"], ["info"], ["health"]):
            r = run_attnctl(args.attnctl, attnd.target, *request)
            fail.check(r.returncode == 0, f"attnctl {request[0]}: {r.stdout}{r.stderr}")
        exposed = exposed_names(http_get(f"http://{attnd.metrics}/metrics"))
        print(f"attnd exposes {len(exposed)} names")

        rules, recorded = dc.rule_expressions(args.repo)
        dashboard = dc.dashboard_expressions(args.repo)
        used = [(w, dc.metric_names(e)) for w, e in rules + dashboard]
        for rule in dc.adapter_rules(args.repo):
            used.append(("adapter seriesQuery", dc.metric_names(rule["seriesQuery"])))
            used.append(("adapter metricsQuery", dc.metric_names(dc.adapter_to_promql(rule["metricsQuery"]))))
        print(f"{sum(len(n) for _, n in used)} metric references in {len(used)} queries")
        check_names(args.repo, used, exposed, recorded, fail)
        dashboard_names = {n for w, names in used if w.startswith(("panel", "variable")) for n in names}
        for name in MUST_HAVE_DATA:
            fail.check(name in dashboard_names, f"the dashboard does not show {name}")

        check_with_prometheus(args, attnd, dashboard, len(rules), fail)
    finally:
        attnd.stop()
    check_overlay_configs(args, fail)
    fail.finish("check_live")


if __name__ == "__main__":
    main()
