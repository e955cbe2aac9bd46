#!/usr/bin/env node
// Sends Segment-spec calls to cdp-server with an official Node SDK. Used by tests/server/test_segment_sdk.py.
//
// Reads a plan from stdin:
//   {"sdk": "segment" | "rudder", "host": "http://127.0.0.1:PORT", "writeKey": "...", "gzip": true,
//    "rounds": [[{"method": "identify" | "track" | "page" | "screen" | "group" | "alias", "params": {...}}, ...], ...]}
// Each round's calls are enqueued, then flushed (so a round is one or more /v1/batch requests). Prints
//   {"calls": n, "errors": ["..."], "requests": [{"encoding": "gzip" | null, "status": 200}]}
// and exits 1 when any call was not delivered.
'use strict';

const zlib = require('zlib');

function readStdin() {
  return new Promise((resolve, reject) => {
    let text = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => (text += chunk));
    process.stdin.on('end', () => resolve(text));
    process.stdin.on('error', reject);
  });
}

// @segment/analytics-node has no gzip option; its documented extension point is the HTTP client. This one gzips
// the body and says so in Content-Encoding, and records what was sent.
class GzipHTTPClient {
  constructor(gzip, requests) {
    this.gzip = gzip;
    this.requests = requests;
  }
  async makeRequest(options) {
    const headers = { ...options.headers };
    let body = options.body;
    if (this.gzip) {
      body = zlib.gzipSync(Buffer.from(options.body));
      headers['Content-Encoding'] = 'gzip';
    }
    const response = await fetch(options.url, { method: options.method, headers, body });
    this.requests.push({ encoding: this.gzip ? 'gzip' : null, status: response.status });
    return response;
  }
}

async function runSegment(plan, out) {
  const { Analytics } = require('@segment/analytics-node');
  const analytics = new Analytics({
    writeKey: plan.writeKey,
    host: plan.host,
    path: '/v1/batch',
    flushAt: 100,
    flushInterval: 60000,
    maxRetries: 2,
    httpClient: new GzipHTTPClient(plan.gzip, out.requests),
  });
  analytics.on('error', (err) => out.errors.push(`error event: ${err && (err.reason || err.message || err)}`));
  for (const round of plan.rounds) {
    const delivered = round.map(
      (call) =>
        new Promise((resolve) => {
          analytics[call.method](call.params, (err) => {
            if (err) out.errors.push(`${call.method}: ${err.reason || err.message || err}`);
            resolve();
          });
          out.calls++;
        }),
    );
    await analytics.flush();
    await Promise.all(delivered);
  }
  await analytics.closeAndFlush({ timeout: 20000 });
}

async function runRudder(plan, out) {
  const Analytics = require('@rudderstack/rudder-sdk-node');
  const axios = require('axios');
  const axiosInstance = axios.create();
  axiosInstance.interceptors.response.use(
    (response) => {
      out.requests.push({ encoding: response.config.headers['Content-Encoding'] || null, status: response.status });
      return response;
    },
    (error) => {
      const r = error.response;
      out.requests.push({ encoding: r ? r.config.headers['Content-Encoding'] || null : null, status: r ? r.status : 0 });
      return Promise.reject(error);
    },
  );
  const client = new Analytics(plan.writeKey, {
    dataPlaneUrl: plan.host,
    gzip: plan.gzip,
    flushAt: 100,
    flushInterval: 60000,
    retryCount: 0,
    logLevel: 'error',
    axiosInstance,
  });
  for (const round of plan.rounds) {
    const delivered = round.map(
      (call) =>
        new Promise((resolve) => {
          client[call.method](call.params, (err) => {
            if (err) out.errors.push(`${call.method}: ${err.message || err}`);
            resolve();
          });
          out.calls++;
        }),
    );
    try {
      await client.flush();
    } catch (err) {
      out.errors.push(`flush: ${err.message || err}`);
    }
    await Promise.all(delivered);
  }
}

const out = { calls: 0, errors: [], requests: [] };
// The RudderStack SDK starts its first flush without awaiting it: a failure there is an unhandled rejection.
process.on('unhandledRejection', (err) => out.errors.push(`unhandled: ${err && (err.message || err)}`));

async function main() {
  const plan = JSON.parse(await readStdin());
  if (plan.sdk === 'segment') {
    await runSegment(plan, out);
  } else if (plan.sdk === 'rudder') {
    await runRudder(plan, out);
  } else {
    throw new Error(`unknown sdk ${plan.sdk}`);
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(out.errors.length === 0 ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(`send.js: ${err && err.stack ? err.stack : err}\n`);
  process.exit(2);
});
