"""deploy/k8s: renders the base and every overlay with kubectl's kustomize, validates each object
against Kubernetes' schemas (kubernetes-validate, strict: unknown fields fail) for the oldest and
newest Kubernetes versions attnd supports, validates the ServiceMonitor against prometheus-
operator's CRD types (cloudcoil-models-prometheus-operator; strict by a round trip: a field the
CRD lacks fails), and checks what the schemas cannot: probes on the gRPC port of the config, the
grace period against the drain timeout, the restricted security context, selectors that match,
the HPA's metric served by the adapter rules, the GPU and CPU overlays' resources.

  check_k8s.py --repo DIR --tools DIR
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import deploy_common as dc  # noqa: E402

# gRPC probes are GA since 1.27 and unhealthyPodEvictionPolicy since 1.31 (beta, on by default,
# since 1.27); 1.29 is the oldest release validated here.
KUBERNETES_VERSIONS = ("1.29.0", "1.37.0")
LABEL_KINDS = {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler",
               "PodDisruptionBudget", "ServiceMonitor"}


def validate_schemas(objects, where, fail):
    import kubernetes_validate.utils as kv
    from cloudcoil.models.prometheus_operator import v1 as prometheus_operator

    for obj in objects:
        name = f"{where}: {obj['kind']}/{obj['metadata']['name']}"
        if obj["apiVersion"] == "monitoring.coreos.com/v1":
            model = getattr(prometheus_operator, obj["kind"])
            try:
                parsed = model.model_validate(obj)
                dumped = parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
                fail.check(dumped == obj, f"{name}: fields the CRD does not have: "
                           f"{_difference(obj, dumped)}")
            except Exception as e:  # pydantic's ValidationError names the field
                fail.check(False, f"{name}: {e}")
            continue
        for version in KUBERNETES_VERSIONS:
            try:
                kv.validate(obj, version, strict=True)
                fail.check(True, name)
            except kv.SchemaNotFoundError as e:  # never skipped quietly
                fail.check(False, f"{name}: {e.message}")
            except kv.ValidationError as e:
                path = ".".join(str(p) for p in e.path)
                fail.check(False, f"{name} (Kubernetes {version}): {path}: {e.message}")


def _difference(original, dumped, path=""):
    if isinstance(original, dict) and isinstance(dumped, dict):
        out = []
        for key in original:
            if key not in dumped:
                out.append(f"{path}.{key}")
            else:
                out += _difference(original[key], dumped[key], f"{path}.{key}")
        return out
    if isinstance(original, list) and isinstance(dumped, list):
        out = []
        for i, (a, b) in enumerate(zip(original, dumped)):
            out += _difference(a, b, f"{path}[{i}]")
        return out
    return [] if original == dumped else [f"{path} ({original!r} became {dumped!r})"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def port_of(address):
    return int(address.rsplit(":", 1)[1])


def check_deployment(objects, where, repo, fail):
    deployment = dc.find(objects, "Deployment", "attnd")[0]
    pod = deployment["spec"]["template"]
    pod_labels = pod["metadata"]["labels"]
    spec = pod["spec"]
    container = dc.attnd_container(deployment)
    config_text, env = dc.config_of(objects)

    with open(os.path.join(repo, "config", "attnd.yaml")) as f:
        fail.check(config_text == f.read(), f"{where}: the ConfigMap's attnd.yaml is not config/attnd.yaml")
    mount = next((m for m in container["volumeMounts"] if m["name"] == "config"), None)
    args = container.get("args", [])
    fail.check(mount is not None and args[:1] == ["--config"]
               and args[1] == os.path.join(mount["mountPath"], "attnd.yaml"),
               f"{where}: --config {args[1:2]} is not attnd.yaml in the config volume's mount")
    fail.check("replicas" not in deployment["spec"],
               f"{where}: Deployment sets replicas, which the HPA owns")

    # Ports and probes: the gRPC port attnd listens on (server.listen, after ATTND_* overrides).
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    grpc_port = port_of(dc.effective_setting(config_text, env, "server", "listen"))
    metrics_port = port_of(dc.effective_setting(config_text, env, "metrics", "listen"))
    fail.check(ports.get("grpc") == grpc_port, f"{where}: containerPort grpc {ports.get('grpc')} != server.listen's {grpc_port}")
    fail.check(ports.get("metrics") == metrics_port, f"{where}: containerPort metrics != metrics.listen's {metrics_port}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        grpc = container.get(probe, {}).get("grpc")
        fail.check(grpc is not None and grpc.get("port") == grpc_port,
                   f"{where}: {probe} is not a gRPC probe on port {grpc_port}")
    fail.check(container["readinessProbe"]["grpc"].get("service") == "attnd.v1.Attention",
               f"{where}: readiness does not ask for attnd.v1.Attention")

    # Shutdown: preStop delay + attnd's drain must end before the kubelet's SIGKILL.
    drain = int(dc.effective_setting(config_text, env, "server", "drain_timeout_seconds"))
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    fail.check(command[0].endswith("sleep") and len(command) == 2, f"{where}: preStop is not a sleep: {command}")
    pre_stop = int(command[-1])
    grace = spec["terminationGracePeriodSeconds"]
    fail.check(pre_stop >= 5, f"{where}: preStop delay {pre_stop} s is too short for endpoint removal")
    fail.check(grace > pre_stop + drain, f"{where}: terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + drain {drain}")

    # Restricted security context (Pod Security Standards, restricted profile).
    pod_sc, sc = spec.get("securityContext", {}), container.get("securityContext", {})
    fail.check(pod_sc.get("runAsNonRoot") is True and pod_sc.get("runAsUser", 0) != 0,
               f"{where}: not runAsNonRoot with a non-zero runAsUser")
    fail.check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{where}: seccomp is not RuntimeDefault")
    fail.check(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation is not false")
    fail.check(sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem is writable")
    fail.check(sc.get("capabilities", {}).get("drop") == ["ALL"] and not sc["capabilities"].get("add"),
               f"{where}: capabilities are not drop: [ALL]")
    fail.check(spec.get("automountServiceAccountToken") is False, f"{where}: service account token mounted")

    # Services, PDB, ServiceMonitor, HPA.
    services = dc.find(objects, "Service")
    for service in services:
        fail.check(selects(service["spec"]["selector"], pod_labels) and service["spec"]["selector"],
                   f"{where}: Service {service['metadata']['name']} does not select attnd's pods")
        for port in service["spec"]["ports"]:
            fail.check(port["targetPort"] in ports, f"{where}: Service port {port['name']} targets no container port")
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    regular = [s for s in services if s["spec"].get("clusterIP") != "None"]
    fail.check(len(headless) == 1 and [p["targetPort"] for p in headless[0]["spec"]["ports"]] == ["grpc"],
               f"{where}: want one headless Service with the grpc port only")
    fail.check(len(regular) == 1, f"{where}: want one regular Service")
    pdb = dc.find(objects, "PodDisruptionBudget")
    fail.check(len(pdb) == 1 and selects(pdb[0]["spec"]["selector"]["matchLabels"], pod_labels),
               f"{where}: PodDisruptionBudget does not select attnd's pods")
    monitors = dc.find(objects, "ServiceMonitor")
    fail.check(len(monitors) == 1, f"{where}: want one ServiceMonitor")
    if monitors:
        selector = monitors[0]["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services if selects(selector, s["metadata"].get("labels", {}))]
        fail.check(chosen == regular, f"{where}: the ServiceMonitor must select the regular Service only "
                   f"(each pod scraped once), got {[s['metadata']['name'] for s in chosen]}")
        service_ports = {p["name"] for s in chosen for p in s["spec"]["ports"]}
        for endpoint in monitors[0]["spec"]["endpoints"]:
            fail.check(endpoint["port"] in service_ports, f"{where}: ServiceMonitor port {endpoint['port']} not on the Service")
    hpa = dc.find(objects, "HorizontalPodAutoscaler")
    fail.check(len(hpa) == 1, f"{where}: want one HorizontalPodAutoscaler")
    if hpa:
        target = hpa[0]["spec"]["scaleTargetRef"]
        fail.check(target["kind"] == "Deployment" and target["name"] == "attnd", f"{where}: HPA scales {target}")
        served = {rule["name"]["as"] for rule in dc.adapter_rules(repo)}
        for metric in hpa[0]["spec"]["metrics"]:
            name = metric["pods"]["metric"]["name"] if metric["type"] == "Pods" else None
            fail.check(name in served, f"{where}: HPA metric {name} is not served by the adapter rules ({served})")
    return container, env, config_text


def check_overlay_resources(overlay, container, env, config_text, fail):
    resources = container.get("resources", {})
    limits, requests = resources.get("limits", {}), resources.get("requests", {})
    if overlay == "gpu":
        fail.check(int(limits.get("nvidia.com/gpu", 0)) >= 1, "gpu: no nvidia.com/gpu limit")
        fail.check(limits.get("nvidia.com/gpu") == requests.get("nvidia.com/gpu", limits.get("nvidia.com/gpu")),
                   "gpu: nvidia.com/gpu request differs from its limit")
        fail.check(env.get("ATTND_BACKEND_KIND") == "cuda", "gpu: ATTND_BACKEND_KIND is not cuda")
    else:
        fail.check("nvidia.com/gpu" not in limits, "cpu: asks for a GPU")
        fail.check(env.get("ATTND_BACKEND_KIND") == "cpu", "cpu: ATTND_BACKEND_KIND is not cpu")
        fail.check("cpu" in limits, "cpu: no CPU limit to size the threads by")
        threads = env.get("ATTND_BACKEND_CPU_THREADS")
        fail.check(isinstance(threads, dict) and threads.get("resourceFieldRef", {}).get("resource") == "limits.cpu",
                   "cpu: ATTND_BACKEND_CPU_THREADS does not come from limits.cpu")
    # The planner's host budget must fit the memory limit (CPU: MemAvailable is the node's).
    if "memory" in limits:
        budget = dc.parse_bytes(dc.effective_setting(config_text, env, "memory", "host_budget_bytes"))
        margin = dc.parse_bytes(dc.effective_setting(config_text, env, "memory", "safety_margin_bytes"))
        limit = dc.parse_bytes(limits["memory"])
        fail.check(budget + margin <= limit // 2,
                   f"{overlay}: memory.host_budget_bytes {budget} + margin {margin} leaves less than half of "
                   f"limits.memory {limit} for tensors and the process")
    else:
        fail.check(False, f"{overlay}: no memory limit")


def check_adapter_rules(repo, fail):
    for rule in dc.adapter_rules(repo):
        for key in ("seriesQuery", "metricsQuery"):
            try:
                dc.metric_names(dc.adapter_to_promql(rule[key]) if key == "metricsQuery" else rule[key])
                fail.check(True, key)
            except Exception as e:
                fail.check(False, f"prometheus-adapter rule {key}: {e}")
        resources = rule["resources"]["overrides"]
        fail.check(resources.get("pod", {}).get("resource") == "pod" and
                   resources.get("namespace", {}).get("resource") == "namespace",
                   "prometheus-adapter rule: pod and namespace labels are not mapped to resources")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repo", required=True)
    parser.add_argument("--tools", required=True, help=".deps/deploy-tools")
    args = parser.parse_args()
    kubectl = dc.require_tool(os.path.join(args.tools, "bin", "kubectl"))
    fail = dc.Failures()

    for overlay in ("base",) + dc.OVERLAYS:
        objects = dc.render(kubectl, args.repo, overlay)
        kinds = sorted(o["kind"] for o in objects)
        print(f"{overlay}: {len(objects)} objects: {', '.join(kinds)}")
        fail.check({o["kind"] for o in objects} == LABEL_KINDS, f"{overlay}: kinds {kinds}")
        validate_schemas(objects, overlay, fail)
        container, env, config_text = check_deployment(objects, overlay, args.repo, fail)
        if overlay != "base":
            check_overlay_resources(overlay, container, env, config_text, fail)
    check_adapter_rules(args.repo, fail)
    fail.finish("check_k8s")


if __name__ == "__main__":
    main()
