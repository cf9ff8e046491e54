// Publish one audiences.materialize message the way a Node.js campaign stack would.
// Usage: node publish.js <redis url> <queue> <audience id> <revision> [as_of]
const celery = require("celery-node");

const [brokerUrl, queue, audienceId, revision, asOf] = process.argv.slice(2);
const client = celery.createClient(brokerUrl, brokerUrl, queue);
const task = client.createTask("audiences.materialize");
const kwargs = { audience_id: audienceId, revision: Number(revision), as_of: asOf || null };
task.applyAsync([], kwargs);
// celery-node publishes asynchronously; give it a moment, then close the connections.
setTimeout(() => client.disconnect().then(() => process.exit(0)), 500);
