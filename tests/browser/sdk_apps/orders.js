'use strict';
// A small Node.js service traced with the OpenTelemetry JS SDK and its OTLP/HTTP
// protobuf exporter, for tests/browser/test_sdk_traces.py:
//
//   NODE_PATH=DIR/node_modules OTEL_EXPORTER_OTLP_ENDPOINT=http://HOST:PORT \
//   OTEL_SERVICE_NAME=NAME node orders.js
//
// The exporter takes its endpoint from the environment, the resource its service name.
// One request: a root span, and a child that throws a RangeError, recorded as an
// exception event with the span's status ERROR. Shuts the provider down (flushing the
// batch), then prints the trace id; exits non-zero if the export failed.

const api = require('@opentelemetry/api');
const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-proto');
const { defaultResource, detectResources, envDetector } = require('@opentelemetry/resources');
const { BatchSpanProcessor, NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');

const exporter = new OTLPTraceExporter();
const failures = [];
const send = exporter.export.bind(exporter);
exporter.export = (spans, done) =>
  send(spans, (result) => {
    if (result.code !== 0) failures.push(String(result.error));
    done(result);
  });

const provider = new NodeTracerProvider({
  resource: defaultResource().merge(detectResources({ detectors: [envDetector] })),
  spanProcessors: [new BatchSpanProcessor(exporter)],
});
provider.register();
const tracer = api.trace.getTracer('orders-app', '1.0.0');

function reserveStock(quantity) {
  if (quantity <= 0) throw new RangeError(`quantity must be positive, got ${quantity}`);
  return quantity;
}

let traceId;
tracer.startActiveSpan('POST /orders', { kind: api.SpanKind.SERVER }, (request) => {
  traceId = request.spanContext().traceId;
  request.setAttribute('http.route', '/orders');
  tracer.startActiveSpan('reserve stock', (reserve) => {
    reserve.setAttribute('order.sku', 'BASS-GUITAR-4');
    reserve.setAttribute('order.quantity', -3);
    try {
      reserveStock(-3);
    } catch (e) {
      reserve.recordException(e);
      reserve.setStatus({ code: api.SpanStatusCode.ERROR, message: 'no stock reserved' });
    }
    reserve.end();
  });
  request.end();
});

provider.shutdown().then(() => {
  if (failures.length) {
    console.error(`export failed: ${failures.join('; ')}`);
    process.exit(1);
  }
  console.log(traceId);
});
