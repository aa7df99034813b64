{{/*
Names and labels. Templates reference .Values by full path only (no `with`
on .Values), so test/unit/deploy.test.ts can check every reference exists in
values.yaml.
*/}}

{{- define "tenantgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenantgate.fullname" -}}
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

{{- define "tenantgate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tenantgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tenantgate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tenantgate.labels" -}}
helm.sh/chart: {{ include "tenantgate.chart" . }}
{{ include "tenantgate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tenantgate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tenantgate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tenantgate.secretName" -}}
{{- if .Values.secret.existingSecret }}
{{- .Values.secret.existingSecret }}
{{- else }}
{{- include "tenantgate.fullname" . }}
{{- end }}
{{- end }}

{{- define "tenantgate.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag | toString) }}
{{- end }}

{{/* Seconds the proxy may drain: ceil(shutdown.graceMs / 1000). */}}
{{- define "tenantgate.graceSeconds" -}}
{{- div (add (int .Values.shutdown.graceMs) 999) 1000 }}
{{- end }}

{{/* Pod terminationGracePeriodSeconds: preStop sleep + drain + 10 s for the usage flush (usage.flushTimeoutMs, 5 s by default, then spooling the rest), unless set. */}}
{{- define "tenantgate.terminationGracePeriodSeconds" -}}
{{- if .Values.shutdown.terminationGracePeriodSeconds }}
{{- .Values.shutdown.terminationGracePeriodSeconds }}
{{- else }}
{{- add (int .Values.shutdown.preStopSleepSeconds) (include "tenantgate.graceSeconds" . | int) 10 }}
{{- end }}
{{- end }}

{{/* The pod runs a Deployment: always in standalone mode; in sidecar mode once sidecar.app.image.repository is set. */}}
{{- define "tenantgate.deploys" -}}
{{- if or (eq .Values.mode "standalone") .Values.sidecar.app.image.repository }}true{{ end }}
{{- end }}

{{/* The proxy runs as a native sidecar (an init container with restartPolicy: Always): sidecar mode with sidecar.native. */}}
{{- define "tenantgate.nativeSidecar" -}}
{{- if and (eq .Values.mode "sidecar") .Values.sidecar.native }}true{{ end }}
{{- end }}
