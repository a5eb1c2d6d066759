// The devstack's CloudFront Functions runtime: runs one viewer-request function (a plain script that
// defines `handler`, as CloudFront loads it) for each event read from stdin, one JSON line per event,
// and writes one JSON line per result: {"result": <request or response object>} or {"error": "..."}.
// Each event gets a fresh VM context: CloudFront Functions keep no state between invocations.
// Event and result shapes: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
'use strict';
const fs = require('node:fs');
const readline = require('node:readline');
const vm = require('node:vm');

const script = new vm.Script(fs.readFileSync(process.argv[2], 'utf8'), { filename: process.argv[2] });
const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });

lines.on('line', (line) => {
    let reply;
    try {
        const context = vm.createContext({});
        script.runInContext(context, { timeout: 1000 });
        const result = context.handler(JSON.parse(line));
        reply = { result: JSON.parse(JSON.stringify(result)) };
    } catch (error) {
        reply = { error: String(error && error.stack ? error.stack : error) };
    }
    process.stdout.write(JSON.stringify(reply) + '\n');
});
