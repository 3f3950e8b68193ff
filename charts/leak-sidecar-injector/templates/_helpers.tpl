{{- define "injector.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "leak-sidecar-injector" .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "injector.selectorLabels" -}}
app.kubernetes.io/name: {{ default "leak-sidecar-injector" .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "injector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "injector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "injector.tlsSecret" -}}{{ include "injector.fullname" . }}-tls{{- end -}}
{{- define "injector.certificate" -}}{{ include "injector.fullname" . }}-serving{{- end -}}
{{- define "injector.serviceHost" -}}{{ include "injector.fullname" . }}.{{ .Release.Namespace }}.svc{{- end -}}
{{- define "injector.tokenSecret" -}}{{ .Values.sidecar.token.existingSecret | default "leak-sidecar-token" }}{{- end -}}

{{/* Where the injector's files are mounted; the args name the same paths. */}}
{{- define "injector.path.tls" -}}/etc/leak-sidecar-injector/tls{{- end -}}
{{- define "injector.path.settings" -}}/etc/leak-sidecar-injector{{- end -}}
{{- define "injector.port" -}}9443{{- end -}}
{{- define "injector.sidecarPort" -}}9120{{- end -}}

{{/* The sidecar's config file: the leak-sidecar chart's, with sidecar.config over it. */}}
{{- define "injector.sidecarConfig" -}}
{{- $base := .Files.Get "files/sidecar.yaml" | fromYaml -}}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.sidecar.config | default dict))) -}}
{{- end -}}

{{/*
The injector's settings file (--inject.config): what it adds to a pod. The same file
`leak-sidecar inject --inject.config` reads (examples/inject/settings.yaml documents it).
*/}}
{{- define "injector.settings" -}}
image:
  repository: {{ .Values.sidecar.image.repository }}
  tag: {{ .Values.sidecar.image.tag | quote }}
  pull_policy: {{ .Values.sidecar.image.pullPolicy }}
resources:
  requests:
    cpu: {{ .Values.sidecar.resources.requests.cpu | quote }}
    memory: {{ .Values.sidecar.resources.requests.memory | quote }}
  limits:
    cpu: {{ .Values.sidecar.resources.limits.cpu | quote }}
    memory: {{ .Values.sidecar.resources.limits.memory | quote }}
mode: {{ ternary "native" "classic" .Values.sidecar.native }}
config_map: {{ .Values.sidecar.configMapName }}
rules_config_map: {{ .Values.sidecar.rulesConfigMapName }}
token_secret: {{ include "injector.tokenSecret" . }}
expvar_port: {{ .Values.sidecar.expvarPort | toJson }}
expvar_path: {{ .Values.sidecar.expvarPath | toJson }}
{{- end -}}

{{/* Namespaces never injected: kube-system, the injector's own, and the listed ones. */}}
{{- define "injector.excludedNamespaces" -}}
{{- toJson (uniq (concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces)) -}}
{{- end -}}
