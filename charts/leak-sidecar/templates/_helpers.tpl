{{/*
Names. The helpers used inside a pod spec ("leak-sidecar.container",
"leak-sidecar.volumes" and what they call) read only .Values and .Release, so that a
parent chart can call them with (dict "Values" (index .Values "leak-sidecar") "Release" .Release).
*/}}

{{- define "leak-sidecar.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "leak-sidecar" .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "leak-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ default "leak-sidecar" .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "leak-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "leak-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "leak-sidecar.secretName" -}}
{{- .Values.sidecar.token.existingSecret | default (printf "%s-token" (include "leak-sidecar.fullname" .)) -}}
{{- end -}}

{{/*
Where things are mounted in the sidecar container. files/sidecar.yaml names the same
paths; tests/test_chart.py checks that they agree.
*/}}
{{- define "leak-sidecar.path.config" -}}/etc/leak-sidecar{{- end -}}
{{- define "leak-sidecar.path.rules" -}}/etc/leak-sidecar/rules{{- end -}}
{{- define "leak-sidecar.path.podinfo" -}}/etc/podinfo{{- end -}}
{{- define "leak-sidecar.path.memoryLimit" -}}app-memory-limit{{- end -}}
{{- define "leak-sidecar.path.state" -}}/var/lib/leak-sidecar{{- end -}}
{{- define "leak-sidecar.port" -}}9120{{- end -}}

{{/*
The sidecar's config file: files/sidecar.yaml with .Values.sidecar.config merged over it.
Rendered in this chart's own context (it reads .Files).
*/}}
{{- define "leak-sidecar.config" -}}
{{- $base := .Files.Get "files/sidecar.yaml" | fromYaml -}}
{{- toYaml (mergeOverwrite $base (deepCopy (.Values.sidecar.config | default dict))) -}}
{{- end -}}

{{/*
The sidecar container, to include in a pod spec's containers list.
*/}}
{{- define "leak-sidecar.container" -}}
- name: leak-sidecar
  image: "{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag }}"
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  args: ["run", "--config", "{{ include "leak-sidecar.path.config" . }}/sidecar.yaml"]
  ports:
    - name: metrics
      containerPort: {{ include "leak-sidecar.port" . }}
      protocol: TCP
  env:
    - name: LEAK_SIDECAR_TOKEN
      valueFrom:
        secretKeyRef:
          name: {{ include "leak-sidecar.secretName" . }}
          key: {{ .Values.sidecar.token.key }}
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    {{- with .Values.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  # Neither probe looks at the app: a sidecar that goes unready when the app struggles
  # would amplify the failure it is there to stop.
  livenessProbe:
    httpGet:
      path: /healthz
      port: metrics
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: metrics
    periodSeconds: 5
    timeoutSeconds: 2
  resources:
    {{- toYaml .Values.sidecar.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.sidecar.securityContext | nindent 4 }}
  volumeMounts:
    - name: leak-sidecar-config
      mountPath: {{ include "leak-sidecar.path.config" . }}
      readOnly: true
    - name: leak-sidecar-rules
      mountPath: {{ include "leak-sidecar.path.rules" . }}
      readOnly: true
    - name: leak-sidecar-podinfo
      mountPath: {{ include "leak-sidecar.path.podinfo" . }}
      readOnly: true
    - name: leak-sidecar-state
      mountPath: {{ include "leak-sidecar.path.state" . }}
{{- end -}}

{{/*
The volumes the sidecar container mounts, to include in a pod spec's volumes list.
*/}}
{{- define "leak-sidecar.volumes" -}}
- name: leak-sidecar-config
  configMap:
    name: {{ include "leak-sidecar.fullname" . }}-config
- name: leak-sidecar-rules
  configMap:
    name: {{ include "leak-sidecar.fullname" . }}-rules
- name: leak-sidecar-podinfo
  downwardAPI:
    items:
      - path: {{ include "leak-sidecar.path.memoryLimit" . }}
        resourceFieldRef:
          containerName: {{ .Values.app.name }}
          resource: limits.memory
          divisor: "1"
- name: leak-sidecar-state
  emptyDir:
    sizeLimit: {{ .Values.sidecar.stateSizeLimit }}
{{- end -}}
