{{/* Names and labels. */}}
{{- define "auditwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "auditwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "auditwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "ingest"). */}}
{{- define "auditwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "auditwatch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* All labels of one component's objects. */}}
{{- define "auditwatch.labels" -}}
helm.sh/chart: {{ include "auditwatch.chart" .root }}
{{ include "auditwatch.selectorLabels" . }}
app.kubernetes.io/part-of: auditwatch
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "auditwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "auditwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "auditwatch.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "auditwatch.configMapName" -}}
{{- printf "%s-config" (include "auditwatch.fullname" .) -}}
{{- end -}}

{{- define "auditwatch.rulesConfigMapName" -}}
{{- default (printf "%s-rules" (include "auditwatch.fullname" .)) .Values.rules.existingConfigMap -}}
{{- end -}}

{{/*
auditwatch.config renders config.yaml: .Values.config with the settings the
chart owns (listen addresses come from AUDITWATCH_* variables in the pods).
It refuses plain-text secrets: those belong in Secrets, referenced by name.
*/}}
{{- define "auditwatch.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $ch := default dict $cfg.clickhouse -}}
{{- if $ch.password }}{{ fail "config.clickhouse.password: put passwords in a Secret (<component>.clickhouse.existingSecret), not in values" }}{{ end -}}
{{- range $comp, $u := default dict $ch.users -}}
{{- if and (kindIs "map" $u) $u.password }}{{ fail (printf "config.clickhouse.users.%s.password: put passwords in a Secret (%s.clickhouse.existingSecret), not in values" $comp $comp) }}{{ end -}}
{{- end -}}
{{- $kafka := default dict $cfg.kafka -}}
{{- if and (kindIs "map" $kafka.sasl) $kafka.sasl.password }}{{ fail "config.kafka.sasl.password: put it in a Secret (kafka.sasl.existingSecret), not in values" }}{{ end -}}
{{- $detect := default dict $cfg.detect -}}
{{- $_ := set $detect "rules_dir" "/etc/auditwatch/rules" -}}
{{- if and .Values.detect.enabled (gt (int .Values.detect.replicas) 1) -}}
{{- $ha := default dict $detect.ha -}}
{{- if and (hasKey $ha "enabled") (not $ha.enabled) -}}
{{- fail (printf "detect.replicas %d with config.detect.ha.enabled false: every replica would evaluate the rules and send the alerts; leave detect.ha on or set detect.replicas: 1" (int .Values.detect.replicas)) -}}
{{- end -}}
{{- $_ := set $ha "enabled" true -}}
{{- $_ := set $detect "ha" $ha -}}
{{- end -}}
{{- $_ := set $cfg "detect" $detect -}}
{{- $summary := default dict $cfg.summary -}}
{{- $_ := set $summary "out_dir" "/var/lib/auditwatch/summaries" -}}
{{- $_ := set $cfg "summary" $summary -}}
{{- $alerts := default dict $cfg.alerts -}}
{{- $alertsOn := true -}}
{{- if hasKey $alerts "enabled" }}{{ $alertsOn = $alerts.enabled }}{{ end -}}
{{- if and .Values.detect.enabled $alertsOn (has (default "auto" $alerts.notifier) (list "auto" "slack")) (not (and .Values.slack.existingSecret (or .Values.slack.tokenKey .Values.slack.webhookURLKey))) -}}
{{- fail (printf "config.alerts.notifier %s needs Slack credentials: set slack.existingSecret and slack.tokenKey or slack.webhookURLKey, or config.alerts.notifier: console" (default "auto" $alerts.notifier)) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "auditwatch.validate" -}}
{{- if and .Values.ingest.enabled (gt (int .Values.ingest.replicas) (int .Values.kafka.partitions)) -}}
{{- fail (printf "ingest.replicas (%d) > kafka.partitions (%d): a consumer group gives each partition to one member, the rest would sit idle" (int .Values.ingest.replicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if not (has .Values.retention.kind (list "Deployment" "CronJob")) -}}
{{- fail (printf "retention.kind %q: want Deployment or CronJob" .Values.retention.kind) -}}
{{- end -}}
{{- if and .Values.slack.tokenKey .Values.slack.webhookURLKey -}}
{{- fail "slack: set tokenKey or webhookURLKey, not both" -}}
{{- end -}}
{{- end -}}

{{/* Environment variable with a value taken from a Secret: (dict "name" N "secret" S "key" K). */}}
{{- define "auditwatch.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .key | quote }}
{{- end -}}

{{/* A component's ClickHouse user: (dict "component" "ingest" "user" .Values.ingest.clickhouse). */}}
{{- define "auditwatch.clickhouseEnv" -}}
{{- $prefix := printf "AUDITWATCH_CLICKHOUSE_%s" (upper .component) -}}
{{- if .user.username }}
- name: {{ $prefix }}_USERNAME
  value: {{ .user.username | quote }}
{{- end }}
{{- if .user.existingSecret }}
{{ include "auditwatch.secretEnv" (dict "name" (printf "%s_PASSWORD" $prefix) "secret" .user.existingSecret "key" .user.passwordKey) }}
{{- end }}
{{- end -}}

{{/* Kafka SASL password, for the components that read Kafka. */}}
{{- define "auditwatch.kafkaEnv" -}}
{{- if .Values.kafka.sasl.existingSecret }}
{{ include "auditwatch.secretEnv" (dict "name" "AUDITWATCH_KAFKA_SASL_PASSWORD" "secret" .Values.kafka.sasl.existingSecret "key" .Values.kafka.sasl.passwordKey) }}
{{- end }}
{{- end -}}

{{- define "auditwatch.fingerprintEnv" -}}
{{- if .Values.fingerprintKey.existingSecret }}
- name: AUDITWATCH_FINGERPRINT_KEY_FILE
  value: /etc/auditwatch/fingerprint/{{ .Values.fingerprintKey.key }}
{{- end }}
{{- end -}}

{{/* Volumes every pod has: config, /tmp, TLS files. (dict "root" $ "config" NAME) */}}
{{- define "auditwatch.commonVolumes" -}}
- name: config
  configMap:
    name: {{ .config }}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- if .root.Values.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .root.Values.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{- define "auditwatch.commonVolumeMounts" -}}
- name: config
  mountPath: /etc/auditwatch/config.yaml
  subPath: config.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.tls.existingSecret }}
- name: tls
  mountPath: {{ .Values.tls.mountPath }}
  readOnly: true
{{- end }}
{{- end -}}

{{- define "auditwatch.fingerprintVolume" -}}
{{- if .Values.fingerprintKey.existingSecret }}
- name: fingerprint-key
  secret:
    secretName: {{ .Values.fingerprintKey.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.fingerprintKey.key }}
        path: {{ .Values.fingerprintKey.key }}
{{- end }}
{{- end -}}

{{- define "auditwatch.fingerprintVolumeMount" -}}
{{- if .Values.fingerprintKey.existingSecret }}
- name: fingerprint-key
  mountPath: /etc/auditwatch/fingerprint
  readOnly: true
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by every pod: (dict "root" $ "c" .Values.ingest) */}}
{{- define "auditwatch.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "auditwatch.podAnnotations" -}}
checksum/config: {{ include "auditwatch.config" .root | sha256sum }}
{{- with .c.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Preferred spreading of a component's pods over nodes, unless affinity is set. */}}
{{- define "auditwatch.affinity" -}}
{{- if .c.affinity }}
affinity:
  {{- toYaml .c.affinity | nindent 2 }}
{{- else if .spread }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "auditwatch.selectorLabels" (dict "root" .root "component" .component) | nindent 14 }}
{{- end }}
{{- end -}}
