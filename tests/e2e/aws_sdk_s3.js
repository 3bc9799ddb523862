// aws_sdk_s3.js - an unmodified AWS SDK for JavaScript v3 S3 client, for
// test_sigv4_proxy.py: a few S3 operations against a plain-http endpoint,
// optionally through secretproxy as a forward proxy (absolute-form requests
// with Proxy-Authorization, by http-proxy-agent under the SDK's own
// NodeHttpHandler).
//
// usage: node aws_sdk_s3.js JSON
//   JSON: {"endpoint": "http://127.0.0.1:PORT", "proxy": "http://x:KEY@127.0.0.1:PORT"?,
//          "access_key_id": "...", "secret_access_key": "...", "session_token"?: "...",
//          "region": "us-east-1", "bucket": "...",
//          "ops": [{"op": "put"|"put_stream"|"get"|"list"|"head"|"delete",
//                   "key": "...", "body": "..."}]}
// Prints one JSON line: {"sdk": version, "node": version, "results": [
//   {"op", "ok": true, "status", "etag"?, "body"?, "keys"?, "checksum"?} or
//   {"op", "ok": false, "status", "error": {"name", "message", "code"}}]}
'use strict'
const path = require('path')
const { Readable } = require('stream')

const here = path.join(__dirname, 'node_modules')
const s3mod = require(path.join(here, '@aws-sdk', 'client-s3'))
const sdkVersion = require(path.join(here, '@aws-sdk', 'client-s3', 'package.json')).version
// The handler the SDK itself uses (a dependency of client-s3).
const { NodeHttpHandler } = require(require.resolve('@smithy/node-http-handler',
  { paths: [path.join(here, '@aws-sdk', 'client-s3')] }))
const { HttpProxyAgent } = require(path.join(here, 'http-proxy-agent'))

function describe (err) {
  return {
    name: err.name,
    message: String(err.message).slice(0, 500),
    code: err.Code || err.code,
    status: err.$metadata ? err.$metadata.httpStatusCode : undefined
  }
}

async function run (client, bucket, o) {
  const key = o.key
  switch (o.op) {
    case 'put': {
      const r = await client.send(new s3mod.PutObjectCommand({
        Bucket: bucket, Key: key, Body: o.body, ContentType: 'text/plain'
      }))
      return { etag: r.ETag, checksum: r.ChecksumCRC32, status: r.$metadata.httpStatusCode }
    }
    case 'put_stream': {
      // A stream body of known length: the SDK sends aws-chunked with a
      // trailing checksum (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
      const data = Buffer.from(o.body)
      const pieces = []
      for (let i = 0; i < data.length; i += 7000) pieces.push(data.subarray(i, i + 7000))
      const r = await client.send(new s3mod.PutObjectCommand({
        Bucket: bucket, Key: key, Body: Readable.from(pieces), ContentLength: data.length
      }))
      return { etag: r.ETag, status: r.$metadata.httpStatusCode }
    }
    case 'get': {
      const r = await client.send(new s3mod.GetObjectCommand({ Bucket: bucket, Key: key }))
      return { body: await r.Body.transformToString(), etag: r.ETag,
        status: r.$metadata.httpStatusCode }
    }
    case 'head': {
      const r = await client.send(new s3mod.HeadObjectCommand({ Bucket: bucket, Key: key }))
      return { length: r.ContentLength, etag: r.ETag, status: r.$metadata.httpStatusCode }
    }
    case 'list': {
      const r = await client.send(new s3mod.ListObjectsV2Command({
        Bucket: bucket, Prefix: o.prefix || ''
      }))
      return { keys: (r.Contents || []).map(c => c.Key), status: r.$metadata.httpStatusCode }
    }
    case 'delete': {
      const r = await client.send(new s3mod.DeleteObjectCommand({ Bucket: bucket, Key: key }))
      return { status: r.$metadata.httpStatusCode }
    }
    default:
      throw new Error('unknown op ' + o.op)
  }
}

async function main () {
  const a = JSON.parse(process.argv[2])
  const handlerOpts = { connectionTimeout: 5000, requestTimeout: 15000 }
  if (a.proxy) handlerOpts.httpAgent = new HttpProxyAgent(a.proxy)
  const credentials = { accessKeyId: a.access_key_id, secretAccessKey: a.secret_access_key }
  if (a.session_token) credentials.sessionToken = a.session_token
  const client = new s3mod.S3Client({
    endpoint: a.endpoint,
    region: a.region || 'us-east-1',
    forcePathStyle: true,
    credentials,
    maxAttempts: 1,
    requestHandler: new NodeHttpHandler(handlerOpts)
  })
  const out = { sdk: sdkVersion, node: process.version, results: [] }
  for (const o of a.ops) {
    try {
      out.results.push(Object.assign({ op: o.op, key: o.key, ok: true },
        await run(client, a.bucket, o)))
    } catch (err) {
      out.results.push({ op: o.op, key: o.key, ok: false, error: describe(err) })
    }
  }
  client.destroy()
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => {
  process.stdout.write(JSON.stringify({ ok: false, error: describe(err) }) + '\n')
  process.exit(2)
})
