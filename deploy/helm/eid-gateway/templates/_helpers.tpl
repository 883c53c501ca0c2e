{{/* Chart name, at most 63 characters. */}}
{{- define "eid-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "eid-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "eid-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "eid-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "eid-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "eid-gateway.labels" -}}
helm.sh/chart: {{ include "eid-gateway.chart" . }}
{{ include "eid-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "eid-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "eid-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "eid-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Port name of worker i's metrics listener: "metrics" for worker 0, "metrics-<i>" after. */}}
{{- define "eid-gateway.metricsPortName" -}}
{{- if eq (int .) 0 }}metrics{{ else }}metrics-{{ . }}{{ end }}
{{- end }}

{{/*
The gateway's config.yaml: .Values.config plus the keys the chart owns (listen, metrics.listen,
shutdown_grace), which must agree with the container ports and the termination grace period.
*/}}
{{- define "eid-gateway.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.http)) }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $config "metrics" (dict "listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.metrics))) }}
{{- else }}
{{- $_ := unset $config "metrics" }}
{{- end }}
{{- $_ := set $config "shutdown_grace" (printf "%ds" (int .Values.shutdownGraceSeconds)) }}
{{- toYaml $config }}
{{- end }}

{{/* Refuse values that would break the graceful shutdown or the metrics ports. */}}
{{- define "eid-gateway.validate" -}}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownGraceSeconds) 2) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be more than shutdownGraceSeconds + 2 (%d)" (int .Values.terminationGracePeriodSeconds) (add (int .Values.shutdownGraceSeconds) 2)) }}
{{- end }}
{{- if and .Values.metrics.enabled (lt (int .Values.containerPorts.metrics) (add (int .Values.containerPorts.http) 1)) (ge (add (int .Values.containerPorts.metrics) (int .Values.workers)) (add (int .Values.containerPorts.http) 1)) }}
{{- fail "containerPorts.metrics + workers - 1 must not reach containerPorts.http (each worker takes one metrics port)" }}
{{- end }}
{{- if and .Values.secrets.create (not .Values.secrets.stringData) }}
{{- fail "secrets.create is true but secrets.stringData is empty" }}
{{- end }}
{{- end }}
