{{/*
Names and labels shared by every template.
*/}}

{{/* The chart name, overridable. */}}
{{- define "slack-audit-source.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A release-qualified name, at most 63 characters (a DNS label). */}}
{{- define "slack-audit-source.fullname" -}}
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

{{- define "slack-audit-source.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "slack-audit-source.labels" -}}
helm.sh/chart: {{ include "slack-audit-source.chart" . }}
{{ include "slack-audit-source.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pod; never change them after the first install. */}}
{{- define "slack-audit-source.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slack-audit-source.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slack-audit-source.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slack-audit-source.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the Slack token: the user's, or the one this chart creates. */}}
{{- define "slack-audit-source.tokenSecretName" -}}
{{- if .Values.slack.existingSecret }}
{{- .Values.slack.existingSecret }}
{{- else }}
{{- include "slack-audit-source.fullname" . }}-token
{{- end }}
{{- end }}

{{- define "slack-audit-source.tokenSecretKey" -}}
{{- if .Values.slack.existingSecret }}
{{- .Values.slack.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}

{{- define "slack-audit-source.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The shipper's HTTP input, as the reader's --http-url. */}}
{{- define "slack-audit-source.httpUrl" -}}
{{- printf "http://127.0.0.1:%d/" (int .Values.shipper.port) }}
{{- end }}

{{/* Security context shared by both containers. */}}
{{- define "slack-audit-source.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The response mode as a string: a bare `off` in YAML arrives as false.
*/}}
{{- define "slack-audit-source.respondMode" -}}
{{- $mode := toString .Values.respond.mode -}}
{{- if eq $mode "false" -}}off{{- else -}}{{ $mode }}{{- end -}}
{{- end }}

{{/*
Whether an admin token is configured (an existing Secret or one the chart makes).
*/}}
{{- define "slack-audit-source.respondToken" -}}
{{- if or .Values.respond.existingSecret .Values.respond.token -}}true{{- end -}}
{{- end }}

{{- define "slack-audit-source.respondSecretName" -}}
{{- if .Values.respond.existingSecret }}
{{- .Values.respond.existingSecret }}
{{- else }}
{{- include "slack-audit-source.fullname" . }}-respond-token
{{- end }}
{{- end }}

{{- define "slack-audit-source.respondSecretKey" -}}
{{- if .Values.respond.existingSecret }}
{{- .Values.respond.existingSecretKey }}
{{- else -}}
token
{{- end }}
{{- end }}
