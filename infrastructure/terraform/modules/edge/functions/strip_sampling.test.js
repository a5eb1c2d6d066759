// node --test: the CloudFront Function runs as CloudFront runs it (a plain script defining
// `handler`, no module system), loaded into a fresh VM context.
'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const vm = require('node:vm');

const source = fs.readFileSync(path.join(__dirname, 'strip_sampling.js'), 'utf8');

function load() {
    const context = vm.createContext({});
    vm.runInContext(source, context, { filename: 'strip_sampling.js' });
    return context.handler;
}

// Objects made inside the VM have its prototypes: compare plain copies.
const plain = (value) => JSON.parse(JSON.stringify(value));

function viewerRequest(headers) {
    return {
        version: '1.0',
        context: { eventType: 'viewer-request' },
        viewer: { ip: '192.0.2.1' },
        request: { method: 'GET', uri: '/api/v2/stream', querystring: {}, headers: headers, cookies: {} },
    };
}

const ROOT = 'Root=1-67891233-abcdef012345678912345678';
const PARENT = 'Parent=53995c3f42cd8ad8';

test('FR-035: Sampled=1 is removed, Root and Parent kept in order', () => {
    const out = load()(viewerRequest({ 'x-amzn-trace-id': { value: `${ROOT};${PARENT};Sampled=1` } }));
    assert.equal(out.headers['x-amzn-trace-id'].value, `${ROOT};${PARENT}`);
});

test('FR-035: Sampled anywhere, any case, with spaces, is removed', () => {
    const handler = load();
    for (const value of [`Sampled=1;${ROOT};${PARENT}`, `${ROOT}; sampled=1 ;${PARENT}`, `${ROOT};SAMPLED=?;${PARENT}`, `${ROOT};${PARENT};Sampled=0`]) {
        const out = handler(viewerRequest({ 'x-amzn-trace-id': { value: value } }));
        assert.equal(out.headers['x-amzn-trace-id'].value, `${ROOT};${PARENT}`, value);
    }
});

test('a header without Sampled passes unchanged (other fields kept)', () => {
    const handler = load();
    const plain = handler(viewerRequest({ 'x-amzn-trace-id': { value: `${ROOT};${PARENT}` } }));
    assert.equal(plain.headers['x-amzn-trace-id'].value, `${ROOT};${PARENT}`);
    const lineage = handler(viewerRequest({ 'x-amzn-trace-id': { value: `${ROOT};${PARENT};Lineage=a87bd80c:1` } }));
    assert.equal(lineage.headers['x-amzn-trace-id'].value, `${ROOT};${PARENT};Lineage=a87bd80c:1`);
});

test('a header holding only Sampled is removed entirely', () => {
    const out = load()(viewerRequest({ 'x-amzn-trace-id': { value: 'Sampled=1' }, accept: { value: 'text/event-stream' } }));
    assert.equal(out.headers['x-amzn-trace-id'], undefined);
    assert.equal(out.headers.accept.value, 'text/event-stream');
});

test('no trace header: the request passes untouched', () => {
    const request = viewerRequest({ 'last-event-id': { value: '2026-11-25T08:00:00.123Z/abc' } });
    const out = load()(request);
    assert.deepEqual(plain(out), plain(request.request));
});

test('multi-value headers: every value is cleaned', () => {
    const out = load()(viewerRequest({
        'x-amzn-trace-id': {
            value: `${ROOT};Sampled=1`,
            multiValue: [{ value: `${ROOT};Sampled=1` }, { value: `${PARENT};Sampled=1` }, { value: 'Sampled=1' }],
        },
    }));
    const header = out.headers['x-amzn-trace-id'];
    assert.equal(header.value, ROOT);
    assert.deepEqual(plain(header.multiValue.map((v) => v.value)), [ROOT, PARENT]);
});

test('other headers are never touched', () => {
    const headers = {
        'x-amzn-trace-id': { value: `${ROOT};Sampled=1` },
        authorization: { value: 'Bearer token;Sampled=1' },
        'x-sse-previous-trace-id': { value: `${ROOT};Sampled=1` },
    };
    const out = load()(viewerRequest(headers));
    assert.equal(out.headers.authorization.value, 'Bearer token;Sampled=1');
    assert.equal(out.headers['x-sse-previous-trace-id'].value, `${ROOT};Sampled=1`);
});
