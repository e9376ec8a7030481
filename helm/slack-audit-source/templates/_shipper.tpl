{{/*
The shipper container (Vector or Fluent Bit), without restartPolicy or lifecycle: the
Deployment adds whichever its placement needs.
*/}}
{{- define "slack-audit-source.shipperContainer" -}}
{{- $vector := eq .Values.shipper.kind "vector" }}
{{- $img := ternary .Values.shipper.vector.image .Values.shipper.fluentBit.image $vector -}}
- name: shipper
  image: {{ printf "%s:%s" $img.repository $img.tag }}
  imagePullPolicy: {{ $img.pullPolicy }}
  {{- if $vector }}
  args:
    - --config
    - /etc/shipper/vector.yaml
  {{- else }}
  command:
    - /fluent-bit/bin/fluent-bit
  args:
    - --config=/etc/shipper/fluent-bit.conf
  {{- end }}
  {{- if or .Values.elasticsearch.existingSecret .Values.shipper.extraEnv }}
  env:
    {{- if .Values.elasticsearch.existingSecret }}
    - name: ES_USERNAME
      valueFrom:
        secretKeyRef:
          name: {{ .Values.elasticsearch.existingSecret }}
          key: username
    - name: ES_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ .Values.elasticsearch.existingSecret }}
          key: password
    {{- end }}
    {{- with .Values.shipper.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  securityContext:
    {{- include "slack-audit-source.containerSecurityContext" . | nindent 4 }}
  resources:
    {{- toYaml .Values.shipper.resources | nindent 4 }}
  volumeMounts:
    - name: shipper-config
      mountPath: /etc/shipper
      readOnly: true
    - name: shipper-data
      mountPath: /var/lib/shipper
{{- end }}
