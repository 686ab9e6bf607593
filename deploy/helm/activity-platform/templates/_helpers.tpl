{{/* Names and labels shared by every object of the chart. */}}
{{- define "ap.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ap.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ap.chartLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ap.labels" -}}
{{ include "ap.chartLabels" . }}
app.kubernetes.io/name: {{ include "ap.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels of an object of one process kind (dict root, component, service). */}}
{{- define "ap.componentLabels" -}}
{{ include "ap.chartLabels" .root }}
{{ include "ap.selector" . }}
{{- end -}}

{{/* Selector of one process kind: component = api|worker|migrate, service = activity|... */}}
{{- define "ap.selector" -}}
app.kubernetes.io/name: {{ include "ap.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .service }}
activity-platform/service: {{ .service }}
{{- end }}
{{- end -}}

{{- define "ap.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "ap.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "ap.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "ap.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.existingSecret }}
      key: {{ .key }}
{{- end -}}

{{/*
Environment of every process: non-secret settings from the ConfigMap, secrets by key from the
existing Secret, and the database and Redis URLs. Composed URLs use Kubernetes' $(VAR)
expansion, so passwords never appear in a rendered manifest.
*/}}
{{/* The three database URLs: whole from the secret, or composed with the password by
Kubernetes' $(VAR) expansion, so a password never appears in a rendered manifest. */}}
{{- define "ap.databaseEnv" -}}
{{- $root := . -}}
{{- if .Values.postgresql.urlsFromSecret }}
{{- range $svc := list "ACTIVITY" "REFERRAL" "REWARD" }}
{{ include "ap.secretEnv" (dict "root" $root "key" (printf "%s_DATABASE_URL" $svc)) }}
{{- end }}
{{- else }}
{{ include "ap.secretEnv" (dict "root" $root "key" "POSTGRES_PASSWORD") }}
{{- $pg := .Values.postgresql }}
{{- range $svc, $db := $pg.databases }}
- name: {{ upper $svc }}_DATABASE_URL
  value: {{ printf "postgresql+asyncpg://%s:$(POSTGRES_PASSWORD)@%s:%d/%s" $pg.user $pg.host (int $pg.port) $db | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* REDIS_URL: a managed endpoint (redis:// or rediss://), a Sentinel group
(redis+sentinel://[:password@]host:port,host:port/master/db) or whole from the secret. */}}
{{- define "ap.redisEnv" -}}
{{- $root := . -}}
{{- $r := .Values.redis }}
{{- if eq $r.mode "secret" }}
{{ include "ap.secretEnv" (dict "root" $root "key" "REDIS_URL") }}
{{- else }}
{{- if $r.auth }}
{{ include "ap.secretEnv" (dict "root" $root "key" "REDIS_PASSWORD") }}
{{- end }}
{{- $cred := ternary ":$(REDIS_PASSWORD)@" "" (and $r.auth true) }}
{{- if eq $r.mode "sentinel" }}
{{- $hosts := list }}
{{- range $r.sentinel.hosts }}
{{- $hosts = append $hosts (printf "%s:%d" .host (int .port)) }}
{{- end }}
- name: REDIS_URL
  value: {{ printf "redis+sentinel://%s%s/%s/%d" $cred (join "," $hosts) $r.sentinel.master (int $r.database) | quote }}
{{- else if eq $r.mode "url" }}
- name: REDIS_URL
  value: {{ printf "%s://%s%s:%d/%d" (ternary "rediss" "redis" (and $r.tls true)) $cred $r.host (int $r.port) (int $r.database) | quote }}
{{- else }}
{{- fail "redis.mode must be url, sentinel or secret" }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Environment of the APIs and workers (the rest comes from the ConfigMap). */}}
{{- define "ap.env" -}}
{{ include "ap.secretEnv" (dict "root" . "key" "JWT_SECRET") }}
{{ include "ap.databaseEnv" . }}
{{ include "ap.redisEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ap.envFrom" -}}
- configMapRef:
    name: {{ include "ap.fullname" . }}
{{- end -}}

{{- define "ap.podSpecCommon" -}}
serviceAccountName: {{ include "ap.serviceAccountName" . }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {}
{{- end -}}
