"""Elasticsearch, Kibana and Filebeat as ECK resources, and a Job loading monitoring/elk/ into them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import kube

ES_API, KIBANA_API, BEAT_API = "elasticsearch.k8s.elastic.co/v1", "kibana.k8s.elastic.co/v1", "beat.k8s.elastic.co/v1beta1"
ES_HTTP_PORT, ES_TRANSPORT_PORT, KIBANA_PORT = 9200, 9300, 5601
ELK_MOUNT = "/etc/tfship/elk"


@dataclass
class LogPipelineArgs:
    """The environment's log pipeline.

    namespace: the environment's namespace (Elasticsearch, Kibana, the setup Job).
    agents_namespace: Filebeat's namespace (it reads node log files at Pod Security "privileged").
    version: Elastic Stack version.
    es_nodes, es_storage_size, es_memory, kibana_memory: sizing.
    kibana_host, tls_issuer, ingress_class: Kibana's Ingress.
    log_retention: ILM delete phase age of the log indices.
    curl_image: the setup Job's image, pinned by digest.
    elk_files: monitoring/elk files by relative path (Filebeat config, index template, ILM
        policy, Kibana saved objects).
    """

    namespace: pulumi.Input[str]
    agents_namespace: pulumi.Input[str]
    version: str
    es_nodes: int
    es_storage_size: str
    es_memory: str
    kibana_memory: str
    kibana_host: str
    tls_issuer: str
    ingress_class: pulumi.Input[str]
    log_retention: str
    curl_image: str
    elk_files: dict[str, Path]


def restricted_pod_template(container: str, memory: str) -> dict:
    """Return an ECK podTemplate whose main container fits Pod Security "restricted"."""
    return {"spec": {"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
                     "automountServiceAccountToken": False,
                     "containers": [{"name": container,
                                     "resources": {"requests": {"memory": memory, "cpu": "250m"},
                                                   "limits": {"memory": memory}},
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]},
                                                         "runAsNonRoot": True}}]}}


# Filebeat output settings ECK sets itself from elasticsearchRef (hosts, credentials, CA).
ECK_MANAGED_OUTPUT = ("hosts", "username", "password", "ssl.certificate_authorities")


def filebeat_config(files: dict[str, Path]) -> dict:
    """Return monitoring/elk's Filebeat config with the connection settings left to ECK.

    Everything else stays as monitoring/ wrote it: inputs, parsers, processors, setup.* and
    the output's index (the data stream the index template matches).
    """
    source = next((p for rel, p in files.items() if Path(rel).name in ("filebeat.yml", "filebeat.yaml")), None)
    config = (yaml.safe_load(source.read_text()) if source else None) or {}
    output = config.pop("output.elasticsearch", None) or (config.pop("output", None) or {}).get("elasticsearch") or {}
    kept = {k: v for k, v in output.items() if k not in ECK_MANAGED_OUTPUT}
    if kept:
        config["output.elasticsearch"] = kept
    return config


def setup_plan(files: dict[str, Path], retention: str) -> tuple[dict[str, str], list[str]]:
    """Return the setup Job's data files and the curl commands that load them, in order.

    The ILM policy is named as the index template's `index.lifecycle.name` says (one source)
    and its delete phase is set to the environment's retention. Order: ILM policy, index
    template, Kibana saved objects.
    """
    data, ilm, templates, saved = {}, [], [], []
    policy_name = None
    for rel, path in sorted(files.items()):
        if path.suffix == ".json" and "template" in path.name:
            template = json.loads(path.read_text())
            policy_name = template.get("template", {}).get("settings", {}).get("index.lifecycle.name", policy_name)
    for rel, path in sorted(files.items()):
        key = rel.replace("/", "__")
        if path.suffix == ".json" and "ilm" in path.name:
            if policy_name is None:
                raise ValueError(f"{rel}: no index template names its ILM policy (index.lifecycle.name)")
            policy = json.loads(path.read_text())
            phases = policy.get("policy", {}).get("phases", {})
            if "delete" in phases:
                phases["delete"]["min_age"] = retention
            data[key] = json.dumps(policy)
            ilm.append(f'es PUT "/_ilm/policy/{policy_name}" {key}')
        elif path.suffix == ".json" and "template" in path.name:
            data[key] = path.read_text()
            templates.append(f'es PUT "/_index_template/{policy_name or path.stem}" {key}')
        elif path.suffix == ".ndjson":
            data[key] = path.read_text()
            saved.append(f"kibana {key}")
    return data, ilm + templates + saved


SETUP_SCRIPT = """set -eu
auth="elastic:$(cat /var/run/secrets/elastic/elastic)"
es() { curl -sS --fail-with-body --retry 30 --retry-all-errors --retry-delay 10 --max-time 30 \\
  --cacert /var/run/secrets/elastic-ca/ca.crt -u "$auth" -X "$1" "$ES_URL$2" \\
  -H 'Content-Type: application/json' --data-binary "@%(mount)s/$3"; echo; }
kibana() { curl -sS --fail-with-body --retry 30 --retry-all-errors --retry-delay 10 --max-time 60 \\
  -u "$auth" -X POST "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \\
  -H 'kbn-xsrf: true' --form "file=@%(mount)s/$1;filename=$1.ndjson"; echo; }
""" % {"mount": ELK_MOUNT}


class LogPipeline(pulumi.ComponentResource):
    """ECK-managed Elasticsearch and Kibana, Filebeat on every node, and their setup Job."""

    def __init__(self, name: str, args: LogPipelineArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("tfship:log_pipeline:LogPipeline", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        own = kube.labels(name, "logging")
        self.es_name, self.kibana_name = f"{name}-es", f"{name}-kibana"
        self.es_selector = {"elasticsearch.k8s.elastic.co/cluster-name": self.es_name}
        self.kibana_selector = {"kibana.k8s.elastic.co/name": self.kibana_name}
        self.setup_selector = kube.labels(name, "logging-setup")
        es = k8s.apiextensions.CustomResource(
            f"{name}-elasticsearch", api_version=ES_API, kind="Elasticsearch",
            metadata=kube.metadata(self.es_name, args.namespace, own),
            spec={"version": args.version,
                  "nodeSets": [{"name": "default", "count": args.es_nodes,
                                # No mmap: no privileged sysctl init container under "restricted".
                                "config": {"node.store.allow_mmap": False},
                                "podTemplate": restricted_pod_template("elasticsearch", args.es_memory),
                                "volumeClaimTemplates": [{
                                    "metadata": {"name": "elasticsearch-data"},
                                    "spec": {"accessModes": ["ReadWriteOnce"],
                                             "resources": {"requests": {"storage": args.es_storage_size}}}}]}]},
            opts=child)
        kibana = k8s.apiextensions.CustomResource(
            f"{name}-kibana", api_version=KIBANA_API, kind="Kibana",
            metadata=kube.metadata(self.kibana_name, args.namespace, own),
            spec={"version": args.version, "count": 1, "elasticsearchRef": {"name": self.es_name},
                  # TLS terminates at the Ingress; inside, NetworkPolicies limit who reaches Kibana.
                  "http": {"tls": {"selfSignedCertificate": {"disabled": True}}},
                  "podTemplate": restricted_pod_template("kibana", args.kibana_memory)},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[es]))
        k8s.networking.v1.Ingress(
            f"{name}-kibana-ingress",
            metadata=kube.metadata(self.kibana_name, args.namespace, own,
                                   annotations={"cert-manager.io/cluster-issuer": args.tls_issuer}),
            spec={"ingressClassName": args.ingress_class,
                  "tls": [{"hosts": [args.kibana_host], "secretName": f"{self.kibana_name}-tls"}],
                  "rules": [{"host": args.kibana_host, "http": {"paths": [{
                      "path": "/", "pathType": "Prefix",
                      "backend": {"service": {"name": f"{self.kibana_name}-kb-http",
                                              "port": {"number": KIBANA_PORT}}}}]}}]},
            opts=child)
        self._filebeat(name, args, own)

        data, commands = setup_plan(args.elk_files, args.log_retention)
        files = k8s.core.v1.ConfigMap(
            f"{name}-elk-files", metadata=kube.metadata(f"{name}-elk-files", args.namespace, own),
            data=data, opts=child)
        script = SETUP_SCRIPT + "\n".join(commands) + "\n"
        k8s.batch.v1.Job(
            f"{name}-setup",
            metadata=kube.metadata(f"{name}-setup-{kube.checksum({'data': data, 'script': script})[:8]}",
                                   args.namespace, self.setup_selector),
            spec={"backoffLimit": 3, "activeDeadlineSeconds": 1200,
                  "template": {"metadata": {"labels": self.setup_selector}, "spec": {
                      "restartPolicy": "OnFailure", "securityContext": kube.pod_security(),
                      "automountServiceAccountToken": False,
                      "containers": [{
                          "name": "setup", "image": args.curl_image, "imagePullPolicy": "IfNotPresent",
                          "command": ["/bin/sh", "-c", script],
                          "env": [{"name": "ES_URL", "value": pulumi.Output.concat(
                                      "https://", self.es_name, "-es-http.", args.namespace, ".svc:", str(ES_HTTP_PORT))},
                                  {"name": "KIBANA_URL", "value": pulumi.Output.concat(
                                      "http://", self.kibana_name, "-kb-http.", args.namespace, ".svc:", str(KIBANA_PORT))}],
                          "resources": kube.resources("50m", "32Mi", "64Mi"),
                          "securityContext": kube.container_security(),
                          "volumeMounts": [{"name": "elk", "mountPath": ELK_MOUNT, "readOnly": True},
                                           {"name": "elastic", "mountPath": "/var/run/secrets/elastic", "readOnly": True},
                                           {"name": "elastic-ca", "mountPath": "/var/run/secrets/elastic-ca", "readOnly": True}]}],
                      "volumes": [{"name": "elk", "configMap": {"name": f"{name}-elk-files"}},
                                  {"name": "elastic", "secret": {"secretName": f"{self.es_name}-es-elastic-user"}},
                                  {"name": "elastic-ca", "secret": {"secretName": f"{self.es_name}-es-http-certs-public"}}]}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[es, kibana, files], delete_before_replace=True))
        self.kibana_url = f"https://{args.kibana_host}"
        self.register_outputs({"kibana_url": self.kibana_url, "elasticsearch": self.es_name})

    def _filebeat(self, name: str, args: LogPipelineArgs, own: dict) -> None:
        """Filebeat on every node, shipping container logs to the environment's Elasticsearch."""
        child = pulumi.ResourceOptions(parent=self)
        account = f"{name}-filebeat"
        k8s.core.v1.ServiceAccount(f"{name}-filebeat-account",
                                   metadata=kube.metadata(account, args.agents_namespace, own), opts=child)
        role = k8s.rbac.v1.ClusterRole(
            f"{name}-filebeat-role", metadata={"name": account, "labels": own},
            rules=[{"apiGroups": [""], "resources": ["pods", "namespaces", "nodes"], "verbs": ["get", "list", "watch"]}],
            opts=child)
        k8s.rbac.v1.ClusterRoleBinding(
            f"{name}-filebeat-binding", metadata={"name": account, "labels": own},
            role_ref={"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
            subjects=[{"kind": "ServiceAccount", "name": account, "namespace": args.agents_namespace}],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[role]))
        host_logs = [("varlogcontainers", "/var/log/containers"), ("varlogpods", "/var/log/pods")]
        k8s.apiextensions.CustomResource(
            f"{name}-filebeat", api_version=BEAT_API, kind="Beat",
            metadata=kube.metadata(account, args.agents_namespace, own),
            spec={"type": "filebeat", "version": args.version,
                  "elasticsearchRef": {"name": self.es_name, "namespace": args.namespace},
                  "config": filebeat_config(args.elk_files),
                  "daemonSet": {"podTemplate": {"spec": {
                      "serviceAccountName": account,
                      "automountServiceAccountToken": True,
                      # Reading other pods' log files on the node needs root: this is why
                      # Filebeat lives in the privileged agents namespace.
                      "securityContext": {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}},
                      "containers": [{"name": "filebeat",
                                      # The Filebeat config reads the environment's namespace.
                                      "env": [{"name": "TFSHIP_NAMESPACE", "value": args.namespace}],
                                      "resources": {"requests": {"cpu": "100m", "memory": "200Mi"},
                                                    "limits": {"memory": "400Mi"}},
                                      "securityContext": {"allowPrivilegeEscalation": False,
                                                          "readOnlyRootFilesystem": True,
                                                          "capabilities": {"drop": ["ALL"],
                                                                           "add": ["DAC_READ_SEARCH"]}},
                                      "volumeMounts": [{"name": vol, "mountPath": path, "readOnly": True}
                                                       for vol, path in host_logs]}],
                      "volumes": [{"name": vol, "hostPath": {"path": path}} for vol, path in host_logs]}}}},
            opts=child)
