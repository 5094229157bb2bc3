{{/*
The plane agent (`observer agent`): it dials the control plane's cluster gateway with a client certificate and
replays the gateway's requests against this cluster's API with its own ServiceAccount. Shared by the
observability-plane and data-plane charts (identical copies; tests/unit/test_charts_files.py checks).

Certificates, as OpenChoreo's chart wires them: the client certificate is Secret `clusterAgent.tls.secretName`
(cluster-agent-tls; keys tls.crt, tls.key, ca.crt), issued by cert-manager from a self-signed Issuer when
`tls.generateCerts`, else created beforehand; its ca.crt is what the plane CR's spec.clusterAgent.clientCA takes.
The gateway's CA is ConfigMap `clusterAgent.tls.serverCAConfigMap` (cluster-gateway-ca; key ca.crt), rendered
here from `tls.serverCAValue` when that is set, else created beforehand.
*/}}

{{/* The agent's ClusterRole rules: OpenChoreo's cluster-agent role, plus what our agent adds per plane type. */}}
{{- define "plane.agentRules" -}}
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, patch{{ if eq .planeType "dataplane" }}, create, delete{{ end }}]
- apiGroups: [apps]
  resources: [deployments/scale]
  verbs: [get, patch, update]
- apiGroups: [""]
  resources: [secrets, configmaps, namespaces]
  verbs: ["*"]
- apiGroups: [""]
  resources: [pods, events]
  verbs: [get, list]
- apiGroups: [openchoreo.dev]
  resources: [observabilityalertrules]
  verbs: ["*"]
{{- if eq .planeType "observabilityplane" }}
- apiGroups: [openchoreo.dev]
  resources: [observabilityalertrules/status]
  verbs: [get, patch, update]
{{- end }}
{{- if eq .planeType "dataplane" }}
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, patch, create, delete]
{{- end }}
{{- end -}}

{{- define "plane.clusterAgent" -}}
{{- $a := .Values.clusterAgent -}}
{{- if $a.enabled }}
{{- $labels := include "plane.componentLabels" (dict "root" . "component" "cluster-agent") }}
{{- $sa := $a.serviceAccount.name | default "cluster-agent" }}
{{- if $a.serviceAccount.create }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $sa }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
---
{{- end }}
{{- if $a.rbac.create }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ printf "%s-%s" .Release.Namespace $a.name | trunc 63 | trimSuffix "-" }}
  labels:
    {{- $labels | nindent 4 }}
rules:
  {{- include "plane.agentRules" (dict "planeType" $a.planeType) | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: {{ printf "%s-%s" .Release.Namespace $a.name | trunc 63 | trimSuffix "-" }}
  labels:
    {{- $labels | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: {{ printf "%s-%s" .Release.Namespace $a.name | trunc 63 | trimSuffix "-" }}
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ .Release.Namespace }}
---
{{- end }}
{{- if $a.tls.generateCerts }}
apiVersion: cert-manager.io/v1
kind: Issuer
metadata:
  name: {{ $a.name }}-selfsigned-issuer
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  selfSigned: {}
---
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ $a.tls.secretName }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  secretName: {{ $a.tls.secretName }}
  commonName: {{ $a.planeID | quote }}
  subject:
    organizations: [OpenChoreo]
  duration: {{ $a.tls.duration }}
  renewBefore: {{ $a.tls.renewBefore }}
  privateKey:
    algorithm: RSA
    size: 2048
  usages: [client auth]
  issuerRef:
    name: {{ $a.name }}-selfsigned-issuer
    kind: Issuer
    group: cert-manager.io
---
{{- end }}
{{- with $a.tls.serverCAValue }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ $a.tls.serverCAConfigMap }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
data:
  ca.crt: |
    {{- . | nindent 4 }}
---
{{- end }}
{{- if $a.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ $a.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
spec:
  minAvailable: {{ $a.podDisruptionBudget.minAvailable }}
  selector:
    matchLabels:
      {{- include "plane.componentSelectorLabels" (dict "root" . "component" "cluster-agent") | nindent 6 }}
---
{{- end }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $a.name }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- $labels | nindent 4 }}
    app: cluster-agent
spec:
  replicas: 1
  selector:
    matchLabels:
      {{- include "plane.componentSelectorLabels" (dict "root" . "component" "cluster-agent") | nindent 6 }}
  template:
    metadata:
      labels:
        {{- $labels | nindent 8 }}
        app: cluster-agent
    spec:
      serviceAccountName: {{ $sa }}
      {{- include "plane.imagePullSecrets" . | nindent 6 }}
      securityContext:
        {{- include "plane.podSecurityContext" . | nindent 8 }}
      containers:
        - name: agent
          image: {{ include "plane.image" (dict "root" . "image" $a.image) }}
          imagePullPolicy: {{ include "plane.pullPolicy" (dict "root" . "image" $a.image) }}
          args:
            - agent
            - --server-url={{ $a.serverUrl }}
            - --plane-type={{ $a.planeType }}
            - --plane-id={{ $a.planeID }}
            - --client-cert=/certs/tls.crt
            - --client-key=/certs/tls.key
            - --server-ca=/ca-certs/ca.crt
            {{- if and (eq $a.planeType "observabilityplane") (hasKey .Values "observer") }}
            - --observer-url=http://{{ include "plane.serviceHost" (list . "observer-internal") }}:{{ .Values.observer.internalService.port }}
            {{- end }}
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
            - name: POD_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
            - name: LOG_LEVEL
              value: {{ $a.logLevel | quote }}
            {{- if and (eq $a.planeType "observabilityplane") (hasKey .Values "observer") .Values.observer.secretName }}
            # the observer's internal token, if its Secret has one: the internal port then requires it
            - name: OBSERVER_INTERNAL_TOKEN
              valueFrom:
                secretKeyRef: {name: {{ .Values.observer.secretName | quote }}, key: OBSERVER_INTERNAL_TOKEN, optional: true}
            {{- end }}
          resources:
            {{- toYaml $a.resources | nindent 12 }}
          securityContext:
            {{- include "plane.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - {name: client-certs, mountPath: /certs, readOnly: true}
            - {name: server-ca, mountPath: /ca-certs, readOnly: true}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: client-certs
          secret:
            secretName: {{ $a.tls.secretName }}
        - name: server-ca
          configMap:
            name: {{ $a.tls.serverCAConfigMap }}
        - name: tmp
          emptyDir: {}
      {{- with $a.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $a.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $a.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}
{{- end -}}
