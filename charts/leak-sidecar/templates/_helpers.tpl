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

{{- define "leak-sidecar.configMapName" -}}
{{- include "leak-sidecar.fullname" . }}-config
{{- end -}}

{{- define "leak-sidecar.rulesConfigMapName" -}}
{{- include "leak-sidecar.fullname" . }}-rules
{{- end -}}

{{/*
The pods the sidecar runs in: the chart's own Deployment, or service.selector when the
sidecar is included in another chart's pods.
*/}}
{{- define "leak-sidecar.podSelector" -}}
{{- if .Values.service.selector -}}
{{- toYaml .Values.service.selector -}}
{{- else -}}
{{- include "leak-sidecar.selectorLabels" . -}}
{{- end -}}
{{- end -}}

{{/*
Where things are mounted in the sidecar container. files/sidecar.yaml names the same
paths; tests/test_chart.py checks that they agree.
*/}}
{{- define "leak-sidecar.path.config" -}}/etc/leak-sidecar{{- end -}}
{{- define "leak-sidecar.path.rules" -}}/etc/leak-sidecar/rules{{- end -}}
{{- define "leak-sidecar.path.token" -}}/etc/leak-sidecar/token{{- end -}}
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
The sidecar container: the same container `leak-sidecar inject` and the admission webhook
add. With sidecar.native (the default) it is a native sidecar: include it in the pod
spec's initContainers (after any of yours); it starts before the app, keeps running
beside it and stops after it (Kubernetes >= 1.29). With sidecar.native false, include it
in containers.
*/}}
{{- define "leak-sidecar.container" -}}
- name: leak-sidecar
  image: "{{ .Values.sidecar.image.repository }}:{{ .Values.sidecar.image.tag }}"
  imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
  args: ["run", "--config", "{{ include "leak-sidecar.path.config" . }}/sidecar.yaml"]
  {{- if .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  ports:
    # Not "metrics": the app's own ports are often called that, and names must be unique.
    - name: leak-sidecar
      containerPort: {{ include "leak-sidecar.port" . }}
      protocol: TCP
  env:
    - name: POD_NAME
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    # The address other sidecars forward this pod's alerts to (fleet.forward).
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    {{- with .Values.sidecar.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  # Neither probe looks at the app: a sidecar that goes unready when the app struggles
  # would amplify the failure it is there to stop.
  livenessProbe:
    httpGet:
      path: /healthz
      port: {{ include "leak-sidecar.port" . }}
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
  readinessProbe:
    httpGet:
      path: /readyz
      port: {{ include "leak-sidecar.port" . }}
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
    - name: leak-sidecar-token
      mountPath: {{ include "leak-sidecar.path.token" . }}
      readOnly: true
    - name: leak-sidecar-podinfo
      mountPath: {{ include "leak-sidecar.path.podinfo" . }}
      readOnly: true
    - name: leak-sidecar-state
      mountPath: {{ include "leak-sidecar.path.state" . }}
{{- end -}}

{{/*
The volumes the sidecar container mounts, to include in a pod spec's volumes list.
The token is a file, not an environment variable: kubelet updates a mounted Secret in
place, so a rotated token is read without restarting the pod.
*/}}
{{- define "leak-sidecar.volumes" -}}
- name: leak-sidecar-config
  configMap:
    name: {{ include "leak-sidecar.configMapName" . }}
    # Only the config file: the rules and token directories are mounted inside this one.
    items:
      - key: sidecar.yaml
        path: sidecar.yaml
- name: leak-sidecar-rules
  configMap:
    name: {{ include "leak-sidecar.rulesConfigMapName" . }}
- name: leak-sidecar-token
  secret:
    secretName: {{ include "leak-sidecar.secretName" . }}
    items:
      - key: {{ .Values.sidecar.token.key }}
        path: token
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

{{/*
Annotations for the pod template, to include in its metadata.annotations:
- a checksum of what the ConfigMaps are made of (sidecar.config, rules.extra, and the
  image tag, which fixes the shipped rule pack), so that a config change rolls the pods;
- leak-sidecar.io/status: injected, so that the admission webhook, if it also serves the
  namespace, leaves these pods alone.
*/}}
{{- define "leak-sidecar.podAnnotations" -}}
checksum/leak-sidecar-config: {{ dict "config" .Values.sidecar.config "rules" .Values.rules.extra "tag" .Values.sidecar.image.tag | toJson | sha256sum }}
leak-sidecar.io/status: injected
{{- end -}}
