{{/*
Shared helpers. The same file is in every chart under charts/ (tests/unit/test_charts_files.py keeps the copies
identical): Helm has no way to share templates between charts short of a library chart, which would need
`helm dependency build` before every install.
*/}}

{{/* The app.kubernetes.io label set of OpenChoreo's charts, plus global.commonLabels. */}}
{{- define "plane.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "plane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: openchoreo
{{- with .Values.global.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "plane.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* (dict "root" $ "component" "observer") */}}
{{- define "plane.componentLabels" -}}
{{ include "plane.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "plane.componentSelectorLabels" -}}
{{ include "plane.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/*
The image of a component: (dict "root" $ "image" .Values.observer.image). The component's own repository, tag
and pullPolicy win over the chart-wide `image`; the tag defaults to the chart's appVersion. With
global.imageRegistry set, the registry host is swapped (OpenChoreo's rule: a first path segment is a host when it
holds "." or ":" or is "localhost"; otherwise the registry is prefixed).
*/}}
{{- define "plane.image" -}}
{{- $root := .root -}}
{{- $own := .image | default dict -}}
{{- $repository := $own.repository | default $root.Values.image.repository -}}
{{- $tag := $own.tag | default $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- with $root.Values.global.imageRegistry -}}
{{- $parts := splitList "/" $repository -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repository = join "/" (rest $parts) -}}
{{- end -}}
{{- $repository = printf "%s/%s" (trimSuffix "/" .) $repository -}}
{{- end -}}
{{- printf "%s:%s" $repository (toString $tag) -}}
{{- end -}}

{{- define "plane.pullPolicy" -}}
{{- $own := .image | default dict -}}
{{- $own.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end -}}

{{- define "plane.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "map" . }}{{ .name }}{{ else }}{{ . }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod and container security contexts every component shares: non-root 65532, read-only root. */}}
{{- define "plane.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "plane.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* Guard rail: (list "observer.controlPlaneApiUrl" $value) fails when a placeholder `.invalid` host remains. */}}
{{- define "plane.noPlaceholder" -}}
{{- $key := index . 0 -}}
{{- $value := toString (index . 1) -}}
{{- if regexMatch "\\.invalid([:/?#]|$)" $value -}}
{{- fail (printf "%s is still the placeholder %q: set it to the real URL" $key $value) -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster DNS name of a Service of this release: (list $ "observer-internal"). */}}
{{- define "plane.serviceHost" -}}
{{- $root := index . 0 -}}
{{- printf "%s.%s.svc.%s" (index . 1) $root.Release.Namespace $root.Values.kubernetesClusterDomain -}}
{{- end -}}
