// CloudFront Function (cloudfront-js-2.0), viewer-request, in front of API Gateway and the SSE
// Function URL. X-Ray honours an upstream sampling decision, so a client sending `Sampled=1` could
// force every request into X-Ray (a cost attack, FR-035). Drop the `Sampled` field of an incoming
// X-Amzn-Trace-Id and keep the rest (Root and Parent link the browser's trace to ours); the
// server-side sampling rules then decide. A header left with no field is removed.
var TRACE_HEADER = 'x-amzn-trace-id';

function stripSampled(value) {
    var kept = [];
    var fields = String(value).split(';');
    for (var i = 0; i < fields.length; i++) {
        var field = fields[i].trim();
        if (field === '') {
            continue;
        }
        var name = field.split('=')[0].trim().toLowerCase();
        if (name === 'sampled') {
            continue;
        }
        kept.push(field);
    }
    return kept.join(';');
}

function handler(event) {
    var request = event.request;
    var header = request.headers[TRACE_HEADER];
    if (!header) {
        return request;
    }
    var values = header.multiValue ? header.multiValue : [{ value: header.value }];
    var cleaned = [];
    for (var i = 0; i < values.length; i++) {
        var stripped = stripSampled(values[i].value);
        if (stripped !== '') {
            cleaned.push({ value: stripped });
        }
    }
    if (cleaned.length === 0) {
        delete request.headers[TRACE_HEADER];
    } else if (cleaned.length === 1) {
        request.headers[TRACE_HEADER] = { value: cleaned[0].value };
    } else {
        request.headers[TRACE_HEADER] = { value: cleaned[0].value, multiValue: cleaned };
    }
    return request;
}
