#!/bin/sh
# job-shell.sh: a build entry in plain POSIX sh, reporting to bass without the Python builder.
#
# Use it as the template for builds in any language. What a build entry has to do:
#
# 1. Accept the standard arguments (a bass worker passes them; all are optional):
#      -s/--service-name NAME     resource attribute service.name (default bass:pipeline:<name>)
#      -i/--trace-id HEX32        the build's trace id (none given: a local run, make one up)
#      -d/--root-span-id HEX16    parent of the pipeline's span (the worker's root span)
#      -t/--traces-endpoint URL   full OTLP/HTTP URL for spans, e.g. http://host:8080/v1/traces
#      -l/--logs-endpoint URL     full OTLP/HTTP URL for log records
#      -c/--changeset FILE        changed paths, one a line (this template only counts them)
#      -r/--root DIR              directory the steps may not leave (this template stays in .)
#      -g/--generate-root-span    emit the root span too (local runs without a worker)
#    Unknown arguments are ignored, so newer workers never break an older script.
# 2. Report one span per step, POSTed as OTLP/JSON to the traces endpoint: hex ids, times in
#    nanoseconds as decimal strings, kind 1 (INTERNAL), the attribute bass.status
#    (ok|failed|timeout|skipped|cancelled|error) and the OTLP status code (1 ok, 2 error).
#    Post the span once when the step starts (endTimeUnixNano "0", bass.status "running")
#    and again when it ends: the receiver keeps the last version of each span id.
# 3. Report the step's output as log records carrying the trace id and the step's span id.
# 4. Exit 0 when the build is ok, non-zero otherwise (1 failed).
# Telemetry must never fail the build: curl errors are reported and ignored.
#
# Run from this directory: sh job-shell.sh   (expected: ok, exit 0; needs curl)
set -u

pipeline_name="shell"
service_name="" trace_id="" root_span_id="" traces_endpoint="" logs_endpoint=""
changeset="" generate_root=""

need_value() {
  if [ "$1" -lt 2 ]; then
    echo "job-shell.sh: $2 needs a value" >&2
    exit 2
  fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    -s|--service-name) need_value $# "$1"; service_name=$2; shift 2 ;;
    -i|--trace-id) need_value $# "$1"; trace_id=$2; shift 2 ;;
    -d|--root-span-id) need_value $# "$1"; root_span_id=$2; shift 2 ;;
    -t|--traces-endpoint) need_value $# "$1"; traces_endpoint=$2; shift 2 ;;
    -l|--logs-endpoint) need_value $# "$1"; logs_endpoint=$2; shift 2 ;;
    -c|--changeset) need_value $# "$1"; changeset=$2; shift 2 ;;
    -r|--root) need_value $# "$1"; shift 2 ;;
    -g|--generate-root-span) generate_root=1; shift ;;
    --*=*) echo "job-shell.sh: ignoring unknown argument $1" >&2; shift ;;
    *) echo "job-shell.sh: ignoring unknown argument $1" >&2; shift ;;
  esac
done

hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

now_ns() {
  ns=$(date +%s%N)
  case "$ns" in
    *N*) ns="$(date +%s)000000000" ;;  # a date(1) without %N: whole seconds
  esac
  echo "$ns"
}

# Escape a line for a JSON string (backslash, quote; control characters dropped).
json_string() { printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr -d '\000-\037'; }

[ -n "$service_name" ] || service_name="bass:pipeline:$pipeline_name"
if [ -z "$trace_id" ]; then  # a local run: new ids, and this script emits the root span
  trace_id=$(hex 16)
  generate_root=1
fi
[ -n "$root_span_id" ] || root_span_id=$(hex 8)
base=${OTEL_EXPORTER_OTLP_ENDPOINT:-}
base=${base%/}
[ -n "$traces_endpoint" ] || traces_endpoint=${OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:-}
[ -n "$traces_endpoint" ] || traces_endpoint=${base:-http://localhost:8080}/v1/traces
[ -n "$logs_endpoint" ] || logs_endpoint=${OTEL_EXPORTER_OTLP_LOGS_ENDPOINT:-}
[ -n "$logs_endpoint" ] || logs_endpoint=${base:-http://localhost:8080}/v1/logs
if [ -n "$changeset" ] && [ -f "$changeset" ]; then
  echo "changeset: $(grep -c . "$changeset") changed paths"
fi

resource="{\"attributes\":[{\"key\":\"service.name\",\"value\":{\"stringValue\":\"$(json_string "$service_name")\"}}]}"
scope='{"name":"job-shell.sh","version":"1"}'

telemetry_warned=""
post() {  # post URL JSON; a failure is reported once and never fails the build
  if ! curl -s -m 5 -o /dev/null -H 'Content-Type: application/json' --data-binary "$2" "$1" \
    && [ -z "$telemetry_warned" ]; then
    echo "job-shell.sh: could not send telemetry to $1 (is bass serve running?)" >&2
    telemetry_warned=1
  fi
}

# send_span NAME SPAN_ID PARENT_ID START_NS END_NS STATUS [EXIT_CODE]
send_span() {
  case "$6" in
    ok) code=1 ;;
    running|skipped) code=0 ;;
    *) code=2 ;;
  esac
  attrs="{\"key\":\"bass.status\",\"value\":{\"stringValue\":\"$6\"}}"
  if [ $# -ge 7 ]; then
    attrs="$attrs,{\"key\":\"process.exit.code\",\"value\":{\"intValue\":\"$7\"}}"
  fi
  span="{\"traceId\":\"$trace_id\",\"spanId\":\"$2\",\"parentSpanId\":\"$3\",\"name\":\"$(json_string "$1")\",\"kind\":1,\"startTimeUnixNano\":\"$4\",\"endTimeUnixNano\":\"$5\",\"attributes\":[$attrs],\"status\":{\"code\":$code}}"
  post "$traces_endpoint" "{\"resourceSpans\":[{\"resource\":$resource,\"scopeSpans\":[{\"scope\":$scope,\"spans\":[$span]}]}]}"
}

# send_logs SPAN_ID OUTPUT: one log record per line of OUTPUT
send_logs() {
  now=$(now_ns)
  records=""
  while IFS= read -r line; do
    record="{\"traceId\":\"$trace_id\",\"spanId\":\"$1\",\"timeUnixNano\":\"$now\",\"observedTimeUnixNano\":\"$now\",\"severityNumber\":9,\"severityText\":\"INFO\",\"attributes\":[{\"key\":\"log.iostream\",\"value\":{\"stringValue\":\"stdout\"}}],\"body\":{\"stringValue\":\"$(json_string "$line")\"}}"
    records="$records${records:+,}$record"
  done <<END_OF_OUTPUT
$2
END_OF_OUTPUT
  post "$logs_endpoint" "{\"resourceLogs\":[{\"resource\":$resource,\"scopeLogs\":[{\"scope\":$scope,\"logRecords\":[$records]}]}]}"
}

# run_step NAME COMMAND...: run a step under the pipeline's span, report it, return its code
run_step() {
  step_name=$1
  shift
  step_span=$(hex 8)
  step_start=$(now_ns)
  echo "▶ $pipeline_name/$step_name"
  send_span "$step_name" "$step_span" "$pipeline_span" "$step_start" 0 running
  # TRACEPARENT lets an OpenTelemetry-instrumented tool nest its own spans under the step.
  step_output=$(TRACEPARENT="00-$trace_id-$step_span-01" "$@" 2>&1)
  step_code=$?
  send_logs "$step_span" "$step_output"
  if [ "$step_code" -eq 0 ]; then step_status=ok; else step_status=failed; fi
  send_span "$step_name" "$step_span" "$pipeline_span" "$step_start" "$(now_ns)" "$step_status" "$step_code"
  if [ "$step_status" = ok ]; then echo "✓ $pipeline_name/$step_name"; else echo "✗ $pipeline_name/$step_name failed (exit $step_code)"; fi
  return "$step_code"
}

build_start=$(now_ns)
if [ -n "$generate_root" ]; then
  send_span "build $pipeline_name" "$root_span_id" "" "$build_start" 0 running
fi
pipeline_span=$(hex 8)
send_span "$pipeline_name" "$pipeline_span" "$root_span_id" "$build_start" 0 running

# The two steps (ordered: the second runs only when the first succeeded).
status=ok
if run_step compile sh -c 'echo "compiling 3 files"; sleep 0.1'; then
  run_step test sh -c 'echo "tests passed"' || status=failed
else
  status=failed
fi

build_end=$(now_ns)
send_span "$pipeline_name" "$pipeline_span" "$root_span_id" "$build_start" "$build_end" "$status"
if [ -n "$generate_root" ]; then
  send_span "build $pipeline_name" "$root_span_id" "" "$build_start" "$build_end" "$status"
fi
echo "pipeline $pipeline_name $status"
echo "trace: $(echo "$traces_endpoint" | sed -E 's#^([a-z]+://[^/]+).*#\1#')/traces/$trace_id"
[ "$status" = ok ]
