'use strict';
// The OpenTelemetry JS SDK's OTLP/HTTP JSON exporters pointed at a bass serve.
//
//   node export.js http://127.0.0.1:PORT [none|gzip]
//
// Sends a small trace (nested spans of several kinds, attributes of every type the JS
// SDK has, events, a link to a span of another trace, error and ok statuses) and log
// records in span context through the batch processors, flushes and shuts down, then
// prints to stdout one JSON object describing exactly what the exporters reported as
// sent: ids, names, kinds as OTLP numbers, timestamps in ns as decimal strings,
// attributes (Uint8Array as base64), statuses, events, links, resource, scope, log
// records. Exits non-zero if any export failed. tests/exporters/test_js_sdk.py runs it.

const api = require('@opentelemetry/api');
const { SeverityNumber } = require('@opentelemetry/api-logs');
const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { BatchLogRecordProcessor, LoggerProvider } = require('@opentelemetry/sdk-logs');
const { BasicTracerProvider, BatchSpanProcessor } = require('@opentelemetry/sdk-trace-base');

const SUCCESS = 0; // ExportResultCode.SUCCESS (@opentelemetry/core)

// Attribute values of every type the JS SDK takes. 2**53 - 1 is the largest integer a
// JS number holds exactly; the JSON exporter sends it as a bare number. The exporter
// sends every integral number as intValue, so a double here must have a fraction
// (1.5e300 would go out as intValue 1.5e+300, a JS SDK quirk, not OTLP).
const ATTRIBUTES = {
  str: 'héllo ✓ "quoted"\nsecond line',
  'str.empty': '',
  'bool.true': true,
  'bool.false': false,
  int: 42,
  'int.zero': 0,
  'int.negative': -7,
  'int.max_safe': Number.MAX_SAFE_INTEGER,
  'int.min_safe': Number.MIN_SAFE_INTEGER,
  float: 3.25,
  'float.tenth': 0.1,
  'float.tiny': -1e-300,
  'float.big': 1500000000000000.5,
  strs: ['a', 'b', ''],
  bools: [true, false, true],
  ints: [1, -2, Number.MAX_SAFE_INTEGER],
  floats: [0.5, -2.25, 1e-100],
};
const LOG_ATTRIBUTES = {
  ...ATTRIBUTES,
  bytes: new Uint8Array([0, 255, 98, 105, 110]),
  map: { k: 'v', n: 1, inner: { deep: true, list: ['x', 2] } },
  mixed: ['a', 1, 2.5, false],
};

function recording(exporter) {
  const sent = [];
  const failures = [];
  return {
    sent,
    failures,
    export(items, done) {
      exporter.export(items, result => {
        if (result.code === SUCCESS) sent.push(...items);
        else failures.push(String(result.error || result.code));
        done(result);
      });
    },
    forceFlush: () => (exporter.forceFlush ? exporter.forceFlush() : Promise.resolve()),
    shutdown: () => exporter.shutdown(),
  };
}

const ns = hr => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();

function plain(value) {
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, plain(v)]));
  }
  return value;
}

function describeSpan(span) {
  const context = span.spanContext();
  return {
    trace_id: context.traceId,
    span_id: context.spanId,
    parent_span_id: span.parentSpanContext ? span.parentSpanContext.spanId : '',
    name: span.name,
    kind: span.kind + 1, // the API's SpanKind is OTLP's minus one
    start_ns: ns(span.startTime),
    end_ns: ns(span.endTime),
    status_code: span.status.code,
    status_message: span.status.message || '',
    attributes: plain(span.attributes),
    events: span.events.map(e => ({
      time_ns: ns(e.time),
      name: e.name,
      attributes: plain(e.attributes || {}),
    })),
    links: span.links.map(l => ({
      trace_id: l.context.traceId,
      span_id: l.context.spanId,
      attributes: plain(l.attributes || {}),
    })),
    resource: plain(span.resource.attributes),
    scope: `${span.instrumentationScope.name} ${span.instrumentationScope.version || ''}`.trim(),
  };
}

function describeLog(record) {
  return {
    trace_id: record.spanContext ? record.spanContext.traceId : '',
    span_id: record.spanContext ? record.spanContext.spanId : '',
    time_ns: ns(record.hrTime),
    observed_ns: ns(record.hrTimeObserved),
    severity_number: record.severityNumber || 0,
    severity_text: record.severityText || '',
    body: plain(record.body),
    body_type: record.body instanceof Uint8Array ? 'bytes' : typeof record.body,
    attributes: plain(record.attributes),
    resource: plain(record.resource.attributes),
  };
}

async function main() {
  const [base, compression = 'none'] = process.argv.slice(2);
  if (!base || !['none', 'gzip'].includes(compression)) {
    throw new Error('usage: node export.js BASE_URL [none|gzip]');
  }
  const resource = resourceFromAttributes({
    'service.name': 'bass-exporter-test-js',
    'service.version': '0.9.0',
    'res.int': 7,
    'res.bool': true,
    'res.float': 0.25,
    'res.strs': ['x', 'y'],
  });
  const spansOut = recording(new OTLPTraceExporter({ url: `${base}/v1/traces`, compression }));
  const logsOut = recording(new OTLPLogExporter({ url: `${base}/v1/logs`, compression }));
  const tracerProvider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(spansOut)],
  });
  const loggerProvider = new LoggerProvider({
    resource,
    processors: [new BatchLogRecordProcessor({ exporter: logsOut })],
  });
  const tracer = tracerProvider.getTracer('bass.tests.exporters.js', '4.5.6');
  const logger = loggerProvider.getLogger('bass.tests.exporters.js', '4.5.6');
  // No context manager is registered: contexts are passed explicitly.
  const { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } = api;

  const target = tracer.startSpan('queued job', { kind: SpanKind.PRODUCER }, ROOT_CONTEXT);
  target.end();
  // An explicit start 60 s ago, as an hrTime with nanoseconds: more digits than a double.
  const startSeconds = Math.floor(Date.now() / 1000) - 60;
  const root = tracer.startSpan(
    'GET /orders',
    { kind: SpanKind.SERVER, attributes: ATTRIBUTES, startTime: [startSeconds, 123456789] },
    ROOT_CONTEXT,
  );
  const rootContext = trace.setSpan(ROOT_CONTEXT, root);
  root.addEvent(
    'request received',
    { 'http.method': 'GET', 'body.bytes': 512, ratio: 0.75, retry: false, headers: ['accept', 'x-trace'] },
    [startSeconds, 124456790],
  );
  logger.emit({
    context: rootContext,
    timestamp: [startSeconds, 125456792],
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: 'request received: GET /orders',
    attributes: LOG_ATTRIBUTES,
  });
  const client = tracer.startSpan(
    'SELECT orders',
    {
      kind: SpanKind.CLIENT,
      links: [{ context: target.spanContext(), attributes: { 'link.reason': 'follows', 'link.n': 2 } }],
    },
    rootContext,
  );
  const clientContext = trace.setSpan(rootContext, client);
  client.setAttribute('db.system', 'sqlite');
  client.addEvent('retry', { attempt: 2 });
  client.addEvent('no attributes');
  logger.emit({
    context: clientContext,
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    body: {
      error: 'database is locked',
      code: 5,
      retryable: true,
      tables: ['orders', 'items'],
      detail: { 'wait.s': 1.5 },
    },
    attributes: { 'db.system': 'sqlite', attempt: 2 },
  });
  const decode = tracer.startSpan('decode rows', { kind: SpanKind.INTERNAL }, clientContext);
  const decodeContext = trace.setSpan(clientContext, decode);
  logger.emit({
    context: decodeContext,
    severityNumber: SeverityNumber.WARN2,
    severityText: 'warning',
    body: ['partial', 3, 0.5, false],
  });
  logger.emit({ context: decodeContext, severityNumber: SeverityNumber.DEBUG, body: 404 });
  logger.emit({ context: decodeContext, severityNumber: SeverityNumber.TRACE4, body: true });
  logger.emit({
    context: decodeContext,
    severityNumber: SeverityNumber.FATAL,
    severityText: 'FATAL',
    body: new Uint8Array([0, 255, 98, 105, 110]),
  });
  decode.end();
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'database is locked' });
  client.end();
  root.setStatus({ code: SpanStatusCode.OK });
  const consumer = tracer.startSpan('publish', { kind: SpanKind.CONSUMER }, rootContext);
  consumer.setAttribute('empty.strs', []);
  consumer.end();
  root.end();

  await tracerProvider.forceFlush();
  await loggerProvider.forceFlush();
  await tracerProvider.shutdown();
  await loggerProvider.shutdown();
  const failures = [...spansOut.failures, ...logsOut.failures];
  if (failures.length) throw new Error(`export failed: ${failures.join('; ')}`);
  process.stdout.write(
    `${JSON.stringify({
      spans: spansOut.sent.map(describeSpan),
      logs: logsOut.sent.map(describeLog),
    })}\n`,
  );
}

main().catch(err => {
  process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 1;
});
