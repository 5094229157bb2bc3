{{/*
The collector (`observer collect`), one per node: tails /var/log/pods, enriches each line with its pod's metadata
from the API (a watch of this node's pods), buffers on disk and sends everything by OTLP/HTTP: on an
observability plane to its own observer's internal OTLP port, on a data plane to `collector.exporter.endpoint`.
With `collector.otlp.enabled` it also receives OTLP from the node's workloads (Service `collector`, node-local).
Shared by the observability-plane and data-plane charts (identical copies; tests/unit/test_charts_files.py).

Every record carries `collector.cluster` (empty: `clusterAgent.planeID`, the chart's name for this cluster's plane).
JSON audit lines become audit records only from `collector.audit.trustedProducers` (namespace "" = this release's);
forwarded, they travel with OBSERVER_INTERNAL_TOKEN (`collector.exporter.auditTokenSecret`, or on an observability
plane sending to its own observer the key of that name in `observer.secretName`, if present), without which the
observer stores them as ordinary log lines.

It runs as root (uid 0) because the kubelet writes pod logs 0640 root:root; everything else is taken away:
no capabilities, no privilege escalation, a read-only root filesystem, the logs mounted read-only.
*/}}

{{- define "plane.collectorEndpoint" -}}
{{- $endpoint := .Values.collector.exporter.endpoint -}}
{{- if and (not $endpoint) (hasKey .Values "observer") -}}
{{- $endpoint = printf "http://%s:%v" (include "plane.serviceHost" (list . "observer-internal")) .Values.observer.internalService.otlpPort -}}
{{- end -}}
{{- if not $endpoint -}}
{{- fail "collector.exporter.endpoint is required: the OTLP/HTTP URL of the observability plane (its observer-internal Service, port 4318, or a gateway in front of it)" -}}
{{- end -}}
{{- include "plane.noPlaceholder" (list "collector.exporter.endpoint" $endpoint) -}}
{{- $endpoint -}}
{{- end -}}

{{/* The cluster name the records carry: collector.cluster, else the plane's ID. */}}
{{- define "plane.collectorCluster" -}}
{{- .Values.collector.cluster | default .Values.clusterAgent.planeID -}}
{{- end -}}

{{/* `audit.trusted_producers` as collectors/config.py reads it: snake_case, namespace "" = this release's. */}}
{{- define "plane.collectorTrustedProducers" -}}
{{- $producers := list -}}
{{- range .Values.collector.audit.trustedProducers -}}
{{- $producers = append $producers (dict "namespace" (.namespace | default $.Release.Namespace) "container" .container "pod_prefix" (.podPrefix | default "")) -}}
{{- end -}}
{{- toJson $producers -}}
{{- end -}}

{{/* The collector's OBSERVER_INTERNAL_TOKEN (exporter.otlp.audit_token): an env entry, or nothing. */}}
{{- define "plane.collectorAuditTokenEnv" -}}
{{- $c := .Values.collector -}}
{{- $secret := $c.exporter.auditTokenSecret | default dict -}}
{{- if $secret.name -}}
- name: OBSERVER_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ $secret.name | quote }}, key: {{ $secret.key | default "OBSERVER_INTERNAL_TOKEN" | quote }}}
{{- else if and (not $c.exporter.endpoint) (hasKey .Values "observer") .Values.observer.secretName -}}
# this release's observer reads its internal token from the same key, if the Secret has one
- name: OBSERVER_INTERNAL_TOKEN
  valueFrom:
    secretKeyRef: {name: {{ .Values.observer.secretName | quote }}, key: OBSERVER_INTERNAL_TOKEN, optional: true}
{{- end -}}
{{- end -}}

{{- define "plane.collectorConfig" -}}
{{- $c := .Values.collector -}}
receivers:
  tail:
    paths: ["/var/log/pods/*/*/*.log"]
    checkpoint: /var/lib/observer/tail.db
  {{- if $c.otlp.enabled }}
  otlp:
    host: 0.0.0.0
    port: {{ $c.otlp.port }}
  {{- end }}
metadata:
  kubernetes: {}
buffer:
  directory: /var/lib/observer/buffer
  max_bytes: {{ int64 $c.bufferMaxBytes }}
exporter:
  otlp:
    endpoint: {{ include "plane.collectorEndpoint" . | quote }}
telemetry:
  host: 0.0.0.0
  port: 2020
cluster: {{ include "plane.collectorCluster" . | quote }}
audit:
  trusted_producers: {{ include "plane.collectorTrustedProducers" . }}
{{- end -}}

{{- define "plane.collector" -}}
{{- $c := .Values.collector -}}
{{- if $c.enabled }}
{{- $labels := include "plane.componentLabels" (dict "root" . "component" "collector") }}
{{- $name := printf "%s-collector" .Release.Namespace | trunc 63 | trimSuffix "-" }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: collector
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
---
# Pod metadata for tailed lines: a list+watch of this node's pods, and a GET for a pod not seen yet.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ $name }}
  labels:
    {{- $labels | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: [pods]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ $name }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: collector
    namespace: {{ .Release.Namespace }}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: collector-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
data:
  collector.yaml: |
    {{- include "plane.collectorConfig" . | nindent 4 }}
---
apiVersion: v1
kind: Service
metadata:
  name: collector
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  type: ClusterIP
  # Workloads send OTLP to the collector on their own node.
  internalTrafficPolicy: Local
  selector:
    {{- include "plane.componentSelectorLabels" (dict "root" . "component" "collector") | nindent 4 }}
  ports:
    - {name: metrics, port: 2020, targetPort: metrics, protocol: TCP}
    {{- if $c.otlp.enabled }}
    - {name: otlp-http, port: {{ $c.otlp.port }}, targetPort: otlp-http, protocol: TCP}
    {{- end }}
---
{{- if $c.serviceMonitor.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: collector
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    {{- with $c.serviceMonitor.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      {{- include "plane.componentSelectorLabels" (dict "root" . "component" "collector") | nindent 6 }}
  namespaceSelector:
    matchNames: [{{ .Release.Namespace }}]
  endpoints:
    - port: metrics
      path: /metrics
      interval: {{ $c.serviceMonitor.interval }}
---
{{- end }}
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: collector
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  selector:
    matchLabels:
      {{- include "plane.componentSelectorLabels" (dict "root" . "component" "collector") | nindent 6 }}
  updateStrategy:
    type: RollingUpdate
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
      annotations:
        checksum/config: {{ include "plane.collectorConfig" . | sha256sum }}
    spec:
      serviceAccountName: collector
      {{- include "plane.imagePullSecrets" . | nindent 6 }}
      securityContext:
        runAsUser: 0
        runAsGroup: 0
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: collector
          image: {{ include "plane.image" (dict "root" . "image" $c.image) }}
          imagePullPolicy: {{ include "plane.pullPolicy" (dict "root" . "image" $c.image) }}
          args: ["collect", "--config", "/etc/observer/collector.yaml"]
          env:
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            - name: COLLECTOR_BUFFER_MAX_BYTES
              value: {{ int64 $c.bufferMaxBytes | quote }}
            {{- with include "plane.collectorAuditTokenEnv" . }}
            {{- . | nindent 12 }}
            {{- end }}
          ports:
            - {name: metrics, containerPort: 2020, protocol: TCP}
            {{- if $c.otlp.enabled }}
            - {name: otlp-http, containerPort: {{ $c.otlp.port }}, protocol: TCP}
            {{- end }}
          livenessProbe:
            httpGet: {path: /health, port: metrics}
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet: {path: /health, port: metrics}
            initialDelaySeconds: 3
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml $c.resources | nindent 12 }}
          securityContext:
            {{- include "plane.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: config, mountPath: /etc/observer, readOnly: true}
            - {name: pod-logs, mountPath: /var/log/pods, readOnly: true}
            - {name: state, mountPath: /var/lib/observer}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: config
          configMap:
            name: collector-config
        - name: pod-logs
          hostPath:
            path: /var/log/pods
            type: Directory
        - name: state
          hostPath:
            path: {{ printf "%s/%s" (trimSuffix "/" $c.stateHostPath) .Release.Namespace }}
            type: DirectoryOrCreate
        - name: tmp
          emptyDir: {}
      {{- with $c.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $c.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end -}}
