// undici_fetch.js - one request with Node's fetch through undici's ProxyAgent,
// for test_proxy_robust.py.
//
// usage: node undici_fetch.js JSON
//   JSON: {"proxy": "http://127.0.0.1:PORT", "key": "...", "url": "...",
//          "method": "POST", "headers": {...}, "body": "...",
//          "tunnel": true|false}
// Prints one JSON line: {"undici": version, "fetch": "global"|"undici",
//   "ok": true, "status": N, "headers": {...}, "body": "..."} or
//   {"ok": false, "error": {"name", "message", "code", "cause"}}.
'use strict'
const path = require('path')
const undiciDir = path.join(__dirname, 'node_modules', 'undici')
const { ProxyAgent, fetch: undiciFetch } = require(undiciDir)
const version = require(path.join(undiciDir, 'package.json')).version

function describe (err) {
  if (!err) return null
  return {
    name: err.name,
    message: String(err.message),
    code: err.code,
    cause: describe(err.cause)
  }
}

async function main () {
  const a = JSON.parse(process.argv[2])
  const opts = {
    uri: a.proxy,
    token: 'Basic ' + Buffer.from('x:' + a.key).toString('base64')
  }
  if (a.tunnel === false) opts.proxyTunnel = false
  const dispatcher = new ProxyAgent(opts)
  // Node 20's built-in fetch accepts an undici dispatcher; fall back to the
  // installed undici's own fetch only if the built-in one is missing.
  const useGlobal = typeof globalThis.fetch === 'function' && !a.undici_fetch
  const f = useGlobal ? globalThis.fetch : undiciFetch
  const out = { undici: version, node: process.version, fetch: useGlobal ? 'global' : 'undici' }
  try {
    const r = await f(a.url, {
      method: a.method || 'GET',
      headers: a.headers || {},
      body: a.body,
      dispatcher,
      redirect: 'manual',
      signal: AbortSignal.timeout(a.timeout_ms || 10000)
    })
    const headers = {}
    r.headers.forEach((v, k) => { headers[k] = v })
    out.ok = true
    out.status = r.status
    out.headers = headers
    out.body = await r.text()
  } catch (err) {
    out.ok = false
    out.error = describe(err)
  }
  await dispatcher.close().catch(() => {})
  process.stdout.write(JSON.stringify(out) + '\n')
}

main().catch(err => {
  process.stdout.write(JSON.stringify({ ok: false, error: describe(err) }) + '\n')
  process.exit(2)
})
