{{/* Labels every object of the chart carries. */}}
{{- define "mf.labels" -}}
app.kubernetes.io/part-of: modelfactory
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The labels that select one component's pods: Deployment, Service, PDB, HPA agree on them. */}}
{{- define "mf.selector" -}}
app.kubernetes.io/name: {{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "mf.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Non-root, no privilege escalation, no capabilities, read-only root filesystem: what
     the image's processes write goes to the emptyDir volumes each Deployment mounts. */}}
{{- define "mf.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The settings every Model Factory process reads: the same non-secret env and the same
     Secret as the Dagster chart's values (deploy/helm/values.yaml). */}}
{{- define "mf.env" -}}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end -}}

{{- define "mf.envFrom" -}}
{{- range .Values.envSecrets }}
- secretRef:
    name: {{ .name }}
{{- end }}
{{- end -}}

{{/* The Service's names inside the cluster, and the hosts people reach the UI under. */}}
{{- define "mf.mlflowHosts" -}}
{{- $m := .Values.mlflow -}}
{{- $svc := printf "%s.%s.svc" $m.name .Release.Namespace -}}
{{- $hosts := list (printf "%s:%v" $m.name $m.port) (printf "%s:%v" $svc $m.port) (printf "%s.cluster.local:%v" $svc $m.port) "localhost:*" "127.0.0.1:*" -}}
{{- concat $hosts $m.extraAllowedHosts | join "," -}}
{{- end -}}

{{/* The Postgres password, from the Dagster chart's Secret: never in the values. */}}
{{- define "mf.postgresPassword" -}}
valueFrom:
  secretKeyRef:
    name: {{ .Values.postgres.passwordSecret.name }}
    key: {{ .Values.postgres.passwordSecret.key }}
{{- end -}}
